// libFuzzer target: sysfs CPU lists ("0-3,8,10-11"), as CpuTopology::from_host reads them. Every
// input parses or raises std::invalid_argument.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "sim/cost/cpu_topology.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto cpus = ppsim::cost::parse_cpu_list(std::string(reinterpret_cast<const char*>(data), size));
    for (int c : cpus)
      if (c < 0 || c > ppsim::cost::kMaxCpuNumber) __builtin_trap();
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
