// NIC model: the wire and RSS arithmetic, PCIe links as timed resources, the bottleneck rules,
// and whole runs: simulated throughput against the PCIe bound worked out per packet from
// PcieLink::cost, against pcie-bench's NIC model, against the wire; SR-IOV hairpin traffic
// crossing the link both ways; determinism; errors on bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "models/nic/bottleneck.h"
#include "models/nic/pcie_fabric.h"
#include "models/nic/rss.h"
#include "models/nic/wire.h"
#include "models/world/world.h"
#include "sim/cost/pcie.h"
#include "sim/error.h"

using namespace ppsim;
using nlohmann::json;

namespace {

double stat(const json& r, const std::string& name) { return r["stats"][name]["value"].get<double>(); }

// A receive run where only the NIC and PCIe can limit: XDP_DROP with small CPU costs on enough
// queues, a line faster than the link.
json rx_scenario(int frame, double gbps, int gen, int lanes) {
  const nic::Wire wire(nic::WireConfig{gbps});
  return {{"sim", {{"duration_us", 300}, {"drain_us", 100}, {"checker", "off"}}},
          {"cpus", {{"count", 8}}},
          {"nic", {{"queues", 8}, {"rx_ring_size_descs", 1024}, {"buffer_bytes", 2048}}},
          {"napi", {{"per_packet_ns", 10}}},
          {"stack", {{"mode", "xdp_drop"}, {"deliver_ns", 0}}},
          {"wire", {{"line_rate_gbps", gbps}}},
          {"pcie", {{"gen", gen}, {"lanes", lanes}}},
          {"traffic", {{"rate_pps", wire.max_pps(static_cast<std::uint32_t>(frame))}, {"packet_bytes", frame}, {"flows", 1024}}}};
}

// Steady-state packets per second the link allows a receive path, from the transactions each
// packet causes (PcieLink::cost, batched ones divided by their batch): the data write, the
// descriptor write-back, the descriptor fetch read, the tail doorbell. Interrupts are left out
// (none while NAPI keeps polling), so this is an upper bound.
double rx_pcie_bound_pps(int frame, int gen, int lanes, int fetch_batch, int wb_batch, int refill_batch) {
  cost::PcieConfig c;
  c.gen = gen;
  c.lanes = lanes;
  const cost::PcieLink link(c);
  const auto data = link.cost(cost::PcieOp::kDmaWrite, frame - 4);
  const auto wb = link.cost(cost::PcieOp::kDmaWrite, 16 * wb_batch);
  const auto fetch = link.cost(cost::PcieOp::kDmaRead, 16 * fetch_batch);
  const auto bell = link.cost(cost::PcieOp::kMmioWrite, 4);
  auto per_packet = [&](auto dir) {
    return static_cast<double>(dir(data)) + static_cast<double>(dir(wb)) / wb_batch +
           static_cast<double>(dir(fetch)) / fetch_batch + static_cast<double>(dir(bell)) / refill_batch;
  };
  const double up = per_packet([](const cost::PcieCost& k) { return k.up.serialization_ps; });
  const double down = per_packet([](const cost::PcieCost& k) { return k.down.serialization_ps; });
  // Each fetch read holds a tag for the round trip plus its completion's serialization.
  const double tags = (c.read_rtt_ns * 1000.0 + static_cast<double>(fetch.down.serialization_ps)) / fetch_batch / c.max_tags;
  return 1e12 / std::max({up, down, tags});
}

}  // namespace

TEST(NicWire, FrameTimeAndLineRatePacketRate) {
  const nic::Wire w10(nic::WireConfig{10.0});
  EXPECT_EQ(w10.line_bytes(64), 84u);                    // 64 + preamble/SFD 8 + IFG 12
  EXPECT_NEAR(w10.frame_ps(64), 67200.0, 1e-6);          // 84 B * 8 / 10 Gb/s
  EXPECT_NEAR(w10.max_pps(64) / 1e6, 14.880952, 1e-6);   // the 10GbE 64-byte figure
  EXPECT_EQ(w10.line_bytes(40), 84u);                    // runts are padded to 64
  const nic::Wire w100(nic::WireConfig{100.0});
  EXPECT_NEAR(w100.max_pps(1500) / 1e6, 8.223684, 1e-6);  // 1520 B on the line
  EXPECT_EQ(w100.dma_bytes(1500), 1496u);                  // FCS stripped
  EXPECT_TRUE(nic::is_standard_line_rate(25));
  EXPECT_FALSE(nic::is_standard_line_rate(30));
}

