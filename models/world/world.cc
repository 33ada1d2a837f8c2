#include "models/world/world.h"

#include <memory>
#include <vector>

#include "models/nic/rx_queue.h"
#include "models/nic/traffic.h"
#include "models/page_pool/checker.h"
#include "models/page_pool/costs.h"
#include "models/page_pool/page_pool.h"
#include "models/page_pool/trace_observer.h"
#include "models/world/stack.h"
#include "ppsim_version.h"
#include "sim/cpu.h"
#include "sim/error.h"
#include "sim/kernel.h"
#include "sim/rng.h"
#include "sim/stats.h"
#include "sim/topology.h"
#include "sim/tracer.h"

namespace ppsim::world {
namespace {

using sim::Picos;

void register_world_params(sim::ParamRegistry& r) {
  r.add_string("name", "", "scenario name (free text)");
  r.add_string("description", "", "what the scenario shows (free text)");
  r.add_int("sim.seed", "", 1, "seed of every random stream", 0, 9.0e18);
  r.add_float("sim.duration_us", "us", 1000.0, "traffic runs for this long", 0.001, 1e9);
  r.add_float("sim.drain_us", "us", 1000.0, "after traffic: time for consumers to catch up before teardown", 0, 1e9);
  r.add_bool("sim.destroy_pools", true, "tear down at the end: close queues, destroy pools, run deferred release retries");
  r.add_bool("sim.final_flush", true,
             "after destroy and before each deferred release retry, run NET_RX softirq on every CPU so skbs parked "
             "on defer lists are freed (other network activity would; without it they stay and the pool is never freed)");
  r.add_int("sim.retry_limit", "retries", 30, "deferred page_pool release retries (1 s apart) before the run gives up", 0, 100000);
  r.add_float("sim.sample_interval_us", "us", 10.0, "time-series sampling period", 0.001, 1e9);
  r.add_enum("sim.checker", "stop", {"stop", "collect", "off"},
             "invariant checker: stop at the first violation, collect them all, or off");

  r.add_int("cpus.count", "cpus", 2, "CPUs in the machine", 1, 4096);
  r.add_int("cpus.numa_nodes", "nodes", 1, "NUMA nodes; CPUs are split evenly among them", 1, 64);

  r.add_int("memory.capacity_pages", "pages", 262144, "pages the page allocator can hand out (1 GiB default)", 1, 1ll << 36);
  r.add_float("memory.pfmemalloc_fraction", "", 0.0, "fraction of pages handed out from emergency reserves (never recycled)",
              0, 1);

  r.add_int("nic.queues", "queues", 1, "RX queues, each with its own NAPI and page_pool", 1, 4096);
  r.add_int("nic.first_cpu", "", 0, "queue i's interrupt and NAPI run on CPU (first_cpu + i) mod cpus.count", 0, 4095);
  r.add_int("nic.rx_ring_size_descs", "descriptors", 1024, "RX descriptors per queue (a power of two)", 8, 65536);
  r.add_int("nic.buffer_bytes", "bytes", 2048,
            "RX buffer per descriptor: a page_pool frag when 2*size fits a page, else a whole page", 64, 1 << 20);
  r.add_float("nic.irq_coalesce_us", "us", 8.0, "rx-usecs: interrupt delay after the first completion", 0, 1e9,
              "ppsim assumption (typical adaptive-moderation floor)");
  r.add_int("nic.irq_coalesce_frames", "packets", 0, "rx-frames: interrupt after this many completions (0: off)", 0, 65536);
  r.add_float("nic.irq_latency_us", "us", 1.0, "hardirq to NET_RX softirq start", 0, 1e9, "ppsim assumption");
  r.add_float("nic.irq_move_at_us", "us", 0.0,
              "interrupt affinity change at this time (0: never): every queue moves to CPU + irq_move_cpu_offset", 0, 1e9);
  r.add_int("nic.irq_move_cpu_offset", "cpus", 1, "how far the interrupt affinity change moves each queue", 0, 4095);
  r.add_bool("nic.update_nid", false,
             "the driver calls page_pool_nid_changed(pool, numa_mem_id()) each poll (as mlx5 does)");

  r.add_int("napi.budget", "packets", 64, "NAPI poll budget (weight)", 1, 65536);
  r.add_float("napi.per_packet_ns", "ns", 60.0, "driver RX work per packet (descriptor, skb build)", 0, 1e9,
              "ppsim assumption");
  r.add_float("napi.poll_overhead_ns", "ns", 300.0, "work per NAPI poll besides packets", 0, 1e9, "ppsim assumption");
  r.add_float("napi.alloc_retry_us", "us", 100.0, "re-poll delay when the ring could not be refilled", 0.001, 1e9);

  r.add_float("traffic.rate_pps", "pps", 1e6, "offered packets per second (all queues together)", 0, 1e12);
  r.add_int("traffic.packet_bytes", "bytes", 1500, "frame size", 14, 1 << 20);
  r.add_int("traffic.packets", "packets", 0, "stop after this many packets (0: run for sim.duration_us)", 0, 1ll << 50);
  r.add_enum("traffic.pattern", "constant", {"constant", "poisson"}, "arrival process");
  r.add_float("traffic.start_us", "us", 10.0, "first arrival", 0, 1e9);
}

const sim::ParamRegistry& build_registry() {
  static const sim::ParamRegistry reg = [] {
    sim::ParamRegistry r;
    register_world_params(r);
    page_pool::register_params(r);
    register_stack_params(r);
    return r;
  }();
  return reg;
}

class World {
 public:
  World(const sim::Params& p, const RunOptions& opts);
  ~World() { pages_.unsubscribe(&checker_); }
  json run();
  json stats_description() const { return stats_.describe(); }

