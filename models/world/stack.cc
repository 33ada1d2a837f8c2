#include "models/world/stack.h"

#include <algorithm>

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
  r.add_float("stack.reader_initial_lag_us", "us", 0.0,
              "EEVDF: the lag the reader sleeps with when the traffic starts (it ran its setup before): "
              "positive, it preempts the sender at the first datagram", -1e6, 1e6,
              "ppsim fit: the same value for every capture, from the fit set's same-CPU starts");
  r.add_float("stack.reader_copy_ns_per_kib", "ns/KiB", 100.0, "copy to user space per KiB (about 10 GB/s)", 0, 1e9,
              "ppsim assumption");
  r.add_int("stack.read_batch_skbs", "skbs", 16, "skbs the reader handles per run before it yields", 1, 1 << 20);
  r.add_int("stack.read_bytes", "bytes", 0,
            "the reader's buffer: a read call stops taking skbs once it has copied this many bytes (a stream "
            "socket's recv(fd, buf, len)); 0: no limit but read_batch_skbs", 0, 1ll << 40);
  r.add_float("stack.reader_first_touch_ns", "ns", 0.0,
              "the first touch of each 4 KiB page of the reader's buffer (a page fault: the capture tool's buffer "
              "is malloc'd and never written before its first read); a read call touches the pages its copy "
              "fills, up to read_bytes", 0, 1e9,
              "0: a warm buffer (the replay's default); the fit set's same-CPU TCP readers show 13-44 us per page, "
              "median 33 (docs/replay.md)");
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
  r.add_float("stack.tap_fraction", "", 0.0,
              "fraction of skbs a packet tap (af_packet, tcpdump) also receives: skb_clone shares the data area", 0, 1);
  r.add_float("stack.tap_hold_us", "us", 100.0, "how long the tap keeps its clone before freeing it (process context "
              "on the reader CPU)", 0, 1e9);
  r.add_bool("stack.tap_expand", false,
             "the tap gives its clone a private head first (pskb_expand_head: its own page reference on every frag)");
  r.add_bool("stack.coalesce", false,
             "socket mode: a new skb is coalesced into the tail skb of the receive queue when it can be "
             "(tcp_try_coalesce → skb_try_coalesce)");
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
  c.reader_initial_lag = sim::from_us(p.get_double("stack.reader_initial_lag_us"));
  c.reader_copy_ps_per_byte = p.get_double("stack.reader_copy_ns_per_kib") * 1000.0 / 1024.0;
  c.remote_copy_ps_per_byte = p.get_double("cpus.remote_copy_ns_per_kib") * 1000.0 / 1024.0;
  c.read_batch = static_cast<std::uint32_t>(p.get_int("stack.read_batch_skbs"));
  c.read_bytes = static_cast<std::uint64_t>(p.get_int("stack.read_bytes"));
  c.first_touch = sim::from_ns(p.get_double("stack.reader_first_touch_ns"));
  c.rcvbuf_bytes = static_cast<std::uint64_t>(p.get_int("stack.rcvbuf_bytes"));
  c.skb_overhead_bytes = static_cast<std::uint32_t>(p.get_int("stack.skb_overhead_bytes"));
  c.defer_free = p.get_bool("stack.defer_free");
  c.defer_max = static_cast<std::uint32_t>(p.get_int("stack.defer_max_skbs"));
  c.ipi_latency = sim::from_us(p.get_double("stack.ipi_latency_us"));
  c.free_cost = sim::from_ns(p.get_double("stack.free_ns"));
  c.head_free_cost = sim::from_ns(p.get_double("rxmode.head_free_ns"));
  c.extra_ref_fraction = p.get_double("stack.extra_ref_fraction");
  c.extra_ref_hold = sim::from_us(p.get_double("stack.extra_ref_hold_us"));
  c.tap_fraction = p.get_double("stack.tap_fraction");
  c.tap_hold = sim::from_us(p.get_double("stack.tap_hold_us"));
  c.tap_expand = p.get_bool("stack.tap_expand");
  c.coalesce = p.get_bool("stack.coalesce");
  return c;
}

