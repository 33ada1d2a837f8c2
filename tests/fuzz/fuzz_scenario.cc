// libFuzzer target: scenario JSON text through the strict reader and the parameter registry
// (world::registry().resolve), as `ppsim run` and ppsim_run_scenario take it. Every input must
// either resolve or raise ScenarioError; anything else (another exception, a sanitizer report, a
// hang) is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "models/world/world.h"
#include "sim/error.h"
#include "sim/json_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto scenario = ppsim::sim::parse_json_text(text, "fuzz.json");
    const auto params = ppsim::world::registry().resolve(scenario, "fuzz.json");
    (void)params.to_json().dump();
  } catch (const ppsim::sim::ScenarioError&) {
  }
  return 0;
}
