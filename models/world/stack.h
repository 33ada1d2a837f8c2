// What happens to received packets after the NAPI poll: the "stack" as page_pool sees it.
//   xdp_drop   XDP_DROP in the poll: xdp_return_buff with napi_direct → alloc cache.
//   napi_free  the skb is freed inside the poll (GRO drop, forwarding done): napi_pp_put_page
//              with allow_direct=false, so page_pool_napi_local() decides (direct on the NAPI CPU).
//   socket     the skb is queued on a socket (bounded by rcvbuf, charged by truesize) and freed by
//              a reader in process context on reader_cpu after it copies the data. With
//              defer_free (skb_attempt_defer_free, used by TCP and, since 6.18, UDP): on the
//              allocating CPU the skb is freed with BH disabled (napi-local if that CPU owns the
//              NAPI); from another CPU it goes to the allocating CPU's defer list, freed newest
//              first by that CPU's next NET_RX softirq (before each poll and after the last) or
//              by an IPI when the list passes half of skb_defer_max.
// Optionally the stack takes an extra page reference on some packets (get_page, e.g. splice or
// zero-copy receive; clones share pp frags through pp_ref_count instead) and drops it later, which makes the pool release such pages (released_refcnt).
// References (net/core/skbuff.c): an skb's buffers are held by its data area (skb_shared_info);
// skb_release_data drops them when the last user of that area goes, each with the kind
// skb->pp_recycle selects (skb_page_unref: napi_pp_put_page for pool pages, put_page otherwise).
// A packet tap clones some skbs (skb_clone: the data area is shared, dataref 2) and frees its clone
// later; with tap_expand it first gives the clone a private head (pskb_expand_head: a page
// reference per frag, pp_recycle cleared). TCP-style coalescing (skb_try_coalesce) appends a new
// skb's buffers to the tail skb of the socket queue: their references move to it, or, when the new
// skb is a clone, the tail takes references of its own (pp references on pool pages).
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "models/nic/rx_queue.h"
#include "models/world/first_touch.h"
#include "sim/cpu.h"
#include "sim/kernel.h"
#include "sim/params.h"
#include "sim/rng.h"
#include "sim/stats.h"

namespace ppsim::world {

// The veth replay's two tasks as the traces the model writes name them (sched_switch, napi_poll,
// tcp_rcvbuf_grow lines; python/ppsim/replay.py reads them as SIM_SENDER_PID and SIM_READER_PID).
inline constexpr const char* kSenderComm = "ppsim_send";
inline constexpr int kSenderPid = 3000;
inline constexpr const char* kReaderComm = "ppsim_recv";
inline constexpr int kReaderPid = 3001;

struct StackConfig {
  enum class Mode { kXdpDrop, kNapiFree, kSocket } mode = Mode::kSocket;
  sim::Picos deliver_cost = 0;       // per packet in the poll (XDP program or protocol work)
  int reader_cpu = -1;               // -1: the receiving queue's CPU
  sim::Picos reader_start = 0;       // the reader starts reading at this time
  sim::Picos reader_wakeup = 0;      // enqueue → reader running (when idle)
  sim::Picos reader_wake = 0;        // per sleep and wake-up of the reader
  sim::Picos reader_initial_lag = 0; // EEVDF lag the reader sleeps with when the run starts
  sim::Picos reader_call = 0;        // per read call (the system call), however many skbs it takes
  sim::Picos reader_per_skb = 0;     // recvmsg cost per skb
  double reader_copy_ps_per_byte = 0;
  double remote_copy_ps_per_byte = 0;  // cpus.remote_copy_ns_per_kib
  std::uint32_t read_batch = 1;      // skbs read per wakeup before yielding
  std::uint64_t read_bytes = 0;      // bytes a read call copies at most (whole skbs; 0: no limit)
  sim::Picos first_touch = 0;        // per 4 KiB page of the read buffer the copy touches first (a fault)
  std::uint64_t rcvbuf_bytes = 212992;
  std::uint32_t skb_overhead_bytes = 256;  // truesize beyond the buffer: SKB_DATA_ALIGN(sizeof(struct sk_buff))
  bool defer_free = true;
  std::uint32_t defer_max = 64;      // net.core.skb_defer_max
  sim::Picos ipi_latency = 0;
  sim::Picos free_cost = 0;          // kfree_skb work besides the page_pool put
  sim::Picos head_free_cost = 0;     // freeing a separately allocated (read-only mode) head
  double extra_ref_fraction = 0;
  sim::Picos extra_ref_hold = 0;
  double tap_fraction = 0;           // skbs cloned to a packet tap
  sim::Picos tap_hold = 0;           // how long the tap keeps its clone
  bool tap_expand = false;           // the tap gives its clone a private head (pskb_expand_head)
  bool coalesce = false;             // socket mode: coalesce into the queue's tail skb (tcp_try_coalesce)
  std::uint32_t coalesce_pulled_bytes = 0;  // headers pulled before queueing: a coalesced skb adds only
                                            // the rest; an skb with nothing more (a FIN) stays separate
};

void register_stack_params(sim::ParamRegistry& r);
StackConfig stack_config_from(const sim::Params& p);

class Stack : public nic::PacketSink {
 public:
  Stack(sim::Kernel& kernel, const StackConfig& cfg, std::vector<sim::Cpu>& cpus, page_pool::PageWorld& world,
        sim::Rng rng, sim::Stats& stats, page_pool::MutantSet mutants = {});
  void deliver(page_pool::Caller& c, const nic::Skb& skb) override;
  // The same with the protocol's receive cost given (stack.deliver_ns is UDP's).
  void deliver_costing(page_pool::Caller& c, const nic::Skb& skb, sim::Picos protocol_cost);
  void net_rx_action(page_pool::Caller& c) override;
  bool builds_skb() const override { return cfg_.mode != StackConfig::Mode::kXdpDrop; }
  // Raise NET_RX softirq on every CPU with a non-empty defer list (the capture tool's final flush).
  void flush_all_defer_lists(sim::Picos at);
  // The reader reads nothing before `t` (a late start, or a reader held over a teardown).
  void pause_reader_until(sim::Picos t);
  const StackConfig& config() const { return cfg_; }
  void set_rcvbuf(std::uint64_t bytes) { cfg_.rcvbuf_bytes = bytes; }
  // Nothing queued and nothing being read.
  bool reader_idle() const { return queue_.empty() && !reader_busy_; }
  // Called for every skb the reader takes off the socket queue (TCP frees window space).
  std::function<void(const nic::Skb&)> on_read;
  // Called once at the end of each read call that took skbs (after the last on_read of the call).
  std::function<void()> on_read_call_end;
  // Skbs not yet freed (in socket queues, being read, on defer lists).
  std::uint64_t outstanding() const;
  std::uint64_t deferred_outstanding() const;
  std::uint64_t socket_queue_len() const { return queue_.size(); }
  // TCP receive: coalesce in-order skbs into the queue's tail (tcp_queue_rcv), each without its
  // `pulled_bytes` of headers. Called before the run; the caller reports coalesced() itself.
  void enable_coalesce(std::uint32_t pulled_bytes) {
    cfg_.coalesce = true;
    cfg_.coalesce_pulled_bytes = pulled_bytes;
  }
  std::uint64_t coalesced() const { return coalesced_; }
  std::uint64_t extra_refs_outstanding() const { return extra_->size() + tap_->size(); }

