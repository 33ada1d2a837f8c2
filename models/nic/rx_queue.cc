#include "models/nic/rx_queue.h"

#include <algorithm>

#include "models/nic/nic.h"

namespace ppsim::nic {

using page_pool::Caller;
using page_pool::PageEv;

RxQueue::RxQueue(sim::Kernel& kernel, const Config& cfg, Napi& napi, page_pool::PagePool& pool,
                 page_pool::PageWorld& world, std::vector<sim::Cpu>& cpus, Nic& nic, int fn, const RingHwConfig& hw,
                 PacketSink& sink, sim::Stats& stats, page_pool::MutantSet mutants)
    : kernel_(kernel),
      cfg_(cfg),
      napi_(napi),
      pool_(&pool),
      world_(world),
      cpus_(cpus),
      nic_(nic),
      sink_(sink),
      mutants_(mutants),
      ring_(cfg.ring_size),
      mask_(cfg.ring_size - 1),
      irq_proc_(kernel, cfg.name + ".irq", [this] { on_irq(); }),
      poll_proc_(kernel, cfg.name + ".napi", [this] { on_poll(); }),
      switch_proc_(kernel, cfg.name + ".mode_switch", [this] { on_switch(); }),
      refill_work_proc_(kernel, cfg.name + ".refill_work", [this] { refill_work(); }),
      swap_proc_(kernel, cfg.name + ".pool_swap", [this] { on_pool_swap(); }) {
  for (auto& cpu : cpus_) {  // the queue's interrupt may move to any CPU
    cpu.label_task(&refill_work_proc_, "driver refill work");
    cpu.label_task(&swap_proc_, "driver pool swap");
    cpu.label_task(this, "driver mode switch");
  }
  RingHwConfig h = hw;
  h.header_split = cfg.header_split;
  h.hdr_bytes = cfg.hdr_bytes;
  id_ = nic.add_rx_queue(fn, this, h);
  const std::string& n = cfg_.name;
  stats.reader(n + ".napi_polls", "polls", "NAPI polls run", [this] { return polls_; });
  stats.reader(n + ".irqs", "interrupts", "RX interrupts handled", [this] { return irqs_; });
  stats.reader(n + ".alloc_fail", "events", "refills that could not allocate a buffer", [this] { return alloc_fail_; });
  stats.reader(n + ".doorbells", "writes", "RX tail doorbells written by the driver (MMIO)", [this] { return doorbells_; });
  stats.reader(n + ".rx_polled", "packets", "packets the driver took off the ring", [this] { return packets_; });
  stats.reader(n + ".ro_heads", "skbs", "read-only mode: separately allocated skb heads", [this] { return ro_heads_; });
  stats.reader(n + ".ro_hdr_copy_bytes", "bytes", "read-only mode: header bytes copied out of the packet page",
               [this] { return ro_copy_bytes_; });
  stats.reader(n + ".xdp_redirects", "packets", "packets the zero-copy selector redirected to the application",
               [this] { return redirects_; });
  stats.reader(n + ".xdp_redirect_drops", "packets", "redirected packets dropped because the delivery queue was full",
               [this] { return redirect_drops_; });
  stats.reader(n + ".rx_dropped_at_close", "packets", "received packets still on the ring when the queue was closed",
               [this] { return close_drops_; });
  poll_work_ = &stats.histogram(n + ".poll_work", "packets", "packets handled per NAPI poll");
}

// The descriptor at next_to_use gets the buffer; the device may DMA into it from now on.
void RxQueue::post(Caller& c, page_pool::PageId p, std::uint32_t offset, std::uint32_t size) {
  Desc& d = desc(ntu_++);
  d.page = p;
  d.offset = offset;
  d.size = size;
  world_.emit(PageEv::kPostToNic, p, pool_->id(), offset, cfg_.buffer_bytes, &c.ctx, &c.cost);
}

std::uint32_t RxQueue::refill(Caller& c, sim::Picos start) {
  if (cfg_.alloc_bulk > 1) return refill_bulk(c, start);
  std::uint32_t n = 0;
  const std::uint32_t page_bytes = page_pool::kPageSize << pool_->params().order;
  while (ntu_ - ntc_ < cfg_.ring_size) {
    world_.now = start + c.cost;
    std::uint32_t offset = 0, size = cfg_.buffer_bytes;
    page_pool::PageId p;
    if (bug(page_pool::Mutant::kWholePagePerBuffer) && page_bytes > page_pool::kPageSize) {
      // Before 39f8fcda2088 bnxt's data ring took whole pages when PAGE_SIZE > its 4 KiB buffers.
      p = pool_->alloc(c);
      size = page_bytes;
    } else {
      p = pool_->alloc_netmem(c, &offset, &size);
    }
    if (p == page_pool::kNoPage) {
      alloc_failed(c);
      break;
    }
    post(c, p, offset, size);
    ++n;
  }
  return n;
}

// No buffer from the pool: leave the ring short, NAPI polls again (001ba0902046 drops the packet
// instead of using the page it does not have; 88e69af061f2 retries in NAPI, not a workqueue).
void RxQueue::alloc_failed(Caller& c) {
  ++alloc_fail_;
  if (bug(page_pool::Mutant::kAllocFailRepostsPage) && last_polled_.page != page_pool::kNoPage) {
    post(c, last_polled_.page, last_polled_.offset, cfg_.buffer_bytes);
    last_polled_.page = page_pool::kNoPage;
  }
  if (bug(page_pool::Mutant::kRefillFromWorkqueue) && refill_work_proc_.pending() == sim::kNever)
    refill_work_proc_.wake_at(kernel_.now() + sim::kPicosPerUs);
}

// The workqueue refill of the 88e69af061f2 mutant: process context on the queue's CPU.
void RxQueue::refill_work() {
  if (!open_) return;
  const sim::Picos now = kernel_.now();
  Caller c;
  c.ctx.cpu = cfg_.cpu;
  c.ctx.task = "kworker";
  c.ctx.pid = 60;
  world_.now = now;
  refill(c, now);
  doorbell(c, now);
  if (c.cost > 0) cpus_[static_cast<std::size_t>(cfg_.cpu)].run_work(now, c.cost, &refill_work_proc_, nullptr);
}

// mlx5e_alloc_rx_wqes: buffers for a whole bulk of descriptors are allocated before any is posted.
// When one allocation fails the buffers of the unfinished bulk go back to the pool, and the
// descriptors must forget them (ef9369e9c308): the next attempt starts the bulk again.
std::uint32_t RxQueue::refill_bulk(Caller& c, sim::Picos start) {
  world_.now = start + c.cost;
  for (const Recorded& r : wqe_record_) pool_->put(c, r.page, -1, false, r.offset);  // what a failed bulk left behind
  wqe_record_.clear();
  std::uint32_t n = 0;
  std::vector<Desc> bulk;
  while (cfg_.ring_size - (ntu_ - ntc_) >= cfg_.alloc_bulk) {
    bulk.clear();
    bool failed = false;
    while (bulk.size() < cfg_.alloc_bulk) {
      world_.now = start + c.cost;
      Desc d;
      d.size = cfg_.buffer_bytes;
      d.page = pool_->alloc_netmem(c, &d.offset, &d.size);
      if (d.page == page_pool::kNoPage) {
        failed = true;
        break;
      }
      bulk.push_back(d);
    }
    if (failed) {
      for (const Desc& d : bulk) {
        pool_->put(c, d.page, -1, false, d.offset);
        if (bug(page_pool::Mutant::kAllocFailDoubleRelease)) wqe_record_.push_back({d.page, d.offset});
      }
      alloc_failed(c);
      break;
    }
    for (const Desc& d : bulk) post(c, d.page, d.offset, d.size);
    n += static_cast<std::uint32_t>(bulk.size());
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

void RxQueue::napi_state(PageEv kind, const page_pool::ExecCtx& ctx) {
  world_.emit(kind, page_pool::kNoPage, -1, 0, napi_.id, &ctx, nullptr);
}

void RxQueue::open(sim::Picos now) {
  open_ = true;
  nic_.rx_enable(id_, true);
  Caller c;
  c.ctx.cpu = cfg_.cpu;
  c.ctx.exclusive = true;  // NAPI is not running yet
  c.ctx.task = "ppsim-open";
  world_.now = now;
  refill(c, now);
  napi_state(PageEv::kNapiEnable, c.ctx);
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
  if (pool_->params().nid != nid) pool_->update_nid(c, nid);
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
    Caller c = poll_caller();
    world_.now = now;
    sink_.net_rx_action(c);
    if (c.cost > 0) cpus_[napi_cpu_].run_softirq(cpus_[napi_cpu_].softirq_start(now), c.cost, "net_rx_action defer flush");
    rearm(now);
    return;
  }
  // Another softirq may have taken the CPU since we were scheduled.
  const sim::Picos start = cpus_[napi_cpu_].softirq_start(now);
  if (start > now) {
    poll_proc_.wake_at(start);
    return;
  }
  Caller c = poll_caller();
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
    const std::uint32_t holder = world_.new_holder();
    world_.emit(PageEv::kToStack, d.page, pool_->id(), d.offset, 0, &c.ctx, &c.cost, -1, 0, holder);
    last_polled_ = {d.page, d.offset};
    c.cost += cfg_.per_packet;
    ++packets_;
    Skb skb;
    skb.id = skb.data = holder;
    skb.page = d.page;
    skb.offset = d.offset;
    skb.bytes = d.pkt_bytes;
    skb.buf_bytes = d.size;
    skb.alloc_cpu = napi_cpu_;
    skb.queue = cfg_.index;
    skb.flow = d.flow;
    if (cfg_.header_split && d.pkt_bytes > cfg_.hdr_bytes) skb.page_bytes = d.pkt_bytes - cfg_.hdr_bytes;
    skb.pool = pool_;
    skb.rx_time = d.done;
    d.page = page_pool::kNoPage;
    bool to_stack = true;
    if (user_) {
      // The XDP selector: the application's flows are redirected before any skb exists.
      c.cost += cfg_.xdp_cost;
      if (skb.flow < cfg_.app_flows || bug(page_pool::Mutant::kZcSelectAllFlows)) {
        to_stack = false;
        ++redirects_;
        if (!user_->deliver_user(c, skb)) {
          ++redirect_drops_;
          pool_->put(c, skb.page, -1, true, skb.offset);  // xdp_return_frame_rx_napi
        }
      } else {
        world_.page(skb.page).zc_clean = false;  // another flow's bytes are in the page now
      }
    }
    if (to_stack) {
      if (sink_.builds_skb()) build_skb(c, skb);
      sink_.deliver(c, skb);
    }
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
  cpus_[napi_cpu_].run_softirq(start, c.cost, "napi_poll rx");
  ++polls_;
  poll_work_->add(work);
  if (on_napi_poll) on_napi_poll({&napi_, napi_cpu_, static_cast<int>(work), static_cast<int>(cfg_.budget), start, end});
  if (work < cfg_.budget) completing_ = true;  // else: budget exhausted, stay scheduled and poll again
  poll_proc_.wake_at(end);
}

// NET_RX softirq, or the NAPI kthread of a threaded NAPI (BHs disabled, not serving softirq).
Caller RxQueue::poll_caller() const {
  Caller c;
  c.ctx.cpu = napi_cpu_;
  if (cfg_.threaded) {
    c.ctx.bh_disabled = true;
    c.ctx.task = "napi/rxq";
    c.ctx.pid = 900 + napi_cpu_;
  } else {
    c.ctx.softirq = true;
    c.ctx.task = "<idle>";
  }
  return c;
}

// How the skb meets its packet: in the page (writable) or in a separate head (read-only).
void RxQueue::build_skb(Caller& c, Skb& skb) {
  // skb_mark_for_recycle: frees of this skb go back through page_pool (037965402a01).
  skb.pp_recycle = !bug(page_pool::Mutant::kNoMarkForRecycle);
  if (cfg_.mode == Config::Mode::kWritable || bug(page_pool::Mutant::kRoBuildSkbInPage)) {
    // build_skb(): skb_shared_info goes at the end of the buffer, inside the packet page.
    const std::uint32_t at = skb.buf_bytes > cfg_.shinfo_bytes ? skb.buf_bytes - cfg_.shinfo_bytes : 0;
    world_.emit(PageEv::kCpuWrite, skb.page, pool_->id(), skb.offset + at, cfg_.shinfo_bytes, &c.ctx, &c.cost);
    return;
  }
  // napi_alloc_skb() for the head; the headers are copied into it (or come from the NIC's header
  // buffer), skb_shared_info is initialised there, and the page becomes frag 0.
  c.cost += cfg_.head_alloc;
  ++ro_heads_;
  skb.head_bytes = cfg_.head_truesize;
  if (!cfg_.header_split) {
    const std::uint32_t hdr = std::min(cfg_.hdr_bytes, skb.bytes);
    c.cost += cfg_.hdr_copy_fixed + static_cast<sim::Picos>(cfg_.copy_ps_per_byte * hdr);
    ro_copy_bytes_ += hdr;
    world_.emit(PageEv::kHeadCopy, skb.page, pool_->id(), skb.offset, hdr, &c.ctx, &c.cost);
  }
}

void RxQueue::schedule_switch(const Switch& sw) {
  switch_ = sw;
  switch_proc_.wake_at(sw.at);
}

// Quiesce: the device takes nothing new for the queue while NAPI delivers what it had accepted.
void RxQueue::on_switch() {
  const sim::Picos now = kernel_.now();
  if (!open_ && sw_state_ == SwState::kNone) return;  // closed before the switch was due
  if (sw_state_ == SwState::kNone) {
    sw_state_ = SwState::kQuiescing;
    sw_start_ = now;
    sw_polled_ = packets_;
    nic_.advance(now);
    nic_.rx_stop_accepting(id_, now);
  }
  if (sw_state_ != SwState::kQuiescing) return;
  nic_.advance(now);
  const bool drained = nic_.rx_quiesced(id_) && ntc_ == nic_.rx_device_head(id_);
  if ((!drained && !bug(page_pool::Mutant::kSwitchDropsCompleted)) || napi_scheduled_) {
    // Completions written back but not yet polled are picked up by NAPI (kick it if idle).
    if (nic_.rx_quiesced(id_) && !napi_scheduled_ && ntc_ < nic_.rx_device_head(id_)) schedule_napi(now);
    switch_proc_.wake_at(now + sim::kPicosPerUs);
    return;
  }
  switch_drain(now);
}

// With NAPI off: free the ring, destroy the old pool, refill from the new one (process context).
void RxQueue::switch_drain(sim::Picos now) {
  sw_state_ = SwState::kRestarting;
  sw_polled_ = packets_ - sw_polled_;
  open_ = false;
  nic_.rx_enable(id_, false);
  irq_proc_.cancel();
  poll_proc_.cancel();
  napi_.list_owner = -1;
  napi_scheduled_ = completing_ = false;
  Caller c;
  c.ctx.cpu = cfg_.cpu;
  c.ctx.exclusive = true;  // napi_disable() done: nothing else touches the pool
  c.ctx.task = "zc-setup";
  c.ctx.pid = 7000;
  world_.now = now;
  napi_state(PageEv::kNapiDisable, c.ctx);
  for (std::uint64_t i = ntc_; i < ntu_; ++i) {
    Desc& d = desc(i);
    if (d.page == page_pool::kNoPage) continue;
    pool_->put(c, d.page, -1, false, d.offset);
    d.page = page_pool::kNoPage;
    ++sw_freed_;
  }
  ntc_ = rung_ = ntu_;
  nic_.rx_reset_ring(id_, ntu_);
  page_pool::PagePool* old = pool_;
  const std::int32_t inflight = old->destroy(c);
  sw_inflight_ = inflight > 0 ? static_cast<std::uint64_t>(inflight) : 0;
  if (inflight != 0 && on_pool_destroyed) on_pool_destroyed(old);
  pool_ = switch_.pool;
  const int cpu = cfg_.cpu;
  cfg_ = switch_.after;
  cfg_.cpu = cpu;
  nic_.rx_set_header_split(id_, cfg_.header_split);
  const std::uint64_t before = ntu_;
  refill(c, now);
  sw_posted_ = ntu_ - before;
  sw_cpu_ = c.cost + switch_.fixed;
  cpus_[static_cast<std::size_t>(cpu)].run_work(now, sw_cpu_, this, [this] { switch_done(); });
}

void RxQueue::switch_done() {
  const sim::Picos now = kernel_.now();
  sw_state_ = SwState::kDone;
  sw_end_ = now;
  open_ = true;
  nic_.rx_enable(id_, true);
  nic_.rx_start_accepting(id_);
  Caller c;
  c.ctx.cpu = cfg_.cpu;
  c.ctx.exclusive = true;
  world_.now = now;
  napi_state(PageEv::kNapiEnable, c.ctx);
  doorbell(c, now);
  nic_.rx_irq_enable(id_, now);
}

void RxQueue::register_switch_stats(sim::Stats& stats) {
  const std::string n = cfg_.name + ".mode_switch.";
  stats.reader(n + "start_ns", "ns", "when the switch began (the device stopped taking packets for the queue)",
               [this] { return sw_start_ / 1000; });
  stats.reader(n + "duration_ns", "ns", "from the start until the queue took packets again",
               [this] { return sw_state_ == SwState::kDone ? (sw_end_ - sw_start_) / 1000 : 0; });
  stats.reader(n + "restart_cpu_ns", "ns", "CPU time of the restart: freeing the ring, destroying the old pool, refilling, "
               "queue commands", [this] { return sw_cpu_ / 1000; });
  stats.reader(n + "drained_packets", "packets", "packets the device had accepted, delivered after the switch began",
               [this] { return sw_polled_; });
  stats.reader(n + "buffers_freed", "buffers", "posted buffers freed back to the old pool", [this] { return sw_freed_; });
  stats.reader(n + "buffers_posted", "buffers", "buffers posted from the new pool", [this] { return sw_posted_; });
  stats.reader(n + "old_pool_inflight", "pages", "pages of the old pool still in the stack when it was destroyed",
               [this] { return sw_inflight_; });
  stats.reader(n + "done", "bool", "1 when the switch completed", [this] { return sw_state_ == SwState::kDone ? 1 : 0; });
}

void RxQueue::close(sim::Picos now) {
  open_ = false;
  switch_proc_.cancel();
  swap_proc_.cancel();
  refill_work_proc_.cancel();
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
  napi_state(PageEv::kNapiDisable, c.ctx);
  // Free every buffer still on the ring (completed or posted), as ndo_stop does; the packets the
  // device had written into some of them are dropped (and counted).
  const std::uint64_t written = nic_.rx_device_head(id_);
  for (std::uint64_t i = ntc_; i < ntu_; ++i) {
    Desc& d = desc(i);
    if (d.page == page_pool::kNoPage) continue;
    if (i < written) {
      ++close_drops_;
      world_.emit(PageEv::kRxDropCounted, d.page, pool_->id(), d.offset, 0, &c.ctx, &c.cost);
    }
    pool_->put(c, d.page, -1, false, d.offset);
    d.page = page_pool::kNoPage;
  }
  ntc_ = rung_ = ntu_;
}

}  // namespace ppsim::nic

namespace ppsim::nic {

void RxQueue::schedule_pool_swap(sim::Picos at, page_pool::PagePool* new_pool, bool fail) {
  swap_pool_ = new_pool;
  swap_fail_ = fail;
  swap_proc_.wake_at(at);
}

// ndo_queue_stop waits for the queue to drain as the mode switch does: the device stops taking
// packets, NAPI delivers what it had accepted.
void RxQueue::on_pool_swap() {
  const sim::Picos now = kernel_.now();
  if (!open_ || !swap_pool_) return;
  if (!swap_quiescing_) {
    swap_quiescing_ = true;
    nic_.advance(now);
    nic_.rx_stop_accepting(id_, now);
  }
  nic_.advance(now);
  const bool drained = nic_.rx_quiesced(id_) && ntc_ == nic_.rx_device_head(id_);
  if (!drained || napi_scheduled_) {
    if (nic_.rx_quiesced(id_) && !napi_scheduled_ && ntc_ < nic_.rx_device_head(id_)) schedule_napi(now);
    swap_proc_.wake_at(now + sim::kPicosPerUs);
    return;
  }
  pool_swap_restart(now);
}

void RxQueue::pool_swap_restart(sim::Picos now) {
  Caller c;
  c.ctx.cpu = cfg_.cpu;
  c.ctx.exclusive = true;  // between napi_disable and napi_enable nothing else allocates from the pools
  c.ctx.task = "ethtool";
  c.ctx.pid = 7100;
  world_.now = now;
  page_pool::PagePool* old = pool_;
  page_pool::PagePool* fresh = swap_pool_;
  swap_pool_ = nullptr;
  // ndo_queue_stop(old): NAPI off, the posted buffers back to the old pool, the old pool unlinked
  // from the NAPI that the new one will use (40eca00ae605).
  irq_proc_.cancel();
  poll_proc_.cancel();
  napi_.list_owner = -1;
  napi_scheduled_ = completing_ = false;
  napi_state(PageEv::kNapiDisable, c.ctx);
  nic_.rx_enable(id_, false);
  for (std::uint64_t i = ntc_; i < ntu_; ++i) {
    Desc& d = desc(i);
    if (d.page == page_pool::kNoPage) continue;
    pool_->put(c, d.page, -1, false, d.offset);
    d.page = page_pool::kNoPage;
  }
  ntc_ = rung_ = ntu_;
  nic_.rx_reset_ring(id_, ntu_);
  if (!bug(page_pool::Mutant::kStopKeepsNapiLink)) old->disable_direct_recycling(c);
  // ndo_queue_start(new): fill the ring, hand the pool to the NAPI (page_pool_enable_direct_recycling,
  // 64fdaa94bfe0: new pools are created unlinked), NAPI on.
  page_pool::PagePool* doomed = old;
  if (swap_fail_) {
    // The start fails: back to the old pool, linked again; the new pool is freed (mem_free).
    ++swap_rollbacks_;
    doomed = fresh;
    refill(c, now);
    if (!bug(page_pool::Mutant::kRollbackLosesDirect)) old->enable_direct_recycling(c, &napi_.list_owner, napi_.id);
  } else {
    pool_ = fresh;
    refill(c, now);
    pool_->enable_direct_recycling(c, &napi_.list_owner, napi_.id);
  }
  ++swaps_;
  napi_state(PageEv::kNapiEnable, c.ctx);
  nic_.rx_enable(id_, true);
  nic_.rx_start_accepting(id_);
  doorbell(c, now);
  nic_.rx_irq_enable(id_, now);
  // mem_free: page_pool_destroy of the pool no longer used, with the NAPI running again.
  const std::int32_t inflight = doomed->destroy(c);
  if (inflight != 0 && on_pool_destroyed) on_pool_destroyed(doomed);
  if (c.cost > 0) cpus_[static_cast<std::size_t>(cfg_.cpu)].run_work(now, c.cost, &swap_proc_, nullptr);
}

}  // namespace ppsim::nic
