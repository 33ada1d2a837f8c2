// Deliberately wrong variants of the page_pool model and its users. Two families:
//   design mutants (commit "ppsim"): bug classes written with the checker;
//   history mutants (named pp_<commit>_...): a real upstream page_pool fix undone by hand, so the
//   model behaves as the kernel did before it (docs/bug-history.md).
// The verification harness must catch every one (`ppsim mutants`), each by the invariant its
// entry names, in the shipped scenario it names; the correct model has none set.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ppsim::page_pool {

enum class Mutant : std::uint8_t {
  kDirectRecycleAnyContext,   // page_pool_napi_local() says yes outside NAPI / on another CPU
  kFreePoolWithInflight,      // destroy frees the pool while pages are inflight; returns use its ring
  kFragDoublePut,             // frag drain hands the page back although frags are still out
  kNoUnmapAtDestroy,          // destroy leaves inflight pages DMA-mapped (pre-6.15 behaviour)
  kRingFullLeak,              // ring full: the page is dropped instead of released
  kCacheNoBound,              // recycle into the alloc cache without the 128 limit
  kRecycleElevatedRefcount,   // recycle a page whose refcount is not 1
  kSkipSyncForDevice,         // recycle without dma_sync_for_device
  kHoldNotCounted,            // slow path forgets pages_state_hold_cnt++
  kDestroySkipsRingDrain,     // page_pool_release does not empty the ring
  kDirectRecycleAfterDestroy, // destroy does not disable direct recycling
  // read-only packet pages and zero-copy delivery (docs/zerocopy.md)
  kRoBuildSkbInPage,          // read-only queue still builds the skb in the packet page
  kZcRecycleWhileMapped,      // the application's page is put back into the pool before it is unmapped
  kZcSkipShootdownWait,       // a returned page is recycled before the TLB shootdown completed
  kZcNoClear,                 // pages are mapped without clearing what is outside the packet
  kZcFragPages,               // the zero-copy queue splits pages into frags (two packets per page)
  kZcNoUserLimit,             // the pool does not enforce the outstanding user page limit
  kZcSelectAllFlows,          // the XDP selector redirects every flow to the application
  kSwitchDropsCompleted,      // the mode switch frees completed descriptors without delivering them
  // upstream history (docs/bug-history.md): the model as it was before each fix
  kRingPutReleaseRace,        // 271683bb2cf3: stat after unlock, release frees without the producer-lock barrier
  kRetryOnNegativeInflight,   // 43130d02baa1: a driver double release, and the retry reschedules while inflight != 0
  kLateReturnAfterScrub,      // ee62ce7a1d90: scrub keeps dma_sync on; a late return syncs and unmaps again
  kRecyclePfmemalloc,         // d5394610b1ba: no pfmemalloc test on recycle, no NUMA test at refill
  kNumaCheckOnPut,            // 44768decb7c0: the put path compares the page's node with p.nid (NUMA_NO_NODE never matches)
  kDisableKeepsCpuid,         // 56ef27e3abe6: disabling direct recycling leaves pool->cpuid set
  kDisableKeepsNapi,          // dd64b232deb8: disabling direct recycling leaves p.napi linked
  kUnlockRechecksContext,     // 368d3cb406cd: the producer unlock re-evaluates in_softirq() after spin_lock_bh
  kServingSoftirqOnly,        // 542bcea4be86: napi_local uses in_serving_softirq(): threaded NAPI never recycles directly
  kDirectOnPreemptRt,         // 32471b2f481d: napi_local allows direct recycling on PREEMPT_RT
  kRefillFromWorkqueue,       // 88e69af061f2: on allocation failure the driver refills from a workqueue
  kStopKeepsNapiLink,         // 40eca00ae605: queue stop does not unlink the old pool from the NAPI it keeps
  kRollbackLosesDirect,       // 64fdaa94bfe0: new pools are created linked; a failed restart never re-enables the old one
  kDestroyUnderRcu,           // 59a931c5b732: the driver destroys its pool inside rcu_read_lock()
  kUnlistUnlisted,            // f9893fdac319: free unlists a pool that was never listed (no netdev)
  kSignatureUnmasked,         // 0fa32ca438b4: napi_pp_put_page compares pp_magic unmasked: pfmemalloc pages look foreign
  kNoMarkForRecycle,          // 037965402a01: the driver builds skbs from pool pages without skb_mark_for_recycle
  kCloneKeepsPpRecycle,       // 2cc3aeb5eccc: skb_release_data leaves pp_recycle set on a clone
  kFragRefKindFromFlag,       // 173e7622ccb3 (reverts a580ea994fd3): frag ref/unref pick the kind from pp_recycle at each call
  kCoalesceClonePageRef,      // 1effe8ca4e34: coalescing a cloned pp skb into a pp skb takes page references
  kAllocFailDoubleRelease,    // ef9369e9c308: a failed bulk refill releases its pages but keeps them recorded
  kAllocFailRepostsPage,      // 001ba0902046: the driver re-posts the page it just handed up when allocation fails
  kNapiFreedBeforePool,       // 290f1c033281: teardown frees the NAPI instances before destroying the pools
  kWholePagePerBuffer,        // 39f8fcda2088: with pages larger than the driver's buffer, every buffer takes a whole page
  kRefillNonEmptyCache,       // 304db6cb7610: outside serving softirq the refill loop runs with a non-empty cache
  kCount
};

struct MutantInfo {
  Mutant id;
  const char* name;
  const char* bug_class;  // what went wrong, and the kernel history it mirrors
  const char* commit;     // the upstream fix it undoes (12 hex digits), or "ppsim" for a design mutant
  const char* invariant;  // the checker invariant expected to catch it
  const char* scenario;   // the shipped scenario (scenarios/<name>) that reaches it
};
const std::vector<MutantInfo>& all_mutants();
const MutantInfo& mutant_info(Mutant m);
// Throws std::invalid_argument listing the known names when `name` is unknown.
Mutant mutant_by_name(const std::string& name);

class MutantSet {
 public:
  MutantSet() = default;
  void add(Mutant m) { bits_ |= std::uint64_t{1} << static_cast<unsigned>(m); }
  bool has(Mutant m) const { return bits_ & (std::uint64_t{1} << static_cast<unsigned>(m)); }
  bool any() const { return bits_ != 0; }

 private:
  static_assert(static_cast<unsigned>(Mutant::kCount) <= 64, "MutantSet holds 64 mutants");
  std::uint64_t bits_ = 0;
};

}  // namespace ppsim::page_pool