 private:
  struct Pending {
    page_pool::PageId page;
  };
  void free_skb(page_pool::Caller& c, const nic::Skb& skb);
  void xdp_return(page_pool::Caller& c, const nic::Skb& skb);
  void release_data(page_pool::Caller& c, const nic::Skb& skb);
  void page_unref(page_pool::Caller& c, const nic::Skb& skb, page_pool::PageId p, std::uint32_t offset);
  void frag_ref(page_pool::Caller& c, const nic::Skb& skb, page_pool::PageId p, std::uint32_t offset);
  bool is_pp(page_pool::PageId p) const;
  void tap_clone(page_pool::Caller& c, nic::Skb& skb);
  void expand_head(page_pool::Caller& c, nic::Skb& clone);
  bool try_coalesce(page_pool::Caller& c, nic::Skb& to, const nic::Skb& from);
  bool bug(page_pool::Mutant m) const { return mutants_.has(m); }
  void free_local_bh(page_pool::Caller& c, const nic::Skb& skb);
  page_pool::Caller reader_caller() const;
  void reader_run();
  void reader_next(sim::Picos now);
  sim::Picos reader_take();
  sim::Picos remote_copy_cost(const nic::Skb& s);
  void reader_batch_done();
  void defer(page_pool::Caller& c, const nic::Skb& skb);
  void flush_defer(page_pool::Caller& c, int cpu);
  void on_kick(int cpu);
  std::uint32_t truesize(const nic::Skb& s) const { return s.buf_bytes + s.head_bytes + cfg_.skb_overhead_bytes; }

  sim::Kernel& kernel_;
  StackConfig cfg_;
  std::vector<sim::Cpu>& cpus_;
  page_pool::PageWorld& world_;
  sim::Rng rng_;
  std::deque<nic::Skb> queue_;   // the socket receive queue
  std::uint64_t rmem_ = 0, rmem_deficit_ = 0;
  std::vector<nic::Skb> reading_;  // skbs the reader is copying now
  bool reader_busy_ = false, reader_woken_ = false, reader_slept_ = true;
  std::unique_ptr<sim::Process> reader_;
  std::vector<std::vector<nic::Skb>> defer_;  // per CPU (one NUMA node's sub-list)
  std::vector<std::uint64_t> defer_count_;    // per CPU: attempts since the last flush
  std::vector<std::unique_ptr<sim::Process>> kick_;
  std::vector<bool> kick_pending_;
  std::unique_ptr<sim::TimerQueue<Pending>> extra_;
  std::unique_ptr<sim::TimerQueue<nic::Skb>> tap_;      // clones the tap still holds
  std::unordered_map<std::uint32_t, std::uint32_t> dataref_;  // shared data areas: users left
  page_pool::MutantSet mutants_;
  std::uint64_t tap_clones_ = 0, coalesced_ = 0;
  std::uint64_t delivered_ = 0, rcvbuf_drops_ = 0, reads_ = 0, deferred_ = 0, defer_full_ = 0, flushes_ = 0,
                ipis_ = 0, extra_refs_ = 0, reader_frees_ = 0;
  std::uint64_t max_queue_ = 0;
  FirstTouch buf_;  // the reader's buffer (stack.reader_first_touch_ns)
};

}  // namespace ppsim::world
