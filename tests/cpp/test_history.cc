// The invariants that guard page_pool's upstream history (docs/bug-history.md), on hand-built
// sequences: each test runs the correct model (nothing raised) and the history mutant (the
// invariant named in its MutantInfo raised).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "models/page_pool/checker.h"
#include "models/page_pool/page_pool.h"

using namespace ppsim::page_pool;

namespace {

struct World {
  explicit World(PoolParams p = {}, MutantSet m = {}, PageWorld::Config wc = cfg())
      : world(wc), verdicts(ppsim::sim::Verdicts::Mode::kCollect), checker(verdicts) {
    if (!p.napi_list_owner && p.cpuid < 0) p.napi_list_owner = &napi_owner;  // a NAPI-bound pool
    p.napi_id = 7;
    pool = std::make_unique<PagePool>(0, world, p, PoolCosts{}, 4, m);
    world.subscribe(&checker);
    checker.add_napi(7, &napi_owner);
    checker.add_pool(pool.get());
  }
  ~World() { world.unsubscribe(&checker); }
  static PageWorld::Config cfg() {
    PageWorld::Config c;
    c.cpu_node = {0, 0, 0, 0};
    return c;
  }
  static Caller napi(int cpu = 0) {
    Caller c;
    c.ctx.cpu = cpu;
    c.ctx.softirq = true;
    return c;
  }
  static Caller process(int cpu = 0) {
    Caller c;
    c.ctx.cpu = cpu;
    return c;
  }
  static Caller exclusive() {
    Caller c = process();
    c.ctx.exclusive = true;
    return c;
  }
  std::vector<PageId> alloc_n(int n) {
    std::vector<PageId> v;
    auto c = napi();
    for (int i = 0; i < n; ++i) v.push_back(pool->alloc(c));
    return v;
  }
  std::uint64_t raised(const std::string& invariant) const {
    auto it = verdicts.by_invariant().find(invariant);
    return it == verdicts.by_invariant().end() ? 0 : it->second;
  }
  void napi_event(PageEv kind) {
    Caller c = process();
    world.emit(kind, kNoPage, -1, 0, 7, &c.ctx, nullptr);
  }
  int napi_owner = 0;
  PageWorld world;
  ppsim::sim::Verdicts verdicts;
  PageChecker checker;
  std::unique_ptr<PagePool> pool;
};

MutantSet only(Mutant m) {
  MutantSet s;
  s.add(m);
  return s;
}

PageWorld::Config all_pfmemalloc() {
  PageWorld::Config c = World::cfg();
  c.pfmemalloc_fraction = 1.0;
  return c;
}

}  // namespace

TEST(History, EveryMutantNamesItsCommitInvariantAndScenario) {
  int history = 0;
  for (const auto& mi : all_mutants()) {
    const std::string commit = mi.commit;
    ASSERT_TRUE(commit == "ppsim" || (commit.size() == 12 && commit.find_first_not_of("0123456789abcdef") == std::string::npos))
        << mi.name;
    EXPECT_FALSE(std::string(mi.invariant).empty()) << mi.name;
    EXPECT_NE(std::string(mi.scenario).find(".json"), std::string::npos) << mi.name;
    if (commit != "ppsim") {
      ++history;
      EXPECT_EQ(std::string(mi.name).rfind("pp_" + commit + "_", 0), 0u) << "history mutants are named after their fix";
    }
  }
  EXPECT_GE(history, 20);
}

// d5394610b1ba: pages from the emergency reserves go back to the allocator, never into the pool.
TEST(History, PfmemallocPagesAreReleasedNeverRecycled) {
  World ok({}, {}, all_pfmemalloc());
  auto pages = ok.alloc_n(2);
  auto c = World::napi();
  ok.pool->put(c, pages[0], -1, true);   // direct
  auto pc = World::process(1);
  ok.pool->put(pc, pages[1], -1, false);  // ring
  EXPECT_EQ(ok.pool->recycle_stats().released_refcnt, 2u);
  EXPECT_EQ(ok.verdicts.count(), 0u);

  World bad({}, only(Mutant::kRecyclePfmemalloc), all_pfmemalloc());
  auto bp = bad.alloc_n(1);
  auto bc = World::napi();
  bad.pool->put(bc, bp[0], -1, true);
  EXPECT_GE(bad.raised("never_recycle_pfmemalloc"), 1u);
}

