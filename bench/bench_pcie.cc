// Cost of one PcieLink::cost call — the call a NIC model makes per DMA, doorbell or MSI-X.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "sim/cost/pcie.h"

namespace {

using ppsim::cost::PcieConfig;
using ppsim::cost::PcieLink;
using ppsim::cost::PcieOp;

void BM_PcieCost(benchmark::State& state) {
  const PcieLink link{PcieConfig{}};
  const auto op = static_cast<PcieOp>(state.range(0));
  std::int64_t bytes = op == PcieOp::kMsix ? 4 : state.range(1);
  std::int64_t sink = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(bytes);  // keep the size opaque so nothing is hoisted out of the loop
    const auto c = link.cost(op, bytes);
    sink += c.up.serialization_ps + c.down.serialization_ps + c.latency_ps;
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PcieCost)
    ->ArgNames({"op", "bytes"})
    ->Args({static_cast<int>(PcieOp::kDmaWrite), 1500})
    ->Args({static_cast<int>(PcieOp::kDmaRead), 1500})
    ->Args({static_cast<int>(PcieOp::kDmaRead), 65536})
    ->Args({static_cast<int>(PcieOp::kMmioWrite), 4})
    ->Args({static_cast<int>(PcieOp::kMsix), 4});

void BM_PcieNicGbps(benchmark::State& state) {
  const PcieLink link{PcieConfig{}};
  for (auto _ : state)
    benchmark::DoNotOptimize(link.nic_gbps(ppsim::cost::NicModel::kKernel, 1500, ppsim::cost::NicDirection::kBoth));
}
BENCHMARK(BM_PcieNicGbps);

}  // namespace
