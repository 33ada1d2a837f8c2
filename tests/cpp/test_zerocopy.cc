// Read-only packet pages and zero-copy receive: what a user of these modes relies on. The CPU never
// writes a read-only page; header split trades the header copy for one more DMA write; the
// application gets exactly its flows, mapped once per delivery and unmapped with a shootdown per
// batch; pages are cleared only when they may hold someone else's data; the outstanding-page limit
// makes only its queue drop; a mode switch loses no packet the NIC had accepted; the VM-to-VM
// paths differ in what they copy and what crosses PCIe.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "models/world/world.h"
#include "sim/cost/zerocopy.h"
#include "sim/error.h"
#include "sim/params.h"

using namespace ppsim;
using nlohmann::json;

namespace {

double stat(const json& r, const std::string& name) { return r["stats"].at(name)["value"].get<double>(); }

json scenario(const std::string& name) { return sim::load_json_file(std::string(PPSIM_SOURCE_DIR) + "/scenarios/" + name + ".json"); }

json run(const json& s) { return world::run(s, "<test>"); }

// Every counted drop and delivery of queue q adds up to what the device took for it.
void expect_ok(const json& r) {
  ASSERT_TRUE(r["invariants"]["ok"].get<bool>()) << r["invariants"].dump(1);
}

}  // namespace

TEST(ReadOnlyMode, TheCpuNeverWritesTheReadOnlyPageButDoesInWritableMode) {
  json s = scenario("default");
  s["sim"]["duration_us"] = 500;
  s["stack"]["mode"] = "napi_free";
  s["nic"]["rx_mode"] = "read_only";
  const json ro = run(s);
  expect_ok(ro);
  const double polled = stat(ro, "nic0.rxq0.rx_polled");
  EXPECT_GT(polled, 300);
  EXPECT_EQ(stat(ro, "nic0.rxq0.ro_heads"), polled);               // one separate head per packet
  EXPECT_EQ(stat(ro, "nic0.rxq0.ro_hdr_copy_bytes"), polled * 66);  // the headers copied out
  s["nic"]["rx_mode"] = "writable";
  const json wr = run(s);
  EXPECT_EQ(stat(wr, "nic0.rxq0.ro_heads"), 0);
  // The read-only path costs the head allocation and the copy on the NAPI CPU.
  EXPECT_GT(stat(ro, "cpu0.softirq_busy_ns"), stat(wr, "cpu0.softirq_busy_ns"));
}

TEST(ReadOnlyMode, HeaderSplitReplacesTheCopyWithASecondDmaWrite) {
  json s = scenario("default");
  s["sim"]["duration_us"] = 500;
  s["stack"]["mode"] = "napi_free";
  s["nic"]["rx_mode"] = "read_only";
  const json copy = run(s);
  s["nic"]["header_split"] = true;
  const json split = run(s);
  expect_ok(split);
  const double polled = stat(split, "nic0.rxq0.rx_polled");
  EXPECT_EQ(stat(split, "nic0.rxq0.ro_hdr_copy_bytes"), 0);
  EXPECT_EQ(stat(split, "nic0.rxq0.rx_hdr_writes"), stat(split, "nic0.rxq0.rx_packets"));
  EXPECT_GT(polled, 300);
  // Same payload, one more TLP per packet upstream.
  EXPECT_GT(stat(split, "pcie.link0.up.tlps"), stat(copy, "pcie.link0.up.tlps") + 0.9 * polled);
}

TEST(ZeroCopy, TheApplicationGetsExactlyItsFlowsMappedAndUnmappedInBatches) {
  const json r = run(scenario("zerocopy_dedicated"));
  expect_ok(r);
  const double received = stat(r, "zc.received");
  EXPECT_GT(received, 1000);
  EXPECT_EQ(received, stat(r, "nic0.rxq0.xdp_redirects"));  // every packet of queue 0 is the application's
  EXPECT_EQ(stat(r, "nic0.rxq1.xdp_redirects"), 0);
  EXPECT_EQ(stat(r, "zc.pages_mapped"), received);        // one 4 KiB page per 1500-byte packet
  EXPECT_EQ(stat(r, "zc.pages_unmapped"), received);
  EXPECT_EQ(stat(r, "zc.pages_returned"), received);
  EXPECT_EQ(stat(r, "zc.shootdowns"), stat(r, "zc.unmap_calls"));  // the app ran on two CPUs
  EXPECT_LT(stat(r, "zc.unmap_calls"), received);                   // batched
  // A queue of its own: a page is cleared only on its first use, never again.
  EXPECT_LE(stat(r, "zc.pages_cleared"), stat(r, "nic0.rxq0.pp.pages_state_hold_cnt"));
  EXPECT_LT(stat(r, "zc.pages_cleared"), received);
  EXPECT_EQ(stat(r, "zc.queue_full_drops"), 0);
}

