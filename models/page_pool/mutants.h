// Deliberately wrong variants of the page_pool model, one per historical bug class. The
// verification harness must catch every one (`ppsim mutants`); the correct model has none set.
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
  kCount
};

struct MutantInfo {
  Mutant id;
  const char* name;
  const char* bug_class;  // what went wrong, and the kernel history it mirrors
};
const std::vector<MutantInfo>& all_mutants();
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