Stack::Stack(sim::Kernel& kernel, const StackConfig& cfg, std::vector<sim::Cpu>& cpus, page_pool::PageWorld& world,
             sim::Rng rng, sim::Stats& stats, page_pool::MutantSet mutants)
    : kernel_(kernel), cfg_(cfg), cpus_(cpus), world_(world), rng_(rng), defer_(cpus.size()),
      defer_count_(cpus.size(), 0), kick_pending_(cpus.size(), false), mutants_(mutants), buf_(cfg.first_touch) {
  reader_ = std::make_unique<sim::Process>(kernel, "stack.reader", [this] { reader_run(); });
  if (cfg_.reader_cpu >= 0 && cfg_.reader_cpu < static_cast<int>(cpus.size())) {
    cpus[static_cast<std::size_t>(cfg_.reader_cpu)].name_task(this, "reader");
    cpus[static_cast<std::size_t>(cfg_.reader_cpu)].trace_task(this, kReaderComm, kReaderPid);
    // The reader has run before the traffic starts (its setup) and sleeps in poll() with a lag.
    cpus[static_cast<std::size_t>(cfg_.reader_cpu)].set_sleeping_lag(this, cfg_.reader_initial_lag);
  }
  for (std::size_t i = 0; i < cpus.size(); ++i)
    kick_.push_back(std::make_unique<sim::Process>(kernel, "stack.defer_ipi", [this, i] { on_kick(static_cast<int>(i)); }));
  extra_ = std::make_unique<sim::TimerQueue<Pending>>(kernel, "stack.extra_ref", [this](Pending& pe) {
    world_.put_page(pe.page);
    world_.emit(PageEv::kPutPage, pe.page, -1, 0, world_.page(pe.page).refcount, nullptr, nullptr, kernel_.now());
  });
  tap_ = std::make_unique<sim::TimerQueue<nic::Skb>>(kernel, "stack.tap", [this](nic::Skb& clone) {
    Caller c = reader_caller();
    c.ctx.task = "tcpdump";
    world_.now = kernel_.now();
    free_skb(c, clone);
    if (c.cost > 0) cpus_[static_cast<std::size_t>(cfg_.reader_cpu)].run_work(kernel_.now(), c.cost, tap_.get(), nullptr);
  });
  for (auto& cpu : cpus) cpu.label_task(tap_.get(), "tcpdump");
  stats.reader("stack.delivered", "packets", "packets handed to the stack by NAPI polls", [this] { return delivered_; });
  if (cfg_.tap_fraction > 0)
    stats.reader("stack.tap_clones", "skbs", "skbs cloned to the packet tap", [this] { return tap_clones_; });
  if (cfg_.coalesce)
    stats.reader("stack.coalesced", "skbs", "skbs coalesced into the tail skb of the socket queue", [this] { return coalesced_; });
  stats.reader("stack.rcvbuf_drops", "packets", "packets dropped because the socket receive buffer was full",
               [this] { return rcvbuf_drops_; });
  if (buf_.on())
    stats.reader("stack.reader_buffer_faults", "pages", "pages of the reader's buffer faulted in by its first touch",
                 [this] { return buf_.faults(); });
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

void Stack::free_skb(Caller& c, const nic::Skb& skb) {
  c.cost += cfg_.free_cost + (skb.head_bytes ? cfg_.head_free_cost : 0);
  release_data(c, skb);
}

// xdp_return_buff(napi_direct): the memory type says page_pool, no skb is involved.
void Stack::xdp_return(Caller& c, const nic::Skb& skb) {
  skb.pool->put(c, skb.page, -1, true, skb.offset);
  for (int i = 0; i < skb.nfrags; ++i) skb.pool->put(c, skb.frag_page[i], -1, true, skb.frag_off[i]);
}

// skb_release_data: only the last user of a shared data area drops its references (skb_data_unref).
void Stack::release_data(Caller& c, const nic::Skb& skb) {
  if (skb.cloned) {
    auto it = dataref_.find(skb.data);
    if (it != dataref_.end() && --it->second > 0) return;
    if (it != dataref_.end()) dataref_.erase(it);
  }
  if (skb.page != page_pool::kNoPage) page_unref(c, skb, skb.page, skb.offset);
  for (int i = 0; i < skb.nfrags; ++i) page_unref(c, skb, skb.frag_page[i], skb.frag_off[i]);
}

// netmem_is_pp(): (pp_magic & PP_MAGIC_MASK) == PP_SIGNATURE. The mask hides the low bits the
// page keeps in that word, the pfmemalloc bit among them (0fa32ca438b4).
bool Stack::is_pp(page_pool::PageId p) const {
  const page_pool::Page& pg = world_.page(p);
  if (!(pg.pp_magic & page_pool::kPpSignature)) return false;
  return !(pg.pfmemalloc && bug(page_pool::Mutant::kSignatureUnmasked));
}

// skb_page_unref(): napi_pp_put_page (page_pool_put_full_netmem, allow_direct=false) when the skb
// is marked for recycling and the page is a pool page, put_page otherwise.
void Stack::page_unref(Caller& c, const nic::Skb& skb, page_pool::PageId p, std::uint32_t offset) {
  if (skb.pp_recycle && is_pp(p)) {
    skb.pool->put(c, p, -1, false, offset, skb.data);
    return;
  }
  world_.put_page(p);
  world_.emit(PageEv::kPutPage, p, -1, offset, world_.page(p).refcount, &c.ctx, &c.cost, -1, 0, skb.data);
}

// skb_frag_ref(): get_netmem, a page reference. The mirrored helpers of a580ea994fd3 took a pp
// reference while skb->pp_recycle was set (reverted by 173e7622ccb3).
void Stack::frag_ref(Caller& c, const nic::Skb& skb, page_pool::PageId p, std::uint32_t offset) {
  if (bug(page_pool::Mutant::kFragRefKindFromFlag) && skb.pp_recycle && is_pp(p)) {
    skb.pool->ref(c, p, offset, skb.data);
    return;
  }
  world_.get_page(p);
  world_.emit(PageEv::kGetPage, p, -1, offset, world_.page(p).refcount, &c.ctx, &c.cost, -1, 0, skb.data);
}

// skb_clone() for the tap: both skbs use one data area until the last of them is freed.
void Stack::tap_clone(Caller& c, nic::Skb& skb) {
  auto [it, fresh] = dataref_.try_emplace(skb.data, 1);
  ++it->second;
  skb.cloned = true;
  nic::Skb clone = skb;
  clone.id = world_.new_holder();
  ++tap_clones_;
  if (cfg_.tap_expand) expand_head(c, clone);
  tap_->schedule_at(world_.now + cfg_.tap_hold, clone);
}

// pskb_expand_head() on a clone: a private data area. The head bytes are copied (a head that
// lived in a pool page is no longer referenced); every page frag gets a reference of the clone's
// own; then the shared area is released, which clears pp_recycle (2cc3aeb5eccc), so the clone
// later drops those page references with put_page.
void Stack::expand_head(Caller& c, nic::Skb& clone) {
  const nic::Skb shared = clone;
  clone.data = clone.id;
  clone.cloned = false;
  if (clone.head_bytes == 0) {
    clone.page = page_pool::kNoPage;  // the head was the pool buffer: copied out
  } else {
    frag_ref(c, clone, clone.page, clone.offset);  // read-only layout: the pool buffer is frag 0
  }
  for (int i = 0; i < clone.nfrags; ++i) frag_ref(c, clone, clone.frag_page[i], clone.frag_off[i]);
  release_data(c, shared);
  if (!bug(page_pool::Mutant::kCloneKeepsPpRecycle)) clone.pp_recycle = false;
}

// skb_try_coalesce() as tcp_try_coalesce calls it (6.18): `from`'s buffers become frags of `to`.
bool Stack::try_coalesce(Caller& c, nic::Skb& to, const nic::Skb& from) {
  if (to.cloned || to.pp_recycle != from.pp_recycle) return false;
  // The replay's FIN carries no payload; the reader recognises EOF by an skb of its own (in the
  // kernel a zero-length FIN is copied into the tail's tailroom and its flag merged).
  const std::uint32_t pulled = cfg_.coalesce_pulled_bytes;
  if (pulled && from.bytes <= pulled) return false;
  const bool head_in_pool = from.head_bytes == 0;  // writable layout: from's head is a pool buffer
  if (head_in_pool && from.cloned) return false;   // skb_head_is_locked: the clone shares that head
  if (to.nfrags + 1 + from.nfrags > nic::Skb::kMaxFrags) return false;
  auto take = [&](page_pool::PageId p, std::uint32_t off) {
    if (!from.cloned) {  // the reference moves: from's data area gives it up
      world_.emit(PageEv::kRefMove, p, to.pool ? to.pool->id() : -1, off, from.data, &c.ctx, &c.cost, -1, 0, to.data);
    } else if (from.pp_recycle && is_pp(p) && !bug(page_pool::Mutant::kCoalesceClonePageRef)) {
      to.pool->ref(c, p, off, to.data);  // skb_pp_frag_ref: a pp reference for a pool page
    } else {
      // Before 1effe8ca4e34 a cloned pp skb was coalesced with page references.
      world_.get_page(p);
      world_.emit(PageEv::kGetPage, p, -1, off, world_.page(p).refcount, &c.ctx, &c.cost, -1, 0, to.data);
    }
    to.frag_page[to.nfrags] = p;
    to.frag_off[to.nfrags] = off;
    ++to.nfrags;
  };
  take(from.page, from.offset);
  for (int i = 0; i < from.nfrags; ++i) take(from.frag_page[i], from.frag_off[i]);
  to.bytes += from.bytes - std::min(from.bytes, pulled);  // from->len: TCP pulled its headers
  to.buf_bytes += from.buf_bytes;
  ++coalesced_;
  // kfree_skb_partial(from): a clone still shares from's data area, so only its user count drops.
  if (from.cloned) release_data(c, from);
  return true;
}

void Stack::deliver(Caller& c, const nic::Skb& in) { deliver_costing(c, in, cfg_.deliver_cost); }

void Stack::deliver_costing(Caller& c, const nic::Skb& in, sim::Picos protocol_cost) {
  ++delivered_;
  const sim::Picos cost_at_entry = c.cost;  // world_.now is the caller's clock here
  c.cost += protocol_cost;
  if (cfg_.extra_ref_fraction > 0 && rng_.bernoulli(cfg_.extra_ref_fraction)) {
    world_.get_page(in.page);
    ++extra_refs_;
    world_.emit(PageEv::kGetPage, in.page, -1, 0, world_.page(in.page).refcount, &c.ctx, &c.cost);
    extra_->schedule_at(world_.now + cfg_.extra_ref_hold, Pending{in.page});
  }
  if (cfg_.mode == StackConfig::Mode::kXdpDrop) {
    xdp_return(c, in);
    return;
  }
  nic::Skb skb = in;
  if (cfg_.tap_fraction > 0 && rng_.bernoulli(cfg_.tap_fraction)) tap_clone(c, skb);
  if (cfg_.mode == StackConfig::Mode::kNapiFree) {
    if (skb.head_bytes) c.cost += cfg_.head_free_cost;
    release_data(c, skb);
    return;
  }
  // __udp_enqueue_schedule_skb (6.18): drop when this skb would take rmem past rcvbuf, unless
  // the queue is empty (a small buffer still takes one packet).
  if (rmem_ != 0 && rmem_ + truesize(skb) > cfg_.rcvbuf_bytes) {
    ++rcvbuf_drops_;
    if (skb.head_bytes) c.cost += cfg_.head_free_cost;
    release_data(c, skb);  // kfree_skb in softirq
    return;
  }
  if (cfg_.coalesce && !queue_.empty() && try_coalesce(c, queue_.back(), skb)) {
    rmem_ += skb.buf_bytes;  // the merged skb's truesize grows by from's buffers
    if (skb.head_bytes) c.cost += cfg_.head_free_cost;
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

// copy_to_user of an skb's data: the part in pages another CPU's cache wrote last comes over line by
// line (cpus.remote_copy_ns_per_kib). Afterwards the reader's cache holds the lines too.
sim::Picos Stack::remote_copy_cost(const nic::Skb& s) {
  const int cpu = cfg_.reader_cpu;
  int pages = 0, remote = 0;
  auto visit = [&](page_pool::PageId id) {
    if (id == page_pool::kNoPage) return;
    page_pool::Page& pg = world_.page(id);
    ++pages;
    if (pg.data_writer_cpu >= 0 && pg.data_writer_cpu != cpu) ++remote;
    pg.data_reader_cpu = static_cast<std::int16_t>(cpu);
  };
  visit(s.page);
  for (int i = 0; i < s.nfrags; ++i) visit(s.frag_page[i]);
  if (remote == 0 || cfg_.remote_copy_ps_per_byte <= 0) return 0;
  return static_cast<sim::Picos>(cfg_.remote_copy_ps_per_byte * s.bytes * remote / pages);
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
    cost += cfg_.reader_per_skb + static_cast<sim::Picos>(cfg_.reader_copy_ps_per_byte * s.bytes) + remote_copy_cost(s);
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
  // copy_to_user faults in each page of the buffer it reaches for the first time.
  if (buf_.on()) cost += buf_.touch(cfg_.read_bytes > 0 ? std::min(copied, cfg_.read_bytes) : copied);
  if (!reading_.empty() && on_read_call_end) on_read_call_end();
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
      free_skb(c, skb);  // plain consume_skb in process context
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
  free_skb(c, skb);
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
  for (auto it = batch.rbegin(); it != batch.rend(); ++it) free_skb(c, *it);
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
  core.run_softirq(now, c.cost, "skb defer flush (IPI)");
}

}  // namespace ppsim::world
