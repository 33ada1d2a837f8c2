// The verification harness for pages: an observer on the PageWorld bus that keeps its own shadow
// of every page (where it is, who holds which buffer, mapped or not, synced or not) and of every
// pool (pages in its world, alloc-cache size, destroyed, freed), and checks each event against
// the allowed transitions and the recycling invariants. It never trusts the model's own state
// for what it checks: the pool's counters are compared with the shadow, not the other way round.
//
// Invariants (names appear in violations and docs/verification.md):
//   state_transition        event not allowed from the page's current state (two places at once)
//   no_double_put           a put of a buffer that is not outstanding (already returned)
//   conservation            pages_state_hold_cnt - release_cnt != pages in the pool's world
//   pp_ref_count_nonneg     pp_ref_count went negative
//   pp_ref_count_consistent pp_ref_count disagrees with the frags still out
//   recycle_refcount_one    a page entered the cache or ring with refcount != 1 or pp_ref_count != 1
//   cache_napi_only         alloc-cache access outside the pool's NAPI context
//   no_cache_after_destroy  a page recycled into a destroyed pool's alloc cache
//   cache_bound             more than PP_ALLOC_CACHE_SIZE pages in the alloc cache
//   no_use_after_free       any event on a pool after it was freed
//   frag_reuse_with_users   a frag page re-carved while frags of it are still out
//   dma_into_posted_mapped  device DMA into a buffer not on the NIC ring, or into an unmapped page
//   sync_for_device         device DMA into a page the CPU used and nobody synced for the device
//   unmapped_at_destroy     a page of the pool still DMA-mapped after page_pool_release ran
//   release_unmapped        a page left the pool while still DMA-mapped
//   inflight_zero_after_destroy  (end of run) a destroyed pool never reached inflight 0 / leaked pages
//   rx_packet_lost          a buffer holding a received packet went back to the pool without being
//                           delivered to the stack or counted as a drop
// Read-only packet pages and zero-copy delivery (docs/zerocopy.md):
//   read_only_no_cpu_write  the CPU wrote into a page of a read-only pool
//   user_page_reuse         a page the application holds or has mapped was recycled, re-posted to the
//                           NIC, DMA-written, returned while still mapped, or freed
//   user_unmap_shootdown    a page was reused before the TLB shootdown of its unmapping completed
//   user_page_foreign_data  a page mapped into the application holds bytes it may not see: stale
//                           kernel data (never cleared) or another flow's packet
//   user_page_exclusive     a mapped page also holds another buffer still in use (frag sharing)
//   user_limit              more pages out to the application than the pool's limit
// Recyclability, reference kinds, locking and lifetimes (docs/bug-history.md):
//   never_recycle_pfmemalloc  a page from the emergency reserves entered the alloc cache or the ring
//   pp_page_door            a pool page went back to the page allocator by put_page while its pool
//                           still counted it (not marked for recycle, or not recognised as a pool page)
//   ref_kind_match          a reference dropped with the other kind than it was taken with (a pp
//                           reference by put_page, a page reference through page_pool)
//   pool_free_with_ops_in_progress  the pool was freed while a producer was inside its ring lock
//   release_retry_stops     the deferred release ran again after a retry that saw inflight <= 0
//   ring_lock_variant       the ptr_ring producer lock taken with the variant its context forbids
//                           (plain spin_lock with BHs enabled, or any from hard interrupt context)
//   ring_lock_balanced      the producer unlock used another variant than the lock (BHs left off)
//   dma_sync_unmapped       a page synced for the device after it was DMA-unmapped
//   refill_only_when_empty  the ring refilled an alloc cache that was not empty
//   refill_node_local       the ring refilled the alloc cache with a page from another NUMA node than
//                           the pool's (p.nid, or the refilling CPU's node for NUMA_NO_NODE)
//   destroy_may_sleep       page_pool_destroy called in atomic context (it takes mutexes)
//   pool_list_consistent    a pool unlisted from its netdev without having been listed
//   unlink_napi_disabled    a pool unlinked from (or destroyed while linked to) a NAPI that may run
//   napi_outlives_pool      a NAPI freed while a live pool still points at it
// Efficiency (liveness), checked over windows with the limits in Limits (checker.* parameters):
//   recycle_efficiency      pages released although recyclable (refcount 1, not pfmemalloc, pool
//                           live, ring not full) per packet above max_release_pages_per_packet, per
//                           window of window_packets packets after the first (warm-up) window
//   direct_recycle_efficiency  recyclable pages freed in the pool's NAPI context (page_pool_napi_local
//                           holds) that went to the ring while the alloc cache had room, above
//                           max_direct_miss_ratio of such frees, per window of window_packets frees
//   direct_recycling_lost   a pool allocates in its NAPI's poll again after direct recycling was
//                           disabled and never re-enabled
//   rx_buffer_waste         a whole page posted for a buffer max_pinned_per_buffer_ratio times smaller
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/page_pool/page.h"
#include "models/page_pool/page_pool.h"
#include "sim/invariants.h"