// 368d3cb406cd: a put from process context takes spin_lock_bh and must give it back with
// spin_unlock_bh, leaving bottom halves as it found them.
TEST(History, RingPutFromProcessContextUnlocksWithTheVariantItLocked) {
  World ok;
  auto pages = ok.alloc_n(1);
  auto pc = World::process(1);
  ok.pool->put(pc, pages[0], -1, false);
  EXPECT_FALSE(pc.ctx.bh_disabled) << "bottom halves enabled again after the put";
  EXPECT_EQ(ok.pool->ring_count(), 1u);
  EXPECT_EQ(ok.verdicts.count(), 0u);

  World bad({}, only(Mutant::kUnlockRechecksContext));
  auto bp = bad.alloc_n(1);
  auto bpc = World::process(1);
  bad.pool->put(bpc, bp[0], -1, false);
  EXPECT_TRUE(bpc.ctx.bh_disabled) << "plain spin_unlock after spin_lock_bh leaves BHs disabled";
  EXPECT_EQ(bad.raised("ring_lock_balanced"), 1u);
}

TEST(History, PlainSpinLockWithBottomHalvesEnabledIsFlagged) {
  World w;
  auto pages = w.alloc_n(1);
  // A producer that claims spin_lock (softirq variant) from process context, as the checker sees it.
  auto pc = World::process(1);
  PageEvent ev{PageEv::kProducerLock};
  ev.page = pages[0];
  ev.pool = 0;
  ev.value = 0;
  ev.ctx = &pc.ctx;
  w.world.emit(ev);
  EXPECT_EQ(w.raised("ring_lock_variant"), 1u);
}

// 271683bb2cf3: the release that drains the last page while a producer is inside the ring lock
// must wait for it (take and drop the producer lock) before freeing the pool.
static void destroy_then_race(World& w, std::uint64_t* freed_during_put) {
  auto pages = w.alloc_n(1);
  Caller td = World::exclusive();
  ASSERT_EQ(w.pool->destroy(td), 1) << "one page still out";
  PagePool* pool = w.pool.get();
  bool freed_inside = false;
  pool->on_ring_locked = [&](Caller&) {
    Caller kworker = World::process(0);
    pool->release_retry(kworker);
    freed_inside = pool->freed();
  };
  auto pc = World::process(1);
  pool->put(pc, pages[0], -1, false);  // the late return, racing page_pool_release
  *freed_during_put = freed_inside;
}

TEST(History, ReleaseWaitsForTheProducerInsideTheRingLock) {
  World ok;
  std::uint64_t freed_inside = 0;
  destroy_then_race(ok, &freed_inside);
  EXPECT_FALSE(freed_inside) << "the free waits for the producer's unlock";
  EXPECT_TRUE(ok.pool->freed());
  EXPECT_EQ(ok.verdicts.count(), 0u);

  World bad({}, only(Mutant::kRingPutReleaseRace));
  destroy_then_race(bad, &freed_inside);
  EXPECT_TRUE(freed_inside);
  EXPECT_EQ(bad.raised("pool_free_with_ops_in_progress"), 1u);
  EXPECT_GE(bad.raised("no_use_after_free"), 1u) << "the producer's unlock touches the freed pool";
}

// 43130d02baa1: a negative inflight (a driver bug) stops the retry work instead of looping.
TEST(History, ReleaseRetryStopsOnceInflightIsNotPositive) {
  World ok;
  EXPECT_FALSE(ok.pool->retry_again(0));
  EXPECT_FALSE(ok.pool->retry_again(-1));
  EXPECT_TRUE(ok.pool->retry_again(3));

  World bad({}, only(Mutant::kRetryOnNegativeInflight));
  auto pages = bad.alloc_n(1);
  auto c = World::napi();
  bad.pool->put(c, pages[0], -1, true);
  Caller td = World::exclusive();
  const std::int32_t inflight = bad.pool->destroy(td);
  EXPECT_EQ(inflight, -1) << "the cache flush released 64 pages but counted 65";
  Caller kworker = World::process();
  for (int i = 0; i < 3 && bad.pool->retry_again(bad.pool->release_retry(kworker)); ++i) {
  }
  EXPECT_GE(bad.raised("release_retry_stops"), 1u);
  EXPECT_GE(bad.raised("conservation"), 1u);
}

