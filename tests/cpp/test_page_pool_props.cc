// Property tests of the page_pool model: random sequences of allocations (pages, frags, the
// helper), puts from every context (direct in NAPI, NAPI without allow_direct, another CPU's
// softirq, process context with and without BH disabled), extra page references, NUMA moves,
// destroy, late returns and release retries. After every step:
//   - the invariant checker (attached to the bus) has reported nothing;
//   - hold - release equals the pages the test itself knows to be in the pool's world (pages of
//     its outstanding buffers, the frag page, the alloc cache and the ring);
//   - page allocator allocations - frees equal the pages in use, which are that world plus the
//     pages the test still holds an extra reference to.
// A run ends with a teardown (destroy, every buffer and reference returned, retries until the
// pool is freed) after which nothing may be left. A failing sequence is shrunk (delta debugging:
// drop chunks, then single steps) and printed. PPSIM_PROP_ITERATIONS=N runs N seeds per
// configuration instead of the fixed list.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "models/page_pool/checker.h"
#include "models/page_pool/page_pool.h"

using namespace ppsim::page_pool;

namespace {

enum class Op : std::uint8_t {
  kAlloc, kAllocFrag, kAllocNetmem, kPut, kGetPage, kPutPage, kUpdateNid, kMoveNapi, kDestroy, kRetry,
  kDeviceWrite,  // a buffer is posted on the RX ring, the device writes a packet into it, the driver takes it
};

// How a put is made: the kernel's callers of page_pool_put_netmem.
enum class PutCtx : std::uint8_t { kNapiDirect, kNapi, kOtherCpuSoftirq, kProcess, kProcessBh, kCount };

// One step. `a` and `b` are interpreted modulo what exists when the step runs (which buffer, which
// CPU, which size), so that any subsequence of a sequence is still a sequence: the shrinker relies
// on it.
struct Step {
  Op op;
  std::uint32_t a = 0, b = 0;
};

constexpr std::uint32_t kFragSizes[] = {64, 256, 1024, 1500, 2048, 3000, 4096, 5000};
constexpr int kCpus = 4;

struct Config {
  const char* name;
  PoolParams params;
};

PoolParams params(std::uint32_t pool_size, bool dma_map, bool dma_sync, int nid = kNumaNoNode) {
  PoolParams p;
  p.pool_size = pool_size;
  p.dma_map = dma_map;
  p.dma_sync = dma_sync;
  p.max_len = dma_sync ? 4096 : 0;
  p.nid = nid;
  return p;
}

const Config kConfigs[] = {
    {"ring2_dma", params(2, true, false)},
    {"ring16_sync", params(16, true, true)},
    {"ring64_nodma", params(64, false, false)},
    {"ring1024_node1", params(1024, true, true, 1)},
};

struct Buffer {
  PageId page;
  std::uint32_t offset;
  bool received = false;  // went through the RX ring once (a buffer is posted at most once)
};

struct Failure {
  std::size_t step;  // index of the step after which a property failed (steps.size(): teardown)
  std::string what;
};

std::string describe(const Step& s) {
  static const char* puts[] = {"NAPI, allow_direct", "NAPI", "another CPU's softirq", "process context",
                               "process context, BH off"};
  char b[120];
  switch (s.op) {
    case Op::kAlloc: std::snprintf(b, sizeof b, "alloc a page"); break;
    case Op::kAllocFrag: std::snprintf(b, sizeof b, "alloc_frag %u bytes", kFragSizes[s.a % 8]); break;
    case Op::kAllocNetmem: std::snprintf(b, sizeof b, "alloc_netmem %u bytes", kFragSizes[s.a % 8]); break;
    case Op::kPut:
      std::snprintf(b, sizeof b, "put buffer #%u from %s", s.a,
                    puts[s.b % static_cast<std::uint32_t>(PutCtx::kCount)]);
      break;
    case Op::kGetPage: std::snprintf(b, sizeof b, "get_page on buffer #%u's page", s.a); break;
    case Op::kPutPage: std::snprintf(b, sizeof b, "put_page extra reference #%u", s.a); break;
    case Op::kUpdateNid: std::snprintf(b, sizeof b, "page_pool_update_nid(%u)", s.a % 2); break;
    case Op::kMoveNapi: std::snprintf(b, sizeof b, "NAPI moves to CPU %u", s.a % kCpus); break;
    case Op::kDestroy: std::snprintf(b, sizeof b, "page_pool_destroy"); break;
    case Op::kRetry: std::snprintf(b, sizeof b, "release retry"); break;
    case Op::kDeviceWrite: std::snprintf(b, sizeof b, "the device receives into buffer #%u", s.a); break;
  }
  return b;
}

// One pool, its world and the checker, driven by steps, with the test's own shadow.
class Harness {
 public:
  Harness(const PoolParams& p, MutantSet mutants) : world_(world_config()), verdicts_(ppsim::sim::Verdicts::Mode::kCollect),
                                                      checker_(verdicts_) {
    PoolParams pp = p;
    pp.napi_list_owner = &napi_owner_;
    pool_ = std::make_unique<PagePool>(0, world_, pp, PoolCosts{}, kCpus, mutants);
    checker_.add_pool(pool_.get());
    world_.subscribe(&checker_);
  }
  ~Harness() { world_.unsubscribe(&checker_); }

