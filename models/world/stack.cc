#include "models/world/stack.h"

#include "sim/error.h"

namespace ppsim::world {

using page_pool::Caller;
using page_pool::PageEv;

namespace {
// Socket-queue and defer-list events for observers (the cacheline model); no-op when unobserved.
void emit_skb_event(page_pool::PageWorld& w, PageEv kind, const nic::Skb& skb, const page_pool::ExecCtx& ctx,
                    sim::Picos* cost, std::int64_t value) {
  w.emit(kind, skb.page, skb.pool ? skb.pool->id() : -1, skb.offset, value, &ctx, cost);
}
}  // namespace

void register_stack_params(sim::ParamRegistry& r) {
  r.add_enum("stack.mode", "socket", {"xdp_drop", "napi_free", "socket"},
             "fate of received packets: XDP_DROP in the poll, skb freed in the poll, or queued to a socket reader");
  r.add_float("stack.deliver_ns", "ns", 100.0, "per-packet work in the poll after the driver (XDP program or IP/UDP receive)",
              0, 1e9, "ppsim assumption");
  r.add_int("stack.reader_cpu", "", -1, "CPU of the socket reader (-1: the CPU of queue 0)", -1, 4095);
  r.add_float("stack.reader_start_us", "us", 0.0, "the reader starts reading at this time (a late reader)", 0, 1e9);
  r.add_float("stack.reader_wakeup_us", "us", 5.0, "wake-up latency of an idle reader after data arrives", 0, 1e9,
              "ppsim assumption (scheduler wake-up on an idle core)");
  r.add_float("stack.reader_per_skb_ns", "ns", 600.0, "recvmsg cost per skb besides the copy", 0, 1e9,
              "ppsim assumption (syscall + socket lock + skb handling)");
  r.add_float("stack.reader_call_ns", "ns", 0.0,
              "cost of each read call (one per batch of up to read_batch_skbs): a batched receive's system call; 0 "
              "when reader_per_skb_ns already includes one call per skb", 0, 1e9);
  r.add_float("stack.reader_wake_ns", "ns", 0.0,
              "cost of each sleep and wake-up of the reader besides the reads: the read that finds the socket "
              "empty, the poll() that sleeps and returns, the context switches in and out", 0, 1e9,
              "0 keeps a reader that costs only its reads; the replay fits it to the captures' reader turns");
  r.add_float("stack.reader_copy_ns_per_kib", "ns/KiB", 100.0, "copy to user space per KiB (about 10 GB/s)", 0, 1e9,
              "ppsim assumption");
  r.add_int("stack.read_batch_skbs", "skbs", 16, "skbs the reader handles per run before it yields", 1, 1 << 20);
  r.add_int("stack.read_bytes", "bytes", 0,
            "the reader's buffer: a read call stops taking skbs once it has copied this many bytes (a stream "
            "socket's recv(fd, buf, len)); 0: no limit but read_batch_skbs", 0, 1ll << 40);
  r.add_int("stack.rcvbuf_bytes", "bytes", 212992, "socket receive buffer (SO_RCVBUF; net.core.rmem_default)", 1, 1ll << 40);
  r.add_int("stack.skb_overhead_bytes", "bytes", 256,
            "skb->truesize beyond the buffer: SKB_DATA_ALIGN(sizeof(struct sk_buff)) (build_skb buffers already hold "
            "skb_shared_info)", 0, 1 << 20);
  r.add_bool("stack.defer_free", true,
             "skbs freed on another CPU go to the allocating CPU's defer list (skb_attempt_defer_free)");
  r.add_int("stack.defer_max_skbs", "skbs", 64, "net.core.skb_defer_max", 0, 1 << 20);
  r.add_float("stack.ipi_latency_us", "us", 2.0, "IPI to NET_RX softirq on the allocating CPU", 0, 1e9, "ppsim assumption");
  r.add_float("stack.free_ns", "ns", 50.0, "kfree_skb work besides the page_pool put", 0, 1e9, "ppsim assumption");
  r.add_float("stack.extra_ref_fraction", "", 0.0,
              "fraction of packets whose page gets an extra reference (get_page: splice, zero-copy receive)", 0, 1);
  r.add_float("stack.extra_ref_hold_us", "us", 50.0, "how long that extra reference is held", 0, 1e9);
}

StackConfig stack_config_from(const sim::Params& p) {
  StackConfig c;
  const auto& m = p.get_string("stack.mode");
  c.mode = m == "xdp_drop" ? StackConfig::Mode::kXdpDrop : m == "napi_free" ? StackConfig::Mode::kNapiFree
                                                                            : StackConfig::Mode::kSocket;
  c.deliver_cost = sim::from_ns(p.get_double("stack.deliver_ns"));
  c.reader_cpu = static_cast<int>(p.get_int("stack.reader_cpu"));
  c.reader_start = sim::from_us(p.get_double("stack.reader_start_us"));
  c.reader_wakeup = sim::from_us(p.get_double("stack.reader_wakeup_us"));
  c.reader_per_skb = sim::from_ns(p.get_double("stack.reader_per_skb_ns"));
  c.reader_call = sim::from_ns(p.get_double("stack.reader_call_ns"));
  c.reader_wake = sim::from_ns(p.get_double("stack.reader_wake_ns"));
  c.reader_copy_ps_per_byte = p.get_double("stack.reader_copy_ns_per_kib") * 1000.0 / 1024.0;
  c.read_batch = static_cast<std::uint32_t>(p.get_int("stack.read_batch_skbs"));
  c.read_bytes = static_cast<std::uint64_t>(p.get_int("stack.read_bytes"));
  c.rcvbuf_bytes = static_cast<std::uint64_t>(p.get_int("stack.rcvbuf_bytes"));
  c.skb_overhead_bytes = static_cast<std::uint32_t>(p.get_int("stack.skb_overhead_bytes"));
  c.defer_free = p.get_bool("stack.defer_free");
  c.defer_max = static_cast<std::uint32_t>(p.get_int("stack.defer_max_skbs"));
  c.ipi_latency = sim::from_us(p.get_double("stack.ipi_latency_us"));
  c.free_cost = sim::from_ns(p.get_double("stack.free_ns"));
  c.head_free_cost = sim::from_ns(p.get_double("rxmode.head_free_ns"));
  c.extra_ref_fraction = p.get_double("stack.extra_ref_fraction");
  c.extra_ref_hold = sim::from_us(p.get_double("stack.extra_ref_hold_us"));
  return c;
}

Stack::Stack(sim::Kernel& kernel, const StackConfig& cfg, std::vector<sim::Cpu>& cpus, page_pool::PageWorld& world,
             sim::Rng rng, sim::Stats& stats)
    : kernel_(kernel), cfg_(cfg), cpus_(cpus), world_(world), rng_(rng), defer_(cpus.size()),
      defer_count_(cpus.size(), 0), kick_pending_(cpus.size(), false) {
  reader_ = std::make_unique<sim::Process>(kernel, "stack.reader", [this] { reader_run(); });
  if (cfg_.reader_cpu >= 0 && cfg_.reader_cpu < static_cast<int>(cpus.size()))
    cpus[static_cast<std::size_t>(cfg_.reader_cpu)].name_task(this, "reader");
  for (std::size_t i = 0; i < cpus.size(); ++i)
    kick_.push_back(std::make_unique<sim::Process>(kernel, "stack.defer_ipi", [this, i] { on_kick(static_cast<int>(i)); }));
  extra_ = std::make_unique<sim::TimerQueue<Pending>>(kernel, "stack.extra_ref", [this](Pending& pe) {
    world_.put_page(pe.page);
    world_.emit(PageEv::kPutPage, pe.page, -1, 0, world_.page(pe.page).refcount, nullptr, nullptr, kernel_.now());
  });
  stats.reader("stack.delivered", "packets", "packets handed to the stack by NAPI polls", [this] { return delivered_; });
  stats.reader("stack.rcvbuf_drops", "packets", "packets dropped because the socket receive buffer was full",
               [this] { return rcvbuf_drops_; });
  stats.reader("stack.reads", "skbs", "skbs read and freed by the socket reader", [this] { return reads_; });
  stats.reader("stack.deferred", "skbs", "skbs queued on the allocating CPU's defer list", [this] { return deferred_; });
  stats.reader("stack.defer_full", "skbs", "skbs freed locally because the defer list was full", [this] { return defer_full_; });
  stats.reader("stack.defer_flushes", "flushes", "defer-list flushes in NET_RX softirq", [this] { return flushes_; });
  stats.reader("stack.defer_ipis", "interrupts", "IPIs sent to flush a defer list", [this] { return ipis_; });
  stats.reader("stack.extra_refs", "pages", "extra page references taken by the stack", [this] { return extra_refs_; });
  stats.reader("stack.socket_queue_max", "skbs", "longest socket receive queue seen", [this] { return max_queue_; });
}

std::uint64_t Stack::outstanding() const { return queue_.size() + reading_.size() + deferred_outstanding(); }

Caller Stack::reader_caller() const {
  Caller c;
  c.ctx.cpu = cfg_.reader_cpu;
  c.ctx.task = "reader";
  c.ctx.pid = 1000 + cfg_.reader_cpu;
  return c;
}

std::uint64_t Stack::deferred_outstanding() const {
  std::uint64_t n = 0;
  for (const auto& d : defer_) n += d.size();
  return n;
}

void Stack::free_skb(Caller& c, const nic::Skb& skb, bool allow_direct) {
  c.cost += cfg_.free_cost + (skb.head_bytes ? cfg_.head_free_cost : 0);
  put_buffers(c, skb, allow_direct);
}

// skb_release_data: the head and every frag go back to their pool (put_full: sync max_len).
void Stack::put_buffers(Caller& c, const nic::Skb& skb, bool allow_direct) {
  skb.pool->put(c, skb.page, -1, allow_direct, skb.offset);
  for (int i = 0; i < skb.nfrags; ++i) skb.pool->put(c, skb.frag_page[i], -1, allow_direct, skb.frag_off[i]);
}

void Stack::deliver(Caller& c, const nic::Skb& skb) {
  ++delivered_;
  const sim::Picos cost_at_entry = c.cost;  // world_.now is the caller's clock here
  c.cost += cfg_.deliver_cost;
  if (cfg_.extra_ref_fraction > 0 && rng_.bernoulli(cfg_.extra_ref_fraction)) {
    world_.get_page(skb.page);
    ++extra_refs_;
    world_.emit(PageEv::kGetPage, skb.page, -1, 0, world_.page(skb.page).refcount, &c.ctx, &c.cost);
    extra_->schedule_at(world_.now + cfg_.extra_ref_hold, Pending{skb.page});
  }
  switch (cfg_.mode) {
    case StackConfig::Mode::kXdpDrop:
      put_buffers(c, skb, true);  // xdp_return_buff(napi_direct)
      return;
    case StackConfig::Mode::kNapiFree:
      if (skb.head_bytes) c.cost += cfg_.head_free_cost;
      put_buffers(c, skb, false);
      return;
    case StackConfig::Mode::kSocket: break;
  }
  // __udp_enqueue_schedule_skb (6.18): drop when this skb would take rmem past rcvbuf, unless
  // the queue is empty (a small buffer still takes one packet).
  if (rmem_ != 0 && rmem_ + truesize(skb) > cfg_.rcvbuf_bytes) {
    ++rcvbuf_drops_;
    if (skb.head_bytes) c.cost += cfg_.head_free_cost;
    put_buffers(c, skb, false);  // kfree_skb in softirq
    return;
  }
  rmem_ += truesize(skb);
  queue_.push_back(skb);
  emit_skb_event(world_, PageEv::kSockEnqueue, skb, c.ctx, &c.cost, static_cast<std::int64_t>(queue_.size()));
  if (queue_.size() > max_queue_) max_queue_ = queue_.size();
  if (!reader_busy_ && !reader_woken_) {
    reader_woken_ = true;
    // The wake-up latency is the idle CPU's; a busy CPU's scheduler decides when the reader runs.
    const sim::Cpu& rc = cpus_[static_cast<std::size_t>(cfg_.reader_cpu)];
    // sk_data_ready() runs when the skb is queued (world_.now: the poll's clock at this skb).
    sim::Picos at = world_.now + (c.cost - cost_at_entry) + (rc.policy() == sim::Cpu::Policy::kEevdf && !rc.idle() ? 0 : cfg_.reader_wakeup);
    if (at < cfg_.reader_start) at = cfg_.reader_start;
    reader_->wake_at(at);
  }
}

void Stack::pause_reader_until(sim::Picos t) {
  cfg_.reader_start = t;
  if (!reader_busy_ && !queue_.empty()) {
    reader_woken_ = true;
    reader_->cancel();
    reader_->wake_at(t);
  }
}

void Stack::reader_run() {
  reader_woken_ = false;
  if (!reader_busy_) reader_next(kernel_.now());
}

void Stack::reader_next(sim::Picos now) {
  if (queue_.empty()) {  // sleep until the next enqueue wakes us
    reader_slept_ = true;
    return;
  }
  if (now < cfg_.reader_start) {
    reader_woken_ = true;
    reader_->wake_at(cfg_.reader_start);
    return;
  }
  reader_busy_ = true;
  // recvmsg works on what is queued when the reader gets the CPU.
  cpus_[cfg_.reader_cpu].run_work_at_start(now, this, [this] { return reader_take(); }, [this] { reader_batch_done(); },
                                           /*schedule_point=*/false);
}

// One read call: up to read_batch skbs off the socket queue, copied to user space.
sim::Picos Stack::reader_take() {
  Caller c = reader_caller();
  world_.now = kernel_.now();
  sim::Picos cost = cfg_.reader_call;
  if (reader_slept_) {  // the empty read and poll() that put the reader to sleep, and its wake-up
    cost += cfg_.reader_wake;
    reader_slept_ = false;
  }
  std::uint64_t copied = 0;
  while (!queue_.empty() && reading_.size() < cfg_.read_batch && (cfg_.read_bytes == 0 || copied < cfg_.read_bytes)) {
    const nic::Skb& s = queue_.front();
    copied += s.bytes;
    cost += cfg_.reader_per_skb + static_cast<sim::Picos>(cfg_.reader_copy_ps_per_byte * s.bytes);
    // udp_rmem_release: the charge comes off in batches of a quarter of rcvbuf, or when the
    // queue runs empty.
    rmem_deficit_ += truesize(s);
    if (rmem_deficit_ >= cfg_.rcvbuf_bytes / 4 || queue_.size() == 1) {
      rmem_ -= rmem_deficit_;
      rmem_deficit_ = 0;
    }
    reading_.push_back(s);
    emit_skb_event(world_, PageEv::kSockDequeue, s, c.ctx, &cost, s.bytes);
    if (on_read) on_read(s);
    queue_.pop_front();
  }
  return cost;
}

void Stack::reader_batch_done() {
  // The copy of the batch is done (recvmsg returned): free what was read, then read on.
  const sim::Picos now = kernel_.now();
  const int cpu = cfg_.reader_cpu;
  Caller c = reader_caller();
  world_.now = now;
  for (const auto& skb : reading_) {
    ++reads_;
    if (!cfg_.defer_free) {
      free_skb(c, skb, false);  // plain consume_skb in process context
    } else if (skb.alloc_cpu != cpu) {
      defer(c, skb);  // skb_attempt_defer_free
    } else {
      free_local_bh(c, skb);  // skb_attempt_defer_free → kfree_skb_napi_cache on the same CPU
    }
  }
  reading_.clear();
  reader_busy_ = false;
  // The page_pool work of those frees (ring pushes, releases) also runs on this CPU, and then
  // recvmsg returns: a schedule point.
  cpus_[cpu].run_work(now, c.cost, this, nullptr, /*schedule_point=*/true);
  reader_next(now);
}

void Stack::free_local_bh(Caller& c, const nic::Skb& skb) {
  // kfree_skb_napi_cache(): local_bh_disable() around the free, so in_softirq() is true and
  // page_pool_napi_local() may recycle directly if this CPU owns the pool's NAPI.
  const bool was = c.ctx.bh_disabled;
  c.ctx.bh_disabled = true;
  free_skb(c, skb, false);
  c.ctx.bh_disabled = was;
}

void Stack::defer(Caller& c, const nic::Skb& skb) {
  // skb_attempt_defer_free() as of 6.18: the counter is bumped first; at defer_max the skb is
  // freed here instead; the IPI goes out when the counter passes half the limit.
  const int cpu = skb.alloc_cpu;
  const std::uint64_t count = ++defer_count_[cpu];
  if (count >= cfg_.defer_max) {
    ++defer_full_;
    free_local_bh(c, skb);
    return;
  }
  defer_[cpu].push_back(skb);
  emit_skb_event(world_, PageEv::kDeferFree, skb, c.ctx, &c.cost, cpu);
  ++deferred_;
  if (count - 1 == cfg_.defer_max / 2 && !kick_pending_[cpu]) {
    kick_pending_[cpu] = true;
    ++ipis_;
    kick_[cpu]->wake_at(kernel_.now() + cfg_.ipi_latency);
  }
}

void Stack::flush_defer(Caller& c, int cpu) {
  // skb_defer_free_flush(): llist_del_all, so the newest skb is freed first.
  defer_count_[cpu] = 0;
  auto& list = defer_[cpu];
  if (list.empty()) return;
  ++flushes_;
  std::vector<nic::Skb> batch;
  batch.swap(list);
  if (!batch.empty()) emit_skb_event(world_, PageEv::kDeferFlush, batch.front(), c.ctx, &c.cost, static_cast<std::int64_t>(batch.size()));
  for (auto it = batch.rbegin(); it != batch.rend(); ++it) free_skb(c, *it, false);
}

void Stack::net_rx_action(Caller& c) { flush_defer(c, c.ctx.cpu); }

void Stack::flush_all_defer_lists(sim::Picos at) {
  for (std::size_t cpu = 0; cpu < defer_.size(); ++cpu) {
    if (defer_[cpu].empty() || kick_pending_[cpu]) continue;
    kick_pending_[cpu] = true;
    kick_[cpu]->wake_at(at);
  }
}

void Stack::on_kick(int cpu) {
  kick_pending_[cpu] = false;
  const sim::Picos now = kernel_.now();
  sim::Cpu& core = cpus_[cpu];
  const sim::Picos start = core.softirq_start(now);
  if (start > now) {
    kick_pending_[cpu] = true;
    kick_[cpu]->wake_at(start);
    return;
  }
  Caller c;
  c.ctx.cpu = cpu;
  c.ctx.softirq = true;
  c.ctx.task = "<idle>";
  world_.now = now;
  flush_defer(c, cpu);
  core.run_softirq(now, c.cost);
}

}  // namespace ppsim::world