// ee62ce7a1d90: after destroy unmapped the inflight pages, a late return is neither synced for the
// device nor unmapped again.
TEST(History, LateReturnAfterDestroyIsNotSyncedOrUnmappedAgain) {
  PoolParams p;
  p.dma_map = p.dma_sync = p.dma_need_sync = true;
  p.max_len = 4096;
  World ok(p);
  auto pages = ok.alloc_n(1);
  Caller td = World::exclusive();
  ok.pool->destroy(td);
  auto pc = World::process(1);
  ok.pool->put(pc, pages[0], -1, false);
  EXPECT_EQ(ok.verdicts.count(), 0u);

  World bad(p, only(Mutant::kLateReturnAfterScrub));
  auto bp = bad.alloc_n(1);
  Caller btd = World::exclusive();
  bad.pool->destroy(btd);
  auto bpc = World::process(1);
  bad.pool->put(bpc, bp[0], -1, false);
  EXPECT_EQ(bad.raised("dma_sync_unmapped"), 1u);
}

// 304db6cb7610: the ring refills the alloc cache only when it is empty.
TEST(History, RefillOnlyIntoAnEmptyCache) {
  World bad({}, only(Mutant::kRefillNonEmptyCache));
  auto pages = bad.alloc_n(4);  // 60 stay in the cache
  auto pc = World::process(1);
  for (PageId pg : pages) bad.pool->put(pc, pg, -1, false);  // into the ring
  Caller threaded = World::process(0);  // a threaded NAPI: BHs off, not serving softirq
  threaded.ctx.bh_disabled = true;
  bad.pool->alloc(threaded);
  EXPECT_EQ(bad.raised("refill_only_when_empty"), 1u);
}

// 56ef27e3abe6 / dd64b232deb8: destroy clears pool->cpuid and p.napi, so later frees in that
// CPU's or that NAPI's softirq cannot reach the alloc cache the destroy emptied.
TEST(History, DestroyDisablesDirectRecyclingByCpuidAndByNapi) {
  PoolParams percpu;
  percpu.cpuid = 0;
  World ok(percpu);  // a per-CPU pool (cpuid 0) has no NAPI link
  World bad(percpu, only(Mutant::kDisableKeepsCpuid));
  for (World* w : {&ok, &bad}) {
    auto pages = w->alloc_n(2);
    Caller td = World::exclusive();
    w->pool->destroy(td);
    auto c = World::napi(0);
    w->pool->put(c, pages[0], -1, false);
  }
  EXPECT_EQ(ok.verdicts.count(), 0u);
  EXPECT_EQ(bad.raised("no_cache_after_destroy"), 1u);

  World okn, badn({}, only(Mutant::kDisableKeepsNapi));
  for (World* w : {&okn, &badn}) {
    auto pages = w->alloc_n(2);
    Caller td = World::exclusive();
    w->pool->destroy(td);  // the NAPI (owner CPU 0) keeps running: a pool swap
    auto c = World::napi(0);
    w->pool->put(c, pages[0], -1, false);
  }
  EXPECT_EQ(okn.verdicts.count(), 0u);
  EXPECT_EQ(badn.raised("no_cache_after_destroy"), 1u);
}

// 40eca00ae605 / 64fdaa94bfe0: a pool is unlinked from its NAPI only while that NAPI is disabled,
// and a pool that lost direct recycling must get it back before its NAPI allocates from it again.
TEST(History, UnlinkOnlyWhileTheNapiIsDisabledAndRelinkBeforeReuse) {
  World w;
  w.napi_event(PageEv::kNapiEnable);
  w.napi_event(PageEv::kNapiDisable);
  Caller stop = World::exclusive();
  w.pool->disable_direct_recycling(stop);  // the driver's stop step, NAPI off
  EXPECT_EQ(w.verdicts.count(), 0u);
  w.pool->enable_direct_recycling(stop, &w.napi_owner, 7);
  w.napi_event(PageEv::kNapiEnable);
  w.alloc_n(1);
  EXPECT_EQ(w.verdicts.count(), 0u);
  Caller mem_free = World::exclusive();
  w.pool->destroy(mem_free);  // still linked, NAPI running
  EXPECT_EQ(w.raised("unlink_napi_disabled"), 1u);

  World lost;
  lost.napi_event(PageEv::kNapiEnable);
  lost.napi_event(PageEv::kNapiDisable);
  Caller s2 = World::exclusive();
  lost.pool->disable_direct_recycling(s2);
  lost.napi_event(PageEv::kNapiEnable);  // restarted on this pool, never re-linked
  lost.alloc_n(1);
  EXPECT_EQ(lost.raised("direct_recycling_lost"), 1u);
}