  std::optional<Failure> run(const std::vector<Step>& steps) {
    for (std::size_t i = 0; i < steps.size(); ++i) {
      world_.now = static_cast<ppsim::sim::Picos>(i + 1) * 1000;
      apply(steps[i]);
      if (auto f = check()) return Failure{i, *f};
    }
    world_.now = static_cast<ppsim::sim::Picos>(steps.size() + 1) * 1000;
    if (auto f = teardown()) return Failure{steps.size(), *f};
    return std::nullopt;
  }

 private:
  static PageWorld::Config world_config() {
    PageWorld::Config c;
    c.numa_nodes = 2;
    c.cpu_node = {0, 0, 1, 1};
    c.capacity_pages = 4096;
    return c;
  }
  Caller napi() const {
    Caller c;
    c.ctx.cpu = napi_owner_;
    c.ctx.softirq = true;
    return c;
  }
  Caller put_caller(PutCtx k, bool* allow_direct) const {
    Caller c;
    *allow_direct = false;
    c.ctx.cpu = napi_owner_;
    switch (k) {
      case PutCtx::kNapiDirect:
        c.ctx.softirq = true;
        *allow_direct = !destroyed_;  // drivers stop recycling directly once they destroy the pool
        break;
      case PutCtx::kNapi: c.ctx.softirq = true; break;
      case PutCtx::kOtherCpuSoftirq:
        c.ctx.softirq = true;
        c.ctx.cpu = (napi_owner_ + 1) % kCpus;
        break;
      case PutCtx::kProcess: break;
      case PutCtx::kProcessBh: c.ctx.bh_disabled = true; break;
      case PutCtx::kCount: break;
    }
    return c;
  }

  void got(PageId p, std::uint32_t offset) {
    if (p != kNoPage) bufs_.push_back({p, offset});
  }

  void apply(const Step& s) {
    const bool can_alloc = !destroyed_;
    switch (s.op) {
      case Op::kAlloc:
        if (can_alloc) {
          Caller c = napi();
          got(pool_->alloc(c), 0);
        }
        break;
      case Op::kAllocFrag:
        if (can_alloc) {
          Caller c = napi();
          std::uint32_t off = 0;
          const PageId p = pool_->alloc_frag(c, kFragSizes[s.a % 8], &off);  // before reading off
          got(p, off);
        }
        break;
      case Op::kAllocNetmem:
        if (can_alloc) {
          Caller c = napi();
          std::uint32_t off = 0, size = kFragSizes[s.a % 8];
          const PageId p = pool_->alloc_netmem(c, &off, &size);
          got(p, off);
        }
        break;
      case Op::kPut:
        if (!bufs_.empty()) {
          const std::size_t i = s.a % bufs_.size();
          const Buffer b = bufs_[i];
          bufs_.erase(bufs_.begin() + static_cast<std::ptrdiff_t>(i));
          bool direct = false;
          Caller c = put_caller(static_cast<PutCtx>(s.b % static_cast<std::uint32_t>(PutCtx::kCount)), &direct);
          pool_->put(c, b.page, -1, direct, b.offset);
        }
        break;
      case Op::kGetPage:
        if (!bufs_.empty()) {
          const PageId p = bufs_[s.a % bufs_.size()].page;
          Caller c = napi();
          world_.get_page(p);
          world_.emit(PageEv::kGetPage, p, -1, 0, world_.page(p).refcount, &c.ctx, &c.cost);
          refs_.push_back(p);
        }
        break;
      case Op::kPutPage:
        if (!refs_.empty()) {
          const std::size_t i = s.a % refs_.size();
          const PageId p = refs_[i];
          refs_.erase(refs_.begin() + static_cast<std::ptrdiff_t>(i));
          world_.put_page(p);
          world_.emit(PageEv::kPutPage, p, -1, 0, world_.page(p).refcount, nullptr, nullptr);
        }
        break;
      case Op::kUpdateNid:
        if (can_alloc) {
          Caller c = napi();
          pool_->update_nid(c, static_cast<int>(s.a % 2));
        }
        break;
      case Op::kMoveNapi: napi_owner_ = static_cast<int>(s.a % kCpus); break;
      case Op::kDeviceWrite:
        if (!bufs_.empty() && !destroyed_) {
          Buffer& b = bufs_[s.a % bufs_.size()];
          if (b.received) break;
          b.received = true;
          Caller c = napi();
          world_.emit(PageEv::kPostToNic, b.page, 0, b.offset, 0, &c.ctx, &c.cost);
          world_.emit(PageEv::kDmaWrite, b.page, 0, b.offset, 64, nullptr, nullptr);
          world_.emit(PageEv::kToStack, b.page, 0, b.offset, 64, &c.ctx, &c.cost);
        }
        break;
      case Op::kDestroy:
        if (!destroyed_) {
          destroyed_ = true;
          Caller c;
          c.ctx.exclusive = true;
          c.ctx.task = "teardown";
          pool_->destroy(c);
        }
        break;
      case Op::kRetry:
        if (destroyed_ && !pool_->freed()) {
          Caller c;
          c.ctx.task = "kworker";
          pool_->release_retry(c);
        }
        break;
    }
  }

