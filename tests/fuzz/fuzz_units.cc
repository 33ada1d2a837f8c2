// libFuzzer target: "<number> <unit>" strings, the one free-text syntax of a scenario, converted
// for parameters of every dimension and kind. Every input converts or raises ScenarioError.
#include <cstddef>
#include <cstdint>
#include <string>

#include "sim/error.h"
#include "sim/params.h"
#include "sim/units.h"

namespace {

const ppsim::sim::ParamRegistry& registry() {
  static const ppsim::sim::ParamRegistry r = [] {
    ppsim::sim::ParamRegistry g;
    g.add_int("u.count", "", 0, "plain integer", 0, 9223372036854775807.0);
    g.add_float("u.ratio", "", 0, "plain number");
    g.add_int("u.pages", "pages", 1, "count noun", 1, 1e9);
    g.add_int("u.time_ps", "ps", 0, "int time", -1e18, 1e18);
    g.add_float("u.time_us", "us", 0, "float time", 0, 1e12);
    g.add_int("u.size_bytes", "bytes", 0, "int size", 0, 1ll << 40);
    g.add_int("u.size_kib", "KiB", 0, "int size", 0, 1ll << 30);
    g.add_float("u.rate_gbps", "Gbps", 1, "bit rate", 0, 400);
    g.add_float("u.rate_pps", "pps", 0, "packet rate", 0, 1e12);
    g.add_float("u.freq_mhz", "MHz", 0, "frequency");
    return g;
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string value(reinterpret_cast<const char*>(data), size);
  (void)ppsim::sim::lookup_unit(value);
  for (const auto& [path, spec] : registry().specs()) {
    const auto dot = path.find('.');
    nlohmann::json scenario;
    scenario[path.substr(0, dot)][path.substr(dot + 1)] = value;
    try {
      const auto p = registry().resolve(scenario, "fuzz.json");
      (void)p.get_double(path);
    } catch (const ppsim::sim::ScenarioError&) {
    }
  }
  return 0;
}
