// A NIC receive queue as its driver sees it: the descriptor ring in host memory, the NAPI poll
// loop with its budget, and ring refill from a page_pool. The device half (descriptor fetch,
// packet DMA, write-back, interrupt moderation) is in Nic (models/nic/nic.h).
//
// Descriptor life cycle from the driver's side:
//   empty --refill (alloc from the pool, kPostToNic)--> posted --tail doorbell (MMIO)-->
//   the device's --write-back lands--> completed --NAPI poll (up to budget, kToStack)--> empty
// Refill allocates and posts as soon as refill_batch descriptors are free, and rings the tail
// doorbell once per refill (one MMIO write per batch, as drivers do: IXGBE_RX_BUFFER_WRITE).
// Interrupts: the device's MSI-X lands → the handler schedules NAPI on the queue's CPU after
// irq_latency; a poll that uses its whole budget polls again, otherwise it completes
// (napi->list_owner = -1) and re-enables the interrupt with another MMIO write.
//
// RX memory modes (Brouer's memory model, docs/zerocopy.md):
//   writable   build_skb() around the buffer: skb_shared_info is written at the end of the buffer,
//              in the packet page (kCpuWrite), and the stack may write the headers there.
//   read_only  a separately allocated writable head (napi_alloc_skb) receives a copy of the headers
//              (or, with header split, the NIC's header buffer) and skb_shared_info; the page is
//              attached as a frag and never written by the CPU.
// A zero-copy selector (an XDP program with a per-flow rule) redirects the application's flows to
// a UserSink before any skb is built; the rest go to the stack in the queue's mode.
// Mode switch (schedule_switch): the device stops taking packets for the queue (dropped and
// counted), NAPI delivers everything the device had accepted, then, with NAPI off, the ring is
// freed, the old pool destroyed, and the ring refilled from the new pool before the queue restarts.
// Pool swap (schedule_pool_swap, the queue API's netdev_rx_queue_restart as bnxt implements it):
// the NAPI instance is kept. mem_alloc made the new pool unlinked; stop: quiesce as above,
// napi_disable, free the ring, unlink the old pool (page_pool_disable_direct_recycling); start:
// refill from the new pool, link it (page_pool_enable_direct_recycling), napi_enable; mem_free:
// destroy the old pool while the NAPI runs again. If start fails the queue goes back to the old
// pool (linked again) and the new one is destroyed.
// Threaded NAPI: the poll runs in a kthread with bottom halves disabled (in_softirq() but not
// in_serving_softirq()). Allocation failure: the ring stays short and NAPI polls again later
// (the driver never allocates from another context).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/page_pool/page_pool.h"
#include "sim/cpu.h"
#include "sim/kernel.h"
#include "sim/stats.h"

