// Event dispatch: raw SystemC SC_METHOD activations versus ppsim's Process on top of them, in the
// same binary, so the ratio is measured on one machine in one run.
#define SC_INCLUDE_DYNAMIC_PROCESSES
#include <benchmark/benchmark.h>

#include <systemc>

#include "sim/kernel.h"

namespace {

constexpr int kEvents = 1'000'000;

// A bare SC_METHOD that re-notifies its own event kEvents times.
void BM_RawSystemC(benchmark::State& state) {
  for (auto _ : state) {
    ppsim::sim::Kernel k;  // gives us a fresh SystemC context; we then use SystemC directly
    sc_core::sc_event ev("raw");
    int n = 0;
    sc_core::sc_spawn_options o;
    o.spawn_method();
    o.set_sensitivity(&ev);
    o.dont_initialize();
    sc_core::sc_spawn([&] {
      if (++n < kEvents) ev.notify(sc_core::sc_time(1000, sc_core::SC_PS));
    }, "raw_method", &o);
    ev.notify(sc_core::sc_time(1000, sc_core::SC_PS));
    k.run();
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations() * kEvents);
}
BENCHMARK(BM_RawSystemC)->Unit(benchmark::kMillisecond);

// The same pattern through ppsim::sim::Process.
void BM_PpsimProcess(benchmark::State& state) {
  for (auto _ : state) {
    ppsim::sim::Kernel k;
    int n = 0;
    ppsim::sim::Process* self = nullptr;
    ppsim::sim::Process p(k, "ppsim", [&] {
      if (++n < kEvents) self->wake_after(1000);
    });
    self = &p;
    p.wake_at(1000);
    k.run();
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations() * kEvents);
}
BENCHMARK(BM_PpsimProcess)->Unit(benchmark::kMillisecond);

}  // namespace
