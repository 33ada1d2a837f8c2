// The compiled half of the Python package: each area's bindings live in bind_<area>.cc.
#include <pybind11/pybind11.h>

#include "ppsim_version.h"

void bind_run(pybind11::module_& m);
void bind_pcie(pybind11::module_& m);
void bind_zerocopy(pybind11::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "ppsim compiled core";
  m.attr("__version__") = PPSIM_VERSION;
  bind_run(m);
  bind_pcie(m);
  bind_zerocopy(m);
}
