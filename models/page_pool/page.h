// Pages, the page allocator ("buddy"), and the events every page movement emits.
//
// A Page mirrors the fields of struct page / netmem that page_pool reads and writes
// (include/net/netmem.h): _refcount, pp_ref_count, pp, pp_magic, dma_addr, nid, pfmemalloc.
// Models move pages and emit PageEvents on a PageBus; the invariant checker, the tracer, stats
// and cost models subscribe to the bus (they are never called by the models directly).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sim/time.h"

namespace ppsim::page_pool {

using PageId = std::uint32_t;
constexpr PageId kNoPage = UINT32_MAX;
constexpr std::uint32_t kPageSize = 4096;
constexpr std::uint64_t kPpSignature = 0x40;  // PP_SIGNATURE on x86_64 (POISON_POINTER_DELTA elided)

struct Page {
  std::uint64_t pfn = 0;
  std::int64_t refcount = 0;      // struct page _refcount
  std::int64_t pp_ref_count = 0;  // netmem pp_ref_count (frag/bias accounting)
  int pool = -1;                  // netmem->pp (pool id), -1 when not a pool page
  std::uint64_t pp_magic = 0;
  std::uint64_t dma_addr = 0;     // 0 when not mapped
  std::uint32_t dma_index = 0;    // slot in the pool's dma_mapped table (the kernel's xarray id), 0 = none
  int nid = 0;                    // NUMA node
  bool pfmemalloc = false;        // allocated from emergency reserves: never recycled
  std::uint32_t order = 0;
  // Zero-copy design (not in 6.18): the page holds only the application's data (it was cleared,
  // and only its packets were written since); reset when another flow's packet lands in it.
  bool zc_clean = false;
  // A frame was copied into it since the allocator first handed it out in this run (set by the
  // veth model's skb_pp_cow_data only). A page that comes back from the allocator's free lists
  // was; one never handed out before may be memory the host has not backed (veth.fresh_page_ns).
  bool touched = false;
  // The CPUs whose caches last wrote a frame into the page's data and last copied data out of it
  // (-1: none in this run). A copy that meets lines another CPU's cache holds pays
  // cpus.remote_copy_ns_per_kib (set by the veth model and the socket reader only).
  std::int16_t data_writer_cpu = -1;
  std::int16_t data_reader_cpu = -1;
};
static_assert(sizeof(Page) <= 72, "Page is copied in hot paths: keep it within 72 bytes");

// Where a page is, as the checker and the tracer see it.
enum class PageLoc : std::uint8_t {
  kBuddy,      // free in the page allocator
  kAllocCache, // pool->alloc.cache (lockless, NAPI-only)
  kRing,       // pool->ring (ptr_ring)
  kCarving,    // pool->frag_page: being split into frags; the pool holds the bias
  kOut,        // handed out: buffers in the driver, the NIC ring or the stack
  kDetached,   // released by the pool while someone still holds a page reference
};
const char* loc_name(PageLoc l);

// Where a handed-out buffer (a whole page or one frag of it) is.
enum class BufLoc : std::uint8_t { kDriver, kNicRing, kStack };
const char* buf_loc_name(BufLoc l);

// Execution context of the code that acts on a page (the kernel's in_softirq(), smp_processor_id()).
struct ExecCtx {
  int cpu = 0;
  bool softirq = false;
  // Process context with bottom halves disabled (local_bh_disable): in_softirq() is true, so
  // page_pool_napi_local() may allow direct recycling (kfree_skb_napi_cache does this).
  bool bh_disabled = false;
  // The caller guarantees no concurrent pool access (e.g. ring fill in ndo_open before NAPI is
  // enabled): alloc-cache access is legal outside NAPI.
  bool exclusive = false;
  // Hard interrupt context (in_hardirq()): page_pool must not be entered
  // (__page_pool_put_page: lockdep_assert_no_hardirq).
  bool hardirq = false;
  // Atomic section (a spinlock or rcu_read_lock() held): the code may not sleep, so no mutex
  // (page_pool_destroy takes page_pools_lock: net/core/page_pool_user.c).
  bool atomic = false;
  const char* task = "ksoftirqd";
  int pid = 0;
};

enum class PageEv : std::uint8_t {
  // pool-internal (emitted by PagePool)
  kHold,           // slow path: page taken from the buddy allocator into the pool (trace: state_hold)
  kRelease,        // page_pool_return_netmem: release_cnt++, page leaves the pool (trace: state_release)
  kCachePop,       // alloc: alloc cache → caller
  kCachePush,      // recycle (direct) or refill: → alloc cache
  kRingProduce,    // recycle: → ptr_ring
  kRingConsume,    // refill/drain: ptr_ring → (cache or release)
  kFragCarve,      // page becomes pool->frag_page (bias set)
  kFragHandOut,    // one more frag handed to the caller (frag_users++)
  kFragDrain,      // pool lets go of its frag page (bias removed)
  kPut,            // a user drops one pp reference (page_pool_put_netmem / unref)
  kDmaMap,
  kDmaUnmap,
  kDmaSyncForDevice,
  kPoolDestroy,    // page_pool_destroy called (direct recycling disabled)
  kPoolReleaseTry, // page_pool_release: inflight check (trace: page_pool_release)
  kPoolFreed,      // __page_pool_destroy: the pool struct is gone
  kUpdateNid,
  // outside the pool (emitted by driver / NIC / consumer models)
  kPostToNic,      // buffer put on an RX descriptor: the device may DMA into it
  kDmaWrite,       // the device wrote packet data into a buffer
  kToStack,        // descriptor completed: buffer belongs to the CPU / an skb
  kGetPage,        // extra page reference taken (get_page)
  kPutPage,        // extra page reference dropped (put_page)
  kSockEnqueue,    // skb queued on the socket receive queue (softirq CPU); value = queue length
  kSockDequeue,    // the reader takes an skb off the socket queue; value = packet bytes it copies
  kDeferFree,      // skb_attempt_defer_free: skb put on the allocating CPU's defer list; value = that CPU
  kDeferFlush,     // skb_defer_free_flush: the owning CPU takes its defer list; value = skbs on it
  // read-only packet pages and zero-copy delivery to user space (docs/zerocopy.md)
  kCpuWrite,       // the CPU writes into a buffer's page (build_skb's skb_shared_info); value = bytes
  kDataWrite,      // software writes packet data into a buffer (a copy, or a guest's own write); value = bytes, flow
  kHeadCopy,       // read-only skb: headers copied out of the page into a separate head; value = bytes
  kRxDropCounted,  // a buffer holding a received packet is freed without delivery, counted as a drop
  kUserDeliver,    // XDP redirected the buffer to the zero-copy consumer's queue; value = application
  kPageClear,      // the kernel zeroes the page outside the packet before it is mapped; value = bytes
  kUserMap,        // the page is mapped read-only into the application; value = application, flow = 1 if persistent
  kUserUnmap,      // its PTEs are removed (other CPUs may still hold stale TLB entries)
  kTlbShootdown,   // every CPU that ran the application has flushed the page; value = IPIs sent
  kUserReturn,     // the application gave the page back (the put into the pool follows)
  // locking, reference kinds and object lifetimes (docs/bug-history.md)
  kProducerLock,   // page_pool_producer_lock: value 1 = spin_lock_bh, 0 = spin_lock (caller in softirq)
  kProducerUnlock, // page_pool_producer_unlock: value = the variant released
  kPpRef,          // `holder` takes one more pp reference (page_pool_ref_netmem, skb_pp_frag_ref); value = pp_ref_count
  kRefMove,        // a reference changes holder (skb_try_coalesce moves from's frag to `to`); value = old holder
  kDirectRecycling,// page_pool_enable/disable_direct_recycling: value = the NAPI linked, -1 = none (cpuid cleared too)
  kPoolUnlist,     // __page_pool_destroy → page_pool_unlist: the pool leaves its netdev's list
  kNapiEnable,     // napi_enable: value = NAPI id (pool -1)
  kNapiDisable,    // napi_disable: value = NAPI id
  kNapiDel,        // netif_napi_del: the NAPI instance is freed; value = NAPI id
};
const char* ev_name(PageEv e);

// Movement events name their destination in `to`. kBuddy on a kCachePop / kRingConsume /
// kFragDrain means "taken out to be released" (a kRelease follows in the same call).
struct PageEvent {
  PageEv kind;
  PageId page = kNoPage;
  int pool = -1;
  std::uint32_t offset = 0;  // buffer offset within the page (frags)
  std::int64_t value = 0;    // event-specific: hold/release count, inflight, bytes synced, cnt, …
  PageLoc to = PageLoc::kOut;  // destination for movement events
  const ExecCtx* ctx = nullptr;
  sim::Picos time = 0;
  // CPU time of the operation that emitted the event (Caller::cost), or null for device events.
  // Cost models that observe the bus (cacheline ownership) add their delay here.
  sim::Picos* cost = nullptr;
  std::uint32_t flow = 0;    // flow of the packet (kDmaWrite, kDataWrite, kUserDeliver)
  // Who holds the reference the event takes, drops or moves: an skb's data area (skb_shared_info,
  // shared by clones), 0 when unnamed (the driver, or a holder the model does not track).
  std::uint32_t holder = 0;
};

class PageWorld;

class PageObserver {
 public:
  virtual ~PageObserver() = default;
  virtual void on_event(const PageEvent& ev, const PageWorld& world) = 0;
  // A PageChecker: PageWorld::emit calls it without a virtual call.
  bool is_checker() const { return is_checker_; }

