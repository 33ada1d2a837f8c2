#include "sim/units.h"

#include <map>

namespace ppsim::sim {
namespace {

const std::map<std::string, UnitInfo>& table() {
  static const std::map<std::string, UnitInfo> t = {
      {"ps", {Dimension::kTime, 1}},           {"ns", {Dimension::kTime, 1e3}},
      {"us", {Dimension::kTime, 1e6}},         {"ms", {Dimension::kTime, 1e9}},
      {"s", {Dimension::kTime, 1e12}},         {"B", {Dimension::kBytes, 1}},
      {"bytes", {Dimension::kBytes, 1}},       {"KiB", {Dimension::kBytes, 1024.0}},
      {"MiB", {Dimension::kBytes, 1048576.0}}, {"GiB", {Dimension::kBytes, 1073741824.0}},
      {"KB", {Dimension::kBytes, 1e3}},        {"MB", {Dimension::kBytes, 1e6}},
      {"GB", {Dimension::kBytes, 1e9}},        {"bps", {Dimension::kBitRate, 1}},
      {"Kbps", {Dimension::kBitRate, 1e3}},    {"Mbps", {Dimension::kBitRate, 1e6}},
      {"Gbps", {Dimension::kBitRate, 1e9}},    {"pps", {Dimension::kPacketRate, 1}},
      {"Kpps", {Dimension::kPacketRate, 1e3}}, {"Mpps", {Dimension::kPacketRate, 1e6}},
      {"Hz", {Dimension::kFrequency, 1}},      {"kHz", {Dimension::kFrequency, 1e3}},
      {"MHz", {Dimension::kFrequency, 1e6}},   {"GHz", {Dimension::kFrequency, 1e9}},
  };
  return t;
}

}  // namespace

std::optional<UnitInfo> lookup_unit(const std::string& unit) {
  auto it = table().find(unit);
  if (it == table().end()) return std::nullopt;
  return it->second;
}

const char* dimension_name(Dimension d) {
  switch (d) {
    case Dimension::kNone: return "dimensionless";
    case Dimension::kTime: return "time";
    case Dimension::kBytes: return "size";
    case Dimension::kBitRate: return "bit rate";
    case Dimension::kPacketRate: return "packet rate";
    case Dimension::kFrequency: return "frequency";
    case Dimension::kCount: return "count";
  }
  return "?";
}

std::string units_of(Dimension d) {
  std::string out;
  for (const auto& [name, info] : table()) {
    if (info.dim != d) continue;
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

}  // namespace ppsim::sim
