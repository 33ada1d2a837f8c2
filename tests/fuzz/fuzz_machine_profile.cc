// libFuzzer target: machine profile JSON (scenarios/machines/, `ppsim calibrate` output): the
// strict reader, MachineProfile::from_json with its CPU topology, then the coherence model built on
// it, asked for every CPU pair once. Every input builds a model or raises ScenarioError.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "sim/cost/coherence.h"
#include "sim/error.h"
#include "sim/json_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ppsim::cost;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    MachineProfile prof = MachineProfile::from_json(ppsim::sim::parse_json_text(text, "m.json"), "m.json");
    (void)prof.to_json().dump();
    CoherenceModel model(prof);
    const int n = prof.topology.cpus();
    for (int a = 0; a < n; ++a) {
      (void)prof.transfer(a, (a * 7 + 3) % n);
      (void)model.access(a, LineType::kStructPage, 1, a % 2 ? Access::kWrite : Access::kRead);
      (void)model.access(a, LineType::kPtrRingSlot, static_cast<std::uint64_t>(a) / 8, Access::kAtomic);
    }
    model.device_write(LineType::kPacketData, 1);
    (void)model.access(0, LineType::kPacketData, 1, Access::kRead);
  } catch (const ppsim::sim::ScenarioError&) {
  }
  return 0;
}