  std::optional<std::string> check() {
    if (verdicts_.count()) {
      const auto& v = verdicts_.kept().front();
      std::string m = "checker: " + v.invariant + ": " + v.subject + ": " + v.detail + "; the page's last transitions:";
      for (const auto& h : v.history) m += "\n      " + h;
      return m;
    }
    std::set<PageId> out;
    for (const Buffer& b : bufs_) out.insert(b.page);
    if (pool_->frag_page() != kNoPage) out.insert(pool_->frag_page());
    const std::int64_t in_world = static_cast<std::int64_t>(out.size()) + pool_->cache_count() + pool_->ring_count();
    if (pool_->inflight() != in_world) {
      std::ostringstream os;
      os << "conservation: hold " << pool_->hold_cnt() << " - release " << pool_->release_cnt() << " = "
         << pool_->inflight() << ", but the pool's world holds " << in_world << " (" << out.size()
         << " pages out or carved, " << pool_->cache_count() << " cached, " << pool_->ring_count() << " in the ring)";
      return os.str();
    }
    std::size_t detached = 0;
    for (PageId p : std::set<PageId>(refs_.begin(), refs_.end())) detached += !out.count(p);
    const auto in_use = static_cast<std::int64_t>(world_.pages_in_use());
    const auto expect = in_world + static_cast<std::int64_t>(detached);
    if (static_cast<std::int64_t>(world_.buddy_allocs - world_.buddy_frees) != in_use || in_use != expect) {
      std::ostringstream os;
      os << "page allocator: allocs " << world_.buddy_allocs << " - frees " << world_.buddy_frees << ", "
         << in_use << " pages in use, but the test accounts for " << expect << " (" << in_world
         << " in the pool's world, " << detached << " released and held by an extra reference)";
      return os.str();
    }
    return std::nullopt;
  }

  // The end of every run: destroy, every buffer and reference comes back, retries until freed.
  std::optional<std::string> teardown() {
    apply({Op::kDestroy});
    while (!bufs_.empty()) apply({Op::kPut, 0, static_cast<std::uint32_t>(PutCtx::kProcess)});
    while (!refs_.empty()) apply({Op::kPutPage, 0});
    if (auto f = check()) return "teardown: " + *f;
    for (int i = 0; i < 3 && !pool_->freed(); ++i) apply({Op::kRetry});
    checker_.finish(world_.now, world_, true);
    if (auto f = check()) return "teardown: " + *f;
    if (!pool_->freed()) return "teardown: the pool was never freed (inflight " + std::to_string(pool_->inflight()) + ")";
    if (world_.pages_in_use() != 0) return "teardown: " + std::to_string(world_.pages_in_use()) + " pages never returned";
    return std::nullopt;
  }

