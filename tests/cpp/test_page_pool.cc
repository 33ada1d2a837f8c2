// page_pool model against hand-worked sequences from net/core/page_pool.c. Every test runs
// with the checker attached in collect mode and asserts the correct model raises nothing.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "models/page_pool/checker.h"
#include "models/page_pool/page_pool.h"
#include "models/page_pool/ptr_ring.h"

using namespace ppsim::page_pool;

namespace {

struct Fixture {
  explicit Fixture(PoolParams p = {}, MutantSet m = {}) : world(cfg()), verdicts(ppsim::sim::Verdicts::Mode::kCollect),
                                                          checker(verdicts) {
    p.napi_list_owner = &napi_owner;
    pool = std::make_unique<PagePool>(0, world, p, PoolCosts{}, 4, m);
    checker.add_pool(pool.get());
    world.subscribe(&checker);
  }
  ~Fixture() { world.unsubscribe(&checker); }
  static PageWorld::Config cfg() {
    PageWorld::Config c;
    c.numa_nodes = 2;
    c.cpu_node = {0, 0, 1, 1};
    return c;
  }
  Caller napi(int cpu = 0) {  // softirq on the NAPI's CPU
    Caller c;
    c.ctx.cpu = cpu;
    c.ctx.softirq = true;
    return c;
  }
  Caller process(int cpu = 0) {
    Caller c;
    c.ctx.cpu = cpu;
    return c;
  }
  std::vector<PageId> alloc_n(int n, int cpu = 0) {
    std::vector<PageId> v;
    auto c = napi(cpu);
    for (int i = 0; i < n; ++i) v.push_back(pool->alloc(c));
    return v;
  }
  int napi_owner = 0;  // NAPI scheduled on CPU 0
  PageWorld world;
  ppsim::sim::Verdicts verdicts;
  PageChecker checker;
  std::unique_ptr<PagePool> pool;
};

}  // namespace

TEST(PtrRing, ConsumerClearsSlotsInBatchesOf16SoTheRingLooksFullEarly) {
  PtrRing r(64);
  EXPECT_EQ(r.batch(), 16u);
  for (PageId i = 0; i < 64; ++i) ASSERT_TRUE(r.produce(i));
  EXPECT_FALSE(r.produce(99));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(r.consume(), static_cast<PageId>(i));
  EXPECT_EQ(r.count(), 54u);
  EXPECT_FALSE(r.produce(99)) << "10 consumed slots are not cleared yet (batch 16)";
  for (int i = 10; i < 16; ++i) r.consume();
  EXPECT_TRUE(r.produce(99)) << "the 16th consume clears the batch";
  PtrRing small(16);
  EXPECT_EQ(small.batch(), 1u) << "batch > size/2 disables batching";
}

TEST(PagePool, SlowPathAllocatesABulkOf64AndRefillTakesThemBackFromTheRing) {
  Fixture f;
  auto c = f.napi();
  const PageId first = f.pool->alloc(c);
  ASSERT_NE(first, kNoPage);
  EXPECT_EQ(f.pool->hold_cnt(), 64u);
  EXPECT_EQ(f.pool->cache_count(), 63u);
  EXPECT_EQ(f.pool->alloc_stats().slow, 1u);
  EXPECT_EQ(f.pool->alloc_stats().empty, 1u);
  std::vector<PageId> pages{first};
  for (int i = 0; i < 63; ++i) pages.push_back(f.pool->alloc(c));
  EXPECT_EQ(f.pool->alloc_stats().fast, 63u);
  // Frees from process context cannot use the cache: all go to the ring.
  auto pc = f.process();
  for (PageId p : pages) f.pool->put(pc, p, -1, false);
  EXPECT_EQ(f.pool->recycle_stats().ring, 64u);
  EXPECT_EQ(f.pool->ring_count(), 64u);
  // The next allocation refills the cache from the ring and returns the last page moved.
  f.pool->alloc(c);
  EXPECT_EQ(f.pool->alloc_stats().refill, 1u);
  EXPECT_EQ(f.pool->cache_count(), 63u);
  EXPECT_EQ(f.pool->ring_count(), 0u);
  EXPECT_EQ(f.pool->hold_cnt(), 64u) << "no new page from the allocator";
  EXPECT_EQ(f.verdicts.count(), 0u);
}

