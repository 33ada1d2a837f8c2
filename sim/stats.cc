#include "sim/stats.h"

#include <stdexcept>

namespace ppsim::sim {

void Stats::claim(const std::string& path) {
  if (scalars_.count(path) || series_.count(path) || histograms_.count(path))
    throw std::logic_error("ppsim: stat registered twice: " + path);
}

std::uint64_t& Stats::counter(const std::string& path, const std::string& unit, const std::string& doc) {
  claim(path);
  counter_storage_.push_back(0);
  Scalar s{Scalar::kCounter, unit, doc, nullptr, {}, {}};
  s.counter = &counter_storage_.back();
  scalars_.emplace(path, std::move(s));
  return counter_storage_.back();
}

void Stats::reader(const std::string& path, const std::string& unit, const std::string& doc,
                   std::function<std::int64_t()> read) {
  claim(path);
  Scalar s{Scalar::kReader, unit, doc, nullptr, {}, {}};
  s.read = std::move(read);
  scalars_.emplace(path, std::move(s));
}

void Stats::formula(const std::string& path, const std::string& unit, const std::string& doc,
                    std::function<double()> expr) {
  claim(path);
  Scalar s{Scalar::kFormula, unit, doc, nullptr, {}, {}};
  s.expr = std::move(expr);
  scalars_.emplace(path, std::move(s));
}

TimeSeries& Stats::series(const std::string& path, const std::string& unit, const std::string& doc) {
  claim(path);
  auto& slot = series_[path];
  slot.first = Meta{unit, doc};
  return slot.second;
}

Histogram& Stats::histogram(const std::string& path, const std::string& unit, const std::string& doc) {
  claim(path);
  auto& slot = histograms_[path];
  slot.first = Meta{unit, doc};
  return slot.second;
}

double Stats::value(const std::string& path) const {
  auto it = scalars_.find(path);
  if (it == scalars_.end()) throw std::logic_error("ppsim: unknown stat: " + path);
  const Scalar& s = it->second;
  switch (s.kind) {
    case Scalar::kCounter: return static_cast<double>(*s.counter);
    case Scalar::kReader: return static_cast<double>(s.read());
    case Scalar::kFormula: return s.expr();
  }
  return 0;
}

json Stats::to_json() const {
  json stats = json::object();
  for (const auto& [path, s] : scalars_) {
    json v;
    switch (s.kind) {
      case Scalar::kCounter: v = *s.counter; break;
      case Scalar::kReader: v = s.read(); break;
      case Scalar::kFormula: v = s.expr(); break;
    }
    stats[path] = {{"value", v}, {"unit", s.unit}, {"doc", s.doc}};
  }
  json series = json::object();
  for (const auto& [path, ms] : series_) {
    series[path] = {{"unit", ms.first.unit}, {"doc", ms.first.doc}, {"t_ps", ms.second.times()},
                    {"values", ms.second.values()}};
  }
  json hists = json::object();
  for (const auto& [path, mh] : histograms_) {
    json bins = json::object();
    for (const auto& [k, n] : mh.second.bins()) bins[std::to_string(k)] = n;
    hists[path] = {{"unit", mh.first.unit}, {"doc", mh.first.doc}, {"count", mh.second.count()},
                   {"mean", mh.second.mean()}, {"bins", bins}};
  }
  return {{"stats", stats}, {"series", series}, {"histograms", hists}};
}

json Stats::describe() const {
  json out = json::array();
  for (const auto& [path, s] : scalars_)
    out.push_back({{"path", path},
                   {"kind", s.kind == Scalar::kCounter ? "counter" : s.kind == Scalar::kReader ? "value" : "formula"},
                   {"unit", s.unit}, {"doc", s.doc}});
  for (const auto& [path, ms] : series_)
    out.push_back({{"path", path}, {"kind", "series"}, {"unit", ms.first.unit}, {"doc", ms.first.doc}});
  for (const auto& [path, mh] : histograms_)
    out.push_back({{"path", path}, {"kind", "histogram"}, {"unit", mh.first.unit}, {"doc", mh.first.doc}});
  return out;
}

}  // namespace ppsim::sim
