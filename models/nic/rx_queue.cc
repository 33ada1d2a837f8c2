#include "models/nic/rx_queue.h"

#include <algorithm>

namespace ppsim::nic {

using page_pool::Caller;
using page_pool::PageEv;
using page_pool::PageEvent;
using page_pool::PageLoc;

RxQueue::RxQueue(sim::Kernel& kernel, const Config& cfg, Napi& napi, page_pool::PagePool& pool,
                 page_pool::PageWorld& world, std::vector<sim::Cpu>& cpus, TrafficSource& traffic,
                 PacketSink& sink, sim::Stats& stats)
    : kernel_(kernel),
      cfg_(cfg),
      napi_(napi),
      pool_(pool),
      world_(world),
      cpus_(cpus),
      traffic_(traffic),
      sink_(sink),
      ring_(cfg.ring_size),
      irq_proc_(kernel, cfg.name + ".irq", [this] { on_irq(); }),
      poll_proc_(kernel, cfg.name + ".napi", [this] { on_poll(); }) {
  const std::string& n = cfg_.name;
  stats.reader(n + ".rx_packets", "packets", "packets the device placed in a descriptor", [this] { return rx_packets_; });
  stats.reader(n + ".rx_bytes", "bytes", "bytes the device placed in descriptors", [this] { return bytes_; });
  stats.reader(n + ".rx_missed", "packets", "packets dropped by the device: no posted descriptor",
               [this] { return rx_missed_; });
  stats.reader(n + ".napi_polls", "polls", "NAPI polls run", [this] { return polls_; });
  stats.reader(n + ".irqs", "interrupts", "RX interrupts raised", [this] { return irqs_; });
  stats.reader(n + ".alloc_fail", "events", "refills that could not allocate a buffer", [this] { return alloc_fail_; });
  poll_work_ = &stats.histogram(n + ".poll_work", "packets", "packets handled per NAPI poll");
}

void RxQueue::catch_up(sim::Picos t) {
  for (sim::Picos a = traffic_.peek(); a <= t; a = traffic_.peek()) {
    traffic_.pop();
    if (posted() == 0) {
      ++rx_missed_;
      continue;
    }
    Desc& d = desc(hw_head_++);
    d.pkt_bytes = traffic_.packet_bytes();
    d.done = a;
    ++rx_packets_;
    bytes_ += d.pkt_bytes;
    if (world_.observed()) {
      PageEvent ev{PageEv::kDmaWrite};
      ev.page = d.page;
      ev.pool = pool_.id();
      ev.offset = d.offset;
      ev.value = d.pkt_bytes;
      ev.time = a;
      world_.emit(ev);
    }
  }
}

std::uint32_t RxQueue::refill(Caller& c, sim::Picos start) {
  std::uint32_t n = 0;
  while (ntu_ - ntc_ < cfg_.ring_size) {
    world_.now = start + c.cost;
    std::uint32_t offset = 0, size = cfg_.buffer_bytes;
    const page_pool::PageId p = pool_.alloc_netmem(c, &offset, &size);
    if (p == page_pool::kNoPage) {
      ++alloc_fail_;
      break;
    }
    Desc& d = desc(ntu_++);
    d.page = p;
    d.offset = offset;
    d.size = size;
    if (world_.observed()) {
      PageEvent ev{PageEv::kPostToNic};
      ev.page = p;
      ev.pool = pool_.id();
      ev.offset = offset;
      ev.ctx = &c.ctx;
      ev.time = world_.now;
      ev.cost = &c.cost;
      world_.emit(ev);
    }
    ++n;
  }
  return n;
}

void RxQueue::open(sim::Picos now) {
  open_ = true;
  Caller c;
  c.ctx.cpu = cfg_.cpu;
  c.ctx.exclusive = true;  // NAPI is not running yet
  c.ctx.task = "ppsim-open";
  refill(c, now);
  arm_irq(now);
}

void RxQueue::arm_irq(sim::Picos now) {
  irq_armed_ = true;
  if (posted() == 0 && filled() == 0) {
    // Nothing can complete until buffers are posted: re-poll later, as drivers do on alloc failure.
    if (traffic_.peek() != sim::kNever) schedule_napi(now + cfg_.alloc_retry);
    return;
  }
  catch_up(now);
  sim::Picos first;
  if (filled() > 0) {
    first = now;
  } else {
    first = traffic_.peek();
    if (first == sim::kNever) return;  // traffic over: stay idle
  }
  sim::Picos fire = first + cfg_.irq_coalesce;
  if (cfg_.irq_coalesce_frames > 1 && filled() == 0) {
    const sim::Picos kth = traffic_.peek(cfg_.irq_coalesce_frames - 1);
    if (kth < fire) fire = kth;
  }
  irq_proc_.cancel();
  irq_proc_.wake_at(fire);
}

void RxQueue::on_irq() {
  if (!open_ || !irq_armed_) return;
  irq_armed_ = false;
  ++irqs_;
  const sim::Picos now = kernel_.now();
  catch_up(now);
  schedule_napi(now + cfg_.irq_latency);
}

void RxQueue::schedule_napi(sim::Picos at) {
  if (napi_scheduled_) return;
  napi_scheduled_ = true;
  napi_cpu_ = cfg_.cpu;
  napi_.list_owner = napi_cpu_;  // ____napi_schedule
  poll_proc_.wake_at(cpus_[napi_cpu_].softirq_start(at));
}

void RxQueue::on_poll() {
  if (!open_) return;
  const sim::Picos now = kernel_.now();
  if (completing_) {
    // The last poll's work is done: napi_complete_done, then re-arm the interrupt.
    completing_ = false;
    napi_scheduled_ = false;
    napi_.list_owner = -1;
    arm_irq(now);
    return;
  }
  // Another softirq may have taken the CPU since we were scheduled.
  const sim::Picos start = cpus_[napi_cpu_].softirq_start(now);
  if (start > now) {
    poll_proc_.wake_at(start);
    return;
  }
  Caller c;
  c.ctx.cpu = napi_cpu_;
  c.ctx.softirq = true;
  c.ctx.task = "<idle>";
  c.cost = cfg_.poll_overhead;
  world_.now = start;
  sink_.net_rx_action(c);
  if (cfg_.update_nid) {
    const int nid = world_.node_of_cpu(napi_cpu_);
    if (pool_.params().nid != nid) pool_.update_nid(c, nid);  // page_pool_nid_changed()
  }
  catch_up(start);
  const std::uint32_t work = std::min<std::uint64_t>(cfg_.budget, filled());
  for (std::uint32_t i = 0; i < work; ++i) {
    Desc& d = desc(ntc_++);
    world_.now = start + c.cost;
    if (world_.observed()) {
      PageEvent ev{PageEv::kToStack};
      ev.page = d.page;
      ev.pool = pool_.id();
      ev.offset = d.offset;
      ev.ctx = &c.ctx;
      ev.time = world_.now;
      ev.cost = &c.cost;
      world_.emit(ev);
    }
    c.cost += cfg_.per_packet;
    Skb skb;
    skb.page = d.page;
    skb.offset = d.offset;
    skb.bytes = d.pkt_bytes;
    skb.buf_bytes = d.size;
    skb.alloc_cpu = napi_cpu_;
    skb.queue = cfg_.index;
    skb.pool = &pool_;
    skb.rx_time = d.done;
    d.page = page_pool::kNoPage;
    sink_.deliver(c, skb);
  }
  // Packets that arrived while this poll ran still see only the descriptors posted before it.
  catch_up(start + c.cost);
  refill(c, start);
  const sim::Picos end = start + c.cost;
  cpus_[napi_cpu_].run_softirq(start, c.cost);
  ++polls_;
  poll_work_->add(work);
  if (on_napi_poll) on_napi_poll({&napi_, napi_cpu_, static_cast<int>(work), static_cast<int>(cfg_.budget), start, end});
  if (work == cfg_.budget) {
    poll_proc_.wake_at(end);  // budget exhausted: stay scheduled, poll again
  } else {
    completing_ = true;
    poll_proc_.wake_at(end);
  }
}

void RxQueue::close(sim::Picos now) {
  open_ = false;
  irq_proc_.cancel();
  poll_proc_.cancel();
  napi_.list_owner = -1;
  napi_scheduled_ = false;
  completing_ = false;
  Caller c;
  c.ctx.cpu = cfg_.cpu;
  c.ctx.task = "ppsim-close";
  world_.now = now;
  // Free every buffer still on the ring (filled or posted), as ndo_stop does.
  for (std::uint64_t i = ntc_; i < ntu_; ++i) {
    Desc& d = desc(i);
    if (d.page == page_pool::kNoPage) continue;
    pool_.put(c, d.page, -1, false, d.offset);
    d.page = page_pool::kNoPage;
  }
  ntc_ = hw_head_ = ntu_;
}

}  // namespace ppsim::nic
