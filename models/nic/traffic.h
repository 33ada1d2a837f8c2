// Packet arrivals, generated lazily (no event per packet): a consumer asks for the next arrival
// times when it catches up. Constant-rate or Poisson offered load, bounded by a packet count and a
// stop time. The line limits the offered load: two arrivals are at least min_gap_ps apart (one
// frame time on the wire), so an offered rate above line rate arrives at line rate. Each packet
// belongs to one of `flows` flows, drawn uniformly (from its own random stream), for RSS.
#pragma once
#include <cstdint>

#include "models/nic/fifo.h"

#include "sim/rng.h"
#include "sim/time.h"

namespace ppsim::nic {

class TrafficSource {
 public:
  struct Config {
    double rate_pps = 1e6;
    std::uint32_t packet_bytes = 1500;
    std::uint64_t packets = 0;  // 0: unlimited until stop
    sim::Picos start = 0, stop = sim::kNever;
    bool poisson = false;
    double min_gap_ps = 0;      // frame time on the line (0: no line limit)
    std::uint32_t flows = 1;
  };
  TrafficSource(const Config& cfg, sim::Rng rng);

  // Arrival time of the k-th next packet (k = 0: the next one); kNever when there is none.
  sim::Picos peek(std::size_t k = 0) {
    if (ahead_.size() > k) return ahead_[k].t;
    return peek_slow(k);
  }
  std::uint32_t flow() { return peek() == sim::kNever ? 0 : ahead_.front().flow; }  // of the next packet
  void pop();
  std::uint32_t packet_bytes() const { return cfg_.packet_bytes; }
  const Config& config() const { return cfg_; }

 private:
  struct Arrival {
    sim::Picos t;
    std::uint32_t flow;
  };
  static constexpr std::size_t kBatch = 31;
  sim::Picos peek_slow(std::size_t k);
  void fill(std::size_t want);
  Config cfg_;
  sim::Rng rng_, flow_rng_;
  Fifo<Arrival> ahead_;
  double gap_ = 0;      // mean spacing of the offered process, ps
  double offered_ = 0;  // ps of the offered process, fractional to keep constant rates exact
  double line_ = 0;     // ps of the last arrival, after the line limit
  std::uint64_t generated_ = 0;
  bool exhausted_ = false;
};

}  // namespace ppsim::nic
