// A run: scenario JSON → validated parameters → topology → models bound → run → results JSON.
//
// The world holds the event kernel, the CPUs, the page allocator, one page_pool and one RX
// queue (with its NAPI) per NIC queue, the stack that consumes packets, and the observers: the
// invariant checker, the tracer and the stats. Phases: open (fill rings), traffic for
// sim.duration_us, drain for sim.drain_us, then teardown (close queues, destroy pools, deferred
// release retries every second until every pool is freed or sim.retry_limit retries ran).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "models/page_pool/mutants.h"
#include "sim/invariants.h"
#include "sim/params.h"

namespace ppsim::world {

using json = nlohmann::json;

struct RunOptions {
  std::string trace_path;              // write tracefs-format text here ("" = no trace)
  std::optional<std::uint64_t> seed;   // overrides sim.seed
  page_pool::MutantSet mutants;
  std::optional<sim::Verdicts::Mode> checker_mode;  // overrides sim.checker
  std::string timeline_path;           // write a Chrome/Perfetto trace-event timeline here ("" = none)
  std::size_t timeline_max_events = 2'000'000;  // the timeline stops recording after this many events
};

// Every parameter a scenario may set.
const sim::ParamRegistry& registry();

// Runs one scenario. `file` names the scenario in error messages. Throws sim::ScenarioError on
// bad input. The result is deterministic for a given scenario and seed.
json run(const json& scenario, const std::string& file, const RunOptions& opts = {});

// Every stat a run of `scenario` would report, with units and docs (for `ppsim stats`).
json describe_stats(const json& scenario, const std::string& file);

}  // namespace ppsim::world