 private:
  void validate();
  void register_stats();
  void teardown();
  void retry();
  void sample();

  const sim::Params& p_;
  RunOptions opts_;
  std::uint64_t seed_;
  sim::Kernel kernel_;
  sim::Stats stats_;
  sim::Verdicts verdicts_;
  sim::Topology topo_;
  std::vector<sim::Cpu> cpus_;
  std::unique_ptr<page_pool::PageWorld> pages_ptr_;
  page_pool::PageWorld& pages_;
  std::vector<std::unique_ptr<nic::Napi>> napis_;
  std::vector<std::unique_ptr<page_pool::PagePool>> pools_;
  std::vector<std::unique_ptr<nic::TrafficSource>> traffic_;
  std::unique_ptr<Stack> stack_;
  std::vector<std::unique_ptr<nic::RxQueue>> queues_;
  page_pool::PageChecker checker_;
  sim::TraceWriter trace_;
  page_pool::TraceObserver tracer_;
  sim::Process teardown_proc_, retry_proc_, sample_proc_, irq_move_proc_;
  Picos traffic_end_ = 0, teardown_at_ = 0, sample_until_ = 0, sample_interval_ = 0;
  std::int64_t retries_ = 0;
  bool checker_on_ = true;
  sim::TimeSeries *s_cache_ = nullptr, *s_ring_ = nullptr, *s_inflight_ = nullptr, *s_sockq_ = nullptr,
                  *s_out_ = nullptr;
};

sim::Verdicts::Mode checker_mode(const sim::Params& p, const RunOptions& o) {
  if (o.checker_mode) return *o.checker_mode;
  return p.get_string("sim.checker") == "collect" ? sim::Verdicts::Mode::kCollect : sim::Verdicts::Mode::kStop;
}

std::unique_ptr<page_pool::PageWorld> make_pages(const sim::Params& p, std::uint64_t seed) {
  page_pool::PageWorld::Config c;
  c.capacity_pages = static_cast<std::uint32_t>(std::min<std::int64_t>(p.get_int("memory.capacity_pages"), UINT32_MAX - 1));
  c.numa_nodes = static_cast<int>(p.get_int("cpus.numa_nodes"));
  c.pfmemalloc_fraction = p.get_double("memory.pfmemalloc_fraction");
  c.seed = seed;
  const int ncpu = static_cast<int>(p.get_int("cpus.count"));
  for (int i = 0; i < ncpu; ++i) c.cpu_node.push_back(static_cast<int>(static_cast<std::int64_t>(i) * c.numa_nodes / ncpu));
  return std::make_unique<page_pool::PageWorld>(c);
}

World::World(const sim::Params& p, const RunOptions& opts)
    : p_(p),
      opts_(opts),
      seed_(opts.seed ? *opts.seed : static_cast<std::uint64_t>(p.get_int("sim.seed"))),
      verdicts_(checker_mode(p, opts)),
      pages_ptr_(make_pages(p, seed_)),
      pages_(*pages_ptr_),
      checker_(verdicts_),
      tracer_(trace_),
      teardown_proc_(kernel_, "teardown", [this] { teardown(); }),
      retry_proc_(kernel_, "pool_release_retry", [this] { retry(); }),
      sample_proc_(kernel_, "sampler", [this] { sample(); }),
      irq_move_proc_(kernel_, "irq_affinity", [this] {
        const int n = static_cast<int>(cpus_.size());
        const int off = static_cast<int>(p_.get_int("nic.irq_move_cpu_offset"));
        for (auto& q : queues_) q->move_to_cpu((q->cpu() + off) % n);
      }) {
  validate();
  const int ncpu = static_cast<int>(p.get_int("cpus.count"));
  const int nodes = static_cast<int>(p.get_int("cpus.numa_nodes"));
  // Topology: NUMA nodes contain CPUs; queues run on CPUs; queues allocate from pools.
  std::vector<sim::Topology::Vertex> node_v, cpu_v;
  for (int n = 0; n < nodes; ++n) node_v.push_back(topo_.add(sim::NodeKind::kNumaNode, "node" + std::to_string(n), n));
  for (int c = 0; c < ncpu; ++c) {
    const int node = pages_.node_of_cpu(c);
    cpus_.emplace_back(c, node);
    cpu_v.push_back(topo_.add(sim::NodeKind::kCpu, "cpu" + std::to_string(c), c));
    topo_.connect(node_v[node], cpu_v[c], sim::EdgeKind::kContains);
  }
  checker_on_ = p.get_string("sim.checker") != "off" || opts.checker_mode.has_value();
  if (checker_on_) {
    pages_.subscribe(&checker_);
    checker_.on_stop = [this] { kernel_.stop(); };
  }
  if (!opts.trace_path.empty()) {
    trace_.open(opts.trace_path, ncpu);
    pages_.subscribe(&tracer_);
  }

  sim::Rng root(seed_);
  StackConfig sc = stack_config_from(p);
  const int nq = static_cast<int>(p.get_int("nic.queues"));
  const int first_cpu = static_cast<int>(p.get_int("nic.first_cpu"));
  if (sc.reader_cpu < 0) sc.reader_cpu = first_cpu % ncpu;
  stack_ = std::make_unique<Stack>(kernel_, sc, cpus_, pages_, root.stream("stack"), stats_);

  const page_pool::PoolParams base = page_pool::pool_params_from(p);
  const page_pool::PoolCosts costs = page_pool::pool_costs_from(p);
  const bool napi_bound = p.get_bool("page_pool.napi_bound");
  traffic_end_ = sim::from_us(p.get_double("sim.duration_us"));
  for (int q = 0; q < nq; ++q) {
    const int cpu = (first_cpu + q) % ncpu;
    const std::string qname = "nic0.rxq" + std::to_string(q);
    auto napi = std::make_unique<nic::Napi>();
    napi->name = qname;
    page_pool::PoolParams pp = base;
    pp.napi_list_owner = napi_bound ? &napi->list_owner : nullptr;
    auto pool = std::make_unique<page_pool::PagePool>(q, pages_, pp, costs, ncpu, opts.mutants);
    checker_.add_pool(pool.get());
    tracer_.add_pool(pool.get());

    nic::TrafficSource::Config tc;
    tc.rate_pps = p.get_double("traffic.rate_pps") / nq;
    tc.packet_bytes = static_cast<std::uint32_t>(p.get_int("traffic.packet_bytes"));
    const auto total = p.get_int("traffic.packets");
    tc.packets = total ? static_cast<std::uint64_t>(total / nq + (q < total % nq ? 1 : 0)) : 0;
    if (total && tc.packets == 0) tc.rate_pps = 0;
    tc.start = sim::from_us(p.get_double("traffic.start_us"));
    tc.stop = traffic_end_;
    tc.poisson = p.get_string("traffic.pattern") == "poisson";
    auto src = std::make_unique<nic::TrafficSource>(tc, root.stream("traffic." + qname));

    nic::RxQueue::Config rc;
    rc.index = q;
    rc.cpu = cpu;
    rc.ring_size = static_cast<std::uint32_t>(p.get_int("nic.rx_ring_size_descs"));
    rc.buffer_bytes = static_cast<std::uint32_t>(p.get_int("nic.buffer_bytes"));
    rc.budget = static_cast<std::uint32_t>(p.get_int("napi.budget"));
    rc.per_packet = sim::from_ns(p.get_double("napi.per_packet_ns"));
    rc.poll_overhead = sim::from_ns(p.get_double("napi.poll_overhead_ns"));
    rc.irq_coalesce = sim::from_us(p.get_double("nic.irq_coalesce_us"));
    rc.irq_coalesce_frames = static_cast<std::uint32_t>(p.get_int("nic.irq_coalesce_frames"));
    rc.irq_latency = sim::from_us(p.get_double("nic.irq_latency_us"));
    rc.alloc_retry = sim::from_us(p.get_double("napi.alloc_retry_us"));
    rc.name = qname;
    rc.update_nid = p.get_bool("nic.update_nid");
    auto rxq = std::make_unique<nic::RxQueue>(kernel_, rc, *napi, *pool, pages_, cpus_, *src, *stack_, stats_);

    auto qv = topo_.add(sim::NodeKind::kNicQueue, qname, q);
    auto pv = topo_.add(sim::NodeKind::kPagePool, qname + ".pp", q);
    topo_.connect(qv, cpu_v[cpu], sim::EdgeKind::kRunsOn);
    topo_.connect(qv, pv, sim::EdgeKind::kAllocatesFrom);

    napis_.push_back(std::move(napi));
    pools_.push_back(std::move(pool));
    traffic_.push_back(std::move(src));
    queues_.push_back(std::move(rxq));
  }
  if (trace_.enabled()) {
    for (auto& q : queues_) {
      q->on_napi_poll = [this](const nic::NapiPollEvent& e) {
        char f[160];
        std::snprintf(f, sizeof f, "napi poll on napi struct %016llx for device %s work %d budget %d",
                      static_cast<unsigned long long>(0xb0c00000ULL + reinterpret_cast<std::uintptr_t>(e.napi) % 0x100000),
                      e.napi->name.c_str(), e.work, e.budget);
        sim::TraceCtx t;
        t.task = "<idle>";
        t.cpu = e.cpu;
        t.softirq = true;
        trace_.line(t, e.end, "napi_poll", f);
      };
    }
  }
  register_stats();
  teardown_at_ = traffic_end_ + sim::from_us(p.get_double("sim.drain_us"));
  sample_until_ = teardown_at_;
  sample_interval_ = sim::from_us(p.get_double("sim.sample_interval_us"));
}

void World::validate() {
  const std::string& f = p_.file();
  auto err = [&](const char* path, const std::string& what) { return sim::ScenarioError(f, sim::json_path(path), what); };
  const auto ncpu = p_.get_int("cpus.count");
  const auto nodes = p_.get_int("cpus.numa_nodes");
  if (nodes > ncpu) throw err("cpus.numa_nodes", "expected at most cpus.count (" + std::to_string(ncpu) + ") nodes, got " + std::to_string(nodes));
  if (p_.get_int("stack.reader_cpu") >= ncpu)
    throw err("stack.reader_cpu", "expected a CPU below cpus.count (" + std::to_string(ncpu) + "), got " +
                                      std::to_string(p_.get_int("stack.reader_cpu")));
  if (p_.get_int("page_pool.percpu_cpu") >= ncpu)
    throw err("page_pool.percpu_cpu", "expected a CPU below cpus.count (" + std::to_string(ncpu) + ")");
  if (p_.get_int("page_pool.nid") >= nodes)
    throw err("page_pool.nid", "expected -1 or a node below cpus.numa_nodes (" + std::to_string(nodes) + ")");
  const auto ring = p_.get_int("nic.rx_ring_size_descs");
  if (ring & (ring - 1)) throw err("nic.rx_ring_size_descs", "expected a power of two, got " + std::to_string(ring));
  const auto order = p_.get_int("page_pool.order");
  const std::int64_t page = order <= 10 ? (std::int64_t{4096} << order) : 0;
  const auto buf = p_.get_int("nic.buffer_bytes");
  if (page && buf > page)
    throw err("nic.buffer_bytes", "expected at most the pool's page size (" + std::to_string(page) + " bytes), got " +
                                      std::to_string(buf));
  const auto pkt = p_.get_int("traffic.packet_bytes");
  const std::int64_t usable = 2 * buf > page ? page : buf;
  if (page && pkt > usable)
    throw err("traffic.packet_bytes", "expected at most the RX buffer (" + std::to_string(usable) +
                                          " bytes: nic.buffer_bytes, or a page when it does not split), got " + std::to_string(pkt));
}

void World::register_stats() {
  auto& s = stats_;
  for (auto& up : pools_) {
    page_pool::PagePool* pool = up.get();
    const std::string n = "nic0.rxq" + std::to_string(pool->id()) + ".pp.";
    const auto& a = pool->alloc_stats();
    s.reader(n + "alloc_fast", "pages", "allocations served from the alloc cache (and frag page reuse)", [&a] { return a.fast; });
    s.reader(n + "alloc_slow", "calls", "bulk slow-path allocations of order-0 pages", [&a] { return a.slow; });
    s.reader(n + "alloc_slow_high_order", "pages", "slow-path allocations of one high-order page", [&a] { return a.slow_high_order; });
    s.reader(n + "alloc_empty", "events", "refills that found the ptr_ring empty", [&a] { return a.empty; });
    s.reader(n + "alloc_refill", "events", "refills that moved pages from the ptr_ring to the alloc cache", [&a] { return a.refill; });
    s.reader(n + "alloc_waive", "pages", "pages released during refill because they were on another NUMA node", [&a] { return a.waive; });
    s.reader(n + "recycle_cached", "pages", "pages recycled into the alloc cache", [pool] { return pool->recycle_stats().cached; });
    s.reader(n + "recycle_cache_full", "pages", "direct recycles that found the alloc cache full", [pool] { return pool->recycle_stats().cache_full; });
    s.reader(n + "recycle_ring", "pages", "pages recycled into the ptr_ring", [pool] { return pool->recycle_stats().ring; });
    s.reader(n + "recycle_ring_full", "events", "recycles that found the ptr_ring full (page released)", [pool] { return pool->recycle_stats().ring_full; });
    s.reader(n + "recycle_released_refcnt", "pages", "pages released because their refcount was not 1", [pool] { return pool->recycle_stats().released_refcnt; });
    s.reader(n + "pages_state_hold_cnt", "pages", "pages taken from the page allocator (page_pool_state_hold)", [pool] { return pool->hold_cnt(); });
    s.reader(n + "pages_state_release_cnt", "pages", "pages given back (page_pool_state_release)", [pool] { return pool->release_cnt(); });
    s.reader(n + "inflight", "pages", "hold - release at the end of the run", [pool] { return pool->inflight(); });
    s.reader(n + "destroy_cnt", "tries", "page_pool_release attempts (destroy and deferred retries)", [pool] { return static_cast<std::int64_t>(pool->destroy_cnt()); });
    s.reader(n + "freed", "bool", "1 when the pool was freed (inflight reached 0 after destroy)", [pool] { return pool->freed() ? 1 : 0; });
    s.reader(n + "dma_sync_bytes", "bytes", "bytes synced for the device", [pool] { return static_cast<std::int64_t>(pool->sync_bytes()); });
  }
  // Totals over pools, with the kernel's names.
  const std::pair<const char*, const char*> totals[] = {
      {"alloc_fast", "pages"},        {"alloc_slow", "calls"},           {"alloc_slow_high_order", "pages"},
      {"alloc_empty", "events"},      {"alloc_refill", "events"},        {"alloc_waive", "pages"},
      {"recycle_cached", "pages"},    {"recycle_cache_full", "pages"},   {"recycle_ring", "pages"},
      {"recycle_ring_full", "events"}, {"recycle_released_refcnt", "pages"}, {"pages_state_hold_cnt", "pages"},
      {"pages_state_release_cnt", "pages"}};
  const std::size_t np = pools_.size();
  for (const auto& [nm, unit] : totals) {
    const std::string name = nm;
    s.formula("page_pool." + name, unit, "sum over all pools of nic0.rxq*.pp." + name, [this, name, np] {
      double t = 0;
      for (std::size_t i = 0; i < np; ++i) t += stats_.value("nic0.rxq" + std::to_string(i) + ".pp." + name);
      return t;
    });
  }
  s.formula("page_pool.allocations", "pages", "page allocations: alloc cache hits + refills + slow-path calls", [this] {
    return stats_.value("page_pool.alloc_fast") + stats_.value("page_pool.alloc_refill") + stats_.value("page_pool.alloc_slow") +
           stats_.value("page_pool.alloc_slow_high_order");
  });
  s.formula("page_pool.recycle_ratio", "ratio", "returned pages that were recycled (cache or ring) rather than released", [this] {
    const double rec = stats_.value("page_pool.recycle_cached") + stats_.value("page_pool.recycle_ring");
    return sim::ratio(rec, rec + stats_.value("page_pool.recycle_ring_full") + stats_.value("page_pool.recycle_released_refcnt"));
  });
  s.formula("page_pool.direct_ratio", "ratio", "recycled pages that went to the alloc cache (no ptr_ring)", [this] {
    const double c = stats_.value("page_pool.recycle_cached");
    return sim::ratio(c, c + stats_.value("page_pool.recycle_ring"));
  });
  s.formula("page_pool.allocator_pages_per_alloc", "ratio", "pages taken from the page allocator per page allocation", [this] {
    return sim::ratio(stats_.value("page_pool.pages_state_hold_cnt"), stats_.value("page_pool.allocations"));
  });
  const Picos dur = traffic_end_;
  s.formula("nic0.rx_gbps", "Gb/s", "received bytes * 8 / traffic duration", [this, dur] {
    double b = 0;
    for (std::size_t i = 0; i < queues_.size(); ++i) b += stats_.value("nic0.rxq" + std::to_string(i) + ".rx_bytes");
    return sim::ratio(b * 8.0, sim::to_sec(dur) * 1e9);
  });
  s.formula("nic0.rx_mpps", "Mpps", "received packets per second / 1e6 over the traffic duration", [this, dur] {
    double n = 0;
    for (std::size_t i = 0; i < queues_.size(); ++i) n += stats_.value("nic0.rxq" + std::to_string(i) + ".rx_packets");
    return sim::ratio(n, sim::to_sec(dur) * 1e6);
  });
  for (auto& c : cpus_) {
    sim::Cpu* cp = &c;
    const std::string n = "cpu" + std::to_string(c.id()) + ".";
    s.reader(n + "softirq_busy_ns", "ns", "time in softirq (NAPI polls, defer flushes)", [cp] { return cp->softirq_busy() / 1000; });
    s.reader(n + "process_busy_ns", "ns", "time in process context (socket reader)", [cp] { return cp->process_busy() / 1000; });
    s.formula(n + "softirq_util", "ratio", "softirq busy time / traffic duration", [cp, dur] {
      return sim::ratio(static_cast<double>(cp->softirq_busy()), static_cast<double>(dur));
    });
  }
  s.reader("page_allocator.allocs", "pages", "pages handed out by the page allocator", [this] { return static_cast<std::int64_t>(pages_.buddy_allocs); });
  s.reader("page_allocator.frees", "pages", "pages given back to the page allocator", [this] { return static_cast<std::int64_t>(pages_.buddy_frees); });
  s.reader("sim.events_dispatched", "events", "SystemC method activations", [this] { return static_cast<std::int64_t>(kernel_.dispatched()); });
  s.reader("sim.end_time_ns", "ns", "simulated time at the end of the run", [this] { return kernel_.now() / 1000; });
  s.reader("sim.release_retries", "retries", "deferred release retries run after destroy", [this] { return retries_; });
  s_cache_ = &s.series("page_pool.alloc_cache_pages", "pages", "pages in the alloc caches (all pools)");
  s_ring_ = &s.series("page_pool.ring_pages", "pages", "pages in the ptr_rings (all pools)");
  s_inflight_ = &s.series("page_pool.inflight_pages", "pages", "hold - release (all pools)");
  s_out_ = &s.series("page_pool.pages_out", "pages", "pool pages outside the pool: NIC rings, stack, sockets");
  s_sockq_ = &s.series("stack.socket_queue_skbs", "skbs", "skbs waiting in the socket receive queue");
}

void World::sample() {
  const Picos now = kernel_.now();
  double cache = 0, ring = 0, infl = 0;
  for (auto& p : pools_) {
    cache += p->cache_count();
    ring += p->ring_count();
    infl += p->inflight();
  }
  s_cache_->add(now, cache);
  s_ring_->add(now, ring);
  s_inflight_->add(now, infl);
  s_out_->add(now, infl - cache - ring);
  s_sockq_->add(now, static_cast<double>(stack_->socket_queue_len()));
  if (now + sample_interval_ <= sample_until_) sample_proc_.wake_at(now + sample_interval_);
}

void World::teardown() {
  const Picos now = kernel_.now();
  for (auto& q : queues_) q->close(now);
  bool pending = false;
  for (auto& pool : pools_) {
    page_pool::Caller c;
    c.ctx.cpu = 0;
    c.ctx.exclusive = true;
    c.ctx.task = "ppsim-teardown";
    c.ctx.pid = 1;
    pages_.now = now;
    if (pool->destroy(c) > 0) pending = true;
  }
  if (p_.get_bool("sim.final_flush")) stack_->flush_all_defer_lists(now + sim::kPicosPerUs);
  if (pending && p_.get_int("sim.retry_limit") > 0) retry_proc_.wake_at(now + page_pool::kDeferTime);
}

void World::retry() {
  const Picos now = kernel_.now();
  if (p_.get_bool("sim.final_flush") && stack_->deferred_outstanding() > 0) {
    // Let the flush land first, then retry (as the capture tool waits for its final flush).
    stack_->flush_all_defer_lists(now);
    retry_proc_.wake_at(now + sim::kPicosPerUs);
    return;
  }
  ++retries_;
  bool pending = false;
  for (auto& pool : pools_) {
    if (pool->freed()) continue;
    page_pool::Caller c;
    c.ctx.cpu = 0;
    c.ctx.task = "kworker/0:1";
    c.ctx.pid = 50;
    pages_.now = now;
    if (pool->release_retry(c) > 0) pending = true;
  }
  if (pending && retries_ < p_.get_int("sim.retry_limit")) retry_proc_.wake_at(now + page_pool::kDeferTime);
}

json World::run() {
  for (auto& q : queues_) q->open(0);
  sample_proc_.wake_at(0);
  if (p_.get_double("nic.irq_move_at_us") > 0) irq_move_proc_.wake_at(sim::from_us(p_.get_double("nic.irq_move_at_us")));
  if (p_.get_bool("sim.destroy_pools")) teardown_proc_.wake_at(teardown_at_);
  kernel_.run(p_.get_bool("sim.destroy_pools") ? sim::kNever : teardown_at_);
  if (checker_on_ && !checker_.stop_requested()) {
    const bool consumers_done = stack_->outstanding() == 0 && stack_->extra_refs_outstanding() == 0;
    checker_.finish(kernel_.now(), pages_, consumers_done && p_.get_bool("sim.destroy_pools"));
  }
  trace_.close();
  json out = stats_.to_json();
  out["ppsim_version"] = PPSIM_VERSION;
  out["seed"] = seed_;
  out["scenario"] = {{"name", p_.get_string("name")}, {"description", p_.get_string("description")}, {"file", p_.file()}};
  out["parameters"] = p_.to_json();
  out["topology"] = topo_.to_json();
  out["invariants"] = verdicts_.to_json();
  out["invariants"]["enabled"] = checker_on_;
  return out;
}

}  // namespace

const sim::ParamRegistry& registry() { return build_registry(); }

json run(const json& scenario, const std::string& file, const RunOptions& opts) {
  const sim::Params p = registry().resolve(scenario, file);
  World w(p, opts);
  return w.run();
}

json describe_stats(const json& scenario, const std::string& file) {
  const sim::Params p = registry().resolve(scenario, file);
  World w(p, {});
  return w.stats_description();
}

}  // namespace ppsim::world
