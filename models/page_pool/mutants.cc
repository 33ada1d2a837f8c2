#include "models/page_pool/mutants.h"

#include <stdexcept>

namespace ppsim::page_pool {

const std::vector<MutantInfo>& all_mutants() {
  static const std::vector<MutantInfo> list = {
      {Mutant::kDirectRecycleAnyContext, "direct_recycle_any_context",
       "recycling into the lockless alloc cache from the wrong context (process context or another CPU); "
       "the reason page_pool_napi_local() checks in_softirq() and the NAPI owner"},
      {Mutant::kFreePoolWithInflight, "free_pool_with_inflight",
       "use of the ring after destroy: the pool is freed while pages are inflight and later returns "
       "touch freed memory (cf. 'page_pool: Fix use-after-free in page_pool_recycle_in_ring', 2025)"},
      {Mutant::kFragDoublePut, "frag_double_put",
       "double put of a frag page: page_pool_drain_frag recycles the page although frag users remain"},
      {Mutant::kNoUnmapAtDestroy, "no_unmap_at_destroy",
       "DMA unmap left to after destroy: inflight pages stay mapped after page_pool_destroy and are "
       "unmapped when they come back, after the device may be gone (fixed in 6.15 by tracking mapped pages)"},
      {Mutant::kRingFullLeak, "ring_full_leak",
       "a leak on the ring-full path: the page is neither recycled nor returned (no release_cnt++)"},
      {Mutant::kCacheNoBound, "cache_no_bound",
       "recycle into the alloc cache without checking PP_ALLOC_CACHE_SIZE"},
      {Mutant::kRecycleElevatedRefcount, "recycle_elevated_refcount",
       "recycling a page whose refcount is not 1 (someone else still holds it: the device may overwrite it)"},
      {Mutant::kSkipSyncForDevice, "skip_sync_for_device",
       "recycling without dma_sync_for_device: the device writes into a page the CPU may still have dirty"},
      {Mutant::kHoldNotCounted, "hold_not_counted",
       "slow path forgets pages_state_hold_cnt++: inflight accounting goes negative"},
      {Mutant::kDestroySkipsRingDrain, "destroy_skips_ring_drain",
       "page_pool_release does not empty the ptr_ring: pages are stranded and inflight never reaches 0"},
      {Mutant::kDirectRecycleAfterDestroy, "direct_recycle_after_destroy",
       "destroy does not disable direct recycling: pages land in the cache of a destroyed pool, "
       "which is never flushed again (the reason for page_pool_disable_direct_recycling)"},
  };
  return list;
}

Mutant mutant_by_name(const std::string& name) {
  std::string known;
  for (const auto& m : all_mutants()) {
    if (name == m.name) return m.id;
    known += known.empty() ? m.name : std::string(", ") + m.name;
  }
  throw std::invalid_argument("unknown mutant \"" + name + "\" (known: " + known + ")");
}

}  // namespace ppsim::page_pool
