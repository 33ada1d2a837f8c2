// The stats registry: every statistic has a dotted name, a unit and a one-line doc.
// Three kinds: counters the registry owns (plain uint64, no atomics), readers of state a model
// owns (so page_pool's kernel-named counters live in the pool, as in the kernel), and derived
// formulas over other stats. Time series and exact histograms feed reports.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sim/time.h"

namespace ppsim::sim {

using json = nlohmann::json;

class TimeSeries {
 public:
  void add(Picos t, double v) { t_.push_back(t); v_.push_back(v); }
  std::size_t size() const { return t_.size(); }
  const std::vector<Picos>& times() const { return t_; }
  const std::vector<double>& values() const { return v_; }

 private:
  std::vector<Picos> t_;
  std::vector<double> v_;
};

// Exact distribution of integer samples (burst sizes, batch lengths).
class Histogram {
 public:
  void add(std::int64_t v, std::uint64_t n = 1) { bins_[v] += n; count_ += n; sum_ += v * static_cast<double>(n); }
  std::uint64_t count() const { return count_; }
  double mean() const { return count_ ? sum_ / count_ : 0.0; }
  const std::map<std::int64_t, std::uint64_t>& bins() const { return bins_; }

 private:
  std::map<std::int64_t, std::uint64_t> bins_;
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

class Stats {
 public:
  std::uint64_t& counter(const std::string& path, const std::string& unit, const std::string& doc);
  void reader(const std::string& path, const std::string& unit, const std::string& doc,
              std::function<std::int64_t()> read);
  void formula(const std::string& path, const std::string& unit, const std::string& doc,
               std::function<double()> expr);
  TimeSeries& series(const std::string& path, const std::string& unit, const std::string& doc);
  Histogram& histogram(const std::string& path, const std::string& unit, const std::string& doc);

  // Current value of a scalar stat (counter, reader or formula); throws if unknown.
  double value(const std::string& path) const;
  bool has(const std::string& path) const { return scalars_.count(path) != 0; }

  // {"stats": {path: {value, unit, doc}}, "series": {...}, "histograms": {...}}
  json to_json() const;
  // [{path, kind, unit, doc}] for `ppsim stats`.
  json describe() const;

 private:
  struct Scalar {
    enum Kind { kCounter, kReader, kFormula } kind;
    std::string unit, doc;
    std::uint64_t* counter = nullptr;
    std::function<std::int64_t()> read;
    std::function<double()> expr;
  };
  struct Meta {
    std::string unit, doc;
  };
  void claim(const std::string& path);
  std::map<std::string, Scalar> scalars_;
  std::deque<std::uint64_t> counter_storage_;  // stable addresses
  std::map<std::string, std::pair<Meta, TimeSeries>> series_;
  std::map<std::string, std::pair<Meta, Histogram>> histograms_;
};

// Safe ratio for formulas: 0/0 → 0.
inline double ratio(double num, double den) { return den == 0 ? 0.0 : num / den; }

}  // namespace ppsim::sim