namespace ppsim::nic {

class Nic;
struct RingHwConfig;

// struct napi_struct, the part page_pool looks at.
struct Napi {
  int list_owner = -1;  // CPU the NAPI is scheduled on, -1 when idle
  int id = -1;          // identity in page events (napi_enable/disable, PoolParams::napi_id)
  std::string name;
};

// A received packet as the stack sees it.
struct Skb {
  static constexpr int kMaxFrags = 17;  // MAX_SKB_FRAGS
  page_pool::PageId page = page_pool::kNoPage;  // the head buffer
  std::uint32_t offset = 0;
  std::uint32_t bytes = 0;
  std::uint32_t buf_bytes = 0;  // truesize of its buffers (the head's frag or page, plus any frags)
  // Page frags beyond the head (GRO appends merged segments' heads here); each is one pp ref.
  std::uint8_t nfrags = 0;
  page_pool::PageId frag_page[kMaxFrags];
  std::uint32_t frag_off[kMaxFrags];
  int alloc_cpu = 0;            // CPU whose NAPI received it (skb->alloc_cpu)
  int queue = 0;
  std::uint32_t flow = 0;
  std::uint32_t head_bytes = 0;  // truesize of a separately allocated head (read-only mode), else 0
  std::uint32_t page_bytes = 0;  // packet bytes in the page (fewer than `bytes` with header split; 0: all)
  page_pool::PagePool* pool = nullptr;
  sim::Picos rx_time = 0;
  std::uint32_t id = 0;     // the sk_buff (PageWorld::new_holder)
  std::uint32_t data = 0;   // its data area (skb_shared_info): the holder of its buffer references
  bool pp_recycle = false;  // skb->pp_recycle: skb_mark_for_recycle, frees go through page_pool
  bool cloned = false;      // skb->cloned: the data area is shared with a clone (dataref > 1)
};

// Where a NAPI poll hands its packets (XDP, the stack, a socket).
class PacketSink {
 public:
  virtual ~PacketSink() = default;
  // In the poll's softirq context; add the cost of what is done now to c.cost.
  virtual void deliver(page_pool::Caller& c, const Skb& skb) = 0;
  // At the start of NET_RX softirq work on c.ctx.cpu, before polling (skb defer-list flush).
  virtual void net_rx_action(page_pool::Caller& c) {}
  // False when packets end before an skb exists (XDP_DROP): the driver builds none.
  virtual bool builds_skb() const { return true; }
};

// The zero-copy consumer's delivery queue, as XDP_REDIRECT sees it.
class UserSink {
 public:
  virtual ~UserSink() = default;
  // In the poll's softirq; false when the delivery queue is full (the caller drops the packet).
  virtual bool deliver_user(page_pool::Caller& c, const Skb& skb) = 0;
};

struct NapiPollEvent {
  const Napi* napi;
  int cpu;
  int work, budget;
  sim::Picos start, end;
};

class RxQueue {
 public:
  struct Config {
    int index = 0;
    int cpu = 0;
    std::uint32_t ring_size = 1024;
    std::uint32_t buffer_bytes = 2048;
    std::uint32_t budget = 64;
    std::uint32_t refill_batch = 16;  // refill + one tail write once this many descriptors are free
    sim::Picos per_packet = 0;        // driver work per packet in the poll
    sim::Picos poll_overhead = 0;     // per poll (softirq entry, IRQ re-enable)
    sim::Picos mmio_cpu = 0;          // CPU time of one MMIO write (doorbell, interrupt re-enable)
    sim::Picos irq_latency = 0;       // MSI-X landing to softirq start
    sim::Picos alloc_retry = 0;       // re-poll delay when the ring is empty and could not be refilled
    bool update_nid = false;          // call page_pool_nid_changed(pool, numa_mem_id()) each poll (mlx5)
    std::string name = "rxq0";
    enum class Mode { kWritable, kReadOnly } mode = Mode::kWritable;
    bool header_split = false;        // the NIC puts the headers in a header buffer
    std::uint32_t hdr_bytes = 66;     // packet headers (copied into a read-only skb's head)
    std::uint32_t shinfo_bytes = 320; // SKB_DATA_ALIGN(sizeof(struct skb_shared_info)): what build_skb writes
    std::uint32_t head_truesize = 0;  // read-only: truesize of the separately allocated head
    sim::Picos head_alloc = 0;        // read-only: napi_alloc_skb head (or header buffer) per packet
    sim::Picos hdr_copy_fixed = 0;    // read-only without header split: per header memcpy
    double copy_ps_per_byte = 0;      // memcpy cost per byte
    sim::Picos xdp_cost = 0;          // the zero-copy selector per packet
    std::uint32_t app_flows = 0;      // flows below this are the application's
    bool threaded = false;            // threaded NAPI (a kthread with BHs disabled)
    std::uint32_t alloc_bulk = 1;     // buffers allocated before any of them is posted (mlx5 wqe_bulk)
  };

  // A runtime mode switch (an application asked for zero-copy on this queue).
  struct Switch {
    sim::Picos at = 0;
    page_pool::PagePool* pool = nullptr;  // the pool the queue uses afterwards
    Config after;                         // the queue's configuration afterwards
    sim::Picos fixed = 0;                 // queue stop/start commands besides the ring work (CPU)
  };

  // A descriptor in host memory. The driver fills the buffer; the device's DMA writes the packet
  // and the write-back (pkt_bytes, and `done`: when the data landed in host memory).
  struct Desc {
    page_pool::PageId page = page_pool::kNoPage;
    std::uint32_t offset = 0, size = 0;
    std::uint32_t pkt_bytes = 0;
    std::uint32_t flow = 0;
    sim::Picos done = 0;
  };

  // Registers itself with `nic` as a queue of function `fn` (device-side ring parameters `hw`).
  RxQueue(sim::Kernel& kernel, const Config& cfg, Napi& napi, page_pool::PagePool& pool,
          page_pool::PageWorld& world, std::vector<sim::Cpu>& cpus, Nic& nic, int fn, const RingHwConfig& hw,
          PacketSink& sink, sim::Stats& stats, page_pool::MutantSet mutants = {});
  // The zero-copy selector redirects flows below cfg.app_flows here (null: no selector).
  void attach_user(UserSink* user) { user_ = user; }
  void schedule_switch(const Switch& sw);
  void register_switch_stats(sim::Stats& stats);
  // Restart the queue on `new_pool` at `at`, keeping the NAPI; `fail`: the start step fails and
  // the queue goes back to the old pool.
  void schedule_pool_swap(sim::Picos at, page_pool::PagePool* new_pool, bool fail);
  // Called when the switch destroyed the old pool with pages still inflight.
  std::function<void(page_pool::PagePool*)> on_pool_destroyed;
  // Interrupt affinity change: the next interrupt (and the NAPI it schedules) runs on `cpu`; a
  // NAPI already scheduled finishes on the CPU it was scheduled on.
  void move_to_cpu(int cpu) { cfg_.cpu = cpu; }
  int cpu() const { return cfg_.cpu; }