TEST(NicRss, ToeplitzMatchesTheVerificationSuite) {
  // Microsoft "Verifying the RSS hash calculation": 66.9.149.187:2794 → 161.142.100.80:1766.
  nic::FlowTuple t;
  t.src_ip = (66u << 24) | (9u << 16) | (149u << 8) | 187u;
  t.dst_ip = (161u << 24) | (142u << 16) | (100u << 8) | 80u;
  t.src_port = 2794;
  t.dst_port = 1766;
  EXPECT_EQ(nic::rss_hash(t, false, nic::default_rss_key()), 0x323e8fc2u);
  EXPECT_EQ(nic::rss_hash(t, true, nic::default_rss_key()), 0x51ccc178u);
}

TEST(NicRss, EveryQueueGetsFlowsAndTheMapIsStable) {
  const nic::RssMap a(1024, 8), b(1024, 8);
  int per_queue[8] = {};
  for (std::uint32_t f = 0; f < 1024; ++f) {
    ASSERT_EQ(a.queue_of(f), b.queue_of(f));
    ++per_queue[a.queue_of(f)];
  }
  for (int n : per_queue) EXPECT_GT(n, 64);  // 128 each if perfectly even
  const nic::RssMap one(16, 1);
  for (std::uint32_t f = 0; f < 16; ++f) EXPECT_EQ(one.queue_of(f), 0);
}

