#include "models/world/world.h"

#include <algorithm>
#include <bit>
#include <memory>
#include <vector>

#include "models/nic/rx_queue.h"
#include "models/page_pool/checker.h"
#include "models/page_pool/coherence_observer.h"
#include "models/page_pool/costs.h"
#include "models/page_pool/page_pool.h"
#include "models/page_pool/trace_observer.h"
#include "models/world/nic_system.h"
#include "models/world/stack.h"
#include "models/world/veth_system.h"
#include "models/world/zerocopy.h"
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
  r.add_int("sim.seed", "", 1, "seed of every random stream (0 to 2^63-1, as --seed)", 0, 9223372036854775807.0);
  r.add_float("sim.duration_us", "us", 1000.0, "traffic runs for this long", 0.001, 1e9);
  r.add_float("sim.drain_us", "us", 1000.0, "after traffic: time for consumers to catch up before teardown", 0, 1e9);
  r.add_bool("sim.destroy_pools", true, "tear down at the end: close queues, destroy pools, run deferred release retries");
  r.add_bool("sim.final_flush", true,
             "after destroy and before each deferred release retry, run NET_RX softirq on every CPU so skbs parked "
             "on defer lists are freed (other network activity would; without it they stay and the pool is never freed)");
  r.add_int("sim.retry_limit", "retries", 30, "deferred page_pool release retries (1 s apart) before the run gives up", 0, 100000);
  r.add_float("sim.sample_interval_us", "us", 10.0, "time-series sampling period", 0.001, 1e9);
  r.add_float("sim.time_limit_us", "us", 3.6e9,
              "the run stops here whatever is pending (results say so): a bound for workloads that never finish",
              1, 1e12);
  r.add_enum("sim.checker", "stop", {"stop", "collect", "off"},
             "invariant checker: stop at the first violation, collect them all, or off");
  r.add_bool("sim.race_release_in_ring_put", false,
             "run the deferred page_pool_release (a kworker on CPU 0) inside every ring put into a destroyed pool, "
             "while the producer holds the ring's lock: the interleaving page_pool_release's producer-lock barrier "
             "exists for (the model otherwise runs operations one at a time)");
  r.add_float("checker.max_release_pages_per_packet", "pages/packet", 0.05,
              "recycle_efficiency: recyclable pages the pools may release per received packet, per window", 0, 1e9);
  r.add_int("checker.window_packets", "packets", 512,
            "window of the efficiency invariants: received packets (recycle_efficiency, after a first warm-up "
            "window) or napi-local frees (direct_recycle_efficiency); 0 turns both off", 0, 1ll << 40);
  r.add_float("checker.max_direct_miss_ratio", "ratio", 0.1,
              "direct_recycle_efficiency: share of frees where page_pool_napi_local() holds that may go to the "
              "ptr_ring while the alloc cache has room", 0, 1);
  r.add_float("checker.max_pinned_per_buffer_ratio", "ratio", 2.0,
              "rx_buffer_waste: a whole page posted for an RX buffer at least this many times smaller", 1, 1e9);
  // Budgets: a run that reaches one stops early, says so in results.json ("run_limit") and
  // `ppsim run` exits with code 4.
  r.add_int("sim.max_events", "events", 0,
            "stop the run once this many events have been dispatched (0: no limit)", 0, 1e18);
  r.add_float("sim.max_wall_s", "s", 0.0,
              "stop the run after this much wall-clock time, checked every 4096 events (0: no limit)", 0, 1e9);
  r.add_int("sim.max_memory_mib", "MiB", 4096,
            "memory budget (0: none): a scenario whose queues, rings, CPUs and flows alone would need more is "
            "refused up front, and the run stops if it grows resident memory by more", 0, 1ll << 40);

  r.add_int("cpus.count", "cpus", 2, "CPUs in the machine", 1, 4096);
  r.add_int("cpus.numa_nodes", "nodes", 1, "NUMA nodes; CPUs are split evenly among them", 1, 64);
  r.add_enum("cpus.scheduler", "auto", {"auto", "fifo", "slices", "eevdf"},
             "how tasks share a CPU: first come first served, fixed slices, or Linux 6.18's EEVDF with preempt=none "
             "(sim/cpu.h); auto: slices when sched_slice_us > 0, else fifo");
  r.add_bool("cpus.preempt_rt", false,
             "CONFIG_PREEMPT_RT: softirqs and BH-disabled sections run in preemptible threads, so page_pool never "
             "recycles directly from page_pool_napi_local()");
  r.add_float("cpus.sched_slice_us", "us", 0.0,
              "base slice (sysctl_sched_base_slice); for eevdf, 0 means the kernel's 0.7 ms x (1 + ilog2(min(cpus, 8)))",
              0, 1e9, "kernel/sched/fair.c: normalized_sysctl_sched_base_slice, get_update_sysctl_factor (6.18)");
  r.add_float("cpus.sched_tick_us", "us", 0.0,
              "scheduler tick (1/CONFIG_HZ): a slice ends at the first tick after the base slice (slices: on average "
              "half a tick later; 0: exactly at the base slice; eevdf: 0 means 4000, HZ=250)", 0, 1e9);
  r.add_float("cpus.sched_tick_phase_us", "us", -1.0,
              "eevdf: time of the first scheduler tick, in [0, sched_tick_us); -1 draws it from the seed (a capture's "
              "tick falls anywhere relative to its workload)", -1, 1e9);
  r.add_bool("cpus.sched_run_to_parity", true, "EEVDF RUN_TO_PARITY: the running task keeps the slice it was picked with");
  r.add_float("cpus.context_switch_ns", "ns", 0.0,
              "eevdf: CPU time of a switch between tasks (schedule, switch_mm, the page-table switch of PTI), charged "
              "to the task switched in", 0, 1e9);
  r.add_bool("cpus.sched_delay_dequeue", true,
             "EEVDF DELAY_DEQUEUE/DELAY_ZERO: an ineligible task that blocks stays queued until picked");
  r.add_bool("cpus.sched_clock_skip", false,
             "EEVDF: a wake-up that decides to preempt skips the run queue's next clock update (wakeup_preempt → "
             "rq_clock_skip_update, kernel/sched/core.c): the running task is not charged from the last clock update "
             "(that wake-up, or a later tick or wake-up) to the switch, and the task switched in is charged for it");

  r.add_float("cpus.remote_copy_ns_per_kib", "ns/KiB", 0.0,
              "extra cost per KiB of a copy into or out of pool page data whose lines another CPU's cache holds: "
              "the veth model's copy into a page another CPU last read, a socket read of data another CPU wrote "
              "(cache-to-cache transfers and invalidations, line by line)", 0, 1e9,
              "0: every copy costs what a local one does (veth.copy_ns_per_kib, stack.reader_copy_ns_per_kib)");

  r.add_int("memory.capacity_pages", "pages", 262144, "pages the page allocator can hand out (1 GiB default)", 1, 1ll << 36);
  r.add_float("memory.pfmemalloc_fraction", "", 0.0, "fraction of pages handed out from emergency reserves (never recycled)",
              0, 1);

  // nic.*, napi.*, traffic.*, wire.*, pcie.*, sriov.*: register_nic_params (nic_system.cc).
}

