#include "models/nic/traffic.h"

#include <algorithm>

namespace ppsim::nic {

TrafficSource::TrafficSource(const Config& cfg, sim::Rng rng)
    : cfg_(cfg), rng_(rng), flow_rng_(rng.stream("flows")), offered_(static_cast<double>(cfg.start)) {
  if (cfg_.rate_pps <= 0) exhausted_ = true;
  else gap_ = 1e12 / cfg_.rate_pps;
  if (cfg_.flows == 0) cfg_.flows = 1;
}

// Draws arrivals until `want` are ahead or the source ends. Each packet's draws come from the
// source's own streams in packet order, so how far ahead they are drawn does not change them.
void TrafficSource::fill(std::size_t want) {
  if (exhausted_) return;
  const std::uint64_t limit = cfg_.packets ? cfg_.packets : ~std::uint64_t{0};
  double offered = offered_, line = line_;
  std::uint64_t n = generated_;
  while (ahead_.size() < want) {
    if (n >= limit) {
      exhausted_ = true;
      break;
    }
    double at;
    if (n == 0) {
      if (cfg_.poisson) offered += rng_.exponential(gap_);
      at = offered;
    } else {
      offered += cfg_.poisson ? rng_.exponential(gap_) : gap_;
      at = std::max(offered, line + cfg_.min_gap_ps);  // a frame cannot start before the previous one left the line
    }
    // At a tiny rate the next offer lies past what Picos can hold: never, so the source ends.
    const sim::Picos ti = sim::ps_or_never(at);
    if (ti >= cfg_.stop) {
      exhausted_ = true;
      break;
    }
    line = at;
    ++n;
    const std::uint32_t f = cfg_.flows > 1 ? static_cast<std::uint32_t>(flow_rng_.below(cfg_.flows)) : 0;
    ahead_.push_back({ti, f});
  }
  offered_ = offered;
  line_ = line;
  generated_ = n;
}

sim::Picos TrafficSource::peek_slow(std::size_t k) {
  fill(k + 1 + kBatch);
  return ahead_.size() > k ? ahead_[k].t : sim::kNever;
}

void TrafficSource::pop() {
  if (ahead_.empty()) peek(0);
  if (!ahead_.empty()) ahead_.pop_front();
}

}  // namespace ppsim::nic
