// The cacheline ownership model (sim/cost/coherence.h), its CPU topology, machine profiles, and
// the page_pool observer that drives it (models/page_pool/coherence_observer.h).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "models/page_pool/coherence_observer.h"
#include "models/page_pool/page_pool.h"
#include "sim/cost/coherence.h"
#include "sim/error.h"
#include "sim/params.h"

using namespace ppsim;
using cost::Access;
using cost::Distance;
using cost::LineType;
using json = nlohmann::json;

namespace {

// Two sockets x two cache domains x two cores x two threads: every distance class exists.
json small_profile() {
  return json::parse(R"({
    "name": "test",
    "topology": {"sockets": 2, "domains_per_node": 2, "cores_per_domain": 2, "threads_per_core": 2},
    "latency_ns": {"transfer_smt": 5, "transfer_domain": 40, "transfer_socket": 80, "transfer_remote": 150,
                   "llc_hit": 30, "dram": 90, "dram_remote": 140, "atomic": 6},
    "ddio": {"enabled": true, "nic_domain": 0}
  })");
}

cost::MachineProfile profile(const json& j = small_profile()) { return cost::MachineProfile::from_json(j, "test.json"); }

std::string error_of(const json& j) {
  try {
    profile(j);
  } catch (const sim::ScenarioError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(CpuTopology, DistancesFromCounts) {
  const auto p = profile();
  const auto& t = p.topology;
  ASSERT_EQ(t.cpus(), 16);  // 8 cores, 2 threads each; siblings are k and k+8
  EXPECT_EQ(t.distance(0, 0), Distance::kLocal);
  EXPECT_EQ(t.distance(0, 8), Distance::kSmt);
  EXPECT_EQ(t.distance(0, 1), Distance::kDomain);
  EXPECT_EQ(t.distance(0, 2), Distance::kSocket);
  EXPECT_EQ(t.distance(0, 4), Distance::kRemote);
  EXPECT_EQ(t.distance(4, 0), Distance::kRemote);
  EXPECT_EQ(t.sockets(), 2);
  EXPECT_EQ(t.domains(), 4);
  EXPECT_EQ(t.first_cpu_of_domain(3), 6);
  EXPECT_THROW(t.distance(0, 16), std::out_of_range);
  // The graph is a tree: machine, 2 sockets, 2 nodes, 4 domains, 8 cores, 16 CPUs.
  EXPECT_EQ(boost::num_vertices(t.graph()), 1u + 2 + 2 + 4 + 8 + 16);
  EXPECT_EQ(boost::num_edges(t.graph()), boost::num_vertices(t.graph()) - 1);
}

TEST(CpuTopology, ExplicitCpusMustNest) {
  json j = small_profile();
  j["topology"] = json::parse(R"({"cpus": [{"cpu": 0, "core": 0, "domain": 0}, {"cpu": 1, "core": 0, "domain": 1}]})");
  const std::string e = error_of(j);
  EXPECT_NE(e.find("test.json: at $.topology.cpus"), std::string::npos) << e;
  EXPECT_NE(e.find("core 0 is in two different parents"), std::string::npos) << e;
  j["topology"] = json::parse(R"({"cpus": [{"cpu": 0, "core": 0, "domain": 0, "llc": 3}]})");
  EXPECT_NE(error_of(j).find("$.topology.cpus[0].llc"), std::string::npos);
}

TEST(MachineProfile, RejectsBadInput) {
  json j = small_profile();
  j["latency_ns"]["dram"] = -1;
  EXPECT_NE(error_of(j).find("at $.latency_ns.dram: expected a number >= 0"), std::string::npos) << error_of(j);
  j = small_profile();
  j["latency_ns"]["l3"] = 10;
  EXPECT_NE(error_of(j).find("$.latency_ns.l3: unknown key"), std::string::npos);
  j = small_profile();
  j["latency_ns"].erase("transfer_remote");
  EXPECT_NE(error_of(j).find("$.latency_ns.transfer_remote: missing"), std::string::npos) << error_of(j);
  j = small_profile();
  j["ddio"]["nic_domain"] = 9;
  EXPECT_NE(error_of(j).find("$.ddio.nic_domain"), std::string::npos);
  j = small_profile();
  j["bogus"] = 1;
  EXPECT_NE(error_of(j).find("$.bogus: unknown key"), std::string::npos);
  j = small_profile();
  j["base_ns"] = {{"alloc_fast", 1.0}, {"free_fast", 2.0}};
  EXPECT_NE(error_of(j).find("$.base_ns.free_fast"), std::string::npos);
  // A one-socket topology needs no remote figures.
  j = small_profile();
  j["topology"] = {{"cores_per_domain", 4}};
  for (const char* k : {"transfer_smt", "transfer_socket", "transfer_remote", "dram_remote"}) j["latency_ns"].erase(k);
  EXPECT_EQ(error_of(j), "");
  // Round trip.
  const auto p = profile();
  EXPECT_EQ(error_of(p.to_json()), "");
}

TEST(CoherenceModel, MesiTransitionsAndCosts) {
  cost::CoherenceModel m(profile());
  const auto T = LineType::kStructPage;
  EXPECT_DOUBLE_EQ(m.access(0, T, 1, Access::kRead), 90);  // DRAM, home node 0
  EXPECT_EQ(m.state_of(T, 1), 'E');
  EXPECT_DOUBLE_EQ(m.access(0, T, 1, Access::kRead), 0);   // hit
  EXPECT_DOUBLE_EQ(m.access(1, T, 1, Access::kRead), 40);  // from CPU 0, same domain
  EXPECT_EQ(m.state_of(T, 1), 'S');
  EXPECT_EQ(m.sharers_of(T, 1), (std::vector<int>{0, 1}));
  EXPECT_DOUBLE_EQ(m.access(4, T, 1, Access::kRead), 150);  // nearest sharer is on the other socket
  EXPECT_DOUBLE_EQ(m.access(1, T, 1, Access::kAtomic), 150);  // invalidate 0 and 4: wait for the farthest
  EXPECT_EQ(m.state_of(T, 1), 'M');
  EXPECT_EQ(m.owner_of(T, 1), 1);
  EXPECT_DOUBLE_EQ(m.access(8, T, 1, Access::kWrite), 40);  // RFO from CPU 1 (same domain)
  EXPECT_DOUBLE_EQ(m.access(0, T, 1, Access::kAtomic), 5);   // from the SMT sibling
  const auto& s = m.stats(T);
  EXPECT_EQ(s.accesses, 7u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.transfers[static_cast<int>(Distance::kDomain)], 2u);
  EXPECT_EQ(s.transfers[static_cast<int>(Distance::kRemote)], 1u);
  EXPECT_EQ(s.transfers[static_cast<int>(Distance::kSmt)], 1u);
  EXPECT_EQ(s.invalidations, 2u + 1 + 1);
  EXPECT_EQ(s.dram_fills, 1u);
  EXPECT_EQ(s.atomics, 2u);
  EXPECT_DOUBLE_EQ(s.ns, 90 + 40 + 150 + 150 + 40 + 5);
  EXPECT_DOUBLE_EQ(m.cpu_ns(1), 40 + 150);
  EXPECT_THROW(m.access(16, T, 1, Access::kRead), std::out_of_range);
  EXPECT_THROW(m.access(-1, T, 1, Access::kRead), std::out_of_range);
}

TEST(CoherenceModel, DeviceWritesAndDdio) {
  cost::CoherenceModel with(profile());
  const auto D = LineType::kPacketData;
  with.access(0, D, 7, Access::kRead);
  with.access(1, D, 7, Access::kRead);
  with.device_write(D, 7);
  EXPECT_EQ(with.state_of(D, 7), 'I');
  EXPECT_EQ(with.stats(D).dma_invalidations, 2u);
  EXPECT_DOUBLE_EQ(with.access(1, D, 7, Access::kRead), 30);  // DDIO: LLC of domain 0
  with.device_write(D, 8);
  EXPECT_DOUBLE_EQ(with.access(4, D, 8, Access::kRead), 150);  // other socket: from domain 0's LLC
  json j = small_profile();
  j["ddio"]["enabled"] = false;
  cost::CoherenceModel without(profile(j));
  without.device_write(D, 7);
  EXPECT_DOUBLE_EQ(without.access(1, D, 7, Access::kRead), 90);  // DRAM
  EXPECT_DOUBLE_EQ(without.access(4, D, 8, Access::kRead), 140);  // remote DRAM
  EXPECT_EQ(without.stats(D).dram_fills, 2u);
}

TEST(CoherenceModel, StoreBufferStreamingAndMigratoryLines) {
  json j = small_profile();
  j["latency_ns"]["store_miss"] = 4;
  j["latency_ns"]["stream_line"] = 10;
  cost::CoherenceModel m(profile(j));
  const auto S = LineType::kPtrRingSlot;
  for (int i = 0; i < 4; ++i) m.access(0, S, i, Access::kWrite);
  EXPECT_DOUBLE_EQ(m.access(1, S, 0, Access::kRead), 40);  // first line of the walk: full transfer
  EXPECT_DOUBLE_EQ(m.access(1, S, 1, Access::kRead), 10);  // next lines: streaming
  EXPECT_DOUBLE_EQ(m.access(1, S, 1, Access::kWrite), 0);  // read then write: handed over with ownership
  EXPECT_EQ(m.state_of(S, 1), 'M');
  EXPECT_DOUBLE_EQ(m.access(1, S, 3, Access::kWrite), 4);  // a plain store miss: the store buffer hides it
  const auto P = LineType::kPtrRingProducer;
  m.access(1, P, 0, Access::kAtomic);  // the producer lock is local after this
  EXPECT_DOUBLE_EQ(m.access(1, P, 0, Access::kAtomic), 0);
  EXPECT_DOUBLE_EQ(m.access(1, S, 2, Access::kWrite), 4);       // another store miss, outstanding...
  EXPECT_DOUBLE_EQ(m.access(1, P, 0, Access::kAtomic), 40);    // ...until a locked instruction drains it
  EXPECT_DOUBLE_EQ(m.access(1, P, 0, Access::kAtomic), 0);
}

// A 16-CPU page world with one pool (no DMA) and a coherence observer on its bus.
struct ObservedPool {
  explicit ObservedPool(bool register_pool)
      : world(config()), pool(0, world, params(), page_pool::PoolCosts{}, 16), obs(profile(), page_pool::CoherenceOptions{}) {
    if (register_pool) obs.add_pool(&pool);
    world.subscribe(&obs);
  }
  ~ObservedPool() { world.unsubscribe(&obs); }
  static page_pool::PageWorld::Config config() {
    page_pool::PageWorld::Config wc;
    wc.cpu_node.assign(16, 0);
    return wc;
  }
  static page_pool::PoolParams params() {
    page_pool::PoolParams pp;
    pp.dma_map = false;
    pp.dma_sync = false;
    return pp;
  }
  page_pool::PageWorld world;
  page_pool::PagePool pool;
  page_pool::CoherenceObserver obs;
};

TEST(CoherenceObserver, DirectRecyclingStaysLocalRingRecyclingBounces) {
  using namespace page_pool;
  for (bool cross : {false, true}) {
    ObservedPool o(/*register_pool=*/true);
    auto& world = o.world;
    auto& pool = o.pool;
    auto& obs = o.obs;
    Caller a, b;
    a.ctx.cpu = 0;
    a.ctx.softirq = true;
    b.ctx.cpu = cross ? 1 : 0;
    b.ctx.softirq = !cross;
    for (int round = 0; round < 200; ++round) {
      std::vector<PageId> got;
      for (int i = 0; i < 32; ++i) got.push_back(pool.alloc(a));
      for (PageId p : got) pool.put(b, p, -1, !cross);
    }
    obs.model().reset_stats();
    const sim::Picos a0 = a.cost, b0 = b.cost;
    for (int round = 0; round < 100; ++round) {
      std::vector<PageId> got;
      for (int i = 0; i < 32; ++i) got.push_back(pool.alloc(a));
      for (PageId p : got) pool.put(b, p, -1, !cross);
    }
    const auto tot = obs.model().total();
    if (!cross) {
      EXPECT_EQ(tot.transfer_count(), 0u);
      EXPECT_EQ(a.cost, a0);  // no bouncing charged
      EXPECT_GT(obs.path(CoherenceObserver::kDirect).ops, 0u);
      EXPECT_EQ(obs.path(CoherenceObserver::kRing).ops, 0u);
      EXPECT_EQ(obs.free_bucket(CoherenceObserver::kCrossCpu).ops, 0u);
    } else {
      // Slot lines move each way once per 8 pages; nothing else should.
      EXPECT_GT(obs.model().stats(LineType::kPtrRingSlot).transfer_count(), 0u);
      EXPECT_EQ(obs.model().stats(LineType::kAllocCache).transfer_count(), 0u);
      EXPECT_EQ(obs.model().stats(LineType::kPtrRingProducer).transfer_count(), 0u);
      EXPECT_GT(b.cost - b0, 0);
      EXPECT_GT(obs.path(CoherenceObserver::kRing).ops, 0u);
      EXPECT_GT(obs.free_bucket(CoherenceObserver::kCrossCpu).ops, 0u);
      EXPECT_GT(obs.free_bucket(CoherenceObserver::kCrossCpu).ns, 0.0);
      EXPECT_DOUBLE_EQ(tot.ns, obs.model().cpu_ns(0) + obs.model().cpu_ns(1));
    }
  }
}

TEST(CoherenceObserver, FragPagesBounceTheirRefcountLine) {
  using namespace page_pool;
  ObservedPool o(/*register_pool=*/false);
  auto& world = o.world;
  auto& pool = o.pool;
  auto& obs = o.obs;
  Caller a, b;
  a.ctx.cpu = 0;
  a.ctx.softirq = true;
  b.ctx.cpu = 4;  // other socket
  for (int i = 0; i < 400; ++i) {
    std::uint32_t off = 0;
    const PageId p = pool.alloc_frag(a, 2048, &off);
    pool.put(b, p, -1, false, off);  // atomic pp_ref_count decrement on the remote CPU
  }
  const auto& sp = obs.model().stats(LineType::kStructPage);
  EXPECT_GT(sp.atomics, 0u);
  EXPECT_GT(sp.transfers[static_cast<int>(Distance::kRemote)], 100u);
}

TEST(CoherenceObserver, ReleaseUsesTheAtomicReleaseCounter) {
  using namespace page_pool;
  ObservedPool o(/*register_pool=*/false);
  auto& world = o.world;
  auto& pool = o.pool;
  auto& obs = o.obs;
  Caller a, b;
  a.ctx.cpu = 0;
  a.ctx.softirq = true;
  b.ctx.cpu = 1;
  for (int i = 0; i < 100; ++i) {
    const PageId p = pool.alloc(a);
    world.get_page(p);  // an extra reference: the put releases the page
    pool.put(b, p, -1, false);
    world.put_page(p);
  }
  EXPECT_EQ(obs.path(CoherenceObserver::kRelease).ops, 100u);
  EXPECT_GE(obs.model().stats(LineType::kPoolStats).atomics, 100u);
  EXPECT_GT(obs.path(CoherenceObserver::kRelease).ns, 0.0);
}

TEST(CoherenceObserver, PredictRanksDirectBelowCrossCpu) {
  auto p = profile();
  p.base_ns = {{"alloc_fast", 1}, {"recycle_direct", 1}, {"refill_per_page", 1}, {"recycle_ring", 5}};
  const auto d = page_pool::predict_recycle(p, page_pool::RecyclePattern::kDirect, 20000, 0, 1);
  const auto x = page_pool::predict_recycle(p, page_pool::RecyclePattern::kCrossCpu, 20000, 0, 1);
  EXPECT_NEAR(d.ns_per_packet, 2.0, 1e-6);  // all local: only the base costs
  EXPECT_DOUBLE_EQ(d.coherence_ns, 0.0);
  EXPECT_GT(x.ns_per_packet, d.ns_per_packet);
  EXPECT_GT(x.transfers, 0.2);
  EXPECT_GT(x.free_cpu_ns, 5.0);
  // A farther pair bounces more expensively.
  const auto far = page_pool::predict_recycle(p, page_pool::RecyclePattern::kCrossCpu, 20000, 0, 4);
  EXPECT_GT(far.ns_per_packet, x.ns_per_packet);
  EXPECT_THROW(page_pool::predict_recycle(p, page_pool::RecyclePattern::kCrossCpu, 100, 0, 0), std::invalid_argument);
  EXPECT_THROW(page_pool::predict_recycle(p, page_pool::RecyclePattern::kCrossCpu, 100, 0, 99), std::invalid_argument);
}

TEST(CoherenceParams, ResolvesProfilesAndChecksCpus) {
  sim::ParamRegistry r;
  page_pool::register_coherence_params(r);
  r.add_int("cpus.count", "cpus", 2, "CPUs", 1, 4096);
  r.add_int("nic.rx_ring_size_descs", "descriptors", 1024, "ring", 8, 65536);
  const std::string file = std::string(PPSIM_SOURCE_DIR) + "/scenarios/x.json";
  auto p = r.resolve(json::parse(R"({"coherence": {"enabled": true}})"), file);
  auto obs = page_pool::make_coherence_observer(p);
  EXPECT_EQ(obs->model().profile().name, "published-xeon-e5-2695v4");
  EXPECT_EQ(obs->model().profile().topology.cpus(), 72);
  p = r.resolve(json::parse(R"({"cpus": {"count": 2}, "coherence": {"cpu_stride": 18}})"), file);
  EXPECT_EQ(page_pool::make_coherence_observer(p)->model_cpu(1), 18);
  p = r.resolve(json::parse(R"({"cpus": {"count": 80}})"), file);
  try {
    page_pool::make_coherence_observer(p);
    FAIL() << "80 CPUs do not fit a 72-CPU profile";
  } catch (const sim::ScenarioError& e) {
    EXPECT_EQ(e.json_path(), "$.cpus.count");
    EXPECT_NE(std::string(e.what()).find("72 CPUs"), std::string::npos);
  }
  p = r.resolve(json::parse(R"({"coherence": {"profile": "no-such-machine"}})"), file);
  try {
    page_pool::make_coherence_observer(p);
    FAIL() << "unknown profile";
  } catch (const sim::ScenarioError& e) {
    EXPECT_EQ(e.json_path(), "$.coherence.profile");
    EXPECT_NE(std::string(e.what()).find("no-such-machine"), std::string::npos);
  }
  p = r.resolve(json::parse(R"({"coherence": {"nic_domain": 5}})"), file);
  EXPECT_THROW(page_pool::make_coherence_observer(p), sim::ScenarioError);
  EXPECT_THROW(r.resolve(json::parse(R"({"coherence": {"ddio": "maybe"}})"), file), sim::ScenarioError);
}

TEST(CpuList, ParsesSysfsListsAndRefusesEverythingElse) {
  using ppsim::cost::parse_cpu_list;
  EXPECT_EQ(parse_cpu_list("0-3,8,10-11\n"), (std::vector<int>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(parse_cpu_list("5"), (std::vector<int>{5}));
  EXPECT_TRUE(parse_cpu_list("\n").empty());
  // std::stoi used to accept "3abc", throw on "x", and "0-2147483647" looped past INT_MAX.
  for (const char* bad : {"3abc", "x", "0-2147483647", "4-2", "1,,2", "1,", "-1", "1-", "99999999999", "1 2"})
    EXPECT_THROW(parse_cpu_list(bad), std::invalid_argument) << bad;
  EXPECT_EQ(parse_cpu_list("0-65535").size(), 65536u);
}

TEST(CpuTopology, FromHostNamesTheSysfsFileThatDoesNotParse) {
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("ppsim_sysfs_" + std::to_string(::getpid()));
  fs::create_directories(root / "cpu/cpu0/topology");
  fs::create_directories(root / "cpu/cpu1/topology");
  auto put = [&](const fs::path& p, const char* text) { std::ofstream(root / p) << text; };
  put("cpu/online", "0-1\n");
  put("cpu/cpu0/topology/core_id", "0\n");
  put("cpu/cpu1/topology/core_id", "1\n");
  EXPECT_EQ(ppsim::cost::CpuTopology::from_host(root.string()).cpus(), 2);
  put("cpu/cpu1/topology/core_id", "one\n");
  try {
    ppsim::cost::CpuTopology::from_host(root.string());
    ADD_FAILURE() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cpu1/topology/core_id: expected a non-negative integer, got \"one\""),
              std::string::npos) << e.what();
  }
  put("cpu/online", "0-99999999\n");
  EXPECT_THROW(ppsim::cost::CpuTopology::from_host(root.string()), std::runtime_error);
  fs::remove_all(root);
}
