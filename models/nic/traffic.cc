#include "models/nic/traffic.h"

#include <algorithm>

namespace ppsim::nic {

TrafficSource::TrafficSource(const Config& cfg, sim::Rng rng)
    : cfg_(cfg), rng_(rng), flow_rng_(rng.stream("flows")), offered_(static_cast<double>(cfg.start)) {
  if (cfg_.rate_pps <= 0) exhausted_ = true;
  else gap_ = 1e12 / cfg_.rate_pps;
  if (cfg_.flows == 0) cfg_.flows = 1;
}

bool TrafficSource::generate() {
  if (exhausted_) return false;
  if (cfg_.packets && generated_ >= cfg_.packets) {
    exhausted_ = true;
    return false;
  }
  const bool first = generated_ == 0;
  offered_ = first && !cfg_.poisson ? offered_ : offered_ + (cfg_.poisson ? rng_.exponential(gap_) : gap_);
  // A frame cannot start on the line before the previous one has left it.
  const double at = first ? offered_ : std::max(offered_, line_ + cfg_.min_gap_ps);
  // At a tiny rate the next offer lies past what Picos can hold: never, so the source ends.
  const sim::Picos ti = sim::ps_or_never(at);
  if (ti >= cfg_.stop) {
    exhausted_ = true;
    return false;
  }
  line_ = at;
  ++generated_;
  const std::uint32_t f = cfg_.flows > 1 ? static_cast<std::uint32_t>(flow_rng_.below(cfg_.flows)) : 0;
  ahead_.push_back({ti, f});
  return true;
}

sim::Picos TrafficSource::peek_slow(std::size_t k) {
  while (ahead_.size() <= k)
    if (!generate()) return sim::kNever;
  return ahead_[k].t;
}

void TrafficSource::pop() {
  if (ahead_.empty()) peek(0);
  if (!ahead_.empty()) ahead_.pop_front();
}

}  // namespace ppsim::nic