// 290f1c033281: the NAPI a pool points at outlives the pool (or the pool is unlinked first).
TEST(History, NapiFreedBeforeItsPoolIsFlagged) {
  World ok;
  Caller td = World::exclusive();
  ok.pool->destroy(td);
  ok.napi_event(PageEv::kNapiDel);
  EXPECT_EQ(ok.verdicts.count(), 0u);

  World bad;
  bad.napi_event(PageEv::kNapiDel);
  EXPECT_EQ(bad.raised("napi_outlives_pool"), 1u);
  Caller btd = World::exclusive();
  bad.pool->destroy(btd);
  EXPECT_GE(bad.raised("napi_outlives_pool"), 2u) << "destroy reads the freed NAPI";
}

// 59a931c5b732 and f9893fdac319: destroy may sleep; only a listed pool is unlisted.
TEST(History, DestroySleepsAndUnlistsOnlyListedPools) {
  World rcu;
  Caller c = World::exclusive();
  c.ctx.atomic = true;  // inside rcu_read_lock()
  rcu.pool->destroy(c);
  EXPECT_EQ(rcu.raised("destroy_may_sleep"), 1u);

  PoolParams unlisted;
  unlisted.netdev = false;
  World ok(unlisted), bad(unlisted, only(Mutant::kUnlistUnlisted));
  for (World* w : {&ok, &bad}) {
    Caller td = World::exclusive();
    EXPECT_EQ(w->pool->destroy(td), 0);
    EXPECT_TRUE(w->pool->freed());
  }
  EXPECT_EQ(ok.verdicts.count(), 0u);
  EXPECT_EQ(bad.raised("pool_list_consistent"), 1u);
}

// Reference kinds: a pp reference goes back through page_pool, a page reference through put_page;
// a pool page that reaches the allocator by put_page left through the wrong door.
TEST(History, ReferenceKindsAndDoors) {
  World w;
  auto pages = w.alloc_n(2);
  auto c = World::napi();
  const std::uint32_t skb = w.world.new_holder(), clone = w.world.new_holder();
  w.world.emit(PageEv::kToStack, pages[0], 0, 0, 0, &c.ctx, &c.cost, -1, 0, skb);
  // The clone takes a page reference of its own and drops it with put_page: fine.
  w.world.get_page(pages[0]);
  w.world.emit(PageEv::kGetPage, pages[0], -1, 0, 2, &c.ctx, &c.cost, -1, 0, clone);
  w.world.put_page(pages[0]);
  w.world.emit(PageEv::kPutPage, pages[0], -1, 0, 1, &c.ctx, &c.cost, -1, 0, clone);
  // A pp reference the clone takes (page_pool_ref_netmem) is dropped through page_pool: fine.
  w.pool->ref(c, pages[0], 0, clone);
  w.pool->put(c, pages[0], -1, false, 0, clone);
  w.pool->put(c, pages[0], -1, false, 0, skb);
  EXPECT_EQ(w.verdicts.count(), 0u);

  // The skb's pp reference dropped with put_page: the wrong kind, and the page is freed behind
  // the pool's back (pp_page_door).
  const std::uint32_t skb2 = w.world.new_holder();
  w.world.emit(PageEv::kToStack, pages[1], 0, 0, 0, &c.ctx, &c.cost, -1, 0, skb2);
  w.world.put_page(pages[1]);
  w.world.emit(PageEv::kPutPage, pages[1], -1, 0, 0, &c.ctx, &c.cost, -1, 0, skb2);
  EXPECT_EQ(w.raised("ref_kind_match"), 1u);
  EXPECT_EQ(w.raised("pp_page_door"), 1u);
}

TEST(History, PagePoolPutOfAPageReferenceIsTheWrongKind) {
  World w;
  auto pages = w.alloc_n(1);
  auto c = World::napi();
  const std::uint32_t skb = w.world.new_holder(), clone = w.world.new_holder();
  w.world.emit(PageEv::kToStack, pages[0], 0, 0, 0, &c.ctx, &c.cost, -1, 0, skb);
  w.world.get_page(pages[0]);
  w.world.emit(PageEv::kGetPage, pages[0], -1, 0, 2, &c.ctx, &c.cost, -1, 0, clone);
  w.pool->put(c, pages[0], -1, false, 0, clone);  // 2cc3aeb5eccc: the clone still has pp_recycle
  EXPECT_EQ(w.raised("ref_kind_match"), 1u);
}

