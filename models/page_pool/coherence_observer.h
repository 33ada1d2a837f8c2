// Cacheline bouncing in the receive path: a PageObserver that turns page and packet events into
// accesses to the kernel's hot cachelines (sim/cost/coherence.h) and adds their extra latency to
// the CPU cost of the operation in progress (PageEvent::cost).
//
// Event → lines (kernel fields in docs/coherence.md):
//   kCachePop / kCachePush     pool->alloc count + cache[] slot line, alloc/recycle stats   (W)
//   kRingProduce               producer_lock+producer (atomic), size/queue line (R), slot (R, W)
//   kRingConsume               size/queue (R), slot (R), consumer_head/tail (W), every batch (16)
//                              consumed: the NULLed slot lines (W); struct page (R, page_to_nid)
//   kPut                       struct page: pp_ref_count (R, or atomic on frag pages)
//   kRelease                   release_cnt (atomic, shares the ptr_ring size/queue line),
//                              struct page (_refcount via put_page: atomic)
//   kHold                      struct page (W), pages_state_hold_cnt (W)
//   kFrag*                     pool frag group (W), struct page pp_ref_count (W / atomic)
//   kPostToNic                 RX descriptor line (W), next_to_use (W)
//   kDmaWrite (device)         invalidates the descriptor line and the packet's data lines
//   kToStack                   descriptor (R), next_to_clean (W), header lines (R), struct page (R)
//   kSockEnqueue / Dequeue     receive-queue head (atomic: its spinlock), the skb's queue line,
//                              the copied packet lines (R, dequeue)
//   kDeferFree / kDeferFlush   the target CPU's defer list (atomic: defer_lock / xchg)
// Costs are attributed per line type, per recycle path (direct: alloc cache; ring: ptr_ring;
// release: page allocator) and per free (same CPU as the allocation, or another CPU).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "models/page_pool/page.h"
#include "models/page_pool/page_pool.h"
#include "sim/cost/coherence.h"
#include "sim/params.h"
#include "sim/stats.h"

namespace ppsim::page_pool {

struct CoherenceOptions {
  int first_cpu = 0, cpu_stride = 1;       // scenario CPU i is profile CPU first_cpu + i*cpu_stride
  std::uint32_t header_lines = 2;          // packet lines the driver/stack reads at kToStack
  std::uint32_t descs_per_line = 4;        // 16-byte RX descriptors
  std::uint32_t desc_ring_size = 1024;
  std::uint32_t socket_entries_per_line = 1;  // queued-skb linkage lines (kernel: one skb each)
  std::uint32_t socket_entries = 1024;        // rolling window of queued-skb lines
  bool socket_queue_lock = true;              // enqueue/dequeue take the queue head's spinlock
};

class CoherenceObserver : public PageObserver {
 public:
  CoherenceObserver(cost::MachineProfile profile, const CoherenceOptions& opt);
  void on_event(const PageEvent& ev, const PageWorld& world) override;
  // Ring geometry of a pool (size, consumer batch); pools not added get 1024 / 16.
  void add_pool(const PagePool* pool);
  // coherence.* stats (see docs/coherence.md for the list).
  void register_stats(sim::Stats& stats);

  cost::CoherenceModel& model() { return model_; }
  const cost::CoherenceModel& model() const { return model_; }
  int model_cpu(int scenario_cpu) const { return opt_.first_cpu + scenario_cpu * opt_.cpu_stride; }

  struct Bucket {
    std::uint64_t ops = 0, transfers = 0;
    double ns = 0;
  };
  enum Path { kDirect, kRing, kRelease, kPaths };
  enum Free { kSameCpu, kCrossCpu, kFrees };
  const Bucket& path(Path p) const { return paths_[p]; }
  const Bucket& free_bucket(Free f) const { return frees_[f]; }
  std::uint64_t packets() const { return packets_; }

 private:
  struct PoolMirror {
    std::uint32_t ring_size = 1024, batch = 16;
    std::uint32_t prod = 0, cons_head = 0, cons_tail = 0;
    std::uint32_t alloc_count = 0;
    std::uint64_t posted = 0, completed = 0, cleaned = 0, sock_in = 0, sock_out = 0;
  };
  struct Pending {  // a free in progress: kPut and the events of the same call
    bool open = false;
    const ExecCtx* ctx = nullptr;
    const sim::Picos* cost = nullptr;
    int path = -1;
    Free free = kSameCpu;
    Bucket put;  // the kPut's own cost, attributed once the path is known
  };
  PoolMirror& pool(int id);
  double touch(int cpu, cost::LineType t, std::uint64_t index, cost::Access a);
  void close_pending();
  void charge(const PageEvent& ev, double ns);

  cost::CoherenceModel model_;
  CoherenceOptions opt_;
  std::vector<PoolMirror> pools_;
  std::vector<std::int16_t> alloc_cpu_;  // per page: CPU that took it out of the pool
  std::vector<std::uint8_t> frag_;       // per page: carved into frags (pp_ref_count is atomic)
  std::unordered_map<std::uint64_t, std::uint32_t> dma_bytes_;  // (page, offset) → bytes written
  Bucket paths_[kPaths], frees_[kFrees];
  Pending pending_;
  std::uint64_t packets_ = 0, puts_ = 0;
  std::uint64_t transfers_seen_ = 0;  // model transfers before the current event
};

// coherence.* parameters (enabled, profile, ddio, cpu placement, line geometry).
void register_coherence_params(sim::ParamRegistry& reg);
// Loads the machine profile named by coherence.profile (a path, or a name looked up in
// <scenario dir>/machines/, the source tree's scenarios/machines/ and $PPSIM_MACHINES) and
// builds the observer. Throws sim::ScenarioError for a missing profile, a bad profile, or
// scenario CPUs that fall outside the profile's topology.
std::unique_ptr<CoherenceObserver> make_coherence_observer(const sim::Params& p);
// The path coherence.profile resolves to (for messages and tests).
std::string resolve_machine_profile(const std::string& name_or_path, const std::string& scenario_file);

// ---------------------------------------------------------------------------------------------
// Validation against the native benchmark (bench/native_recycle.cc): drive the real PagePool with
// this observer through the two access patterns and predict ns per packet on `profile`.
//   kDirect   CPU alloc_cpu, softirq: alloc from the cache, put with allow_direct (recycle_direct).
//   kCrossCpu alloc_cpu allocates and hands pages over a lockless SPSC hand-off ring (8 entries
//             per line) to free_cpu (process context), whose put recycles into the ptr_ring; the
//             allocating side refills from the ring 64 at a time. Both sides run in batches of
//             `batch` packets; they run in parallel, so ns/packet = the busier CPU's time.
// PoolCosts come from profile.base_ns (single-core, all-hit costs of each operation measured by
// `ppsim calibrate`); the model adds the coherence time on top.
enum class RecyclePattern { kDirect, kCrossCpu };
struct RecyclePrediction {
  double ns_per_packet = 0;             // predicted wall time per packet
  double alloc_cpu_ns = 0, free_cpu_ns = 0;  // per packet, base + coherence
  double coherence_ns = 0;              // per packet, all CPUs
  double transfers = 0;                 // per packet
  nlohmann::json by_line_type;          // {type: {transfers, ns}} per packet
};
RecyclePrediction predict_recycle(const cost::MachineProfile& profile, RecyclePattern pattern,
                                  std::uint64_t packets = 200000, int alloc_cpu = 0, int free_cpu = 1,
                                  std::uint32_t batch = 64);

}  // namespace ppsim::page_pool
