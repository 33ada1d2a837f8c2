// Units a parameter can carry, and conversion of "<number> <unit>" strings.
// A parameter's unit fixes its dimension; a string value must use a unit of the same dimension.
#pragma once
#include <optional>
#include <string>

namespace ppsim::sim {

enum class Dimension { kNone, kTime, kBytes, kBitRate, kPacketRate, kFrequency, kCount };

struct UnitInfo {
  Dimension dim;
  double factor;  // multiply a value in this unit by factor to get the dimension's base unit
};

// Known unit (ps, ns, us, ms, s, B, bytes, KiB, MiB, GiB, KB, MB, GB, bps, Kbps, Mbps, Gbps,
// pps, Kpps, Mpps, Hz, kHz, MHz, GHz) or a count noun (pages, packets, …) → its info.
std::optional<UnitInfo> lookup_unit(const std::string& unit);
const char* dimension_name(Dimension d);
// "units of <dim>: ns, us, …" for error messages.
std::string units_of(Dimension d);

}  // namespace ppsim::sim
