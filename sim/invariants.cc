#include "sim/invariants.h"

#include <cstdio>

namespace ppsim::sim {

std::string Violation::to_string() const {
  char t[48];
  std::snprintf(t, sizeof t, "%.6f us", to_us(time));
  std::string s = "invariant " + invariant + " violated by " + subject + " at t=" + t + " on " + event;
  if (!detail.empty()) s += ": " + detail;
  if (!history.empty()) {
    s += "\n  last transitions:";
    for (const auto& h : history) s += "\n    " + h;
  }
  return s;
}

void Verdicts::return_counter(const std::uint64_t* n) {
  for (auto it = counters_.begin(); it != counters_.end(); ++it)
    if (*it == n) {
      checks_ += *n;
      counters_.erase(it);
      return;
    }
}

bool Verdicts::report(Violation v) {
  ++count_;
  ++by_invariant_[v.invariant];
  if (kept_.size() < max_kept_) kept_.push_back(std::move(v));
  return mode_ == Mode::kStop;
}

nlohmann::json Verdicts::to_json() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& v : kept_)
    list.push_back({{"invariant", v.invariant}, {"subject", v.subject}, {"time_ps", v.time}, {"event", v.event},
                    {"detail", v.detail}, {"history", v.history}});
  return {{"mode", mode_ == Mode::kStop ? "stop" : "collect"}, {"checks", checks()}, {"violations", count_},
          {"ok", count_ == 0}, {"by_invariant", by_invariant_}, {"kept", list}};
}

}  // namespace ppsim::sim
