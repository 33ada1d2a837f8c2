// page_pool model throughput: alloc + recycle on the direct (alloc cache) path and on the
// ptr_ring path, without observers (as a scenario runs with the checker off) and with the
// checker attached. An "op" is one alloc or one recycle, so a pair is two ops.
#include <benchmark/benchmark.h>

#include <vector>

#include "models/page_pool/checker.h"
#include "models/page_pool/page_pool.h"

using namespace ppsim::page_pool;

namespace {

constexpr int kBatch = 64;  // a NAPI budget's worth of pages per round

PageWorld::Config world_cfg() {
  PageWorld::Config c;
  c.cpu_node = {0, 0};
  return c;
}

void run_pairs(benchmark::State& state, bool direct, bool checked) {
  PageWorld world(world_cfg());
  int owner = 0;
  PoolParams p;
  p.napi_list_owner = &owner;
  PagePool pool(0, world, p, PoolCosts{}, 2);
  ppsim::sim::Verdicts verdicts(ppsim::sim::Verdicts::Mode::kCollect);
  PageChecker checker(verdicts);
  if (checked) {
    checker.add_pool(&pool);
    world.subscribe(&checker);
  }
  Caller napi;
  napi.ctx.softirq = true;
  Caller other;  // process context on CPU 1: frees go to the ring
  other.ctx.cpu = 1;
  Caller& freer = direct ? napi : other;
  PageId pages[kBatch];
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) pages[i] = pool.alloc(napi);
    for (int i = 0; i < kBatch; ++i) pool.put(freer, pages[i], -1, false);
  }
  benchmark::DoNotOptimize(pool.hold_cnt());
  if (checked) world.unsubscribe(&checker);
  state.SetItemsProcessed(state.iterations() * kBatch * 2);
  state.counters["pairs_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()) * kBatch,
                                                     benchmark::Counter::kIsRate);
  state.counters["slow_allocs"] = static_cast<double>(pool.alloc_stats().slow);
}

void BM_PagePoolDirect(benchmark::State& s) { run_pairs(s, true, false); }
void BM_PagePoolRing(benchmark::State& s) { run_pairs(s, false, false); }
void BM_PagePoolDirectChecked(benchmark::State& s) { run_pairs(s, true, true); }
void BM_PagePoolRingChecked(benchmark::State& s) { run_pairs(s, false, true); }
BENCHMARK(BM_PagePoolDirect);
BENCHMARK(BM_PagePoolRing);
BENCHMARK(BM_PagePoolDirectChecked);
BENCHMARK(BM_PagePoolRingChecked);

}  // namespace
