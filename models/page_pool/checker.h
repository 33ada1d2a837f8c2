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
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/page_pool/page.h"
#include "models/page_pool/page_pool.h"
#include "sim/invariants.h"

namespace ppsim::page_pool {

class PageChecker : public PageObserver {
 public:
  explicit PageChecker(sim::Verdicts& verdicts) : verdicts_(verdicts) {}
  void add_pool(const PagePool* pool);
  // The NAPI that owns the pool's allocation side, when the pool itself does not name it (veth
  // passes no p.napi): alloc-cache access in that NAPI's softirq is legal.
  void set_owner_napi(const PagePool* pool, const int* list_owner);
  // Flows [0, n) belong to the zero-copy application: their data may be mapped into it.
  void set_app_flows(std::uint32_t n) { app_flows_ = n; }
  void on_event(const PageEvent& ev, const PageWorld& world) override;
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
    PageEv ev;
    S to;
    std::int16_t cpu;
    bool softirq;
    std::uint32_t offset;
  };
  struct Buf {
    std::uint32_t offset;
    BufLoc loc;
    bool filled = false;     // holds a received packet (DMA or software write)
    bool accounted = false;  // that packet was delivered to the stack or counted as dropped
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
    std::int64_t extra_refs = 0;
    std::vector<Buf> bufs;
    std::array<Hist, kHistory> hist{};
    std::uint8_t nhist = 0, hpos = 0;
  };
  struct PoolShadow {
    const PagePool* pool = nullptr;
    const int* owner_napi = nullptr;
    std::int64_t in_world = 0;
    std::int64_t cache = 0;
    std::int64_t user_held = 0;
    bool destroyed = false, freed = false, released_once = false;
  };

  static const char* sname(S s);
  Shadow& sh(PageId p);
  void record(Shadow& s, const PageEvent& ev);
  void fail(const char* invariant, const PageEvent& ev, const std::string& detail);
  bool napi_context(const PoolShadow& ps, const PageEvent& ev) const;
  void expect(Shadow& s, const PageEvent& ev, std::initializer_list<S> allowed);
  Buf* find_buf(Shadow& s, std::uint32_t offset);
  void check_conservation(const PoolShadow& ps, const PageEvent& ev);
  void on_pool_event(PoolShadow& ps, const PageEvent& ev, const PageWorld& world);
  std::uint8_t content_class(std::uint32_t flow) const { return flow < app_flows_ ? kAppFlow : kOtherFlow; }
  void packet_written(Shadow& s, Buf* b, const PageEvent& ev, const Page& pg);
  // The page must not be reused (recycled, posted, written, freed) while the application has it.
  void check_not_with_user(Shadow& s, const PageEvent& ev, const char* what);
  static std::string content_names(std::uint8_t bits);

  sim::Verdicts& verdicts_;
  std::vector<Shadow> pages_;
  std::vector<PoolShadow> pools_;
  std::uint64_t events_ = 0;
  std::uint32_t app_flows_ = 0;
  bool stop_ = false;
};

}  // namespace ppsim::page_pool
