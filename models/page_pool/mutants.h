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
  void add(Mutant m) { bits_ |= 1u << static_cast<unsigned>(m); }
  bool has(Mutant m) const { return bits_ & (1u << static_cast<unsigned>(m)); }
  bool any() const { return bits_ != 0; }

 private:
  std::uint32_t bits_ = 0;
};

}  // namespace ppsim::page_pool
