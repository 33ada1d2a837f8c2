#include "models/page_pool/page.h"

#include <algorithm>

namespace ppsim::page_pool {

const char* loc_name(PageLoc l) {
  switch (l) {
    case PageLoc::kBuddy: return "buddy";
    case PageLoc::kAllocCache: return "alloc_cache";
    case PageLoc::kRing: return "ring";
    case PageLoc::kCarving: return "frag_page";
    case PageLoc::kOut: return "out";
    case PageLoc::kDetached: return "detached";
  }
  return "?";
}

const char* buf_loc_name(BufLoc l) {
  switch (l) {
    case BufLoc::kDriver: return "driver";
    case BufLoc::kNicRing: return "nic_ring";
    case BufLoc::kStack: return "stack";
  }
  return "?";
}

const char* ev_name(PageEv e) {
  switch (e) {
    case PageEv::kHold: return "hold";
    case PageEv::kRelease: return "release";
    case PageEv::kCachePop: return "cache_pop";
    case PageEv::kCachePush: return "cache_push";
    case PageEv::kRingProduce: return "ring_produce";
    case PageEv::kRingConsume: return "ring_consume";
    case PageEv::kFragCarve: return "frag_carve";
    case PageEv::kFragHandOut: return "frag_hand_out";
    case PageEv::kFragDrain: return "frag_drain";
    case PageEv::kPut: return "put";
    case PageEv::kDmaMap: return "dma_map";
    case PageEv::kDmaUnmap: return "dma_unmap";
    case PageEv::kDmaSyncForDevice: return "dma_sync_for_device";
    case PageEv::kPoolDestroy: return "pool_destroy";
    case PageEv::kPoolReleaseTry: return "pool_release";
    case PageEv::kPoolFreed: return "pool_freed";
    case PageEv::kUpdateNid: return "update_nid";
    case PageEv::kPostToNic: return "post_to_nic";
    case PageEv::kDmaWrite: return "dma_write";
    case PageEv::kToStack: return "to_stack";
    case PageEv::kGetPage: return "get_page";
    case PageEv::kPutPage: return "put_page";
    case PageEv::kSockEnqueue: return "sock_enqueue";
    case PageEv::kSockDequeue: return "sock_dequeue";
    case PageEv::kDeferFree: return "defer_free";
    case PageEv::kDeferFlush: return "defer_flush";
    case PageEv::kCpuWrite: return "cpu_write";
    case PageEv::kDataWrite: return "data_write";
    case PageEv::kHeadCopy: return "head_copy";
    case PageEv::kRxDropCounted: return "rx_drop_counted";
    case PageEv::kUserDeliver: return "user_deliver";
    case PageEv::kPageClear: return "page_clear";
    case PageEv::kUserMap: return "user_map";
    case PageEv::kUserUnmap: return "user_unmap";
    case PageEv::kTlbShootdown: return "tlb_shootdown";
    case PageEv::kUserReturn: return "user_return";
    case PageEv::kProducerLock: return "producer_lock";
    case PageEv::kProducerUnlock: return "producer_unlock";
    case PageEv::kPpRef: return "pp_ref";
    case PageEv::kRefMove: return "ref_move";
    case PageEv::kDirectRecycling: return "direct_recycling";
    case PageEv::kPoolUnlist: return "pool_unlist";
    case PageEv::kNapiEnable: return "napi_enable";
    case PageEv::kNapiDisable: return "napi_disable";
    case PageEv::kNapiDel: return "napi_del";
  }
  return "?";
}

PageWorld::PageWorld(const Config& cfg)
    : free_(std::max(1, cfg.numa_nodes)),
      capacity_(cfg.capacity_pages),
      pfm_state_(cfg.seed * 0x9e3779b97f4a7c15ULL + 1),
      pfm_fraction_(cfg.pfmemalloc_fraction),
      cpu_node_(cfg.cpu_node),
      nodes_(std::max(1, cfg.numa_nodes)),
      preempt_rt_(cfg.preempt_rt) {
  pages_.reserve(std::min<std::uint32_t>(capacity_, 1u << 16));
}

int PageWorld::node_of_cpu(int cpu) const {
  if (cpu >= 0 && cpu < static_cast<int>(cpu_node_.size())) return cpu_node_[cpu];
  return 0;
}

std::uint64_t PageWorld::free_pages() const { return capacity_ - in_use_; }

PageId PageWorld::materialize(int nid) {
  // Pages are created lazily, numbered per node so pfns look like distinct memory ranges.
  const PageId id = static_cast<PageId>(pages_.size());
  Page pg;
  pg.nid = nid;
  pg.pfn = (static_cast<std::uint64_t>(nid) << 28) + 0x100000 + id;
  pages_.push_back(pg);
  if (on_grow && pages_.size() % kGrowCheckPages == 0) on_grow();
  return id;
}

std::uint32_t PageWorld::alloc_bulk(int nid, int cpu, std::uint32_t n, PageId* out) {
  std::uint32_t got = 0;
  for (; got < n; ++got) {
    PageId p = alloc_one(nid, cpu, 0);
    if (p == kNoPage) break;
    out[got] = p;
  }
  return got;
}

PageId PageWorld::alloc_one(int nid, int cpu, std::uint32_t order) {
  const std::uint64_t need = 1ull << order;
  if (in_use_ + need > capacity_) return kNoPage;
  const int node = nid < 0 ? node_of_cpu(cpu) : std::min(nid, nodes_ - 1);
  PageId p;
  auto& fl = free_[node];
  if (order == 0 && !fl.empty()) {
    p = fl.back();
    fl.pop_back();
  } else {
    p = materialize(node);
  }
  in_use_ += need;
  ++buddy_allocs;
  Page& pg = pages_[p];
  pg.refcount = 1;
  pg.pp_ref_count = 0;
  pg.pool = -1;
  pg.pp_magic = 0;
  pg.order = order;
  pg.pfmemalloc = false;
  pg.zc_clean = false;
  if (pfm_fraction_ > 0) {
    pfm_state_ = pfm_state_ * 6364136223846793005ULL + 1442695040888963407ULL;
    pg.pfmemalloc = static_cast<double>(pfm_state_ >> 11) * 0x1.0p-53 < pfm_fraction_;
  }
  return p;
}

void PageWorld::put_page(PageId p) {
  Page& pg = pages_[p];
  if (--pg.refcount > 0) return;
  in_use_ -= 1ull << pg.order;
  ++buddy_frees;
  if (pg.order == 0) free_[pg.nid].push_back(p);
  // Higher-order pages are not reused by id (each allocation materializes a new one).
}

void PageWorld::unsubscribe(PageObserver* o) {
  observers_.erase(std::remove(observers_.begin(), observers_.end(), o), observers_.end());
  checker_first_ = !observers_.empty() && observers_.front()->is_checker();
}

}  // namespace ppsim::page_pool
