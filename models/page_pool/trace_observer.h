// Writes the page_pool tracepoints (include/trace/events/page_pool.h) for model events:
//   page_pool_state_hold:    page_pool=%p netmem=%p is_net_iov=%lu, pfn=0x%lx hold=%u
//   page_pool_state_release: page_pool=%p netmem=%p is_net_iov=%lu pfn=0x%lx release=%u
//   page_pool_release:       page_pool=%p inflight=%d hold=%u release=%u cnt=%llu
//   page_pool_update_nid:    page_pool=%p pool_nid=%d new_nid=%d
// Pointers are printed the way tracefs prints hashed %p: 16 hex digits, stable within a run.
#pragma once
#include <vector>

#include "models/page_pool/page_pool.h"
#include "sim/tracer.h"

namespace ppsim::page_pool {

class TraceObserver : public PageObserver {
 public:
  explicit TraceObserver(sim::TraceWriter& out) : out_(out) {}
  void add_pool(const PagePool* pool);
  void on_event(const PageEvent& ev, const PageWorld& world) override;
  static std::uint64_t pool_ptr(int pool_id);
  static std::uint64_t netmem_ptr(std::uint64_t pfn);

 private:
  sim::TraceWriter& out_;
  std::vector<const PagePool*> pools_;
};

}  // namespace ppsim::page_pool
