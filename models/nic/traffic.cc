#include "models/nic/traffic.h"

namespace ppsim::nic {

TrafficSource::TrafficSource(const Config& cfg, sim::Rng rng) : cfg_(cfg), rng_(rng), t_(static_cast<double>(cfg.start)) {
  if (cfg_.rate_pps <= 0) exhausted_ = true;
}

bool TrafficSource::generate() {
  if (exhausted_) return false;
  if (cfg_.packets && generated_ >= cfg_.packets) {
    exhausted_ = true;
    return false;
  }
  const double gap = 1e12 / cfg_.rate_pps;
  const double next = generated_ == 0 && !cfg_.poisson ? t_ : t_ + (cfg_.poisson ? rng_.exponential(gap) : gap);
  const auto ti = static_cast<sim::Picos>(next);
  if (ti >= cfg_.stop) {
    exhausted_ = true;
    return false;
  }
  t_ = next;
  ++generated_;
  ahead_.push_back(ti);
  return true;
}

sim::Picos TrafficSource::peek(std::size_t k) {
  while (ahead_.size() <= k)
    if (!generate()) return sim::kNever;
  return ahead_[k];
}

void TrafficSource::pop() {
  if (ahead_.empty()) peek(0);
  if (!ahead_.empty()) ahead_.pop_front();
}

}  // namespace ppsim::nic
