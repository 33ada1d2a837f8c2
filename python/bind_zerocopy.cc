// Bindings for the zero-copy cost model (sim/cost/zerocopy.h): what the simulator charges for a
// copy to user space and for a map/unmap of the same bytes, so that `ppsim calibrate` compares the
// model itself, not a Python re-implementation, with the native benchmark.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <stdexcept>
#include <string>

#include "sim/cost/zerocopy.h"

namespace py = pybind11;
using namespace ppsim;

namespace {

// {"map_fixed_ns": ..., ...} in nanoseconds (per byte: ns per KiB), every key required.
cost::ZeroCopyCosts costs_from(const std::map<std::string, double>& d) {
  auto get = [&](const char* k) {
    auto it = d.find(k);
    if (it == d.end()) throw std::invalid_argument(std::string("zero-copy costs: missing ") + k);
    if (!(it->second >= 0)) throw std::invalid_argument(std::string("zero-copy costs: ") + k + " must be >= 0");
    return it->second;
  };
  cost::ZeroCopyCosts c;
  c.map_fixed = sim::from_ns(get("map_fixed_ns"));
  c.map_per_page = sim::from_ns(get("map_per_page_ns"));
  c.unmap_fixed = sim::from_ns(get("unmap_fixed_ns"));
  c.unmap_per_page = sim::from_ns(get("unmap_per_page_ns"));
  c.shootdown = sim::from_ns(get("shootdown_ns"));
  c.shootdown_per_page = sim::from_ns(get("shootdown_per_page_ns"));
  c.clear_ps_per_byte = get("clear_ns_per_kib") * 1000.0 / 1024.0;
  c.copy_fixed = sim::from_ns(get("copy_fixed_ns"));
  c.copy_ps_per_byte = get("copy_ns_per_kib") * 1000.0 / 1024.0;
  c.copy_per_page = sim::from_ns(get("copy_per_page_ns"));
  return c;
}

}  // namespace

void bind_zerocopy(py::module_& m) {
  auto z = m.def_submodule("zerocopy", "the zero-copy cost model (sim/cost/zerocopy.h)");
  z.def(
      "predict",
      [](const std::map<std::string, double>& costs, std::uint64_t bytes, int remote_cpus) {
        const cost::ZeroCopyCosts c = costs_from(costs);
        return std::map<std::string, double>{
            {"copy_to_user_ns", sim::to_ns(cost::copy_cost(c, bytes))},
            {"map_unmap_ns", sim::to_ns(cost::map_unmap_cost(c, bytes, remote_cpus))},
            {"clear_ns", sim::to_ns(cost::clear_cost(c, bytes))}};
      },
      py::arg("costs"), py::arg("bytes"), py::arg("remote_cpus") = 1,
      "What the model charges for receiving `bytes` by copy and by map + unmap (ns).");
}
