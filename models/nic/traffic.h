// Packet arrivals at a NIC queue, generated lazily (no event per packet): the RX queue asks for
// the next arrival times when it catches up. Constant-rate or Poisson, bounded by a packet count
// and a stop time.
#pragma once
#include <cstdint>
#include <deque>

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
  };
  TrafficSource(const Config& cfg, sim::Rng rng);

  // Arrival time of the k-th next packet (k = 0: the next one); kNever when there is none.
  sim::Picos peek(std::size_t k = 0);
  void pop();
  std::uint32_t packet_bytes() const { return cfg_.packet_bytes; }
  std::uint64_t generated() const { return generated_; }
  void stop_at(sim::Picos t) { cfg_.stop = t; }

 private:
  bool generate();
  Config cfg_;
  sim::Rng rng_;
  std::deque<sim::Picos> ahead_;
  double t_ = 0;  // ps, fractional to keep constant rates exact over long runs
  std::uint64_t generated_ = 0;
  bool exhausted_ = false;
};

}  // namespace ppsim::nic