// PREEMPT_RT: no direct recycling through page_pool_napi_local(), and a BH-disabled consumer is not
// the cache's owner (32471b2f481d).
TEST(History, PreemptRtNeverRecyclesDirectlyFromNapiLocal) {
  PageWorld::Config rt = World::cfg();
  rt.preempt_rt = true;
  World ok({}, {}, rt);
  Caller bh = World::process(0);
  bh.ctx.bh_disabled = true;
  EXPECT_FALSE(ok.pool->napi_local(bh.ctx));
  auto pages = ok.alloc_n(1);
  ok.pool->put(bh, pages[0], -1, false);
  EXPECT_EQ(ok.pool->recycle_stats().ring, 1u);
  EXPECT_EQ(ok.verdicts.count(), 0u);

  World bad({}, only(Mutant::kDirectOnPreemptRt), rt);
  auto bp = bad.alloc_n(1);
  Caller bbh = World::process(0);
  bbh.ctx.bh_disabled = true;
  bad.pool->put(bbh, bp[0], -1, false);
  EXPECT_EQ(bad.raised("cache_napi_only"), 1u);
}

// 542bcea4be86: a threaded NAPI poll (BHs disabled, not serving softirq) recycles directly; the
// efficiency invariant counts the frees that should have and did not.
TEST(History, ThreadedNapiRecyclesDirectlyAndMissesAreCounted) {
  World ok, bad({}, only(Mutant::kServingSoftirqOnly));
  PageChecker::Limits l;
  l.window_packets = 8;
  ok.checker.set_limits(l);
  bad.checker.set_limits(l);
  for (World* w : {&ok, &bad}) {
    Caller kthread = World::process(0);
    kthread.ctx.bh_disabled = true;
    std::vector<PageId> pages;
    for (int i = 0; i < 8; ++i) pages.push_back(w->pool->alloc(kthread));
    for (PageId p : pages) w->pool->put(kthread, p, -1, false);
  }
  EXPECT_EQ(ok.pool->recycle_stats().cached, 8u);
  EXPECT_EQ(ok.verdicts.count(), 0u);
  EXPECT_EQ(bad.pool->recycle_stats().ring, 8u);
  EXPECT_EQ(bad.raised("direct_recycle_efficiency"), 1u);
}

// 44768decb7c0: with NUMA_NO_NODE every page recycles; the pre-fix NUMA test on put releases them
// all, which recycle_efficiency sees over a window of received packets.
TEST(History, ReleasingRecyclablePagesBreaksRecycleEfficiency) {
  World ok, bad({}, only(Mutant::kNumaCheckOnPut));
  PageChecker::Limits l;
  l.window_packets = 16;
  ok.checker.set_limits(l);
  bad.checker.set_limits(l);
  for (World* w : {&ok, &bad}) {
    auto c = World::napi();
    for (int i = 0; i < 64; ++i) {
      const PageId p = w->pool->alloc(c);
      w->world.emit(PageEv::kToStack, p, 0, 0, 0, &c.ctx, &c.cost);
      w->pool->put(c, p, -1, false);
    }
  }
  EXPECT_EQ(ok.pool->release_cnt(), 0u);
  EXPECT_EQ(ok.verdicts.count(), 0u);
  EXPECT_GT(bad.pool->release_cnt(), 32u);
  EXPECT_GE(bad.raised("recycle_efficiency"), 1u);
}

// d5394610b1ba / 44768decb7c0: the ring refills the alloc cache only with pages of the pool's node
// (the refilling CPU's node under NUMA_NO_NODE); a remote page is released instead (alloc_waive).
TEST(History, RefillKeepsOnlyPagesOfThePreferredNode) {
  PageWorld::Config two = World::cfg();
  two.numa_nodes = 2;
  two.cpu_node = {0, 0, 1, 1};
  World ok({}, {}, two), bad({}, only(Mutant::kRecyclePfmemalloc), two);
  for (World* w : {&ok, &bad}) {
    w->napi_owner = 2;  // NAPI on CPU 2 (node 1): the bulk comes from node 1
    auto c2 = World::napi(2);
    std::vector<PageId> pages;
    for (int i = 0; i < 4; ++i) pages.push_back(w->pool->alloc(c2));
    auto pc = World::process(2);
    for (PageId p : pages) w->pool->put(pc, p, -1, false);
    w->napi_owner = 0;  // the interrupt moved to node 0
    auto c0 = World::napi(0);
    for (int i = 0; i < 61; ++i) w->pool->alloc(c0);  // 60 from the cache, then a refill
  }
  EXPECT_EQ(ok.pool->alloc_stats().waive, 1u);
  EXPECT_EQ(ok.verdicts.count(), 0u);
  EXPECT_EQ(bad.pool->alloc_stats().waive, 0u);
  EXPECT_GE(bad.raised("refill_node_local"), 1u);
}
