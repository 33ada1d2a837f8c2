// Simulated time: signed 64-bit picoseconds at every model boundary.
// (SystemC's own resolution is also 1 ps; sim/kernel.cc converts.)
#pragma once
#include <cmath>
#include <cstdint>

namespace ppsim::sim {

using Picos = std::int64_t;

constexpr Picos kPicosPerNs = 1000;
constexpr Picos kPicosPerUs = 1000 * kPicosPerNs;
constexpr Picos kPicosPerMs = 1000 * kPicosPerUs;
constexpr Picos kPicosPerSec = 1000 * kPicosPerMs;
constexpr Picos kNever = INT64_MAX;

inline Picos from_ns(double ns) { return static_cast<Picos>(std::llround(ns * kPicosPerNs)); }
inline Picos from_us(double us) { return static_cast<Picos>(std::llround(us * kPicosPerUs)); }
inline double to_ns(Picos t) { return static_cast<double>(t) / kPicosPerNs; }
inline double to_us(Picos t) { return static_cast<double>(t) / kPicosPerUs; }
inline double to_sec(Picos t) { return static_cast<double>(t) / kPicosPerSec; }

}  // namespace ppsim::sim
