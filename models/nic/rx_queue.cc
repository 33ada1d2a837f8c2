#include "models/nic/rx_queue.h"

#include <algorithm>

#include "models/nic/nic.h"

namespace ppsim::nic {

using page_pool::Caller;
using page_pool::PageEv;

RxQueue::RxQueue(sim::Kernel& kernel, const Config& cfg, Napi& napi, page_pool::PagePool& pool,
                 page_pool::PageWorld& world, std::vector<sim::Cpu>& cpus, Nic& nic, int fn, const RingHwConfig& hw,
                 PacketSink& sink, sim::Stats& stats)
    : kernel_(kernel),
      cfg_(cfg),
      napi_(napi),
      pool_(pool),
      world_(world),
      cpus_(cpus),
      nic_(nic),
      sink_(sink),
      ring_(cfg.ring_size),
      mask_(cfg.ring_size - 1),
      irq_proc_(kernel, cfg.name + ".irq", [this] { on_irq(); }),
      poll_proc_(kernel, cfg.name + ".napi", [this] { on_poll(); }) {
  id_ = nic.add_rx_queue(fn, this, hw);
  const std::string& n = cfg_.name;
  stats.reader(n + ".napi_polls", "polls", "NAPI polls run", [this] { return polls_; });
  stats.reader(n + ".irqs", "interrupts", "RX interrupts handled", [this] { return irqs_; });
  stats.reader(n + ".alloc_fail", "events", "refills that could not allocate a buffer", [this] { return alloc_fail_; });
  stats.reader(n + ".doorbells", "writes", "RX tail doorbells written by the driver (MMIO)", [this] { return doorbells_; });
  poll_work_ = &stats.histogram(n + ".poll_work", "packets", "packets handled per NAPI poll");
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
    world_.emit(PageEv::kPostToNic, p, pool_.id(), offset, 0, &c.ctx, &c.cost);
    ++n;
  }
  return n;
}

// One tail write for everything posted since the last one; the device sees it when it lands.
void RxQueue::doorbell(Caller& c, sim::Picos start) {
  if (ntu_ == rung_) return;
  c.cost += cfg_.mmio_cpu;
  nic_.rx_tail_write(id_, ntu_, start + c.cost);
  rung_ = ntu_;
  ++doorbells_;
}

void RxQueue::open(sim::Picos now) {
  open_ = true;
  nic_.rx_enable(id_, true);
  Caller c;
  c.ctx.cpu = cfg_.cpu;
  c.ctx.exclusive = true;  // NAPI is not running yet
  c.ctx.task = "ppsim-open";
  refill(c, now);
  // Bringing the interface up is set-up, not part of the measured run: its CPU time is not
  // charged, and the device sees the filled ring at `now`.
  c.cost = 0;
  doorbell(c, now);
  nic_.rx_irq_enable(id_, now);
}

void RxQueue::raise_irq(sim::Picos lands_at) { irq_proc_.wake_at(lands_at); }

void RxQueue::on_irq() {
  if (!open_) return;
  ++irqs_;
  const sim::Picos now = kernel_.now();
  nic_.advance(now);
  schedule_napi(now + cfg_.irq_latency);
}

void RxQueue::schedule_napi(sim::Picos at) {
  if (napi_scheduled_) return;
  napi_scheduled_ = true;
  napi_cpu_ = cfg_.cpu;
  napi_.list_owner = napi_cpu_;  // ____napi_schedule
  poll_proc_.wake_at(cpus_[napi_cpu_].softirq_start(at));
}

// napi_complete_done() done: re-enable the interrupt. With no buffer on the ring at all (the
// pool could not allocate) nothing can ever complete, so poll again later, as drivers do.
void RxQueue::rearm(sim::Picos now) {
  if (ntu_ == ntc_ && nic_.rx_traffic_pending()) {
    schedule_napi(now + cfg_.alloc_retry);
    return;
  }
  nic_.rx_irq_enable(id_, now);
}

// mlx5 checks the node when it posts a batch of new buffers: page_pool_nid_changed().
void RxQueue::check_nid(Caller& c) {
  if (!cfg_.update_nid) return;
  const int nid = world_.node_of_cpu(napi_cpu_);
  if (pool_.params().nid != nid) pool_.update_nid(c, nid);
}

void RxQueue::on_poll() {
  if (!open_) return;
  const sim::Picos now = kernel_.now();
  if (completing_) {
    completing_ = false;
    napi_scheduled_ = false;
    napi_.list_owner = -1;
    // net_rx_action flushes the defer list once more after its last poll; the NAPI is no longer
    // scheduled, so those frees are not napi-local.
    Caller c;
    c.ctx.cpu = napi_cpu_;
    c.ctx.softirq = true;
    c.ctx.task = "<idle>";
    world_.now = now;
    sink_.net_rx_action(c);
    if (c.cost > 0) cpus_[napi_cpu_].run_softirq(cpus_[napi_cpu_].softirq_start(now), c.cost);
    rearm(now);
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
  // The driver sees the completions whose write-back has landed by now.
  nic_.advance(start);
  const std::uint64_t done = nic_.rx_done(id_, start);
  const auto work = static_cast<std::uint32_t>(std::min<std::uint64_t>(cfg_.budget, done - ntc_));
  bool refill_failed = false;
  for (std::uint32_t i = 0; i < work; ++i) {
    Desc& d = desc(ntc_++);
    world_.now = start + c.cost;
    world_.emit(PageEv::kToStack, d.page, pool_.id(), d.offset, 0, &c.ctx, &c.cost);
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
    if (!refill_failed && cfg_.ring_size - (ntu_ - ntc_) >= cfg_.refill_batch) {
      const std::uint64_t before = alloc_fail_;
      check_nid(c);
      refill(c, start);
      doorbell(c, start);
      refill_failed = alloc_fail_ != before;
    }
  }
  // An empty ring (allocation failed earlier) is refilled whatever the batch.
  if (!refill_failed && (ntu_ == ntc_ || cfg_.ring_size - (ntu_ - ntc_) >= cfg_.refill_batch)) {
    check_nid(c);
    refill(c, start);
    doorbell(c, start);
  }
  if (work < cfg_.budget) c.cost += cfg_.mmio_cpu;  // napi_complete_done + interrupt re-enable
  const sim::Picos end = start + c.cost;
  cpus_[napi_cpu_].run_softirq(start, c.cost);
  ++polls_;
  poll_work_->add(work);
  if (on_napi_poll) on_napi_poll({&napi_, napi_cpu_, static_cast<int>(work), static_cast<int>(cfg_.budget), start, end});
  if (work < cfg_.budget) completing_ = true;  // else: budget exhausted, stay scheduled and poll again
  poll_proc_.wake_at(end);
}

void RxQueue::close(sim::Picos now) {
  open_ = false;
  nic_.rx_enable(id_, false);
  irq_proc_.cancel();
  poll_proc_.cancel();
  napi_.list_owner = -1;
  napi_scheduled_ = false;
  completing_ = false;
  Caller c;
  c.ctx.cpu = cfg_.cpu;
  c.ctx.task = "ppsim-close";
  world_.now = now;
  // Free every buffer still on the ring (completed or posted), as ndo_stop does.
  for (std::uint64_t i = ntc_; i < ntu_; ++i) {
    Desc& d = desc(i);
    if (d.page == page_pool::kNoPage) continue;
    pool_.put(c, d.page, -1, false, d.offset);
    d.page = page_pool::kNoPage;
  }
  ntc_ = rung_ = ntu_;
}

}  // namespace ppsim::nic
