#include "models/page_pool/mutants.h"

#include <stdexcept>

namespace ppsim::page_pool {

const std::vector<MutantInfo>& all_mutants() {
  static const std::vector<MutantInfo> list = {
      {Mutant::kDirectRecycleAnyContext, "direct_recycle_any_context",
       "recycling into the lockless alloc cache from the wrong context (process context or another CPU); "
       "the reason page_pool_napi_local() checks in_softirq() and the NAPI owner",
       "ppsim", "cache_napi_only", "coherence_cross_cpu.json"},
      {Mutant::kFreePoolWithInflight, "free_pool_with_inflight",
       "use of the ring after destroy: the pool is freed while pages are inflight and later returns "
       "touch freed memory (cf. 'page_pool: Fix use-after-free in page_pool_recycle_in_ring', 2025)",
       "ppsim", "inflight_zero_after_destroy", "coherence_defer.json"},
      {Mutant::kFragDoublePut, "frag_double_put",
       "double put of a frag page: page_pool_drain_frag recycles the page although frag users remain",
       "ppsim", "frag_reuse_with_users", "coherence_cross_cpu.json"},
      {Mutant::kNoUnmapAtDestroy, "no_unmap_at_destroy",
       "DMA unmap left to after destroy: inflight pages stay mapped after page_pool_destroy and are "
       "unmapped when they come back, after the device may be gone (fixed in 6.15 by tracking mapped pages)",
       "ppsim", "unmapped_at_destroy", "coherence_defer.json"},
      {Mutant::kRingFullLeak, "ring_full_leak",
       "a leak on the ring-full path: the page is neither recycled nor returned (no release_cnt++)",
       "ppsim", "inflight_zero_after_destroy", "coherence_release.json"},
      {Mutant::kCacheNoBound, "cache_no_bound",
       "recycle into the alloc cache without checking PP_ALLOC_CACHE_SIZE",
       "ppsim", "cache_bound", "defer_burst.json"},
      {Mutant::kRecycleElevatedRefcount, "recycle_elevated_refcount",
       "recycling a page whose refcount is not 1 (someone else still holds it: the device may overwrite it)",
       "ppsim", "recycle_refcount_one", "coherence_release.json"},
      {Mutant::kSkipSyncForDevice, "skip_sync_for_device",
       "recycling without dma_sync_for_device: the device writes into a page the CPU may still have dirty",
       "ppsim", "sync_for_device", "xdp_drop.json"},
      {Mutant::kHoldNotCounted, "hold_not_counted",
       "slow path forgets pages_state_hold_cnt++: inflight accounting goes negative",
       "ppsim", "conservation", "coherence_cross_cpu.json"},
      {Mutant::kDestroySkipsRingDrain, "destroy_skips_ring_drain",
       "page_pool_release does not empty the ptr_ring: pages are stranded and inflight never reaches 0",
       "ppsim", "inflight_zero_after_destroy", "coherence_cross_cpu.json"},
      {Mutant::kDirectRecycleAfterDestroy, "direct_recycle_after_destroy",
       "destroy does not disable direct recycling: pages land in the cache of a destroyed pool, "
       "which is never flushed again (the reason for page_pool_disable_direct_recycling)",
       "ppsim", "no_cache_after_destroy", "percpu_pool.json"},
      {Mutant::kRoBuildSkbInPage, "ro_build_skb_in_page",
       "a queue in read-only mode still builds its skbs in the packet page (build_skb writes "
       "skb_shared_info, with kernel pointers, into a page that may be mapped into user space)",
       "ppsim", "read_only_no_cpu_write", "zerocopy_shared_queue.json"},
      {Mutant::kZcRecycleWhileMapped, "zc_recycle_while_mapped",
       "the application's page goes back to the pool (and to the NIC) while it is still mapped into "
       "user space: the device overwrites data the application is reading",
       "ppsim", "user_page_reuse", "vm2vm_kernel_zerocopy.json"},
      {Mutant::kZcSkipShootdownWait, "zc_skip_shootdown_wait",
       "a returned page is recycled as soon as its PTEs are gone, before the TLB shootdown completed: "
       "another CPU running the application can still read the next packet through a stale TLB entry",
       "ppsim", "user_unmap_shootdown", "vm2vm_kernel_zerocopy.json"},
      {Mutant::kZcNoClear, "zc_no_clear",
       "pages are mapped into user space without clearing the bytes outside the packet: stale kernel "
       "data and other flows' packets leak to the application",
       "ppsim", "user_page_foreign_data", "vm2vm_kernel_zerocopy.json"},
      {Mutant::kZcFragPages, "zc_frag_pages",
       "the zero-copy queue keeps splitting pages into frags, so a mapped page also holds another packet",
       "ppsim", "user_page_exclusive", "zerocopy_dedicated.json"},
      {Mutant::kZcNoUserLimit, "zc_no_user_limit",
       "the pool does not enforce the limit on pages outstanding to the application: a consumer that "
       "does not return pages pins unbounded memory (the OOM risk the design's limit prevents)",
       "ppsim", "user_limit", "zerocopy_slow_app.json"},
      {Mutant::kZcSelectAllFlows, "zc_select_all_flows",
       "the XDP selector redirects packets of every flow to the application, not only its own",
       "ppsim", "user_page_foreign_data", "zerocopy_shared_queue.json"},
      {Mutant::kSwitchDropsCompleted, "switch_drops_completed",
       "the mode switch frees the ring with completed descriptors still on it: packets the NIC had "
       "accepted are lost without being delivered or counted",
       "ppsim", "rx_packet_lost", "zerocopy_switch.json"},
      // Upstream history (docs/bug-history.md): each entry puts the model back to the kernel's
      // behaviour before the named fix.
      {Mutant::kRingPutReleaseRace, "pp_271683bb2cf3_release_races_ring_put",
       "a late put into a destroyed pool bumps its ring stat after dropping the producer lock, and "
       "page_pool_release frees the pool without taking that lock: the release that drains the last "
       "page frees the pool while the producer is still inside it",
       "271683bb2cf3", "pool_free_with_ops_in_progress", "destroy_race.json"},
      {Mutant::kRetryOnNegativeInflight, "pp_43130d02baa1_retry_on_negative_inflight",
       "a driver bug releases one page twice (inflight ends at -1) and the deferred release work "
       "reschedules itself whenever inflight is not exactly 0, so it never stops",
       "43130d02baa1", "release_retry_stops", "default.json"},
      {Mutant::kLateReturnAfterScrub, "pp_ee62ce7a1d90_late_return_after_scrub",
       "destroy unmaps the inflight pages but leaves dma_sync on and the late-return path does not "
       "notice the mapping is gone: a page returned after destroy is synced and unmapped again",
       "ee62ce7a1d90", "dma_sync_unmapped", "destroy_race.json"},
      {Mutant::kRecyclePfmemalloc, "pp_d5394610b1ba_recycle_pfmemalloc",
       "the pool keeps every page whose refcount is 1: pages from the emergency reserves (pfmemalloc) "
       "are recycled instead of going back to the allocator, and no NUMA test turns remote pages away",
       "d5394610b1ba", "never_recycle_pfmemalloc", "memory_pressure.json"},
      {Mutant::kNumaCheckOnPut, "pp_44768decb7c0_numa_check_on_put",
       "the put path refuses pages whose node differs from p.nid; with NUMA_NO_NODE (most drivers) "
       "nothing matches, so every returned page is released and the pool never recycles",
       "44768decb7c0", "recycle_efficiency", "default.json"},
      {Mutant::kDisableKeepsCpuid, "pp_56ef27e3abe6_disable_keeps_cpuid",
       "disabling direct recycling at destroy unlinks the NAPI but keeps pool->cpuid, so frees on that "
       "CPU keep filling the alloc cache destroy already emptied (the pages leak)",
       "56ef27e3abe6", "no_cache_after_destroy", "percpu_pool.json"},
      {Mutant::kDisableKeepsNapi, "pp_dd64b232deb8_disable_keeps_napi",
       "destroy leaves the pool linked to its NAPI; after a pool swap the NAPI keeps running, and late "
       "returns in its softirq go into the destroyed pool's alloc cache",
       "dd64b232deb8", "no_cache_after_destroy", "pool_swap.json"},
      {Mutant::kUnlockRechecksContext, "pp_368d3cb406cd_unlock_rechecks_context",
       "the producer unlock asks in_softirq() again; spin_lock_bh has raised the BH count, so a put "
       "from process context unlocks with plain spin_unlock and leaves bottom halves disabled",
       "368d3cb406cd", "ring_lock_balanced", "process_context_free.json"},
      {Mutant::kServingSoftirqOnly, "pp_542bcea4be86_serving_softirq_only",
       "page_pool_napi_local tests in_serving_softirq(): a threaded NAPI poll runs in a kthread with "
       "BHs disabled, so its frees never recycle directly and all go through the ptr_ring",
       "542bcea4be86", "direct_recycle_efficiency", "threaded_napi.json"},
      {Mutant::kDirectOnPreemptRt, "pp_32471b2f481d_direct_on_preempt_rt",
       "direct recycling stays on under PREEMPT_RT, where a BH-disabled free can be preempted by the "
       "NAPI poll in the middle of its alloc-cache push",
       "32471b2f481d", "cache_napi_only", "preempt_rt.json"},
      {Mutant::kRefillFromWorkqueue, "pp_88e69af061f2_refill_from_workqueue",
       "when the ring cannot be refilled the driver schedules a workqueue that allocates from the same "
       "pool in process context, racing NAPI on the lockless alloc cache",
       "88e69af061f2", "cache_napi_only", "alloc_fail.json"},
      {Mutant::kStopKeepsNapiLink, "pp_40eca00ae605_stop_keeps_napi_link",
       "a queue restart keeps the NAPI and swaps pools, but the stop step does not unlink the old pool: "
       "it is destroyed while still linked to a NAPI that runs",
       "40eca00ae605", "unlink_napi_disabled", "pool_swap.json"},
      {Mutant::kRollbackLosesDirect, "pp_64fdaa94bfe0_rollback_loses_direct",
       "new pools are created linked to the running NAPI; when the restart fails the new pool is "
       "destroyed while linked, and the old pool goes back into service without direct recycling",
       "64fdaa94bfe0", "direct_recycling_lost", "pool_swap_fail.json"},
      {Mutant::kDestroyUnderRcu, "pp_59a931c5b732_destroy_under_rcu",
       "the pool is destroyed inside an RCU read-side section (xdp_unreg_mem_model), where the "
       "mutexes page_pool_destroy takes may not sleep",
       "59a931c5b732", "destroy_may_sleep", "default.json"},
      {Mutant::kUnlistUnlisted, "pp_f9893fdac319_unlist_unlisted",
       "freeing a pool unlists it unconditionally, also when it never had a netdev and was never "
       "listed (the list node is garbage)",
       "f9893fdac319", "pool_list_consistent", "vm2vm_kernel_copy.json"},
      {Mutant::kSignatureUnmasked, "pp_0fa32ca438b4_signature_unmasked",
       "the skb free path compares pp_magic with the signature without masking the low bits, so a "
       "pool page with the pfmemalloc bit looks foreign and leaves through put_page, still counted "
       "by its pool",
       "0fa32ca438b4", "pp_page_door", "memory_pressure.json"},
      {Mutant::kNoMarkForRecycle, "pp_037965402a01_no_mark_for_recycle",
       "the driver builds skbs from pool pages without skb_mark_for_recycle (and without releasing "
       "them from the pool): the stack frees them with put_page behind the pool's back",
       "037965402a01", "pp_page_door", "default.json"},
      {Mutant::kCloneKeepsPpRecycle, "pp_2cc3aeb5eccc_clone_keeps_pp_recycle",
       "a clone that gets a private head takes page references on the shared frags but keeps "
       "pp_recycle, so its free hands those page references to page_pool",
       "2cc3aeb5eccc", "ref_kind_match", "clone_tap.json"},
      {Mutant::kFragRefKindFromFlag, "pp_173e7622ccb3_frag_ref_kind_from_flag",
       "skb_frag_ref/unref choose pp or page references from skb->pp_recycle at each call; the flag is "
       "cleared between the two on a clone, so a pp reference is dropped with put_page (a580ea994fd3, "
       "reverted by 173e7622ccb3)",
       "173e7622ccb3", "ref_kind_match", "clone_tap.json"},
      {Mutant::kCoalesceClonePageRef, "pp_1effe8ca4e34_coalesce_clone_page_ref",
       "TCP coalescing of a cloned pp skb into a pp skb takes page references on the shared frags; the "
       "merged skb later drops them as pp references (pp_ref_count underflows)",
       "1effe8ca4e34", "ref_kind_match", "tcp_coalesce.json"},
      {Mutant::kAllocFailDoubleRelease, "pp_ef9369e9c308_alloc_fail_double_release",
       "when a bulk refill fails half way the driver gives back the pages it took but leaves them "
       "recorded in the descriptors, and gives them back again on the next attempt",
       "ef9369e9c308", "no_double_put", "alloc_fail_bulk.json"},
      {Mutant::kAllocFailRepostsPage, "pp_001ba0902046_alloc_fail_reposts_page",
       "when the pool returns no page the driver does not drop the packet: it re-posts the buffer it "
       "just handed to the stack, so the device writes into a page the stack owns",
       "001ba0902046", "state_transition", "alloc_fail.json"},
      {Mutant::kNapiFreedBeforePool, "pp_290f1c033281_napi_freed_before_pool",
       "teardown frees the interrupt vectors, and the NAPI instances in them, before destroying the "
       "queues' pools, which still point at those NAPIs",
       "290f1c033281", "napi_outlives_pool", "default.json"},
      {Mutant::kWholePagePerBuffer, "pp_39f8fcda2088_whole_page_per_buffer",
       "on a kernel whose pages are larger than the driver's RX buffer the data ring takes a whole "
       "page per descriptor instead of page_pool frags",
       "39f8fcda2088", "rx_buffer_waste", "large_page_frags.json"},
      {Mutant::kRefillNonEmptyCache, "pp_304db6cb7610_refill_nonempty_cache",
       "outside serving softirq the allocator skips the cache and runs the ring refill loop, which "
       "consumes at least one page even when the alloc cache is not empty (past its bound)",
       "304db6cb7610", "refill_only_when_empty", "threaded_napi_socket.json"},
  };
  return list;
}

const MutantInfo& mutant_info(Mutant m) {
  for (const auto& mi : all_mutants())
    if (mi.id == m) return mi;
  throw std::invalid_argument("mutant without an entry in all_mutants()");
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
