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
      {Mutant::kRoBuildSkbInPage, "ro_build_skb_in_page",
       "a queue in read-only mode still builds its skbs in the packet page (build_skb writes "
       "skb_shared_info, with kernel pointers, into a page that may be mapped into user space)"},
      {Mutant::kZcRecycleWhileMapped, "zc_recycle_while_mapped",
       "the application's page goes back to the pool (and to the NIC) while it is still mapped into "
       "user space: the device overwrites data the application is reading"},
      {Mutant::kZcSkipShootdownWait, "zc_skip_shootdown_wait",
       "a returned page is recycled as soon as its PTEs are gone, before the TLB shootdown completed: "
       "another CPU running the application can still read the next packet through a stale TLB entry"},
      {Mutant::kZcNoClear, "zc_no_clear",
       "pages are mapped into user space without clearing the bytes outside the packet: stale kernel "
       "data and other flows' packets leak to the application"},
      {Mutant::kZcFragPages, "zc_frag_pages",
       "the zero-copy queue keeps splitting pages into frags, so a mapped page also holds another packet"},
      {Mutant::kZcNoUserLimit, "zc_no_user_limit",
       "the pool does not enforce the limit on pages outstanding to the application: a consumer that "
       "does not return pages pins unbounded memory (the OOM risk the design's limit prevents)"},
      {Mutant::kZcSelectAllFlows, "zc_select_all_flows",
       "the XDP selector redirects packets of every flow to the application, not only its own"},
      {Mutant::kSwitchDropsCompleted, "switch_drops_completed",
       "the mode switch frees the ring with completed descriptors still on it: packets the NIC had "
       "accepted are lost without being delivered or counted"},
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