TEST(ZeroCopy, AnApplicationOnOneCpuNeedsNoShootdown) {
  json s = scenario("zerocopy_dedicated");
  s["zerocopy"]["app_cpus_ran"] = 1;
  const json r = run(s);
  expect_ok(r);
  EXPECT_GT(stat(r, "zc.unmap_calls"), 0);
  EXPECT_EQ(stat(r, "zc.shootdowns"), 0);
  EXPECT_EQ(stat(r, "zc.ipis"), 0);
}

TEST(ZeroCopy, OnASharedQueuePagesThatHeldOtherFlowsAreClearedBeforeMapping) {
  json s = scenario("zerocopy_shared_queue");
  const json tagged = run(s);
  expect_ok(tagged);
  const double mapped = stat(tagged, "zc.pages_mapped");
  EXPECT_GT(stat(tagged, "nic0.rxq0.ro_heads"), 0);  // other flows share the queue, read-only
  EXPECT_GT(stat(tagged, "zc.pages_cleared"), stat(tagged, "nic0.rxq0.pp.pages_state_hold_cnt") / 2);
  s["zerocopy"]["clear"] = "always";
  const json always = run(s);
  expect_ok(always);
  EXPECT_EQ(stat(always, "zc.pages_cleared"), stat(always, "zc.pages_mapped"));
  EXPECT_LT(stat(tagged, "zc.pages_cleared"), mapped);
}

TEST(ZeroCopy, AtTheOutstandingPageLimitOnlyThatQueueDrops) {
  const json r = run(scenario("zerocopy_slow_app"));
  expect_ok(r);
  EXPECT_GT(stat(r, "nic0.rxq0.rx_missed"), 0);
  EXPECT_EQ(stat(r, "nic0.rxq1.rx_missed"), 0);
  EXPECT_GT(stat(r, "nic0.rxq0.pp.alloc_user_limit"), 0);
  EXPECT_EQ(r["nic"]["nic0"]["bottleneck"], "user_page_limit");
}

TEST(ZeroCopy, AFullDeliveryQueueDropsAndCountsAndNamesTheApplication) {
  json s = scenario("zerocopy_dedicated");
  s["zerocopy"]["queue_pages"] = 16;
  s["zerocopy"]["app_per_packet_ns"] = 3000;
  const json r = run(s);
  expect_ok(r);
  EXPECT_GT(stat(r, "zc.queue_full_drops"), 0);
  EXPECT_EQ(stat(r, "zc.queue_full_drops"), stat(r, "nic0.rxq0.xdp_redirect_drops"));
  EXPECT_EQ(r["nic"]["nic0"]["bottleneck"], "cpu_app");
}

TEST(ZeroCopy, PersistentMappingMapsEachPageOnceAndNeverShootsDown) {
  const json r = run(scenario("zerocopy_persistent"));
  expect_ok(r);
  EXPECT_GT(stat(r, "zc.received"), 1000);
  EXPECT_LE(stat(r, "zc.pages_mapped"), stat(r, "nic0.rxq0.pp.pages_state_hold_cnt"));
  EXPECT_EQ(stat(r, "zc.shootdowns"), 0);
  EXPECT_EQ(stat(r, "zc.pages_returned"), stat(r, "zc.delivered"));
}

TEST(ModeSwitch, NoAcceptedPacketIsLostAndDropsAreCounted) {
  const json r = run(scenario("zerocopy_switch"));
  expect_ok(r);
  ASSERT_EQ(stat(r, "nic0.rxq0.mode_switch.done"), 1);
  EXPECT_GT(stat(r, "nic0.rxq0.mode_switch.duration_ns"), 50000);  // at least the queue commands
  EXPECT_GT(stat(r, "nic0.rxq0.mode_switch.buffers_posted"), 0);
  EXPECT_GT(stat(r, "nic0.rxq0.rx_switch_drops"), 0);
  // Everything queue 0 wrote into host memory was either delivered or counted at close.
  EXPECT_EQ(stat(r, "nic0.rxq0.rx_packets"), stat(r, "nic0.rxq0.rx_polled") + stat(r, "nic0.rxq0.rx_dropped_at_close"));
  // Every arrival is accounted for: written, or a counted device drop.
  double written = 0, dropped = stat(r, "nic0.rx_fifo_drops") + stat(r, "nic0.rx_discarded");
  for (const char* q : {"nic0.rxq0", "nic0.rxq1"}) {
    written += stat(r, std::string(q) + ".rx_packets");
    dropped += stat(r, std::string(q) + ".rx_missed") + stat(r, std::string(q) + ".rx_switch_drops");
  }
  EXPECT_EQ(written + dropped, stat(r, "nic0.rx_arrivals"));
  // The old pool was destroyed mid-run and freed by its deferred retries.
  EXPECT_EQ(stat(r, "nic0.rxq0.pp.freed"), 1);
  EXPECT_EQ(stat(r, "nic0.rxq0.ro.pp.freed"), 1);
  EXPECT_GT(stat(r, "zc.received"), 0);
}

