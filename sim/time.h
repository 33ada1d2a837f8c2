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

// A time computed in floating point (a rate's gap, a pace) as Picos, truncated as a cast would;
// what lies past the end of 64-bit time (or is NaN) is kNever instead of undefined behaviour.
inline Picos ps_or_never(double ps) { return ps < 0x1p63 ? static_cast<Picos>(ps) : kNever; }
// t + ps, saturating at kNever.
inline Picos after(Picos t, double ps) {
  const Picos d = ps_or_never(ps);
  return t > 0 && d >= kNever - t ? kNever : t + d;
}

}  // namespace ppsim::sim