 protected:
  bool is_checker_ = false;
};

// All pages that exist, the buddy allocator, the bus, and the clock the events are stamped with.
class PageWorld {
 public:
  struct Config {
    std::uint32_t capacity_pages = 262144;  // pages the allocator can hand out (1 GiB)
    int numa_nodes = 1;
    double pfmemalloc_fraction = 0.0;       // pages handed out as pfmemalloc (memory pressure)
    bool preempt_rt = false;                // CONFIG_PREEMPT_RT: softirqs and BH-disabled sections are preemptible
    std::uint64_t seed = 1;
    std::vector<int> cpu_node;              // NUMA node of each CPU (numa_mem_id())
  };
  explicit PageWorld(const Config& cfg);

  // alloc_pages_bulk_node(): up to n order-0 pages on node `nid`; may return fewer when memory
  // runs out. Pages come back with refcount 1.
  // nid -1 (NUMA_NO_NODE) means the node of `cpu`.
  std::uint32_t alloc_bulk(int nid, int cpu, std::uint32_t n, PageId* out);
  PageId alloc_one(int nid, int cpu, std::uint32_t order);  // kNoPage when out of memory
  int node_of_cpu(int cpu) const;
  // put_page(): drops one reference; at zero the page returns to the allocator.
  void put_page(PageId p);
  void get_page(PageId p) { ++pages_[p].refcount; }