const sim::ParamRegistry& build_registry() {
  static const sim::ParamRegistry reg = [] {
    sim::ParamRegistry r;
    register_world_params(r);
    register_nic_params(r);
    register_veth_params(r);
    page_pool::register_params(r);
    register_stack_params(r);
    register_zerocopy_params(r);
    page_pool::register_coherence_params(r);
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
  std::unique_ptr<Stack> stack_;
  std::unique_ptr<NicSystem> nic_;  // workload "nic": PCIe, the NIC and its functions, queues, pools, traffic
  std::unique_ptr<VethSystem> veth_;  // workload "veth": a veth pair with XDP, as kernel captures run
  std::vector<std::pair<std::string, page_pool::PagePool*>> pools_;  // every pool, with its stat prefix
  page_pool::PageChecker checker_;
  sim::TraceWriter trace_;
  page_pool::TraceObserver tracer_;
  // --timeline: CPU work as slices; pools, rings and PCIe links as counters sampled with the series.
  sim::Timeline timeline_;
  struct PoolCounters {
    page_pool::PagePool* pool;
    int cache, ring, inflight;
  };
  struct LinkCounters {
    int link, up, down;
    std::int64_t up_bytes = 0, down_bytes = 0;
  };
  std::vector<PoolCounters> tl_pools_;
  std::vector<std::pair<nic::RxQueue*, int>> tl_rings_;
  std::vector<LinkCounters> tl_links_;
  int tl_sockq_ = -1;
  Picos tl_last_sample_ = 0;
  void timeline_tracks();
  void timeline_sample(Picos now);
  std::unique_ptr<page_pool::CoherenceObserver> coherence_;  // coherence.enabled
  sim::Process teardown_proc_, retry_proc_, sample_proc_, irq_move_proc_;
  Picos traffic_end_ = 0, teardown_at_ = 0, sample_until_ = 0, sample_interval_ = 0;
  std::int64_t retries_ = 0, raced_releases_ = 0;
  bool checker_on_ = true, teardown_started_ = false;
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
  c.preempt_rt = p.get_bool("cpus.preempt_rt");
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
        for (auto* q : nic_->rx_queues()) q->move_to_cpu((q->cpu() + off) % n);
      }) {
  validate();
  sim::RunLimits run_limits;
  run_limits.max_events = static_cast<std::uint64_t>(p.get_int("sim.max_events"));
  run_limits.max_wall_s = p.get_double("sim.max_wall_s");
  run_limits.max_memory_bytes = static_cast<std::uint64_t>(p.get_int("sim.max_memory_mib")) << 20;
  kernel_.set_limits(run_limits);
  pages_.on_grow = [this] { kernel_.check_limits(); };
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
  std::string sched = p.get_string("cpus.scheduler");
  if (sched == "auto") sched = p.get_double("cpus.sched_slice_us") > 0 ? "slices" : "fifo";
  sim::EevdfConfig ev;
  if (sched == "eevdf") {
    const int f = 1 + static_cast<int>(std::bit_width(static_cast<unsigned>(std::min(ncpu, 8)))) - 1;
    ev.base_slice = p.get_double("cpus.sched_slice_us") > 0 ? sim::from_us(p.get_double("cpus.sched_slice_us"))
                                                             : 700 * sim::kPicosPerUs * f;
    ev.tick = p.get_double("cpus.sched_tick_us") > 0 ? sim::from_us(p.get_double("cpus.sched_tick_us")) : 4 * sim::kPicosPerMs;
    ev.lag_limit = ev.base_slice + ev.tick;
    const double phase = p.get_double("cpus.sched_tick_phase_us");
    ev.tick_phase = phase >= 0 ? sim::from_us(phase) % ev.tick
                               : static_cast<sim::Picos>(sim::Rng(seed_).stream("sched_tick").uniform() * static_cast<double>(ev.tick));
    ev.run_to_parity = p.get_bool("cpus.sched_run_to_parity");
    ev.delay_dequeue = p.get_bool("cpus.sched_delay_dequeue");
    ev.clock_skip = p.get_bool("cpus.sched_clock_skip");
    ev.context_switch = sim::from_ns(p.get_double("cpus.context_switch_ns"));
  }
  for (auto& c : cpus_) {
    c.attach(kernel_);  // after the vector is final: the CPU's process keeps `this`
    if (sched == "slices")
      c.set_slice(sim::from_us(p.get_double("cpus.sched_slice_us")), sim::from_us(p.get_double("cpus.sched_tick_us")));
    else if (sched == "eevdf")
      c.set_eevdf(ev);
  }
  if (!opts.timeline_path.empty()) {
    timeline_.open(opts.timeline_path, opts.timeline_max_events);
    for (auto& c : cpus_) c.set_timeline(&timeline_);
  }
  checker_on_ = p.get_string("sim.checker") != "off" || opts.checker_mode.has_value();
  page_pool::PageChecker::Limits limits;
  limits.max_release_pages_per_packet = p.get_double("checker.max_release_pages_per_packet");
  limits.window_packets = static_cast<std::uint32_t>(std::min<std::int64_t>(p.get_int("checker.window_packets"), UINT32_MAX));
  limits.max_direct_miss_ratio = p.get_double("checker.max_direct_miss_ratio");
  limits.max_pinned_per_buffer_ratio = p.get_double("checker.max_pinned_per_buffer_ratio");
  checker_.set_limits(limits);
  if (checker_on_) {
    pages_.subscribe(&checker_);
    checker_.on_stop = [this] { kernel_.stop(); };
  }
  if (!opts.trace_path.empty()) {
    trace_.open(opts.trace_path, ncpu);
    pages_.subscribe(&tracer_);
    for (auto& c : cpus_) c.set_trace(&trace_);
  }
  if (p.get_bool("coherence.enabled")) {
    coherence_ = page_pool::make_coherence_observer(p);
    pages_.subscribe(coherence_.get());
  }

  sim::Rng root(seed_);
  StackConfig sc = stack_config_from(p);
  const int first_cpu = static_cast<int>(p.get_int("nic.first_cpu"));
  if (sc.reader_cpu < 0) sc.reader_cpu = first_cpu % ncpu;
  stack_ = std::make_unique<Stack>(kernel_, sc, cpus_, pages_, root.stream("stack"), stats_, opts.mutants);

  traffic_end_ = sim::from_us(p.get_double("sim.duration_us"));
  auto on_pool = [this](page_pool::PagePool* pool) {
    checker_.add_pool(pool);
    tracer_.add_pool(pool);
    if (coherence_) coherence_->add_pool(pool);
  };
  if (p.get_string("workload") == "veth") {
    veth_ = std::make_unique<VethSystem>(kernel_, p, cpus_, pages_, *stack_, stats_, topo_, cpu_v, root, opts.mutants, on_pool,
                                         [this](Picos t) { teardown_proc_.wake_at(t); }, &trace_);
    for (const auto& e : veth_->pools()) {
      pools_.emplace_back(e.name, e.pool);
      checker_.set_owner_napi(e.pool, veth_->napi_owner());
    }
  } else {
    nic_ = std::make_unique<NicSystem>(kernel_, p, cpus_, pages_, *stack_, stats_, topo_, cpu_v, root, opts.mutants, on_pool);
    for (const auto& e : nic_->pools()) pools_.emplace_back(e.name, e.pool);
    for (const auto& n : nic_->napis()) checker_.add_napi(n->id, &n->list_owner);
    checker_.set_app_flows(nic_->user_flows());
    // A pool destroyed during the run (a queue's mode switch) gets its deferred release retries.
    nic_->on_pool_destroyed = [this](page_pool::PagePool*) {
      if (retry_proc_.pending() == sim::kNever) retry_proc_.wake_at(kernel_.now() + page_pool::kDeferTime);
    };
  }
  if (trace_.enabled() && nic_) {
    for (auto* q : nic_->rx_queues()) {
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
  if (p.get_bool("sim.race_release_in_ring_put")) {
    for (const auto& [name, pool] : pools_) {
      page_pool::PagePool* pp = pool;
      pp->on_ring_locked = [this, pp](page_pool::Caller&) {
        if (!pp->destroyed() || pp->freed()) return;
        page_pool::Caller kw;
        kw.ctx.cpu = 0;
        kw.ctx.task = "kworker/0:1";
        kw.ctx.pid = 50;
        ++raced_releases_;
        pp->release_retry(kw);
      };
    }
  }
  if (timeline_.enabled()) timeline_tracks();
  register_stats();
  teardown_at_ = traffic_end_ + sim::from_us(p.get_double("sim.drain_us"));
  sample_until_ = teardown_at_;
  sample_interval_ = sim::from_us(p.get_double("sim.sample_interval_us"));
}

// Memory a scenario needs before its first packet: the structures built per queue and per CPU,
// the RX rings filled with buffers (pages, with the checker's shadow of each), the RSS tables.
// The constants are measured on this build, rounded up; the estimate only has to tell a scenario
// that fits from one that would need tens of gigabytes.
void check_memory_budget(const sim::Params& p) {
  const double budget = static_cast<double>(p.get_int("sim.max_memory_mib")) * 1048576.0;
  if (budget <= 0) return;
  const double ncpu = static_cast<double>(p.get_int("cpus.count"));
  const bool nic = p.get_string("workload") != "veth";
  const double vfs = nic ? static_cast<double>(p.get_int("sriov.vfs")) : 0;
  const double queues = nic ? static_cast<double>(p.get_int("nic.queues")) + vfs * static_cast<double>(p.get_int("sriov.vf_queues")) : 2;
  const double ring = nic ? static_cast<double>(p.get_int("nic.rx_ring_size_descs")) : 0;
  const double flows = nic ? static_cast<double>(std::max(p.get_int("traffic.flows"), p.get_int("traffic.tx_flows"))) : 0;
  struct Term {
    const char* path;
    double bytes;
    std::string what;
  };
  const auto n = [](double v) { return std::to_string(static_cast<long long>(v)); };
  const Term terms[] = {
      {"cpus.count", ncpu * 8192.0 + queues * ncpu * 192.0, n(ncpu) + " CPUs, each with per-CPU state in " + n(queues) + " pools"},
      {"nic.queues", queues * (96.0 * 1024 + 4.0 * static_cast<double>(p.get_int("page_pool.pool_size_pages"))),
       n(queues) + " queues with their pools"},
      {"nic.rx_ring_size_descs", queues * ring * 400.0, n(queues) + " queues x " + n(ring) + " RX descriptors with buffers"},
      {"traffic.flows", (vfs + 1) * flows * 2.0, n(vfs + 1) + " functions x " + n(flows) + " flows in RSS tables"},
  };
  double total = 16.0 * 1048576.0;
  const Term* big = &terms[0];
  for (const Term& t : terms) {
    total += t.bytes;
    if (t.bytes > big->bytes) big = &t;
  }
  if (total <= budget) return;
  throw sim::ScenarioError(p.file(), sim::json_path(big->path),
                           "the scenario needs about " + n(total / 1048576.0) + " MiB before its first packet (" + big->what +
                               "), more than sim.max_memory_mib (" + n(budget / 1048576.0) +
                               " MiB): make it smaller or raise the budget");
}

void World::validate() {
  if (p_.get_string("workload") == "veth")
    validate_veth_params(p_);
  else
    validate_nic_params(p_);
  check_memory_budget(p_);
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
  // The NIC strips the FCS; with header split the headers go to a header buffer: the RX buffer
  // holds the rest.
  const auto pkt = p_.get_int("traffic.packet_bytes") - 4 -
                   (p_.get_bool("nic.header_split") ? p_.get_int("traffic.header_bytes") : 0);
  const std::int64_t usable = 2 * buf > page ? page : buf;
  if (page && pkt > usable)
    throw err("traffic.packet_bytes", "expected at most the RX buffer (" + std::to_string(usable) +
                                          " bytes of frame data without the FCS: nic.buffer_bytes, or a page when it does not split" +
                                          (p_.get_bool("nic.header_split") ? ", plus traffic.header_bytes with header split" : "") +
                                          "), got " + std::to_string(p_.get_int("traffic.packet_bytes")));
  if (page && p_.get_double("traffic.tx_rate_pps") > 0 && p_.get_string("traffic.tx_to") != "wire" &&
      p_.get_int("traffic.tx_packet_bytes") > usable)
    throw err("traffic.tx_packet_bytes", "expected at most the receiving function's RX buffer (" + std::to_string(usable) +
                                             " bytes), got " + std::to_string(p_.get_int("traffic.tx_packet_bytes")));
}

void World::register_stats() {
  auto& s = stats_;
  if (coherence_) coherence_->register_stats(s);
  if (nic_) nic_->register_stats();
  if (veth_) veth_->register_stats();
  std::vector<std::string> pool_names;
  for (const auto& entry : pools_) {
    // Not a structured binding: the lambdas below capture `pool`, which clang 14 (the fuzzing and
    // sanitizer build) does not allow for bindings.
    page_pool::PagePool* pool = entry.second;
    const std::string n = entry.first + ".pp.";
    pool_names.push_back(n);
    const auto& a = pool->alloc_stats();
    s.reader(n + "alloc_fast", "pages", "allocations served from the alloc cache (and frag page reuse)", [&a] { return a.fast; });
    s.reader(n + "alloc_slow", "calls", "bulk slow-path allocations of order-0 pages", [&a] { return a.slow; });
    s.reader(n + "alloc_slow_high_order", "pages", "slow-path allocations of one high-order page", [&a] { return a.slow_high_order; });
    s.reader(n + "alloc_empty", "events", "refills that found the ptr_ring empty", [&a] { return a.empty; });
    s.reader(n + "alloc_refill", "events", "refills that moved pages from the ptr_ring to the alloc cache", [&a] { return a.refill; });
    s.reader(n + "alloc_waive", "pages", "pages released during refill because they were on another NUMA node", [&a] { return a.waive; });
    s.reader(n + "alloc_user_limit", "events",
             "allocations refused at the zero-copy limit on pages out of the pool (the design's limit, not a 6.18 stat)",
             [&a] { return a.user_limit; });
    s.reader(n + "user_pages_max", "pages", "most pages out to the zero-copy application at once",
             [pool] { return static_cast<std::int64_t>(pool->user_outstanding_max()); });
    s.reader(n + "recycle_cached", "pages", "pages recycled into the alloc cache (and frag pages reused in place)", [pool] { return pool->recycle_stats().cached; });
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
  for (const auto& [nm, unit] : totals) {
    const std::string name = nm;
    s.formula("page_pool." + name, unit, "sum over all pools (<queue>.pp." + name + ")", [this, name, pool_names] {
      double t = 0;
      for (const auto& n : pool_names) t += stats_.value(n + name);
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
  for (auto& c : cpus_) {
    sim::Cpu* cp = &c;
    const std::string n = "cpu" + std::to_string(c.id()) + ".";
    s.reader(n + "softirq_busy_ns", "ns", "time in softirq (NAPI polls, defer flushes)", [cp] { return cp->softirq_busy() / 1000; });
    s.reader(n + "process_busy_ns", "ns", "time in process context (socket reader)", [cp] { return cp->process_busy() / 1000; });
    s.formula(n + "softirq_util", "ratio", "softirq busy time / traffic duration", [cp, dur] {
      return sim::ratio(static_cast<double>(cp->softirq_busy()), static_cast<double>(dur));
    });
  }
  // What each named task got from its CPU (EEVDF), to compare with a kernel trace's sched events.
  for (auto& c : cpus_) {
    for (const sim::TaskSchedStats* t : c.task_stats()) {
      if (t->name.empty()) continue;
      const std::string n = "cpu" + std::to_string(c.id()) + ".task." + t->name + ".";
      auto q = [](const std::vector<sim::Picos>& v, double f) {
        if (v.empty()) return 0.0;
        std::vector<sim::Picos> w(v);
        const auto k = static_cast<std::size_t>(f * static_cast<double>(w.size() - 1) + 0.5);
        std::nth_element(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(k), w.end());
        return sim::to_us(w[k]);
      };
      s.reader(n + "turns", "turns", "times the task got the CPU", [t] { return t->turns; });
      s.reader(n + "blocked", "turns", "turns that ended because the task had nothing left to run", [t] { return t->blocked; });
      s.reader(n + "preempted", "turns", "turns that ended at a schedule point with work left", [t] { return t->preempted; });
      s.reader(n + "wakeups", "wakeups", "times the task was woken", [t] { return t->wakeups; });
      s.reader(n + "runtime_ns", "ns", "time the task held the CPU (softirq in its context included)",
               [t] { return t->runtime / 1000; });
      s.formula(n + "turn_median_us", "us", "median length of its turns on the CPU", [t, q] { return q(t->turn_lengths, 0.5); });
      s.formula(n + "turn_p90_us", "us", "90th percentile of its turn lengths", [t, q] { return q(t->turn_lengths, 0.9); });
      s.formula(n + "wakeup_wait_median_us", "us", "median time from a wakeup until it ran", [t, q] { return q(t->wakeup_waits, 0.5); });
    }
  }
  s.reader("page_allocator.allocs", "pages", "pages handed out by the page allocator", [this] { return static_cast<std::int64_t>(pages_.buddy_allocs); });
  s.reader("page_allocator.frees", "pages", "pages given back to the page allocator", [this] { return static_cast<std::int64_t>(pages_.buddy_frees); });
  s.reader("sim.events_dispatched", "events", "SystemC method activations", [this] { return static_cast<std::int64_t>(kernel_.dispatched()); });
  s.reader("sim.end_time_ns", "ns", "simulated time at the end of the run", [this] { return kernel_.now() / 1000; });
  s.reader("sim.release_retries", "retries", "deferred release retries run after destroy", [this] { return retries_; });
  if (p_.get_bool("sim.race_release_in_ring_put"))
    s.reader("sim.raced_releases", "retries", "page_pool_release runs injected inside a ring put (sim.race_release_in_ring_put)",
             [this] { return raced_releases_; });
  s_cache_ = &s.series("page_pool.alloc_cache_pages", "pages", "pages in the alloc caches (all pools)");
  s_ring_ = &s.series("page_pool.ring_pages", "pages", "pages in the ptr_rings (all pools)");
  s_inflight_ = &s.series("page_pool.inflight_pages", "pages", "hold - release (all pools)");
  s_out_ = &s.series("page_pool.pages_out", "pages", "pool pages outside the pool: NIC rings, stack, sockets");
  s_sockq_ = &s.series("stack.socket_queue_skbs", "skbs", "skbs waiting in the socket receive queue");
}

void World::sample() {
  const Picos now = kernel_.now();
  double cache = 0, ring = 0, infl = 0;
  for (const auto& [name, p] : pools_) {
    cache += p->cache_count();
    ring += p->ring_count();
    infl += p->inflight();
  }
  s_cache_->add(now, cache);
  s_ring_->add(now, ring);
  s_inflight_->add(now, infl);
  s_out_->add(now, infl - cache - ring);
  s_sockq_->add(now, static_cast<double>(stack_->socket_queue_len()));
  if (timeline_.enabled()) timeline_sample(now);
  if (sample_until_ - now >= sample_interval_) sample_proc_.wake_at(now + sample_interval_);
}

void World::timeline_tracks() {
  for (const auto& [name, pool] : pools_)
    tl_pools_.push_back({pool, timeline_.counter("page_pool", name + " alloc cache", "pages"),
                         timeline_.counter("page_pool", name + " ptr_ring", "pages"),
                         timeline_.counter("page_pool", name + " inflight", "pages")});
  tl_sockq_ = timeline_.counter("stack", "socket receive queue", "skbs");
  if (!nic_) return;
  int order = 0;
  for (auto* q : nic_->rx_queues()) {
    tl_rings_.emplace_back(q, timeline_.counter("NIC queues", q->config().name + " buffers on ring", "buffers"));
    const int track = timeline_.slice_track("NIC queues", q->config().name + " napi_poll", order++);
    auto traced = q->on_napi_poll;  // the tracefs writer's, when --trace is on too
    q->on_napi_poll = [this, track, traced](const nic::NapiPollEvent& e) {
      timeline_.slice(track, "napi_poll", e.start, e.end - e.start);
      if (traced) traced(e);
    };
  }
  const auto& f = nic_->fabric();
  for (int l = 0; l < f.links(); ++l)
    tl_links_.push_back({l, timeline_.counter("PCIe", f.link_name(l) + " upstream utilisation", "%"),
                         timeline_.counter("PCIe", f.link_name(l) + " downstream utilisation", "%")});
}

// Counters at each sample. PCIe utilisation is the TLP bytes of the interval over what the link
// carries in a direction (symbol rate after coding and SKP), so DLLP overhead is not in it.
void World::timeline_sample(Picos now) {
  for (const auto& c : tl_pools_) {
    timeline_.value(c.cache, now, c.pool->cache_count());
    timeline_.value(c.ring, now, c.pool->ring_count());
    timeline_.value(c.inflight, now, c.pool->inflight());
  }
  timeline_.value(tl_sockq_, now, static_cast<double>(stack_->socket_queue_len()));
  for (const auto& [q, id] : tl_rings_) timeline_.value(id, now, static_cast<double>(q->on_ring()));
  const Picos dt = now - tl_last_sample_;
  tl_last_sample_ = now;
  if (!nic_ || dt <= 0) return;
  const auto& f = nic_->fabric();
  for (auto& c : tl_links_) {
    const double bits_per_ps = f.link_model(c.link).tlp_capacity_gbps() / 1000.0;
    const std::int64_t up = f.up(c.link).tlp_bytes, down = f.down(c.link).tlp_bytes;
    timeline_.value(c.up, now, 100.0 * static_cast<double>(up - c.up_bytes) * 8 / (bits_per_ps * static_cast<double>(dt)));
    timeline_.value(c.down, now, 100.0 * static_cast<double>(down - c.down_bytes) * 8 / (bits_per_ps * static_cast<double>(dt)));
    c.up_bytes = up;
    c.down_bytes = down;
  }
}

void World::teardown() {
  const Picos now = kernel_.now();
  teardown_started_ = true;
  sample_until_ = now;
  if (nic_) nic_->close(now);
  if (veth_) veth_->close(now);
  bool pending = false;
  for (const auto& [name, pool] : pools_) {
    if (pool->destroyed()) {  // destroyed earlier in the run (a mode switch): its retries go on
      if (!pool->freed()) pending = true;
      continue;
    }
    page_pool::Caller c;
    c.ctx.cpu = 0;
    c.ctx.exclusive = true;
    c.ctx.task = "ppsim-teardown";
    c.ctx.pid = 1;
    if (veth_) c.ctx = veth_->delete_ctx();
    // 59a931c5b732: xdp_unreg_mem_model destroyed the pool under rcu_read_lock().
    c.ctx.atomic = opts_.mutants.has(page_pool::Mutant::kDestroyUnderRcu);
    pages_.now = now;
    if (pool->destroy(c) != 0) pending = true;  // page_pool_destroy re-schedules on any non-zero
  }
  if (nic_) nic_->free_napis(now);  // netif_napi_del once no pool points at them
  if (p_.get_bool("sim.final_flush")) stack_->flush_all_defer_lists(now + sim::kPicosPerUs);
  if (pending && p_.get_int("sim.retry_limit") > 0 && retry_proc_.pending() == sim::kNever)
    retry_proc_.wake_at(now + page_pool::kDeferTime);
}

void World::retry() {
  const Picos now = kernel_.now();
  if (teardown_started_ && p_.get_bool("sim.final_flush") && stack_->deferred_outstanding() > 0) {
    // Let the flush land first, then retry (as the capture tool waits for its final flush).
    stack_->flush_all_defer_lists(now);
    retry_proc_.wake_at(now + sim::kPicosPerUs);
    return;
  }
  ++retries_;
  bool pending = false;
  for (const auto& [name, pool] : pools_) {
    if (pool->freed() || !pool->destroyed()) continue;
    page_pool::Caller c;
    c.ctx.cpu = 0;
    c.ctx.task = "kworker/0:1";
    c.ctx.pid = 50;
    pages_.now = now;
    if (pool->retry_again(pool->release_retry(c))) pending = true;
  }
  if (pending && retries_ < p_.get_int("sim.retry_limit")) retry_proc_.wake_at(now + page_pool::kDeferTime);
}

json World::run() {
  sample_proc_.wake_at(0);
  if (nic_) {
    nic_->open(0);
    if (p_.get_double("nic.irq_move_at_us") > 0) irq_move_proc_.wake_at(sim::from_us(p_.get_double("nic.irq_move_at_us")));
    if (p_.get_bool("sim.destroy_pools")) teardown_proc_.wake_at(teardown_at_);
  } else {
    veth_->open(0);  // the veth's deletion (teardown) is scheduled by the workload itself
    sample_until_ = sim::kNever;
  }
  const Picos limit = sim::from_us(p_.get_double("sim.time_limit_us"));
  kernel_.run(p_.get_bool("sim.destroy_pools") || veth_ ? limit : std::min(limit, teardown_at_));
  const bool hit_limit = kernel_.now() >= limit;
  const auto& budget = kernel_.limit_hit();
  // A run stopped by a budget did not tear down: the end-of-run checks would be false alarms.
  if (checker_on_ && !checker_.stop_requested() && !budget) {
    const bool consumers_done = stack_->outstanding() == 0 && stack_->extra_refs_outstanding() == 0;
    checker_.finish(kernel_.now(), pages_, consumers_done && p_.get_bool("sim.destroy_pools"));
  }
  trace_.close();
  timeline_.close(kernel_.now());
  json out = stats_.to_json();
  out["ppsim_version"] = PPSIM_VERSION;
  out["seed"] = seed_;
  out["scenario"] = {{"name", p_.get_string("name")}, {"description", p_.get_string("description")}, {"file", p_.file()}};
  out["parameters"] = p_.to_json();
  out["topology"] = topo_.to_json();
  if (nic_) out["nic"] = nic_->results(stats_);
  if (veth_) out["veth"] = veth_->results();
  out["invariants"] = verdicts_.to_json();
  out["invariants"]["enabled"] = checker_on_;
  out["time_limit_reached"] = hit_limit;
  out["run_limit"] = budget ? json{{"limit", budget->limit}, {"message", budget->message},
                                   {"at_ns", kernel_.now() / 1000}, {"events", kernel_.dispatched()}}
                            : json(nullptr);
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