// One function on one link with the default configuration, its window open for a millisecond.
struct OneLink {
  nic::PcieFabric f;
  const cost::PcieConfig cfg;
  const int l = f.add_link("link0", cfg, 0);
  const int r = f.add_requester("fn", {l});
  const cost::PcieLink model{cfg};
  OneLink() { f.set_window(0, 1'000'000'000); }
};

TEST(NicFabric, PostedWritesSerializeAndLandAfterTheWriteLatency) {
  OneLink one;
  auto& [f, cfg, l, r, model] = one;
  const auto c = model.cost(cost::PcieOp::kDmaWrite, 1500);
  const auto a = f.write_up(r, cost::PcieOp::kDmaWrite, 1500, 1000);
  EXPECT_EQ(a.start, 1000);
  EXPECT_EQ(a.sent, 1000 + c.up.serialization_ps);
  EXPECT_EQ(a.done, a.sent + sim::from_ns(cfg.write_latency_ns));
  const auto b = f.write_up(r, cost::PcieOp::kDmaWrite, 1500, 1000);  // issued together: waits for the first
  EXPECT_EQ(b.start, a.sent);
  EXPECT_EQ(f.up(l).tlp_bytes, 2 * c.up.tlp_bytes);
  EXPECT_EQ(f.up(l).payload_bytes, 3000);
  EXPECT_EQ(f.up(l).tlps, 2 * c.up.tlps);
  EXPECT_NEAR(f.up(l).busy_ps, 2.0 * static_cast<double>(c.up.serialization_ps), 1.0);
}

// A link's counts of transactions are kept in its cost cache until read or until the cache entry
// is replaced: with far more sizes than the cache has entries, the totals must still be every
// transaction's own TLP bytes, payload bytes and TLPs, in both directions, read midway and at
// the end. Writes (alone and in pairs) and reads (one request per MRRS bytes) alike.
TEST(NicFabric, CountsEveryTransactionWhenItsSizeLeavesTheCostCache) {
  OneLink one;
  nic::PcieFabric& f = one.f;
  const cost::PcieLink& model = one.model;  // a plain reference: clang 14 cannot capture a binding
  const int l = one.l, r = one.r;
  std::int64_t up_bytes = 0, up_payload = 0, up_tlps = 0, down_bytes = 0, down_tlps = 0;
  auto expect = [&](cost::PcieOp op, std::int64_t bytes) {
    const auto c = model.cost(op, bytes);
    up_bytes += c.up.tlp_bytes;
    up_payload += c.up.payload_bytes;
    up_tlps += c.up.tlps;
    down_bytes += c.down.tlp_bytes;
    down_tlps += c.down.tlps;
  };
  sim::Picos t = 0;
  for (int round = 0; round < 3; ++round) {
    for (std::int64_t bytes = 60; bytes < 60 + 300 * 7; bytes += 7) {  // 300 sizes, 64 cache entries
      expect(cost::PcieOp::kDmaWrite, bytes);
      if (bytes % 2) {
        f.write_up(r, cost::PcieOp::kDmaWrite, bytes, t);
      } else {  // a packet and its 16-byte write-back, booked together
        nic::PcieTiming first;
        sim::Picos second = 0;
        f.write_up_pair(r, bytes, 16, t, first, second);
        expect(cost::PcieOp::kDmaWrite, 16);
      }
      if (bytes % 3 == 0) {
        f.read(r, bytes, t);
        for (std::int64_t off = 0; off < bytes; off += one.cfg.mrrs_bytes)
          expect(cost::PcieOp::kDmaRead, std::min<std::int64_t>(one.cfg.mrrs_bytes, bytes - off));
      }
      t += 10'000;
    }
    EXPECT_EQ(f.up(l).tlp_bytes, up_bytes) << "round " << round;
    EXPECT_EQ(f.up(l).payload_bytes, up_payload);
    EXPECT_EQ(f.up(l).tlps, up_tlps);
    EXPECT_EQ(f.down(l).tlp_bytes, down_bytes);
    EXPECT_EQ(f.down(l).tlps, down_tlps);
  }
  EXPECT_GT(up_tlps, 3 * 300);
}

TEST(NicFabric, ReadsWaitForATagAndCompleteAfterTheRoundTrip) {
  nic::PcieFabric f;
  cost::PcieConfig cfg;
  cfg.max_tags = 4;
  const int l = f.add_link("link0", cfg, 0);
  const int r = f.add_requester("fn", {l});
  f.set_window(0, 1'000'000'000);
  const sim::Picos rtt = sim::from_ns(cfg.read_rtt_ns);
  sim::Picos first = 0;
  for (int i = 0; i < 4; ++i) {
    const auto t = f.read(r, 64, 0);
    EXPECT_GE(t.done, rtt);
    EXPECT_LT(t.done, rtt + 100'000);  // a few 64-byte completions queue, nothing more
    if (i == 0) first = t.done;
  }
  EXPECT_EQ(f.next_tag_free(r), first);  // tags are reused in request order
  const auto fifth = f.read(r, 64, 0);   // no tag until the first read completes
  EXPECT_GE(fifth.start, first);
  EXPECT_GE(fifth.done, first + rtt);
  // A 1500-byte read is three MRRS-sized requests.
  nic::PcieFabric g;
  const int l2 = g.add_link("link0", cost::PcieConfig{}, 0);
  const int r2 = g.add_requester("fn", {l2});
  g.read(r2, 1500, 0);
  EXPECT_EQ(g.up(l2).tlps, 3);
  EXPECT_EQ(g.down(l2).payload_bytes, 1500);
}

TEST(NicFabric, AWriteIssuedDuringARoundTripUsesTheIdleLinkBeforeTheCompletion) {
  nic::PcieFabric f;
  const cost::PcieConfig cfg;
  const int l = f.add_link("link0", cfg, 0);
  const int r = f.add_requester("fn", {l});
  const auto rd = f.read(r, 4096, 0);           // completions booked one round trip ahead
  const auto mmio = f.write_down(r, 4, 10'000);  // the CPU writes a doorbell meanwhile
  EXPECT_EQ(mmio.start, 10'000);                 // it does not queue behind the completions
  EXPECT_LT(mmio.done, rd.done);
}

TEST(NicFabric, ASwitchAddsItsLatencyAndItsUpstreamLinkIsChargedToo) {
  nic::PcieFabric f;
  const cost::PcieConfig cfg;
  const sim::Picos sw = 150'000;
  const int dev = f.add_link("link0", cfg, sw), up = f.add_link("link1", cfg, 0);
  const int r = f.add_requester("fn", {dev, up});
  nic::PcieFabric g;
  const int gl = g.add_link("link0", cfg, 0);
  const int gr = g.add_requester("fn", {gl});
  EXPECT_EQ(f.read(r, 64, 0).done, g.read(gr, 64, 0).done + 2 * sw);  // through the switch and back
  EXPECT_EQ(f.write_up(r, cost::PcieOp::kDmaWrite, 256, 0).done, g.write_up(gr, cost::PcieOp::kDmaWrite, 256, 0).done + sw);
  EXPECT_EQ(f.up(dev).payload_bytes, f.up(up).payload_bytes);
  EXPECT_EQ(f.down(dev).payload_bytes, 64);
  EXPECT_EQ(f.down(up).payload_bytes, 64);
}

TEST(NicBottleneck, TheMostDownstreamDroppingStageIsNamed) {
  nic::BottleneckInput in;
  in.offered = 100000;
  in.wire_rx = 1.0;
  in.rx_above_line_rate = true;
  EXPECT_EQ(nic::classify(in).name, "wire");
  in.fifo_drops = 30000;
  in.pcie_up = 0.99;
  EXPECT_EQ(nic::classify(in).name, "pcie_up");
  in.rx_fetch_stall = 0.8;
  in.pcie_up = 0.1;
  EXPECT_EQ(nic::classify(in).name, "pcie_read_latency");
  in.ring_drops = 5000;
  in.cpu_softirq = 0.99;
  EXPECT_EQ(nic::classify(in).name, "cpu_softirq");
  in.cpu_softirq = 0.3;
  EXPECT_EQ(nic::classify(in).name, "rx_ring");
  in.socket_drops = 200;
  EXPECT_EQ(nic::classify(in).name, "cpu_reader");
  nic::BottleneckInput quiet;
  quiet.offered = 1000;
  quiet.wire_rx = 0.3;
  EXPECT_EQ(nic::classify(quiet).name, "none");
}

TEST(NicBottleneck, TransmitNamesTheSaturatedResourceAndTheLinkBeforeItsTags) {
  nic::BottleneckInput in;
  in.tx_active = true;
  in.pcie_down = 0.99;
  in.pcie_tags = 0.99;
  EXPECT_EQ(nic::classify(in).name, "pcie_down");
  in.pcie_down = 0.6;
  EXPECT_EQ(nic::classify(in).name, "pcie_read_latency");
  in.cpu_sender = 1.0;
  EXPECT_EQ(nic::classify(in).name, "cpu_sender");
  in.sender_kept_up = false;  // it waited for room: something after it limits
  EXPECT_EQ(nic::classify(in).name, "pcie_read_latency");
}

// The run-level bound: simulated receive throughput never exceeds what the link allows per
// packet, and reaches it when the line is faster than the link.
class NicRxPcieBound : public ::testing::TestWithParam<int> {};

TEST_P(NicRxPcieBound, ReachesButNeverExceedsTheLinkBound) {
  const int frame = GetParam();
  const json r = world::run(rx_scenario(frame, 100, 3, 8), "rx_bound");
  const double sim_pps = stat(r, "nic0.rx_mpps") * 1e6;
  const double bound = rx_pcie_bound_pps(frame, 3, 8, 8, 1, 16);
  EXPECT_LE(sim_pps, bound * 1.001) << frame;
  EXPECT_GE(sim_pps, bound * 0.97) << frame;
  EXPECT_GT(stat(r, "nic0.rx_fifo_drops"), 0);
  EXPECT_EQ(r["nic"]["nic0"]["bottleneck"], "pcie_up");
  EXPECT_GT(stat(r, "pcie.link0.up.utilization"), 0.98);
}

// With pcie-bench's DPDK receive pattern (a 16-byte descriptor read per packet, a write-back per
// packet, a doorbell per 32), the simulation agrees with PcieLink::nic_gbps within a few percent.
TEST_P(NicRxPcieBound, AgreesWithPcieBenchsDpdkReceiveModel) {
  const int frame = GetParam();
  json sc = rx_scenario(frame, 100, 3, 8);
  sc["nic"]["rx_fetch_batch_descs"] = 1;
  sc["nic"]["rx_fetch_threshold_descs"] = 1;
  sc["nic"]["rx_refill_batch_descs"] = 32;
  const json r = world::run(sc, "rx_dpdk");
  const double model = cost::PcieLink(cost::PcieConfig{}).nic_gbps(cost::NicModel::kDpdk, frame - 4, cost::NicDirection::kRx);
  EXPECT_NEAR(stat(r, "nic0.rx_gbps") / model, 1.0, 0.03) << frame;
  const double bound = rx_pcie_bound_pps(frame, 3, 8, 1, 1, 32);
  EXPECT_LE(stat(r, "nic0.rx_mpps") * 1e6, bound * 1.001);
}

INSTANTIATE_TEST_SUITE_P(Sizes, NicRxPcieBound, ::testing::Values(64, 256, 1500));

TEST(NicRun, TheWireBoundHoldsWhenTheLineIsSlowerThanTheLink) {
  for (int frame : {64, 1500}) {
    const json r = world::run(rx_scenario(frame, 10, 3, 8), "wire_bound");
    const double line = nic::Wire(nic::WireConfig{10}).max_pps(static_cast<std::uint32_t>(frame));
    // Packets written inside the 290 us window: the line allows line * window of them, plus the
    // one that starts the window.
    const double window_s = 290e-6, packets = stat(r, "nic0.rx_mpps") * 1e6 * window_s;
    EXPECT_LE(packets, line * window_s + 1.0001) << frame;
    EXPECT_GE(packets, line * window_s * 0.999) << frame;
    EXPECT_EQ(stat(r, "nic0.rx_fifo_drops"), 0);
    EXPECT_LT(stat(r, "pcie.link0.up.utilization"), 0.5);
    EXPECT_EQ(r["nic"]["nic0"]["bottleneck"], "wire");
  }
}

TEST(NicRun, TransmitMatchesPcieBenchsDpdkTransmitModel) {
  for (int frame : {256, 1500}) {
    const json sc = {{"sim", {{"duration_us", 300}, {"drain_us", 100}, {"checker", "off"}}},
                     {"cpus", {{"count", 2}}},
                     {"nic", {{"tx_clean_ns", 10}}},
                     {"stack", {{"mode", "xdp_drop"}}},
                     {"wire", {{"line_rate_gbps", 100}}},
                     {"traffic", {{"rate_pps", 0}, {"tx_rate_pps", 2e8}, {"tx_packet_bytes", frame}, {"tx_per_packet_ns", 10},
                                  {"tx_cpu", 1}}}};
    const json r = world::run(sc, "tx");
    const double model = cost::PcieLink(cost::PcieConfig{}).nic_gbps(cost::NicModel::kDpdk, frame - 4, cost::NicDirection::kTx);
    EXPECT_NEAR(stat(r, "nic0.tx_gbps") / model, 1.0, 0.03) << frame;
    EXPECT_GT(stat(r, "pcie.link0.down.utilization"), 0.95);
  }
}

TEST(NicRun, HairpinTrafficCrossesTheLinkTwiceAndTheKernelPathNotAtAll) {
  json sc = {{"sim", {{"duration_us", 200}, {"drain_us", 100}}},
             {"cpus", {{"count", 2}}},
             {"sriov", {{"vfs", 2}}},
             {"stack", {{"mode", "xdp_drop"}}},
             {"traffic", {{"rate_pps", 0}, {"tx_rate_pps", 1e6}, {"tx_packet_bytes", 1000}, {"tx_from", "vf0"}, {"tx_to", "vf1"}}}};
  const json e = world::run(sc, "eswitch");
  ASSERT_TRUE(e["invariants"]["ok"].get<bool>());
  const double sent = stat(e, "nic0.vf0.txq0.tx_bytes"), got = stat(e, "nic0.vf1.rxq0.rx_bytes");
  EXPECT_GT(got, 150 * 996);  // ~190 packets of 996 bytes
  EXPECT_EQ(sent, got);       // nothing lost at 1 Mpps
  EXPECT_EQ(stat(e, "nic0.hairpin_packets"), stat(e, "nic0.vf1.rxq0.rx_packets"));
  // Down: the sender's data read (plus descriptors); up: the receiver's data write (plus write-backs).
  EXPECT_GE(stat(e, "pcie.link0.down.payload_bytes"), sent);
  EXPECT_GE(stat(e, "pcie.link0.up.payload_bytes"), got);
  EXPECT_LT(stat(e, "pcie.link0.down.payload_bytes"), sent * 1.1);
  EXPECT_LT(stat(e, "pcie.link0.up.payload_bytes"), got * 1.1);
  EXPECT_EQ(stat(e, "nic0.wire.tx_packets"), 0);
  EXPECT_GT(stat(e, "pcie.nic0.vf0.dma_reads"), 0);   // each function is its own requester
  EXPECT_GT(stat(e, "pcie.nic0.vf1.dma_writes"), 0);
  sc["sriov"]["vm_path"] = "kernel";
  const json k = world::run(sc, "kernel");
  ASSERT_TRUE(k["invariants"]["ok"].get<bool>());
  EXPECT_GT(stat(k, "kpath.rx_bytes"), 150 * 996);
  EXPECT_EQ(stat(k, "kpath.copy_bytes"), stat(k, "kpath.rx_bytes"));
  // No packet crosses PCIe: nothing is written upstream, and downstream only the idle rings'
  // initial descriptor prefetch (3 functions x 64 descriptors x 16 B) and their doorbells.
  EXPECT_EQ(stat(k, "pcie.link0.up.payload_bytes"), 0);
  EXPECT_LE(stat(k, "pcie.link0.down.payload_bytes"), 3 * (64 * 16 + 4 + 4));
}

TEST(NicRun, ANarrowSwitchUplinkHalvesThroughputAndSaturates) {
  json sc = rx_scenario(64, 100, 3, 8);
  sc["pcie"]["switch"] = true;
  sc["pcie"]["switch_up_lanes"] = 4;
  const json r = world::run(sc, "switch");
  EXPECT_GT(stat(r, "pcie.link1.up.utilization"), 0.98);
  EXPECT_NEAR(stat(r, "pcie.link0.up.utilization"), 0.5, 0.05);
  EXPECT_NEAR(stat(r, "nic0.rx_mpps") * 1e6 / rx_pcie_bound_pps(64, 3, 4, 8, 1, 16), 1.0, 0.03);
  EXPECT_EQ(r["nic"]["nic0"]["bottleneck"], "pcie_up");
}

TEST(NicRun, SameSeedSameBytesOtherSeedOtherResult) {
  json sc = rx_scenario(256, 25, 3, 8);
  sc["traffic"]["pattern"] = "poisson";
  sc["traffic"]["rate_pps"] = 5e6;
  sc["sim"]["checker"] = "stop";
  const json a = world::run(sc, "det"), b = world::run(sc, "det");
  EXPECT_EQ(a.dump(), b.dump());
  world::RunOptions o;
  o.seed = 99;
  EXPECT_NE(world::run(sc, "det", o).dump(), a.dump());
  EXPECT_TRUE(a["invariants"]["ok"].get<bool>());
}

TEST(NicRun, BadInputNamesTheJsonPath) {
  auto path_of = [](const json& sc) {
    try {
      world::run(sc, "bad.json");
    } catch (const sim::ScenarioError& e) {
      return e.json_path();
    }
    return std::string("no error");
  };
  EXPECT_EQ(path_of({{"wire", {{"line_rate_gbps", 30}}}}), "$.wire.line_rate_gbps");
  EXPECT_EQ(path_of({{"pcie", {{"lanes", 3}}}}), "$.pcie.lanes");
  EXPECT_EQ(path_of({{"traffic", {{"to", "vf0"}}}}), "$.traffic.to");  // no VFs
  EXPECT_EQ(path_of({{"sriov", {{"vfs", 2}}}, {"traffic", {{"tx_rate_pps", 1e6}, {"tx_to", "vf7"}}}}), "$.traffic.tx_to");
  EXPECT_EQ(path_of({{"sriov", {{"vfs", 2}, {"vm_path", "kernel"}}}, {"traffic", {{"tx_rate_pps", 1e6}}}}), "$.sriov.vm_path");
  EXPECT_EQ(path_of({{"nic", {{"rx_desc_cache_descs", 4}}}}), "$.nic.rx_desc_cache_descs");
  EXPECT_EQ(path_of({{"nic", {{"tx_ring_size_descs", 1000}}}}), "$.nic.tx_ring_size_descs");
}