  // ndo_open: fill the ring with NAPI not yet running (exclusive context), ring the doorbell,
  // enable the interrupt.
  void open(sim::Picos now);
  // ndo_stop: disable the queue and the interrupt, free every buffer still on the ring.
  void close(sim::Picos now);

  std::function<void(const NapiPollEvent&)> on_napi_poll;  // trace source (napi:napi_poll)

  // Device side: host memory it DMAs into, and the interrupt line.
  Desc& desc(std::uint64_t i) { return ring_[i & mask_]; }
  page_pool::PagePool& pool() { return *pool_; }
  void raise_irq(sim::Picos lands_at);
  std::uint64_t cleaned() const { return ntc_; }  // the device's "interrupt cause pending" test

  std::uint64_t polls() const { return polls_; }
  // Buffers on the ring: posted by the driver and not yet cleaned by NAPI (filled or not).
  std::uint64_t on_ring() const { return ntu_ - ntc_; }
  const Config& config() const { return cfg_; }
  int id() const { return id_; }

 private:
  std::uint32_t refill(page_pool::Caller& c, sim::Picos start);
  void doorbell(page_pool::Caller& c, sim::Picos start);
  void rearm(sim::Picos now);
  void on_irq();
  void on_poll();
  void check_nid(page_pool::Caller& c);
  void schedule_napi(sim::Picos at);
  void build_skb(page_pool::Caller& c, Skb& skb);
  page_pool::Caller poll_caller() const;
  void post(page_pool::Caller& c, page_pool::PageId p, std::uint32_t offset, std::uint32_t size);
  std::uint32_t refill_bulk(page_pool::Caller& c, sim::Picos start);
  void alloc_failed(page_pool::Caller& c);
  void refill_work();
  void napi_state(page_pool::PageEv kind, const page_pool::ExecCtx& ctx);
  void on_pool_swap();
  void pool_swap_restart(sim::Picos now);
  void on_switch();
  void switch_drain(sim::Picos now);
  void switch_done();
  bool bug(page_pool::Mutant m) const { return mutants_.has(m); }

  sim::Kernel& kernel_;
  Config cfg_;
  Napi& napi_;
  page_pool::PagePool* pool_;
  page_pool::PageWorld& world_;
  std::vector<sim::Cpu>& cpus_;
  Nic& nic_;
  int id_ = 0;
  PacketSink& sink_;
  UserSink* user_ = nullptr;
  page_pool::MutantSet mutants_;
  std::vector<Desc> ring_;
  std::uint64_t mask_ = 0;
  std::uint64_t ntu_ = 0, ntc_ = 0, rung_ = 0;  // next to use (post), next to clean, last tail written
  int napi_cpu_ = 0;  // where the scheduled NAPI runs (napi->list_owner while scheduled)
  bool napi_scheduled_ = false, completing_ = false, open_ = false;
  sim::Process irq_proc_, poll_proc_, switch_proc_, refill_work_proc_, swap_proc_;
  // Pool swap
  page_pool::PagePool* swap_pool_ = nullptr;
  bool swap_fail_ = false, swap_quiescing_ = false;
  std::uint64_t swaps_ = 0, swap_rollbacks_ = 0;
  // A bulk refill that failed half way: the buffers its descriptors still record (mlx5 WQE state).
  struct Recorded {
    page_pool::PageId page;
    std::uint32_t offset;
  };
  std::vector<Recorded> wqe_record_;
  Recorded last_polled_{page_pool::kNoPage, 0};  // the buffer the poll handed up last
  Switch switch_;
  enum class SwState { kNone, kQuiescing, kRestarting, kDone } sw_state_ = SwState::kNone;
  sim::Picos sw_start_ = 0, sw_end_ = 0, sw_cpu_ = 0;
  std::uint64_t sw_polled_ = 0, sw_freed_ = 0, sw_posted_ = 0, sw_inflight_ = 0, packets_ = 0;
  std::uint64_t polls_ = 0, irqs_ = 0, alloc_fail_ = 0, doorbells_ = 0;
  std::uint64_t ro_heads_ = 0, ro_copy_bytes_ = 0, redirects_ = 0, redirect_drops_ = 0, close_drops_ = 0;
  sim::Histogram* poll_work_ = nullptr;
};

}  // namespace ppsim::nic
