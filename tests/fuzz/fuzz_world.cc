// libFuzzer target: a scenario that resolves is built into a world and run for at most 2000
// events (and 64 MiB, 2 s), the budgets overriding whatever the input asks. Validation that lets
// through a combination the models cannot take shows up here as another exception or a sanitizer
// report. Slower than fuzz_scenario (a SystemC context per input), so it gets fewer runs.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "models/world/world.h"
#include "sim/error.h"
#include "sim/json_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto scenario = ppsim::sim::parse_json_text(text, "fuzz.json");
    if (!scenario.is_object()) return 0;
    auto& sim = scenario["sim"];
    if (!sim.is_object()) return 0;
    sim["max_events"] = 2000;
    sim["max_memory_mib"] = 64;
    sim["max_wall_s"] = 2;
    // Profiles by path could name any file on the machine: keep to the shipped ones.
    if (scenario.contains("coherence") && scenario["coherence"].is_object() &&
        scenario["coherence"].contains("profile") && scenario["coherence"]["profile"].is_string() &&
        scenario["coherence"]["profile"].get<std::string>().find_first_of("/.") != std::string::npos)
      scenario["coherence"].erase("profile");
    (void)ppsim::world::run(scenario, "fuzz.json").dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const ppsim::sim::ScenarioError&) {
  }
  return 0;
}