TEST(Vm2Vm, OnlyTheCopyPathCopiesAndOnlyTheVfPathCrossesPcie) {
  const json copy = run(scenario("vm2vm_kernel_copy"));
  const json zc = run(scenario("vm2vm_kernel_zerocopy"));
  const json vf = run(scenario("vm2vm_vf_hairpin"));
  expect_ok(copy);
  expect_ok(zc);
  expect_ok(vf);
  EXPECT_GT(stat(copy, "kpath.copy_bytes"), 1e6);
  EXPECT_EQ(stat(zc, "kpath.copy_bytes"), 0);
  EXPECT_EQ(stat(zc, "zc.delivered") + stat(zc, "kpath.handoff_drops"), stat(zc, "kpath.rx_packets"));
  EXPECT_GT(stat(zc, "zc.received"), 0.95 * stat(zc, "zc.delivered"));
  EXPECT_EQ(stat(zc, "pcie.link0.up.payload_bytes"), 0);
  EXPECT_GT(stat(vf, "pcie.link0.up.payload_bytes"), 1e6);
  EXPECT_GT(stat(vf, "pcie.link0.down.payload_bytes"), 1e6);
}

TEST(Vm2Vm, APortBoundSwitchCapsHairpinAtPortSpeed) {
  const json r = run(scenario("vm2vm_vf_port_capped"));
  expect_ok(r);
  EXPECT_EQ(r["nic"]["nic0"]["bottleneck"], "eswitch_port");
  // 1500-byte frames: 1520 bytes on a 25 Gb/s port.
  const double cap_mpps = 25e9 / (1520 * 8) / 1e6;
  EXPECT_LE(stat(r, "nic0.tx_mpps"), cap_mpps * 1.001);
  EXPECT_GT(stat(r, "nic0.tx_mpps"), cap_mpps * 0.95);
}

TEST(ZeroCopy, BadCombinationsAreRefusedWithTheJsonPath) {
  json s = scenario("zerocopy_dedicated");
  s["zerocopy"]["mapping"] = "persistent";
  s["zerocopy"]["steering"] = "ntuple";
  try {
    run(s);
    FAIL() << "persistent mapping on a shared queue must be refused";
  } catch (const sim::ScenarioError& e) {
    EXPECT_EQ(e.json_path(), "$.zerocopy.mapping");
  }
  s = scenario("zerocopy_dedicated");
  s["zerocopy"]["queue"] = 5;
  EXPECT_THROW(run(s), sim::ScenarioError);
  s = scenario("zerocopy_dedicated");
  s["traffic"]["packet_bytes"] = 9000;
  s["nic"]["buffer_bytes"] = 4096;
  EXPECT_THROW(run(s), sim::ScenarioError);
}

TEST(ZeroCopyCost, MapAndUnmapAreChargedPerCallAndPerPage) {
  cost::ZeroCopyCosts c;
  c.map_fixed = 400'000;
  c.map_per_page = 70'000;
  c.unmap_fixed = 300'000;
  c.unmap_per_page = 40'000;
  c.shootdown = 2'000'000;
  EXPECT_EQ(cost::map_cost(c, 0), 0);
  EXPECT_EQ(cost::map_cost(c, 4), 400'000 + 4 * 70'000);
  EXPECT_EQ(cost::unmap_cost(c, 4, 0), 300'000 + 4 * 40'000);
  EXPECT_EQ(cost::unmap_cost(c, 4, 1), 300'000 + 4 * 40'000 + 2'000'000);
  EXPECT_EQ(cost::pte_pages(1), 1u);
  EXPECT_EQ(cost::pte_pages(4096), 1u);
  EXPECT_EQ(cost::pte_pages(9000), 3u);
  EXPECT_EQ(cost::map_unmap_cost(c, 9000, 1), cost::map_cost(c, 3) + cost::unmap_cost(c, 3, 1));
}