namespace ppsim::page_pool {

class PageChecker final : public PageObserver {
 public:
  // Thresholds of the efficiency invariants (scenario parameters checker.*).
  struct Limits {
    double max_release_pages_per_packet = 0.05;
    std::uint32_t window_packets = 512;
    double max_direct_miss_ratio = 0.1;
    double max_pinned_per_buffer_ratio = 2.0;
  };
  // Its count of events is the verdicts' count of checks (lent, not added to on every event).
  explicit PageChecker(sim::Verdicts& verdicts) : verdicts_(verdicts) {
    is_checker_ = true;
    verdicts_.lend_counter(&events_);
  }
  ~PageChecker() override { verdicts_.return_counter(&events_); }
  PageChecker(const PageChecker&) = delete;
  PageChecker& operator=(const PageChecker&) = delete;
  void set_limits(const Limits& l) { limits_ = l; }
  void add_pool(const PagePool* pool);
  // A NAPI instance: id as in events and PoolParams::napi_id, and its list_owner (where it runs).
  void add_napi(int id, const int* list_owner);
  // The NAPI that owns the pool's allocation side, when the pool itself does not name it (veth
  // passes no p.napi): alloc-cache access in that NAPI's softirq is legal.
  void set_owner_napi(const PagePool* pool, const int* list_owner);
  // Flows [0, n) belong to the zero-copy application: their data may be mapped into it.
  void set_app_flows(std::uint32_t n) { app_flows_ = n; }
  void on_event(const PageEvent& ev, const PageWorld& world) override;
  // on_event's body, which PageWorld::emit inlines (both are in checker.cc).
  [[gnu::always_inline]] inline void observe(const PageEvent& ev, const PageWorld& world);
  // End-of-run checks. `consumers_done`: every consumer has let go of its pages, so destroyed
  // pools must have reached inflight 0 and every pool page must be back in the allocator.
  void finish(sim::Picos now, const PageWorld& world, bool consumers_done);
  bool stop_requested() const { return stop_; }
  std::function<void()> on_stop;  // called once when a violation asks the run to stop
  std::uint64_t events() const { return events_; }