TEST(PagePool, AllowDirectFollowsNapiLocality) {
  Fixture f;
  auto pages = f.alloc_n(4);
  auto on_napi_cpu = f.napi(0);
  auto other_cpu_softirq = f.napi(1);
  auto process_same_cpu = f.process(0);
  f.pool->put(on_napi_cpu, pages[0], -1, false);        // page_pool_napi_local(): list_owner == cpu
  f.pool->put(other_cpu_softirq, pages[1], -1, false);  // other CPU: ring
  f.pool->put(process_same_cpu, pages[2], -1, false);   // not in softirq: ring
  f.pool->put(process_same_cpu, pages[3], -1, true);    // explicit direct recycle (caller vouches)
  const auto rs = f.pool->recycle_stats();
  EXPECT_EQ(rs.cached, 1u + 1u);
  EXPECT_EQ(rs.ring, 2u);
  EXPECT_EQ(f.pool->recycle_stats_cpu(1).ring, 1u) << "recycle stats are per CPU";
  EXPECT_TRUE(f.pool->napi_local(on_napi_cpu.ctx));
  f.napi_owner = -1;  // NAPI completed
  EXPECT_FALSE(f.pool->napi_local(on_napi_cpu.ctx));
  // The explicit direct put from process context is the one rule the checker flags: the caller
  // lied about its context.
  EXPECT_EQ(f.verdicts.count(), 1u);
  EXPECT_EQ(f.verdicts.kept()[0].invariant, "cache_napi_only");
}

TEST(PagePool, FullRingReleasesTheRestToThePageAllocator) {
  PoolParams p;
  p.pool_size = 16;  // batch disabled for rings this small
  Fixture f(p);
  auto pages = f.alloc_n(64);
  auto pc = f.process(1);
  for (PageId pg : pages) f.pool->put(pc, pg, -1, false);
  const auto rs = f.pool->recycle_stats();
  EXPECT_EQ(rs.ring, 16u);
  EXPECT_EQ(rs.ring_full, 48u);
  EXPECT_EQ(f.pool->release_cnt(), 48u);
  EXPECT_EQ(f.pool->inflight(), 16);
  EXPECT_EQ(f.world.page(pages.back()).pool, -1) << "released pages are disconnected from the pool";
  EXPECT_EQ(f.verdicts.count(), 0u);
}

TEST(PagePool, FragPageLivesUntilItsLastFragIsPut) {
  Fixture f;
  auto c = f.napi();
  std::uint32_t off[5];
  const PageId a = f.pool->alloc_frag(c, 1024, &off[0]);
  for (int i = 1; i < 4; ++i) ASSERT_EQ(f.pool->alloc_frag(c, 1024, &off[i]), a);
  EXPECT_EQ(off[3], 3072u);
  EXPECT_EQ(f.world.page(a).pp_ref_count, kBiasMax);
  // A fifth frag does not fit: the pool drains its bias and moves to a new page.
  const PageId b = f.pool->alloc_frag(c, 1024, &off[4]);
  EXPECT_NE(b, a);
  EXPECT_EQ(off[4], 0u);
  EXPECT_EQ(f.world.page(a).pp_ref_count, 4) << "BIAS_MAX - (BIAS_MAX - frag_users)";
  for (int i = 0; i < 3; ++i) f.pool->put(c, a, -1, false, off[i]);
  EXPECT_EQ(f.world.page(a).pp_ref_count, 1);
  EXPECT_EQ(f.pool->recycle_stats().cached, 0u) << "still one frag out";
  f.pool->put(c, a, -1, false, off[3]);
  EXPECT_EQ(f.pool->recycle_stats().cached, 1u) << "last frag: the page recycles into the cache";
  EXPECT_EQ(f.verdicts.count(), 0u);
}

TEST(PagePool, FragPageIsReusedInPlaceWhenEveryFragCameBack) {
  Fixture f;
  auto c = f.napi();
  std::uint32_t o1, o2, o3;
  const PageId a = f.pool->alloc_frag(c, 2048, &o1);
  ASSERT_EQ(f.pool->alloc_frag(c, 2048, &o2), a);
  f.pool->put(c, a, -1, false, o1);
  f.pool->put(c, a, -1, false, o2);
  const auto fast_before = f.pool->alloc_stats().fast;
  EXPECT_EQ(f.pool->alloc_frag(c, 2048, &o3), a) << "page_pool_drain_frag reached 0: same page";
  EXPECT_EQ(o3, 0u);
  EXPECT_EQ(f.pool->alloc_stats().fast, fast_before + 1);
  EXPECT_EQ(f.pool->recycle_stats().cached, 1u);
  EXPECT_EQ(f.verdicts.count(), 0u);
}

TEST(PagePool, HelperAllocTakesAWholePageWhenTwoDoNotFit) {
  Fixture f;
  auto c = f.napi();
  std::uint32_t off = 7, size = 2049;
  const PageId p = f.pool->alloc_netmem(c, &off, &size);
  EXPECT_NE(p, kNoPage);
  EXPECT_EQ(size, 4096u);
  EXPECT_EQ(off, 0u);
  EXPECT_EQ(f.world.page(p).pp_ref_count, 1);
  EXPECT_EQ(f.verdicts.count(), 0u);
}

