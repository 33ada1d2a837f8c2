// A model of Linux's page_pool (net/core/page_pool.c and include/net/page_pool/helpers.h, 6.18).
//
// Allocation: alloc cache (LIFO, 128, NAPI only) → refill of up to 64 from the ptr_ring
// (page_pool_refill_alloc_cache; a page from another NUMA node is released: `waive`) → slow
// path: bulk of 64 order-0 pages from the allocator, each DMA-mapped and counted in
// pages_state_hold_cnt (or one high-order page). Frags: pool->frag_page with the
// BIAS_MAX pp_ref_count trick (page_pool_alloc_frag_netmem).
// Recycling (__page_pool_put_page): only the last pp reference continues; a page with
// refcount 1 and not pfmemalloc is synced for the device and goes to the alloc cache when
// allow_direct (or page_pool_napi_local()) and the cache has room, else to the ring; a full ring
// or a non-recyclable page is released (page_pool_return_netmem: unmap, release_cnt++, put_page).
// The ring put (page_pool_recycle_in_ring) is three steps: producer lock (spin_lock_bh outside
// softirq, spin_lock inside), produce + recycle stat, unlock with the variant taken. A producer
// between lock and unlock is an operation in progress: page_pool_release takes and drops the
// producer lock before freeing, so the free waits for it (here: happens at its unlock).
// Destroy (page_pool_destroy): disable direct recycling, free the frag page, then
// page_pool_release (flush the cache once, unmap every mapped page, drain the ring, check
// inflight = hold - release); if pages are inflight the world calls release_retry() every
// DEFER_TIME (1 s) while retry_again(inflight).
//
// The pool is plain C++ (no SystemC). Every page movement is an event on the PageWorld's bus;
// every operation adds its CPU cost to Caller::cost. Mutant switches re-create historical bug
// classes for the checker to catch (models/page_pool/mutants.h); they are off by default.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/page_pool/mutants.h"
#include "models/page_pool/page.h"
#include "models/page_pool/ptr_ring.h"
#include "sim/time.h"

namespace ppsim::page_pool {

constexpr std::uint32_t kAllocCacheSize = 128;   // PP_ALLOC_CACHE_SIZE
constexpr std::uint32_t kAllocCacheRefill = 64;  // PP_ALLOC_CACHE_REFILL
constexpr std::uint32_t kDefaultRingSize = 1024;
constexpr std::uint32_t kMaxRingSize = 16384;    // page_pool_init clamps pool_size here (ppsim refuses more)
constexpr std::uint32_t kMaxPageOrder = 10;      // MAX_PAGE_ORDER
constexpr std::int64_t kBiasMax = INT64_MAX >> 1;  // BIAS_MAX = LONG_MAX >> 1
constexpr int kNumaNoNode = -1;
constexpr sim::Picos kDeferTime = sim::kPicosPerSec;  // DEFER_TIME = 1000 ms
constexpr int kAnonNapiBase = 1 << 20;  // NAPI id given to a p.napi the creator did not name (+ pool id)

enum class DmaDir { kFromDevice, kBidirectional };

struct PoolParams {
  std::uint32_t order = 0;
  std::uint32_t pool_size = 0;  // 0 → 1024
  int nid = kNumaNoNode;
  bool dma_map = false;         // PP_FLAG_DMA_MAP
  bool dma_sync = false;        // PP_FLAG_DMA_SYNC_DEV
  bool dma_need_sync = true;    // dma_dev_need_sync(dev): false on coherent x86 without swiotlb
  DmaDir dma_dir = DmaDir::kFromDevice;
  std::uint32_t max_len = 0;
  std::uint32_t offset = 0;
  int cpuid = -1;               // page_pool_create_percpu
  const int* napi_list_owner = nullptr;  // &p.napi->list_owner, or null when the pool has no NAPI
  std::uint32_t dma_cache_alignment = 1;  // dma_get_cache_alignment(): 1 on x86
  std::uint32_t cacheline_bytes = 64;     // SMP_CACHE_BYTES (ptr_ring batch)
  // Read-only packet page mode (Brouer's memory model; not a 6.18 flag): the driver builds skbs
  // with a separate writable head, so the CPU must never write into this pool's pages.
  bool read_only = false;
  // Zero-copy delivery: at most this many pages may be out of the pool at once (on the NIC ring,
  // in flight, or held by the application); at the limit allocation fails, so the ring cannot
  // refill and the device drops on this queue only (0: no limit).
  std::uint32_t user_limit = 0;
  int napi_id = -1;     // identity of p.napi in events (-1: none); napi_list_owner is its list_owner
  bool netdev = true;   // p.netdev set: the pool is listed on its netdev (page_pool_list) until freed
};

// Validates like page_pool_init(); returns "" or the reason the kernel would refuse (-EINVAL).
std::string check_params(const PoolParams& p);

// CPU cost of each operation (added to Caller::cost). Defaults in models/page_pool/costs.cc.
struct PoolCosts {
  sim::Picos alloc_fast = 0;         // cache pop
  sim::Picos refill_per_page = 0;    // ptr_ring consume into the cache
  sim::Picos slow_fixed = 0;         // one bulk allocation call
  sim::Picos slow_per_page = 0;      // per page of a bulk allocation (buddy part)
  sim::Picos dma_map = 0;
  sim::Picos dma_unmap = 0;
  sim::Picos dma_sync_fixed = 0;     // per sync call when a sync is needed
  double dma_sync_per_byte_ps = 0;
  sim::Picos recycle_direct = 0;     // cache push
  sim::Picos recycle_ring = 0;       // producer lock + produce
  sim::Picos release = 0;            // page_pool_return_netmem + put_page to the allocator
  sim::Picos frag = 0;               // frag bookkeeping per frag handed out
  sim::Picos put_atomic = 0;         // atomic pp_ref_count decrement (frag pages)
};

struct AllocStats {  // struct page_pool_alloc_stats (+ user_limit, the zero-copy design's limit)
  std::uint64_t fast = 0, slow = 0, slow_high_order = 0, empty = 0, refill = 0, waive = 0, user_limit = 0;
};
struct RecycleStats {  // struct page_pool_recycle_stats (per CPU in the kernel)
  std::uint64_t cached = 0, cache_full = 0, ring = 0, ring_full = 0, released_refcnt = 0;
};

// Who is calling, and the CPU time the call costs.
struct Caller {
  ExecCtx ctx;
  sim::Picos cost = 0;
};

class PagePool {
 public:
  PagePool(int id, PageWorld& world, const PoolParams& params, const PoolCosts& costs, int ncpus,
           MutantSet mutants = {});

