// Invariant verdicts shared by every checker. A checker observes model events (it is never
// called by the model directly); when a rule breaks it reports a Violation here. In stop mode
// the first violation ends the run; in collect mode they accumulate (bounded) and the run goes on.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sim/time.h"

namespace ppsim::sim {

struct Violation {
  std::string invariant;  // short rule name, e.g. "no_double_put"
  std::string subject;    // what broke it, e.g. "page pfn=0x1a2b"
  Picos time = 0;
  std::string event;      // the model event being checked
  std::string detail;     // what was seen versus what the rule allows
  std::vector<std::string> history;  // the subject's last few transitions, oldest first
  std::string to_string() const;
};

class Verdicts {
 public:
  enum class Mode { kStop, kCollect };
  explicit Verdicts(Mode mode = Mode::kStop, std::size_t max_kept = 100) : mode_(mode), max_kept_(max_kept) {}
  // Not copied: a copy would keep the counters lent to the original (lend_counter).
  Verdicts(const Verdicts&) = delete;
  Verdicts& operator=(const Verdicts&) = delete;
  // Returns true if the run should stop.
  bool report(Violation v);
  Mode mode() const { return mode_; }
  std::uint64_t count() const { return count_; }
  const std::vector<Violation>& kept() const { return kept_; }
  // Violations per invariant, all of them (kept or not).
  const std::map<std::string, std::uint64_t>& by_invariant() const { return by_invariant_; }
  std::uint64_t checks() const {
    std::uint64_t n = checks_;
    for (const std::uint64_t* c : counters_) n += *c;
    return n;
  }
  // A checker keeps its own count of checks (it increments it on every event anyway) and lends
  // it here; checks() adds it in.
  // The checker returns it before it goes away: its count is then folded into checks_.
  void lend_counter(const std::uint64_t* n) { counters_.push_back(n); }
  void return_counter(const std::uint64_t* n);
  nlohmann::json to_json() const;

 private:
  Mode mode_;
  std::size_t max_kept_;
  std::uint64_t count_ = 0, checks_ = 0;
  std::vector<const std::uint64_t*> counters_;
  std::vector<Violation> kept_;
  std::map<std::string, std::uint64_t> by_invariant_;
};

}  // namespace ppsim::sim
