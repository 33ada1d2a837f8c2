#include "models/page_pool/page_pool.h"

#include <algorithm>
#include <stdexcept>

namespace ppsim::page_pool {

std::string check_params(const PoolParams& p) {
  if (p.pool_size > kMaxRingSize)  // 6.18 clamps silently; ppsim refuses instead of changing the number
    return "pool_size above the ptr_ring limit of " + std::to_string(kMaxRingSize) + " pages";
  if (p.order > kMaxPageOrder) return "order above MAX_PAGE_ORDER (" + std::to_string(kMaxPageOrder) + ")";
  if (p.dma_sync && !p.dma_map) return "PP_FLAG_DMA_SYNC_DEV needs PP_FLAG_DMA_MAP";
  if (p.dma_sync && p.max_len == 0) return "PP_FLAG_DMA_SYNC_DEV needs max_len > 0";
  if (p.max_len + static_cast<std::uint64_t>(p.offset) > (std::uint64_t{kPageSize} << p.order))
    return "offset + max_len exceeds the pool's page size (syncs would run past the page)";
  return "";
}

PagePool::PagePool(int id, PageWorld& world, const PoolParams& params, const PoolCosts& costs, int ncpus,
                   MutantSet mutants)
    : id_(id),
      world_(world),
      p_(params),
      costs_(costs),
      mutants_(mutants),
      ring_(params.pool_size ? std::min(params.pool_size, kMaxRingSize) : kDefaultRingSize, params.cacheline_bytes),
      cpuid_(params.cpuid),
      napi_list_owner_(params.napi_list_owner),
      napi_id_(-1),
      dma_sync_(params.dma_sync),
      recycle_stats_(std::max(1, ncpus)) {
  const std::string err = check_params(params);
  if (!err.empty()) throw std::invalid_argument("page_pool_init: " + err);
  if (p_.napi_list_owner && p_.napi_id < 0) p_.napi_id = kAnonNapiBase + id;
  napi_id_ = p_.napi_list_owner ? p_.napi_id : -1;
}

RecycleStats PagePool::recycle_stats() const {
  RecycleStats s;
  for (const auto& r : recycle_stats_) {
    s.cached += r.cached;
    s.cache_full += r.cache_full;
    s.ring += r.ring;
    s.ring_full += r.ring_full;
    s.released_refcnt += r.released_refcnt;
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Allocation

bool PagePool::napi_local(const ExecCtx& ctx) const {
  if (bug(Mutant::kDirectRecycleAnyContext)) return true;
  // On PREEMPT_RT the consumer's BH-disabled section can be preempted by the NAPI poll itself
  // (32471b2f481d).
  if (world_.preempt_rt() && !bug(Mutant::kDirectOnPreemptRt)) return false;
  // in_softirq(): serving a softirq, or BHs disabled as in a threaded NAPI poll (542bcea4be86;
  // before it, in_serving_softirq() left threaded NAPI without direct recycling).
  const bool in_softirq = ctx.softirq || (ctx.bh_disabled && !bug(Mutant::kServingSoftirqOnly));
  if (!in_softirq) return false;
  if (cpuid_ == ctx.cpu) return true;
  return napi_list_owner_ && *napi_list_owner_ == ctx.cpu;
}

PageId PagePool::refill_alloc_cache(Caller& c) {
  if (ring_.empty()) {
    ++alloc_stats_.empty;
    return kNoPage;
  }
  // Softirq pins the CPU, hence the NUMA node (the kernel's comment).
  const int pref_nid = p_.nid == kNumaNoNode ? world_.node_of_cpu(c.ctx.cpu) : p_.nid;
  PageId p = kNoPage;
  do {
    p = ring_.consume();
    if (p == kNoPage) break;
    c.cost += costs_.refill_per_page;
    // Before d5394610b1ba no NUMA test existed at all: remote pages fed the RX ring for ever.
    if (world_.page(p).nid == pref_nid || bug(Mutant::kRecyclePfmemalloc)) {
      emit(PageEv::kRingConsume, p, c, 0, PageLoc::kAllocCache);
      cache_[cache_count_++] = p;
    } else {
      // NUMA mismatch: release this page and fall through to the slow path.
      emit(PageEv::kRingConsume, p, c, 0, PageLoc::kBuddy);
      return_netmem(c, p);
      ++alloc_stats_.waive;
      p = kNoPage;
      break;
    }
  } while (cache_count_ < kAllocCacheRefill);

  if (cache_count_ > 0) {
    p = cache_[--cache_count_];
    ++alloc_stats_.refill;
    emit(PageEv::kCachePop, p, c, 0, PageLoc::kOut);
  }
  return p;
}

PageId PagePool::get_cached(Caller& c) {
  // Before 304db6cb7610 only a caller serving softirq popped the cache; anyone else ran the ring
  // refill, whose do/while consumes a page whatever the cache already holds.
  if (bug(Mutant::kRefillNonEmptyCache) && !c.ctx.softirq) return refill_alloc_cache(c);
  if (cache_count_) {
    PageId p = cache_[--cache_count_];
    ++alloc_stats_.fast;
    c.cost += costs_.alloc_fast;
    emit(PageEv::kCachePop, p, c, 0, PageLoc::kOut);
    return p;
  }
  return refill_alloc_cache(c);
}

void PagePool::set_pp_info(PageId p) {
  Page& pg = world_.page(p);
  pg.pool = id_;
  pg.pp_magic |= kPpSignature;
  pg.pp_ref_count = 1;  // page_pool_fragment_netmem(netmem, 1)
}

bool PagePool::dma_map(Caller& c, PageId p) {
  Page& pg = world_.page(p);
  // The kernel stores the address in the page; any non-zero value stands for "mapped" here.
  pg.dma_addr = (pg.pfn << 12) | 1;
  pg.dma_index = static_cast<std::uint32_t>(dma_mapped_.size());
  dma_mapped_.push_back(p);
  c.cost += costs_.dma_map;
  emit(PageEv::kDmaMap, p, c);
  dma_sync_for_device(c, p, p_.max_len);
  return true;
}

PageId PagePool::alloc_page_order(Caller& c) {
  PageId p = world_.alloc_one(p_.nid, c.ctx.cpu, p_.order);
  if (p == kNoPage) return kNoPage;
  c.cost += costs_.slow_fixed + costs_.slow_per_page;
  if (p_.dma_map) dma_map(c, p);
  ++alloc_stats_.slow_high_order;
  set_pp_info(p);
  if (!bug(Mutant::kHoldNotCounted)) ++hold_cnt_;
  emit(PageEv::kHold, p, c, hold_cnt_, PageLoc::kOut);
  return p;
}

PageId PagePool::alloc_slow(Caller& c) {
  if (p_.order) return alloc_page_order(c);
  if (cache_count_ > 0) {  // "unnecessary as alloc cache is empty"
    PageId p = cache_[--cache_count_];
    emit(PageEv::kCachePop, p, c, 0, PageLoc::kOut);
    return p;
  }
  PageId got[kAllocCacheRefill];
  const std::uint32_t n = world_.alloc_bulk(p_.nid, c.ctx.cpu, kAllocCacheRefill, got);
  if (n == 0) return kNoPage;
  c.cost += costs_.slow_fixed + n * costs_.slow_per_page;
  for (std::uint32_t i = 0; i < n; ++i) {
    const PageId p = got[i];
    if (p_.dma_map) dma_map(c, p);
    set_pp_info(p);
    cache_[cache_count_++] = p;
    if (!bug(Mutant::kHoldNotCounted)) ++hold_cnt_;
    emit(PageEv::kHold, p, c, hold_cnt_, PageLoc::kAllocCache);
  }
  PageId p = cache_[--cache_count_];
  ++alloc_stats_.slow;
  emit(PageEv::kCachePop, p, c, 0, PageLoc::kOut);
  return p;
}

PageId PagePool::alloc(Caller& c) {
  if (user_out_ > user_out_max_) user_out_max_ = user_out_;
  // Every page the pool has let out (NIC ring, in flight, held by the application) counts.
  const std::int64_t out = static_cast<std::int64_t>(inflight()) - cache_count_ - ring_.count();
  if (p_.user_limit && out >= static_cast<std::int64_t>(p_.user_limit) && !bug(Mutant::kZcNoUserLimit)) {
    ++alloc_stats_.user_limit;
    return kNoPage;
  }
  PageId p = get_cached(c);
  if (p != kNoPage) return p;
  return alloc_slow(c);
}

PageId PagePool::alloc_frag(Caller& c, std::uint32_t size, std::uint32_t* offset) {
  const std::uint32_t max_size = kPageSize << p_.order;
  if (size > max_size) return kNoPage;  // WARN_ON in the kernel
  const std::uint32_t align = p_.dma_cache_alignment;
  if (align > 1) size = (size + align - 1) / align * align;  // no division for the usual 1 (x86)
  *offset = frag_offset_;
  PageId p = frag_page_;
  c.cost += costs_.frag;

  bool reset = false;
  if (p != kNoPage && *offset + size > max_size) {
    p = drain_frag(c, p);
    if (p != kNoPage) {
      recycle_stats_[c.ctx.cpu].cached++;
      ++alloc_stats_.fast;
      reset = true;
    }
  }
  if (p == kNoPage) {
    p = alloc(c);
    if (p == kNoPage) {
      frag_page_ = kNoPage;
      return kNoPage;
    }
    frag_page_ = p;
    reset = true;
  }
  if (reset) {
    frag_users_ = 1;
    *offset = 0;
    frag_offset_ = size;
    world_.page(p).pp_ref_count = kBiasMax;  // page_pool_fragment_netmem(netmem, BIAS_MAX)
    emit(PageEv::kFragCarve, p, c, kBiasMax, PageLoc::kCarving);
    emit(PageEv::kFragHandOut, p, c, frag_users_, PageLoc::kCarving, 0);
    return p;
  }
  ++frag_users_;
  frag_offset_ = *offset + size;
  emit(PageEv::kFragHandOut, p, c, frag_users_, PageLoc::kCarving, *offset);
  return p;
}

PageId PagePool::alloc_netmem(Caller& c, std::uint32_t* offset, std::uint32_t* size) {
  const std::uint32_t max_size = kPageSize << p_.order;
  if ((*size << 1) > max_size) {
    *size = max_size;
    *offset = 0;
    return alloc(c);
  }
  const PageId p = alloc_frag(c, *size, offset);
  if (p == kNoPage) return kNoPage;
  // Not enough room is left for another frag: give the tail to this one (truesize accounting).
  if (frag_offset_ + *size > max_size) {
    *size = max_size - *offset;
    frag_offset_ = max_size;
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Recycling

bool PagePool::can_be_recycled(PageId p) const {
  // __page_pool_page_can_be_recycled: page_pool owns the page alone and it is not from the
  // emergency reserves (d5394610b1ba); NUMA is checked at refill, not here (44768decb7c0).
  const Page& pg = world_.page(p);
  if (bug(Mutant::kNumaCheckOnPut) && pg.nid != p_.nid) return false;
  const bool pfmemalloc = pg.pfmemalloc && !bug(Mutant::kRecyclePfmemalloc);
  if (bug(Mutant::kRecycleElevatedRefcount)) return !pfmemalloc;
  return pg.refcount == 1 && !pfmemalloc;
}

std::int64_t PagePool::unref(PageId p, std::int64_t nr) {
  // page_pool_unref_netmem(): the owner of every remaining reference skips the atomic.
  Page& pg = world_.page(p);
  if (pg.pp_ref_count == nr) {
    pg.pp_ref_count = 1;
    return 0;
  }
  pg.pp_ref_count -= nr;
  const std::int64_t ret = pg.pp_ref_count;
  if (ret == 0) pg.pp_ref_count = 1;
  return ret;
}

void PagePool::dma_sync_for_device(Caller& c, PageId p, std::int64_t size) {
  if (bug(Mutant::kSkipSyncForDevice)) return;
  if (!dma_sync_ || !p_.dma_need_sync) return;
  const std::uint32_t n =
      static_cast<std::uint32_t>(std::min<std::int64_t>(size < 0 ? p_.max_len : size, p_.max_len));
  sync_bytes_ += n;
  c.cost += costs_.dma_sync_fixed + static_cast<sim::Picos>(costs_.dma_sync_per_byte_ps * n);
  emit(PageEv::kDmaSyncForDevice, p, c, n);
}

void PagePool::release_dma(Caller& c, PageId p) {
  if (!p_.dma_map) return;
  Page& pg = world_.page(p);
  // A page destroy already unmapped has no dma_mapped entry left (the kernel's cmpxchg on the
  // index fails): nothing to unmap. Without that check the unmap runs a second time.
  if (bug(Mutant::kLateReturnAfterScrub) && destroy_called_ && pg.dma_index == 0) {
    emit(PageEv::kDmaUnmap, p, c);
  } else if (pg.dma_index != 0 && pg.dma_addr != 0) {
    // Remove from the dma_mapped table (swap with the last entry).
    const std::uint32_t idx = pg.dma_index;
    const PageId last = dma_mapped_.back();
    dma_mapped_[idx] = last;
    world_.page(last).dma_index = idx;
    dma_mapped_.pop_back();
    c.cost += costs_.dma_unmap;
    emit(PageEv::kDmaUnmap, p, c);
  }
  pg.dma_addr = 0;
  pg.dma_index = 0;
}

void PagePool::return_netmem(Caller& c, PageId p) {
  release_dma(c, p);
  ++release_cnt_;
  if (bug(Mutant::kRetryOnNegativeInflight) && destroy_called_ && !double_released_) {
    double_released_ = true;  // the driver bug 43130d02baa1 guards against: one page released twice
    ++release_cnt_;
  }
  c.cost += costs_.release;
  Page& pg = world_.page(p);
  const bool last_ref = pg.refcount == 1;
  emit(PageEv::kRelease, p, c, release_cnt_, last_ref ? PageLoc::kBuddy : PageLoc::kDetached);
  pg.pp_magic &= ~kPpSignature;
  pg.pool = -1;
  world_.put_page(p);
}

bool PagePool::recycle_in_ring(Caller& c, PageId p) {
  c.cost += costs_.recycle_ring;
  // page_pool_producer_lock: plain spin_lock in softirq, spin_lock_bh elsewhere; the choice is
  // kept for the unlock (368d3cb406cd), since spin_lock_bh itself makes in_softirq() true.
  const bool in_softirq = c.ctx.softirq || c.ctx.bh_disabled;
  emit(PageEv::kProducerLock, p, c, in_softirq ? 0 : 1, PageLoc::kRing);
  if (!in_softirq) c.ctx.bh_disabled = true;
  ++producers_;
  const bool ok = ring_.produce(p);
  // The stat is bumped inside the lock (271683bb2cf3): after the unlock the pool may be gone.
  const bool stat_after_unlock = bug(Mutant::kRingPutReleaseRace);
  if (ok) {
    if (!stat_after_unlock) recycle_stats_[c.ctx.cpu].ring++;
    emit(PageEv::kRingProduce, p, c, 0, PageLoc::kRing);
  }
  if (on_ring_locked) on_ring_locked(c);
  const bool unlock_softirq = bug(Mutant::kUnlockRechecksContext) ? (c.ctx.softirq || c.ctx.bh_disabled) : in_softirq;
  if (!unlock_softirq) c.ctx.bh_disabled = false;
  --producers_;
  emit(PageEv::kProducerUnlock, p, c, unlock_softirq ? 0 : 1, PageLoc::kRing);
  // A release that found inflight 0 was spinning on this lock: it frees the pool now.
  if (free_pending_ && producers_ == 0) free_pool(c);
  if (ok && stat_after_unlock) recycle_stats_[c.ctx.cpu].ring++;
  return ok;
}

bool PagePool::recycle_in_cache(Caller& c, PageId p) {
  if (cache_count_ == kAllocCacheSize && !bug(Mutant::kCacheNoBound)) {
    recycle_stats_[c.ctx.cpu].cache_full++;
    return false;
  }
  if (cache_count_ == cache_.size()) return false;  // even the mutant cannot write past the array
  cache_[cache_count_++] = p;
  recycle_stats_[c.ctx.cpu].cached++;
  c.cost += costs_.recycle_direct;
  emit(PageEv::kCachePush, p, c, 0, PageLoc::kAllocCache);
  return true;
}

PageId PagePool::put_page_internal(Caller& c, PageId p, std::int64_t dma_sync_size, bool allow_direct) {
  if (can_be_recycled(p)) {
    dma_sync_for_device(c, p, dma_sync_size);
    if (allow_direct && recycle_in_cache(c, p)) return kNoPage;
    return p;  // candidate for the ring
  }
  recycle_stats_[c.ctx.cpu].released_refcnt++;
  return_netmem(c, p);
  return kNoPage;
}

void PagePool::put_unrefed(Caller& c, PageId p, std::int64_t dma_sync_size, bool allow_direct) {
  if (!allow_direct) allow_direct = napi_local(c.ctx);
  p = put_page_internal(c, p, dma_sync_size, allow_direct);
  if (p != kNoPage && !recycle_in_ring(c, p)) {
    recycle_stats_[c.ctx.cpu].ring_full++;
    if (bug(Mutant::kRingFullLeak)) return;
    return_netmem(c, p);
  }
}

void PagePool::put(Caller& c, PageId p, std::int64_t dma_sync_size, bool allow_direct, std::uint32_t offset,
                   std::uint32_t holder) {
  const bool frag_page = world_.page(p).pp_ref_count != 1;
  if (frag_page) c.cost += costs_.put_atomic;
  const std::int64_t left = unref(p, 1);
  emit(PageEv::kPut, p, c, left, PageLoc::kOut, offset, holder);
  if (left != 0) return;
  put_unrefed(c, p, dma_sync_size, allow_direct);
}

void PagePool::ref(Caller& c, PageId p, std::uint32_t offset, std::uint32_t holder) {
  Page& pg = world_.page(p);
  ++pg.pp_ref_count;  // atomic_long_inc: the page now needs one more put before it recycles
  c.cost += costs_.put_atomic;
  emit(PageEv::kPpRef, p, c, pg.pp_ref_count, PageLoc::kOut, offset, holder);
}

// ---------------------------------------------------------------------------------------------
// Frags

PageId PagePool::drain_frag(Caller& c, PageId p) {
  const std::int64_t drain_count = kBiasMax - frag_users_;
  const std::int64_t left = bug(Mutant::kFragDoublePut) ? (unref(p, drain_count), 0) : unref(p, drain_count);
  if (left != 0) {
    emit(PageEv::kFragDrain, p, c, left, PageLoc::kOut);
    return kNoPage;  // some user still holds a frag; the last put recycles the page
  }
  if (bug(Mutant::kFragDoublePut)) world_.page(p).pp_ref_count = 1;
  if (can_be_recycled(p)) {
    emit(PageEv::kFragDrain, p, c, 0, PageLoc::kCarving);
    dma_sync_for_device(c, p, -1);
    return p;
  }
  emit(PageEv::kFragDrain, p, c, 0, PageLoc::kBuddy);
  return_netmem(c, p);
  return kNoPage;
}

void PagePool::free_frag(Caller& c) {
  const std::int64_t drain_count = kBiasMax - frag_users_;
  const PageId p = frag_page_;
  frag_page_ = kNoPage;
  if (p == kNoPage) return;
  const std::int64_t left = unref(p, drain_count);
  emit(PageEv::kFragDrain, p, c, left, left != 0 ? PageLoc::kOut : PageLoc::kBuddy);
  if (left != 0) return;
  return_netmem(c, p);
}

// ---------------------------------------------------------------------------------------------
// Destroy

void PagePool::empty_ring(Caller& c) {
  PageId p;
  while ((p = ring_.consume()) != kNoPage) {
    emit(PageEv::kRingConsume, p, c, 0, PageLoc::kBuddy);
    return_netmem(c, p);
  }
}

void PagePool::scrub(Caller& c) {
  if (destroy_cnt_ == 0) {  // page_pool_empty_alloc_cache_once
    while (cache_count_) {
      const PageId p = cache_[--cache_count_];
      emit(PageEv::kCachePop, p, c, 0, PageLoc::kBuddy);
      return_netmem(c, p);
    }
  }
  if (destroy_cnt_++ == 0 && p_.dma_map && !bug(Mutant::kNoUnmapAtDestroy)) {
    // No sync for the device after the unmap below (the kernel also waits out returns that saw
    // the old value: synchronize_net).
    if (!bug(Mutant::kLateReturnAfterScrub)) dma_sync_ = false;
    // No page reference needed: unmap every page still mapped, inflight ones included.
    while (dma_mapped_.size() > 1) {
      const PageId p = dma_mapped_.back();
      dma_mapped_.pop_back();
      Page& pg = world_.page(p);
      pg.dma_addr = 0;
      pg.dma_index = 0;
      c.cost += costs_.dma_unmap;
      emit(PageEv::kDmaUnmap, p, c);
    }
  }
  if (!bug(Mutant::kDestroySkipsRingDrain)) empty_ring(c);
}

std::int32_t PagePool::release(Caller& c) {
  scrub(c);
  const std::int32_t infl = inflight();
  emit(PageEv::kPoolReleaseTry, kNoPage, c, infl, PageLoc::kOut);
  if (infl == 0 || bug(Mutant::kFreePoolWithInflight)) {
    // "Acquire producer lock to make sure producers have exited": a producer inside its critical
    // section holds the free back until its unlock (271683bb2cf3).
    if (producers_ > 0 && !bug(Mutant::kRingPutReleaseRace))
      free_pending_ = true;
    else
      free_pool(c);
  }
  return infl;
}

// __page_pool_destroy: unlist (only a pool that was listed: f9893fdac319), then free.
void PagePool::free_pool(Caller& c) {
  free_pending_ = false;
  if (p_.netdev || bug(Mutant::kUnlistUnlisted)) emit(PageEv::kPoolUnlist, kNoPage, c);
  freed_ = true;
  emit(PageEv::kPoolFreed, kNoPage, c);
}

void PagePool::disable_direct_recycling(Caller& c) {
  if (!bug(Mutant::kDisableKeepsCpuid)) cpuid_ = -1;  // 56ef27e3abe6
  if (napi_list_owner_ && !bug(Mutant::kDisableKeepsNapi)) {  // dd64b232deb8
    napi_list_owner_ = nullptr;
    napi_id_ = -1;
  }
  emit(PageEv::kDirectRecycling, kNoPage, c, napi_list_owner_ ? napi_id_ : -1, PageLoc::kOut,
       static_cast<std::uint32_t>(cpuid_ + 1));
}

void PagePool::enable_direct_recycling(Caller& c, const int* napi_list_owner, int napi_id) {
  napi_list_owner_ = napi_list_owner;
  napi_id_ = napi_list_owner ? napi_id : -1;
  emit(PageEv::kDirectRecycling, kNoPage, c, napi_id_, PageLoc::kOut, static_cast<std::uint32_t>(cpuid_ + 1));
}

std::int32_t PagePool::destroy(Caller& c) {
  destroy_called_ = true;
  emit(PageEv::kPoolDestroy, kNoPage, c);
  if (!bug(Mutant::kDirectRecycleAfterDestroy)) disable_direct_recycling(c);
  free_frag(c);
  return release(c);
}

std::int32_t PagePool::release_retry(Caller& c) { return release(c); }

// page_pool_release_retry: "if (inflight <= 0) return" (43130d02baa1): a negative count is a
// driver bug the work cannot recover from, so it stops instead of rescheduling for ever.
bool PagePool::retry_again(std::int32_t inflight) const {
  return bug(Mutant::kRetryOnNegativeInflight) ? inflight != 0 : inflight > 0;
}

void PagePool::update_nid(Caller& c, int new_nid) {
  emit(PageEv::kUpdateNid, kNoPage, c, new_nid);
  p_.nid = new_nid;
  while (cache_count_) {
    const PageId p = cache_[--cache_count_];
    emit(PageEv::kCachePop, p, c, 0, PageLoc::kBuddy);
    return_netmem(c, p);
  }
}

}  // namespace ppsim::page_pool