  int napi_owner_ = 0;
  bool destroyed_ = false;
  PageWorld world_;
  ppsim::sim::Verdicts verdicts_;
  PageChecker checker_;
  std::unique_ptr<PagePool> pool_;
  std::vector<Buffer> bufs_;   // what the test holds, in allocation order
  std::vector<PageId> refs_;   // extra page references the test holds
};

std::optional<Failure> run_once(const Config& cfg, MutantSet mutants, const std::vector<Step>& steps) {
  Harness h(cfg.params, mutants);
  return h.run(steps);
}

// A random sequence. Most are balanced (allocations and puts dominate, destroy is rare and comes
// late); one in three first takes many buffers and then returns them, which is what fills the
// alloc cache and the ring to their limits.
std::vector<Step> random_steps(std::mt19937_64& rng, std::size_t n) {
  std::vector<Step> steps;
  std::uniform_int_distribution<std::uint32_t> any(0, 1u << 30);
  const bool fill_then_drain = any(rng) % 3 == 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::uint32_t k = any(rng) % 100;
    if (fill_then_drain) k = i < n / 2 ? k % 37 : 37 + k % 35;  // allocations, then puts
    Op op = k < 22 ? Op::kAlloc : k < 30 ? Op::kAllocFrag : k < 37 ? Op::kAllocNetmem : k < 72 ? Op::kPut
          : k < 80 ? Op::kDeviceWrite : k < 85 ? Op::kGetPage : k < 90 ? Op::kPutPage : k < 93 ? Op::kUpdateNid
          : k < 96 ? Op::kMoveNapi : k < 98 ? (i > n / 2 ? Op::kDestroy : Op::kPut) : Op::kRetry;
    steps.push_back({op, any(rng), any(rng)});
  }
  return steps;
}

// Delta debugging (Zeller's ddmin, complements only): drop chunks while the sequence still fails,
// halving the chunk size when none can go, then drop single steps until none can.
std::vector<Step> shrink(std::vector<Step> steps, const std::function<bool(const std::vector<Step>&)>& fails) {
  std::size_t n = 2;
  while (steps.size() >= 2) {
    const std::size_t chunk = (steps.size() + n - 1) / n;
    bool reduced = false;
    for (std::size_t start = 0; start < steps.size(); start += chunk) {
      std::vector<Step> cand(steps.begin(), steps.begin() + static_cast<std::ptrdiff_t>(start));
      cand.insert(cand.end(), steps.begin() + static_cast<std::ptrdiff_t>(std::min(start + chunk, steps.size())), steps.end());
      if (fails(cand)) {
        steps = std::move(cand);
        n = std::max<std::size_t>(n - 1, 2);
        reduced = true;
        break;
      }
    }
    if (reduced) continue;
    if (n >= steps.size()) break;
    n = std::min(n * 2, steps.size());
  }
  for (bool again = true; again;) {
    again = false;
    for (std::size_t i = 0; i < steps.size(); ++i) {
      std::vector<Step> cand = steps;
      cand.erase(cand.begin() + static_cast<std::ptrdiff_t>(i));
      if (fails(cand)) {
        steps = std::move(cand);
        again = true;
        break;
      }
    }
  }
  return steps;
}

std::string listing(const std::vector<Step>& steps, const Failure& f) {
  std::ostringstream os;
  for (std::size_t i = 0; i < steps.size(); ++i) os << "  " << i << ": " << describe(steps[i]) << "\n";
  os << "  " << (f.step < steps.size() ? "after step " + std::to_string(f.step) : std::string("at teardown")) << ": "
     << f.what << "\n";
  return os.str();
}

struct Found {
  std::uint64_t seed;
  std::vector<Step> original, minimal;
  Failure failure;
};

// Runs `seeds` random sequences of `length` steps; the first failure, shrunk unless `minimize` is
// false.
std::optional<Found> search(const Config& cfg, MutantSet mutants, const std::vector<std::uint64_t>& seeds, std::size_t length,
                            bool minimize = true) {
  for (std::uint64_t seed : seeds) {
    std::mt19937_64 rng(seed);
    const auto steps = random_steps(rng, length);
    if (const auto f = run_once(cfg, mutants, steps)) {
      if (!minimize) return Found{seed, steps, steps, *f};
      // Everything after the failing step is irrelevant; then shrink what is left.
      std::vector<Step> prefix(steps.begin(), steps.begin() + static_cast<std::ptrdiff_t>(std::min(f->step + 1, steps.size())));
      if (!run_once(cfg, mutants, prefix)) prefix = steps;
      auto minimal = shrink(prefix, [&](const std::vector<Step>& s) { return run_once(cfg, mutants, s).has_value(); });
      return Found{seed, steps, minimal, *run_once(cfg, mutants, minimal)};
    }
  }
  return std::nullopt;
}

std::vector<std::uint64_t> seeds() {
  std::vector<std::uint64_t> s;
  if (const char* env = std::getenv("PPSIM_PROP_ITERATIONS")) {
    const long n = std::strtol(env, nullptr, 10);
    for (long i = 0; i < std::max(1L, n); ++i) s.push_back(0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(i + 1));
    return s;
  }
  for (std::uint64_t i = 1; i <= 200; ++i) s.push_back(i * 7919);
  return s;
}