  Page& page(PageId p) { return pages_[p]; }
  const Page& page(PageId p) const { return pages_[p]; }
  std::size_t page_count() const { return pages_.size(); }
  std::uint64_t free_pages() const;
  std::uint64_t pages_in_use() const { return in_use_; }

  // Defined in checker.cc, out of line: when the first observer is the checker, its fast path is
  // inlined there instead of reached by a virtual call, and the emit sites carry only the event
  // and a call, not the observer loop.
  void emit(const PageEvent& ev) const;
  // Emits a buffer event (nothing when nobody observes). `ctx`/`cost` are null for device
  // events; `time` defaults to `now`.
  void emit(PageEv kind, PageId page, int pool, std::uint32_t offset, std::int64_t value, const ExecCtx* ctx,
            sim::Picos* cost, sim::Picos time = -1, std::uint32_t flow = 0, std::uint32_t holder = 0,
            PageLoc to = PageLoc::kOut) const {
    if (observers_.empty()) return;
    // Every field in one initialiser (member order): no default is stored first and overwritten.
    const PageEvent ev{kind, page, pool, offset, value, to, ctx, time < 0 ? now : time, cost, flow, holder};
    emit(ev);
  }
  bool observed() const { return !observers_.empty(); }
  void subscribe(PageObserver* o) {
    observers_.push_back(o);
    checker_first_ = observers_.front()->is_checker();
  }
  void unsubscribe(PageObserver* o);

  bool preempt_rt() const { return preempt_rt_; }
  // A new reference holder id (an skb's data area), never 0.
  std::uint32_t new_holder() { return ++holders_; }

  // The clock events are stamped with (the world sets it before calling a model).
  sim::Picos now = 0;
  // Called each time another kGrowCheckPages pages have been created, so that the owner can check
  // its memory budget while a single event allocates in bulk (a ring fill).
  static constexpr std::size_t kGrowCheckPages = 16384;
  std::function<void()> on_grow;
  std::uint64_t buddy_allocs = 0, buddy_frees = 0;

 private:
  PageId materialize(int nid);
  std::vector<Page> pages_;
  std::vector<std::vector<PageId>> free_;  // per node, LIFO like the per-cpu page lists
  std::uint32_t capacity_;
  std::uint64_t in_use_ = 0;
  std::uint64_t pfm_state_;
  double pfm_fraction_;
  std::vector<PageObserver*> observers_;
  bool checker_first_ = false;  // observers_[0] is a PageChecker
  std::vector<int> cpu_node_;
  int nodes_;
  bool preempt_rt_;
  std::uint32_t holders_ = 0;
};

}  // namespace ppsim::page_pool
