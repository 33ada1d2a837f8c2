// Bindings for running scenarios: run(), params(), stats(), mutants().
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "models/page_pool/mutants.h"
#include "models/world/world.h"
#include "sim/error.h"

namespace py = pybind11;
using ppsim::world::json;

void bind_run(py::module_& m) {
  static py::exception<ppsim::sim::ScenarioError> scenario_error(m, "ScenarioError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ppsim::sim::ScenarioError& e) {
      scenario_error(e.what());
    }
  });

  m.def(
      "run",
      [](const std::string& scenario_json, const std::string& file, const std::string& trace_path, py::object seed,
         const std::vector<std::string>& mutants, const std::string& checker) {
        ppsim::world::RunOptions o;
        o.trace_path = trace_path;
        if (!seed.is_none()) o.seed = seed.cast<std::uint64_t>();
        for (const auto& name : mutants) {
          try {
            o.mutants.add(ppsim::page_pool::mutant_by_name(name));
          } catch (const std::invalid_argument& e) {
            throw ppsim::sim::ScenarioError("", "", e.what());
          }
        }
        if (checker == "stop") o.checker_mode = ppsim::sim::Verdicts::Mode::kStop;
        else if (checker == "collect") o.checker_mode = ppsim::sim::Verdicts::Mode::kCollect;
        json scenario;
        try {
          scenario = json::parse(scenario_json);
        } catch (const json::parse_error& e) {
          throw ppsim::sim::ScenarioError(file, "", std::string("malformed JSON: ") + e.what());
        }
        json out;
        {
          py::gil_scoped_release nogil;
          out = ppsim::world::run(scenario, file, o);
        }
        return out.dump();
      },
      py::arg("scenario_json"), py::arg("file") = "<scenario>", py::arg("trace_path") = "", py::arg("seed") = py::none(),
      py::arg("mutants") = std::vector<std::string>{}, py::arg("checker") = "",
      "Run a scenario (JSON text); returns results as JSON text. Raises ScenarioError on bad input.");

  m.def("params", [] { return ppsim::world::registry().describe().dump(); }, "Every scenario parameter, as JSON text.");
  m.def(
      "stats",
      [](const std::string& scenario_json, const std::string& file) {
        return ppsim::world::describe_stats(json::parse(scenario_json), file).dump();
      },
      py::arg("scenario_json") = "{}", py::arg("file") = "<scenario>", "Every stat a run would report, as JSON text.");
  m.def("mutants", [] {
    py::list out;
    for (const auto& mi : ppsim::page_pool::all_mutants())
      out.append(py::dict(py::arg("name") = mi.name, py::arg("bug_class") = mi.bug_class, py::arg("commit") = mi.commit,
                          py::arg("invariant") = mi.invariant, py::arg("scenario") = mi.scenario));
    return out;
  }, "Known mutants: a dict per mutant with name, bug_class, commit (or \"ppsim\"), the invariant expected to "
     "catch it and the shipped scenario that reaches it.");
}