 private:
  static constexpr int kHistory = 8;
  enum class S : std::uint8_t { kBuddy, kAllocCache, kRing, kCarving, kOut, kReturning, kDetached };
  struct Hist {
    sim::Picos t;
    std::uint32_t offset;
    PageEv ev;
    S to;
    std::int16_t ctx;  // cpu * 2 + 1 in softirq; -2 without a context (cpu -1)
  };
  struct Buf {
    std::uint32_t offset;
    BufLoc loc;
    bool filled = false;     // holds a received packet (DMA or software write)
    bool accounted = false;  // that packet was delivered to the stack or counted as dropped
    std::uint32_t holder = 0;  // who holds this pp reference (an skb's data area; 0: driver/unnamed)
  };
  // The pp references out on one page, in the order a std::vector would keep them: inline for
  // the usual one or two (a whole page, or a page split in two buffers), on the heap beyond.
  class BufList {
   public:
    static constexpr std::uint32_t kInline = 2;
    BufList() = default;
    BufList(BufList&& o) noexcept { take(o); }
    BufList& operator=(BufList&& o) noexcept {
      if (this != &o) take(o);
      return *this;
    }
    std::uint32_t size() const { return n_; }
    bool empty() const { return n_ == 0; }
    Buf* begin() { return data_; }
    Buf* end() { return data_ + n_; }
    const Buf* begin() const { return data_; }
    const Buf* end() const { return data_ + n_; }
    Buf& operator[](std::uint32_t i) { return data_[i]; }
    const Buf& operator[](std::uint32_t i) const { return data_[i]; }
    Buf& back() { return data_[n_ - 1]; }
    void clear() { n_ = 0; }
    bool has_room() const { return n_ < cap_; }
    void pop_back() { --n_; }
    void push_back(const Buf& b) {
      if (n_ == cap_) grow();
      data_[n_++] = b;
    }
    // Without the growth check (and so without a call): the list has room (has_room(), or one).
    void push_back_in_room(const Buf& b) { data_[n_++] = b; }
    void assign_one(const Buf& b) {
      n_ = 1;
      data_[0] = b;
    }

   private:
    void grow();
    void take(BufList& o);
    Buf* data_ = inline_;
    std::uint32_t n_ = 0, cap_ = kInline;
    Buf inline_[kInline];
    std::unique_ptr<Buf[]> heap_;
  };
  // Whose bytes a page may hold (bits): stale kernel data, other flows' packets, the application's.
  enum Content : std::uint8_t { kKernelData = 1, kOtherFlow = 2, kAppFlow = 4 };
  struct Shadow {
    S s = S::kBuddy;
    int pool = -1;
    bool mapped = false;
    bool needs_sync = false;
    std::uint8_t content = kKernelData, last_packet = 0;
    bool user_held = false, user_mapped = false, persistent = false, tlb_stale = false;
    bool pfmemalloc = false;      // the allocator handed it out from the reserves (seen at hold)
    bool decision = false;        // in kReturning because its last pp reference was dropped
    bool direct_eligible = false; // that drop was napi-local with room in the alloc cache
    std::vector<std::uint32_t> page_refs;  // holders of page references (get_page)
    BufList bufs;                 // pp references out (driver buffers, skb frags, extra pp refs)
    std::uint32_t nrec = 0;       // events recorded; the last min(nrec, kHistory) are in hist
    std::array<Hist, kHistory> hist{};
  };
  struct PoolShadow {
    const PagePool* pool = nullptr;
    const int* owner_napi = nullptr;
    std::int64_t in_world = 0;
    std::int64_t cache = 0;
    std::int64_t ring = 0;
    std::int64_t user_held = 0;
    bool destroyed = false, freed = false, released_once = false;
    int nid = -1;                                // p.nid as configured and updated (page_pool_update_nid)
    int napi = -1, ever_napi = -1, cpuid = -1;  // direct recycling as the events set it
    const int* napi_owner = nullptr;             // list_owner of `napi`
    bool listed = false, refilling = false, retry_saw_nonpositive = false, lost_reported = false;
    std::uint32_t ring_size = 0, ring_batch = 1, tries = 0;
    std::int64_t producers = 0;
    std::int64_t lock_variant = -1;
    std::uint64_t win_packets = 0, win_released = 0, windows = 0;
    std::uint64_t d_eligible = 0, d_missed = 0;
  };
  struct NapiShadow {
    const int* list_owner = nullptr;
    bool enabled = false, deleted = false;
  };

