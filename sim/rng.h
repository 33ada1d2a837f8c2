// Seeded, portable randomness. xoshiro256** with splitmix64 seeding; distributions are written
// here (not <random>'s) so the same seed gives the same numbers on every standard library.
// Named streams: each component draws from stream(name), so adding a component does not shift
// the numbers another component sees.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

namespace ppsim::sim {

class Rng {
 public:
  explicit Rng(std::uint64_t seed = 1) { reseed(seed); }
  void reseed(std::uint64_t seed) {
    std::uint64_t x = seed;
    for (auto& w : s_) w = splitmix(x);
  }
  // A child generator whose seed depends on this one's seed and `name` only.
  Rng stream(const std::string& name) const {
    std::uint64_t h = 1469598103934665603ULL;  // FNV-1a
    for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
    return Rng(seed_mix_ ^ h);
  }
  std::uint64_t next() {
    const std::uint64_t r = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0]; s_[3] ^= s_[1]; s_[1] ^= s_[2]; s_[0] ^= s_[3];
    s_[2] ^= t; s_[3] = rotl(s_[3], 45);
    return r;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0,1)
  // A power-of-two n (the usual flow counts) takes the low bits, as % would, without a division.
  std::uint64_t below(std::uint64_t n) {
    if (!n) return 0;
    const std::uint64_t r = next();
    return (n & (n - 1)) == 0 ? r & (n - 1) : r % n;
  }
  double exponential(double mean) { return -mean * std::log1p(-uniform()); }
  bool bernoulli(double p) { return uniform() < p; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t splitmix(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    seed_mix_ = z;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::uint64_t s_[4] = {};
  std::uint64_t seed_mix_ = 0;
};

}  // namespace ppsim::sim