class PagePoolProps : public ::testing::TestWithParam<Config> {};

}  // namespace

TEST_P(PagePoolProps, EveryInvariantAndExactConservationAfterEveryStep) {
  const auto found = search(GetParam(), {}, seeds(), 400);
  if (found)
    ADD_FAILURE() << "seed " << found->seed << ": a sequence of " << found->original.size()
                  << " steps fails; shrunk to " << found->minimal.size() << ":\n"
                  << listing(found->minimal, found->failure);
}

INSTANTIATE_TEST_SUITE_P(Configs, PagePoolProps, ::testing::ValuesIn(kConfigs),
                         [](const auto& info) { return std::string(info.param.name); });

// The shrinker is what makes a failure readable: injected bugs must be found by the random
// sequences and shrunk to a handful of steps that still show them.
TEST(PagePoolPropsShrinker, FindsAndShrinksARingFullLeak) {
  MutantSet m;
  m.add(Mutant::kRingFullLeak);
  const auto found = search(kConfigs[0], m, seeds(), 300);  // a ring of 2 fills quickly
  ASSERT_TRUE(found) << "the ring-full leak went unnoticed";
  EXPECT_LE(found->minimal.size(), 4u) << listing(found->minimal, found->failure);
  EXPECT_LT(found->minimal.size(), found->original.size());
  // Three pages out; the teardown returns them from process context, through the ring, which
  // holds two: the third is neither recycled nor released.
  std::size_t allocs = 0;
  for (const Step& s : found->minimal) allocs += s.op == Op::kAlloc || s.op == Op::kAllocFrag || s.op == Op::kAllocNetmem;
  EXPECT_EQ(allocs, 3u) << listing(found->minimal, found->failure);
  EXPECT_NE(found->failure.what.find("conservation"), std::string::npos) << found->failure.what;
  std::printf("ring_full_leak, shrunk from %zu to %zu steps:\n%s", found->original.size(), found->minimal.size(),
              listing(found->minimal, found->failure).c_str());
}

TEST(PagePoolPropsShrinker, FindsAndShrinksAFragDoublePut) {
  MutantSet m;
  m.add(Mutant::kFragDoublePut);
  const auto found = search(kConfigs[2], m, seeds(), 300);
  ASSERT_TRUE(found) << "the frag double put went unnoticed";
  EXPECT_LE(found->minimal.size(), 6u) << listing(found->minimal, found->failure);
  std::printf("frag_double_put, shrunk from %zu to %zu steps:\n%s", found->original.size(), found->minimal.size(),
              listing(found->minimal, found->failure).c_str());
}

// The properties are not vacuous: every bug class of the pool itself is caught by some
// configuration's random sequences. (The read-only/zero-copy and upstream-history mutants need
// a NIC, a stack or an application around the pool; `ppsim mutants` runs them in scenarios.)
TEST(PagePoolPropsShrinker, EveryMutantIsCaughtBySomeConfiguration) {
  for (const auto& mi : all_mutants()) {
    if (static_cast<int>(mi.id) > static_cast<int>(Mutant::kDirectRecycleAfterDestroy)) continue;
    MutantSet m;
    m.add(mi.id);
    std::optional<Found> found;
    for (const Config& cfg : kConfigs)
      if ((found = search(cfg, m, seeds(), 300, false))) break;
    EXPECT_TRUE(found) << mi.name << " escaped the property tests";
  }
}

TEST(PagePoolPropsShrinker, ShrinksToTheStepsThatMatter) {
  // A synthetic property: "fails" when the sequence holds two puts and a destroy, in that order.
  std::vector<Step> steps;
  for (int i = 0; i < 50; ++i) steps.push_back({i % 3 ? Op::kAlloc : Op::kPut, static_cast<std::uint32_t>(i)});
  steps.push_back({Op::kDestroy});
  for (int i = 0; i < 30; ++i) steps.push_back({Op::kRetry});
  const auto fails = [](const std::vector<Step>& s) {
    int puts = 0;
    for (const Step& x : s) {
      if (x.op == Op::kPut) ++puts;
      if (x.op == Op::kDestroy && puts >= 2) return true;
    }
    return false;
  };
  const auto m = shrink(steps, fails);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].op, Op::kPut);
  EXPECT_EQ(m[1].op, Op::kPut);
  EXPECT_EQ(m[2].op, Op::kDestroy);
}
