// Bindings for running scenarios: run(), params(), stats(), mutants().
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "models/page_pool/mutants.h"
#include "models/world/world.h"
#include "sim/error.h"
#include "sim/json_reader.h"
#include "sim/timeline.h"

namespace py = pybind11;
using ppsim::world::json;

namespace {

// --seed / seed=: 0..2^63-1, the range of sim.seed. Python's own check comes first; this one
// keeps a direct call from turning into pybind11's "Unable to cast" error.
std::uint64_t seed_from(const py::object& seed, const std::string& file) {
  const std::string expected = "seed: expected an integer from 0 to 9223372036854775807 (2^63-1, the range of sim.seed), got ";
  if (!PyLong_Check(seed.ptr()) || PyBool_Check(seed.ptr()))
    throw ppsim::sim::ScenarioError(file, "", expected + "a " + std::string(py::str(seed.get_type().attr("__name__"))));
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(seed.ptr(), &overflow);
  if (overflow) throw ppsim::sim::ScenarioError(file, "", expected + (overflow < 0 ? "a number below 0" : "a number above it"));
  if (v < 0) throw ppsim::sim::ScenarioError(file, "", expected + std::to_string(v));
  return static_cast<std::uint64_t>(v);
}

// results.json text; strings that are not UTF-8 (a file name from argv) are replaced, not fatal.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

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
         const std::vector<std::string>& mutants, const std::string& checker, const std::string& timeline_path,
         std::size_t timeline_max_events) {
        ppsim::world::RunOptions o;
        o.trace_path = trace_path;
        o.timeline_path = timeline_path;
        o.timeline_max_events = timeline_max_events;
        if (!seed.is_none()) o.seed = seed_from(seed, file);
        for (const auto& name : mutants) {
          try {
            o.mutants.add(ppsim::page_pool::mutant_by_name(name));
          } catch (const std::invalid_argument& e) {
            throw ppsim::sim::ScenarioError("", "", e.what());
          }
        }
        if (checker == "stop") o.checker_mode = ppsim::sim::Verdicts::Mode::kStop;
        else if (checker == "collect") o.checker_mode = ppsim::sim::Verdicts::Mode::kCollect;
        const json scenario = ppsim::sim::parse_json_text(scenario_json, file);
        json out;
        {
          py::gil_scoped_release nogil;
          out = ppsim::world::run(scenario, file, o);
        }
        return dump(out);
      },
      py::arg("scenario_json"), py::arg("file") = "<scenario>", py::arg("trace_path") = "", py::arg("seed") = py::none(),
      py::arg("mutants") = std::vector<std::string>{}, py::arg("checker") = "", py::arg("timeline_path") = "",
      py::arg("timeline_max_events") = ppsim::sim::Timeline::kDefaultMaxEvents,
      "Run a scenario (JSON text); returns results as JSON text. Raises ScenarioError on bad input.");

  m.def("params", [] { return dump(ppsim::world::registry().describe()); }, "Every scenario parameter, as JSON text.");
  m.def(
      "stats",
      [](const std::string& scenario_json, const std::string& file) {
        return dump(ppsim::world::describe_stats(ppsim::sim::parse_json_text(scenario_json, file), file));
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
