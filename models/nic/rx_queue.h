// A NIC receive queue and the driver's NAPI loop on top of a page_pool.
//
// Descriptor life cycle (indices as in most drivers):
//   empty --driver refill (alloc from the pool, post)--> posted --device DMA (packet)--> filled
//   filled --NAPI poll (up to budget)--> handed to the stack / XDP --> empty
// Packets arrive from a TrafficSource and are placed lazily: the queue "catches up" on arrivals
// when something looks at it (an interrupt, a poll), so there is no event per packet. A packet
// that finds no posted descriptor is dropped (rx_missed).
// Interrupts: armed after NAPI completes; fire irq_coalesce after the first completion (or at
// the irq_coalesce_frames-th, if sooner), then schedule NAPI on the queue's CPU. NAPI polls run
// as softirq work on that CPU; a poll that uses its whole budget polls again, otherwise it
// completes (napi->list_owner = -1) and re-arms the interrupt.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/nic/traffic.h"
#include "models/page_pool/page_pool.h"
#include "sim/cpu.h"
#include "sim/kernel.h"
#include "sim/stats.h"

namespace ppsim::nic {

// struct napi_struct, the part page_pool looks at.
struct Napi {
  int list_owner = -1;  // CPU the NAPI is scheduled on, -1 when idle
  std::string name;
};

// A received packet as the stack sees it.
struct Skb {
  page_pool::PageId page = page_pool::kNoPage;
  std::uint32_t offset = 0;
  std::uint32_t bytes = 0;
  std::uint32_t buf_bytes = 0;  // size of the buffer it sits in (a frag or a page)
  int alloc_cpu = 0;            // CPU whose NAPI received it (skb->alloc_cpu)
  int queue = 0;
  page_pool::PagePool* pool = nullptr;
  sim::Picos rx_time = 0;
};

// Where a NAPI poll hands its packets (XDP, the stack, a socket).
class PacketSink {
 public:
  virtual ~PacketSink() = default;
  // In the poll's softirq context; add the cost of what is done now to c.cost.
  virtual void deliver(page_pool::Caller& c, const Skb& skb) = 0;
  // At the start of NET_RX softirq work on c.ctx.cpu, before polling (skb defer-list flush).
  virtual void net_rx_action(page_pool::Caller& c) {}
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
    sim::Picos per_packet = 0;       // driver work per packet in the poll
    sim::Picos poll_overhead = 0;    // per poll (softirq entry, descriptor reads, IRQ re-enable)
    sim::Picos irq_coalesce = 0;     // rx-usecs
    std::uint32_t irq_coalesce_frames = 0;  // rx-frames (0: off)
    sim::Picos irq_latency = 0;      // hardirq to softirq start
    sim::Picos alloc_retry = 0;      // re-poll delay when the refill could not allocate
    bool update_nid = false;         // call page_pool_nid_changed(pool, numa_mem_id()) each poll (mlx5)
    std::string name = "rxq0";
  };

  RxQueue(sim::Kernel& kernel, const Config& cfg, Napi& napi, page_pool::PagePool& pool,
          page_pool::PageWorld& world, std::vector<sim::Cpu>& cpus, TrafficSource& traffic, PacketSink& sink,
          sim::Stats& stats);
  // Interrupt affinity change: the next interrupt (and the NAPI it schedules) runs on `cpu`; a
  // NAPI already scheduled finishes on the CPU it was scheduled on.
  void move_to_cpu(int cpu) { cfg_.cpu = cpu; }
  int cpu() const { return cfg_.cpu; }

  // ndo_open: fill the ring with NAPI not yet running (exclusive context), arm the interrupt.
  void open(sim::Picos now);
  // ndo_stop: disable NAPI and the interrupt, free every buffer still on the ring.
  void close(sim::Picos now);

  std::function<void(const NapiPollEvent&)> on_napi_poll;  // trace source (napi:napi_poll)

  std::uint32_t posted() const { return static_cast<std::uint32_t>(ntu_ - hw_head_); }
  std::uint32_t filled() const { return static_cast<std::uint32_t>(hw_head_ - ntc_); }
  std::uint64_t rx_packets() const { return rx_packets_; }
  std::uint64_t rx_missed() const { return rx_missed_; }
  std::uint64_t polls() const { return polls_; }
  const Config& config() const { return cfg_; }

 private:
  struct Desc {
    page_pool::PageId page = page_pool::kNoPage;
    std::uint32_t offset = 0, size = 0;
    std::uint32_t pkt_bytes = 0;
    sim::Picos done = 0;
  };
  void catch_up(sim::Picos t);
  std::uint32_t refill(page_pool::Caller& c, sim::Picos start);
  void arm_irq(sim::Picos now);
  void on_irq();
  void on_poll();
  void schedule_napi(sim::Picos at);
  Desc& desc(std::uint64_t i) { return ring_[i % cfg_.ring_size]; }

  sim::Kernel& kernel_;
  Config cfg_;
  Napi& napi_;
  page_pool::PagePool& pool_;
  page_pool::PageWorld& world_;
  std::vector<sim::Cpu>& cpus_;
  TrafficSource& traffic_;
  PacketSink& sink_;
  std::vector<Desc> ring_;
  std::uint64_t ntu_ = 0, hw_head_ = 0, ntc_ = 0;  // next to use (post), device head, next to clean
  int napi_cpu_ = 0;  // where the scheduled NAPI runs (napi->list_owner while scheduled)
  bool irq_armed_ = false, napi_scheduled_ = false, completing_ = false, open_ = false;
  sim::Process irq_proc_, poll_proc_;
  std::uint64_t rx_packets_ = 0, rx_missed_ = 0, polls_ = 0, irqs_ = 0, alloc_fail_ = 0, bytes_ = 0;
  sim::Histogram* poll_work_ = nullptr;
};

}  // namespace ppsim::nic