TEST(PagePool, DestroyWithInflightPagesRetriesUntilTheyComeBack) {
  PoolParams p;
  p.dma_map = true;
  Fixture f(p);
  auto pages = f.alloc_n(64);
  auto c = f.napi();
  for (int i = 10; i < 64; ++i) f.pool->put(c, pages[i], -1, false);  // 54 back into the cache
  EXPECT_EQ(f.pool->cache_count(), 54u);
  Caller teardown = f.process();
  teardown.ctx.exclusive = true;
  EXPECT_EQ(f.pool->destroy(teardown), 10) << "cache flushed, 10 pages still out";
  EXPECT_EQ(f.pool->release_cnt(), 54u);
  EXPECT_EQ(f.pool->destroy_cnt(), 1u);
  EXPECT_EQ(f.pool->pages_mapped(), 0u) << "6.15+: inflight pages are unmapped at destroy";
  EXPECT_FALSE(f.pool->freed());
  // Late returns land in the ring (direct recycling is off after destroy), even from NAPI context.
  for (int i = 0; i < 10; ++i) f.pool->put(c, pages[i], -1, false);
  EXPECT_EQ(f.pool->ring_count(), 10u);
  EXPECT_EQ(f.pool->recycle_stats().cached, 54u);
  Caller kworker = f.process();
  EXPECT_EQ(f.pool->release_retry(kworker), 0);
  EXPECT_TRUE(f.pool->freed());
  EXPECT_EQ(f.pool->destroy_cnt(), 2u);
  EXPECT_EQ(f.world.pages_in_use(), 0u);
  f.checker.finish(0, f.world, true);
  EXPECT_EQ(f.verdicts.count(), 0u);
}

TEST(PagePool, RefillReleasesAPageFromAnotherNodeAndStops) {
  Fixture f;
  f.napi_owner = 2;              // NAPI runs on CPU 2 (node 1)
  auto pages = f.alloc_n(4, 2);  // bulk of 64 from node 1, 60 stay cached
  auto pc = f.process(2);
  for (PageId p : pages) f.pool->put(pc, p, -1, false);
  EXPECT_EQ(f.pool->ring_count(), 4u);
  f.napi_owner = 0;  // the interrupt moved to CPU 0 (node 0)
  auto c = f.napi(0);
  for (int i = 0; i < 60; ++i) f.pool->alloc(c);  // the cache is not NUMA-checked
  EXPECT_EQ(f.pool->alloc_stats().waive, 0u);
  f.pool->alloc(c);  // refill: the first ring page is on node 1 → released, then the slow path
  EXPECT_EQ(f.pool->alloc_stats().waive, 1u);
  EXPECT_EQ(f.pool->alloc_stats().slow, 2u);
  EXPECT_EQ(f.pool->ring_count(), 3u);
  EXPECT_EQ(f.pool->release_cnt(), 1u);
  EXPECT_EQ(f.verdicts.count(), 0u);
}

TEST(PagePool, PageWithAnExtraReferenceIsReleasedNotRecycled) {
  Fixture f;
  auto pages = f.alloc_n(1);
  f.world.get_page(pages[0]);  // e.g. a clone holds the page
  auto c = f.napi();
  f.pool->put(c, pages[0], -1, false);
  EXPECT_EQ(f.pool->recycle_stats().released_refcnt, 1u);
  EXPECT_EQ(f.world.page(pages[0]).refcount, 1) << "the clone's reference keeps the page alive";
  EXPECT_EQ(f.verdicts.count(), 0u);
}

TEST(PagePool, InitRefusesWhatTheKernelRefuses) {
  PoolParams p;
  p.dma_sync = true;
  EXPECT_NE(check_params(p), "");  // DMA_SYNC_DEV without DMA_MAP
  p.dma_map = true;
  EXPECT_NE(check_params(p), "");  // max_len 0
  p.max_len = 4096;
  EXPECT_EQ(check_params(p), "");
  p.pool_size = 16385;
  EXPECT_NE(check_params(p), "");
  p.pool_size = 0;
  p.order = 11;
  EXPECT_NE(check_params(p), "");
}

TEST(Checker, CatchesADoublePutWithThePagesHistory) {
  Fixture f;
  auto pages = f.alloc_n(1);
  auto c = f.napi();
  f.pool->put(c, pages[0], -1, false);
  f.pool->put(c, pages[0], -1, false);  // the bug: the page is already back in the cache
  ASSERT_GE(f.verdicts.count(), 1u);
  const auto& v = f.verdicts.kept()[0];
  EXPECT_EQ(v.invariant, "no_double_put");
  EXPECT_NE(v.subject.find("page"), std::string::npos);
  EXPECT_GE(v.history.size(), 3u);  // hold, cache_pop, put, cache_push …
}