  // page_pool_alloc_netmems(): a whole page (pp_ref_count 1), or kNoPage when memory is out.
  PageId alloc(Caller& c);
  // page_pool_alloc_frag_netmem(): `size` bytes at *offset of the returned page.
  PageId alloc_frag(Caller& c, std::uint32_t size, std::uint32_t* offset);
  // page_pool_alloc_netmem() (helpers.h): a frag when 2*size fits a page, else a whole page;
  // *size becomes the page size for whole pages.
  PageId alloc_netmem(Caller& c, std::uint32_t* offset, std::uint32_t* size);

  // page_pool_put_netmem(): drop one pp reference; the last one recycles or releases the page.
  // dma_sync_size: bytes the device may have written (-1 → max_len). offset identifies the frag;
  // holder names who held the reference (0: the driver, or unnamed).
  void put(Caller& c, PageId p, std::int64_t dma_sync_size, bool allow_direct, std::uint32_t offset = 0,
           std::uint32_t holder = 0);
  // page_pool_ref_netmem(): `holder` takes one more pp reference on the buffer at `offset`.
  void ref(Caller& c, PageId p, std::uint32_t offset, std::uint32_t holder);

  // page_pool_destroy(): returns inflight after the first page_pool_release (0 → freed).
  std::int32_t destroy(Caller& c);
  // page_pool_release_retry(): one deferred retry; returns inflight.
  std::int32_t release_retry(Caller& c);
  // Whether the retry work reschedules itself after a release that saw `inflight`.
  bool retry_again(std::int32_t inflight) const;
  // page_pool_disable_direct_recycling(): pool->cpuid = -1, p.napi unlinked (the NAPI must not run).
  void disable_direct_recycling(Caller& c);
  // page_pool_enable_direct_recycling(): link the pool to a NAPI that may already be running.
  void enable_direct_recycling(Caller& c, const int* napi_list_owner, int napi_id);
  // Interleaving point inside page_pool_recycle_in_ring, after the produce, with the producer lock
  // held: the discrete-event model runs operations one at a time, so an operation another CPU
  // would run concurrently is injected here (the world uses it for page_pool_release).
  std::function<void(Caller&)> on_ring_locked;
  std::uint32_t producers_in_progress() const { return producers_; }
  // page_pool_update_nid()
  void update_nid(Caller& c, int new_nid);
  // A page goes out to the application (zero-copy delivery) / comes back from it.
  void user_hold() { ++user_out_; }
  void user_unhold() { --user_out_; }
  std::uint32_t user_outstanding() const { return user_out_; }
  std::uint32_t user_outstanding_max() const { return user_out_max_; }