  static const char* sname(S s);
  // on_event handles the common transitions (alloc-cache pop and push, frag carving, posting,
  // device DMA, handing to the stack, puts, syncs) itself when every check on them passes, without
  // a call. Anything else (a check fails, a rarely set state is involved) goes, before any update,
  // to full_event: the reference, which checks every event and reports. A check added to or
  // changed in full_event must be added to the fast path's case too (or that case must send the
  // event on): `./ppsim mutants` and the collect-mode mutant results are the test that they agree.
  void full_event(const PageEvent& ev, const PageWorld& world);
  [[gnu::noinline]] void fast_put(const PageEvent& ev, const PageWorld& world, Shadow& s, PoolShadow& ps);
  [[gnu::noinline]] void fast_ring_consume(const PageEvent& ev, const PageWorld& world, Shadow& s, PoolShadow& ps);
  // An event the fast path passed: counted and recorded as full_event does.
  [[gnu::always_inline]] void accept(Shadow& s, const PageEvent& ev) {
    ++events_;
    record(s, ev);
  }
  // The per-event helpers are inline with their failure paths out of line: each event runs
  // several, and the checker is most of the cost of a checked run.
  [[gnu::always_inline]] Shadow& sh(PageId p) { return p < pages_.size() ? pages_[p] : grow(p); }
  Shadow& grow(PageId p);
  [[gnu::always_inline]] void record(Shadow& s, const PageEvent& ev) {
    const auto ctx = static_cast<std::int16_t>(ev.ctx ? ev.ctx->cpu * 2 + ev.ctx->softirq : -2);
    s.hist[s.nrec++ % kHistory] = Hist{ev.time, ev.offset, ev.kind, s.s, ctx};
  }
  void fail(const char* invariant, const PageEvent& ev, const std::string& detail);
  bool napi_context(const PoolShadow& ps, const PageEvent& ev, const PageWorld& world) const;
  bool napi_local(const PoolShadow& ps, const PageEvent& ev, const PageWorld& world) const;
  NapiShadow& napi(int id);
  Buf* find_holder_buf(Shadow& s, std::uint32_t offset, std::uint32_t holder);
  bool holds_pp_ref(const Shadow& s, std::uint32_t holder) const;
  void on_napi_event(const PageEvent& ev);
  void count_window(PoolShadow& ps, const PageEvent& ev);
  [[gnu::always_inline]] void expect(Shadow& s, const PageEvent& ev, S allowed) {
    if (s.s != allowed) wrong_state(s, ev, allowed);
  }
  void wrong_state(Shadow& s, const PageEvent& ev, S allowed);
  Buf* find_buf(Shadow& s, std::uint32_t offset);
  [[gnu::always_inline]] void check_conservation(const PoolShadow& ps, const PageEvent& ev) {
    if (ps.pool->inflight() != ps.in_world) conservation_failed(ps, ev);
  }
  void conservation_failed(const PoolShadow& ps, const PageEvent& ev);
  void on_pool_event(PoolShadow& ps, const PageEvent& ev, const PageWorld& world);
  std::uint8_t content_class(std::uint32_t flow) const { return flow < app_flows_ ? kAppFlow : kOtherFlow; }
  void packet_written(Shadow& s, Buf* b, const PageEvent& ev, const Page& pg);
  // What packet_written records (whose bytes the page holds), without its check; returns the class.
  std::uint8_t packet_content(Shadow& s, Buf* b, const PageEvent& ev, const Page& pg);
  // The page must not be reused (recycled, posted, written, freed) while the application has it.
  [[gnu::always_inline]] void check_not_with_user(Shadow& s, const PageEvent& ev, const char* what) {
    if (s.user_held || s.user_mapped || s.tlb_stale) with_user(s, ev, what);
  }
  void with_user(Shadow& s, const PageEvent& ev, const char* what);
  static std::string content_names(std::uint8_t bits);

  sim::Verdicts& verdicts_;
  std::vector<Shadow> pages_;
  std::vector<PoolShadow> pools_;
  std::uint32_t npages_ = 0, npools_ = 0;  // pages_.size() and pools_.size(), read on every event
  std::vector<std::pair<int, NapiShadow>> napis_;  // by NAPI id (a handful)
  Limits limits_;
  std::uint64_t events_ = 0;
  std::uint32_t app_flows_ = 0;
  bool stop_ = false;
};

}  // namespace ppsim::page_pool