  bool napi_local(const ExecCtx& ctx) const;  // page_pool_napi_local()
  std::int32_t inflight() const { return static_cast<std::int32_t>(hold_cnt_ - release_cnt_); }

  int id() const { return id_; }
  const PoolParams& params() const { return p_; }
  const AllocStats& alloc_stats() const { return alloc_stats_; }
  RecycleStats recycle_stats() const;  // summed over CPUs
  const RecycleStats& recycle_stats_cpu(int cpu) const { return recycle_stats_[cpu]; }
  std::uint32_t hold_cnt() const { return hold_cnt_; }
  std::uint32_t release_cnt() const { return release_cnt_; }
  std::uint32_t cache_count() const { return cache_count_; }
  std::uint32_t ring_count() const { return ring_.count(); }
  const PtrRing& ring() const { return ring_; }
  std::uint64_t destroy_cnt() const { return destroy_cnt_; }
  bool destroyed() const { return destroy_called_; }
  bool freed() const { return freed_; }
  PageId frag_page() const { return frag_page_; }
  std::uint64_t pages_mapped() const { return dma_mapped_.size() - 1; }
  std::uint64_t sync_bytes() const { return sync_bytes_; }

 private:
  // An event of this pool on the page bus (nothing is built when nobody observes it).
  void emit(PageEv kind, PageId p, Caller& c, std::int64_t value = 0, PageLoc to = PageLoc::kOut,
            std::uint32_t offset = 0, std::uint32_t holder = 0) const {
    world_.emit(kind, p, id_, offset, value, &c.ctx, &c.cost, -1, 0, holder, to);
  }
  PageId get_cached(Caller& c);
  PageId refill_alloc_cache(Caller& c);
  PageId alloc_slow(Caller& c);
  PageId alloc_page_order(Caller& c);
  bool dma_map(Caller& c, PageId p);
  void dma_sync_for_device(Caller& c, PageId p, std::int64_t size);
  void set_pp_info(PageId p);
  void return_netmem(Caller& c, PageId p);
  void release_dma(Caller& c, PageId p);
  bool can_be_recycled(PageId p) const;
  std::int64_t unref(PageId p, std::int64_t nr);
  // __page_pool_put_page: kNoPage when done, else the page to put in the ring.
  PageId put_page_internal(Caller& c, PageId p, std::int64_t dma_sync_size, bool allow_direct);
  void put_unrefed(Caller& c, PageId p, std::int64_t dma_sync_size, bool allow_direct);
  bool recycle_in_ring(Caller& c, PageId p);
  bool recycle_in_cache(Caller& c, PageId p);
  PageId drain_frag(Caller& c, PageId p);
  void free_frag(Caller& c);
  std::int32_t release(Caller& c);
  void free_pool(Caller& c);
  void scrub(Caller& c);
  void empty_ring(Caller& c);
  bool bug(Mutant m) const { return mutants_.has(m); }

  int id_;
  PageWorld& world_;
  PoolParams p_;
  PoolCosts costs_;
  MutantSet mutants_;
  std::array<PageId, kAllocCacheSize + 64> cache_{};  // room for the cache_no_bound mutant
  std::uint32_t cache_count_ = 0;
  PtrRing ring_;
  std::uint32_t hold_cnt_ = 0;     // pages_state_hold_cnt (u32, not atomic)
  std::uint32_t release_cnt_ = 0;  // pages_state_release_cnt (atomic in the kernel)
  PageId frag_page_ = kNoPage;
  std::uint32_t frag_offset_ = 0;
  std::int64_t frag_users_ = 0;
  int cpuid_;
  const int* napi_list_owner_;
  int napi_id_;
  bool dma_sync_;
  bool destroy_called_ = false, freed_ = false;
  std::uint32_t producers_ = 0;   // producers between page_pool_producer_lock and _unlock
  bool free_pending_ = false;     // release found inflight 0 while producers held the lock
  bool double_released_ = false;  // kRetryOnNegativeInflight: the driver's extra release happened
  std::uint64_t destroy_cnt_ = 0;
  std::vector<PageId> dma_mapped_{kNoPage};  // pool->dma_mapped (xarray, ids from 1)
  std::uint64_t sync_bytes_ = 0;
  std::uint32_t user_out_ = 0, user_out_max_ = 0;
  AllocStats alloc_stats_;
  std::vector<RecycleStats> recycle_stats_;
};

}  // namespace ppsim::page_pool
