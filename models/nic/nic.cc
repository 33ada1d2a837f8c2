#include "models/nic/nic.h"

#include <algorithm>
#include <bit>
#include <stdexcept>

#include "models/nic/rx_queue.h"
#include "models/nic/tx_queue.h"

namespace ppsim::nic {

using cost::PcieOp;
using page_pool::PageEv;
using sim::kNever;
using sim::Picos;

Nic::Nic(sim::Kernel& kernel, const Config& cfg, PcieFabric& fabric, page_pool::PageWorld& world, sim::Stats& stats)
    : kernel_(kernel), cfg_(cfg), wire_(cfg.wire), fabric_(fabric), world_(world), stats_(stats),
      proc_(kernel, cfg.name + ".device", [this] { on_wake(); }) {}

int Nic::add_function(const std::string& name, int requester, std::uint32_t rss_flows) {
  Function f;
  f.name = name;
  f.req = requester;
  f.rss_flows = rss_flows ? rss_flows : 1;
  fns_.push_back(std::move(f));
  return static_cast<int>(fns_.size()) - 1;
}

int Nic::add_rx_queue(int fn, RxQueue* q, const RingHwConfig& hw) {
  auto h = std::make_unique<RxHw>();
  h->cfg = hw;
  h->fn = fn;
  h->req = fns_.at(static_cast<std::size_t>(fn)).req;
  h->ring_size = q->config().ring_size;
  if (!std::has_single_bit(h->ring_size)) throw std::invalid_argument(q->config().name + ": ring size is not a power of two");
  h->mask = h->ring_size - 1;
  h->q = q;
  rx_.push_back(std::move(h));
  const int id = static_cast<int>(rx_.size()) - 1;
  fns_[static_cast<std::size_t>(fn)].rxqs.push_back(id);
  return id;
}

int Nic::add_tx_queue(int fn, TxQueue* q, const RingHwConfig& hw, int dest_fn) {
  auto h = std::make_unique<TxHw>();
  h->cfg = hw;
  h->fn = fn;
  h->req = fns_.at(static_cast<std::size_t>(fn)).req;
  h->ring_size = q->config().ring_size;
  if (!std::has_single_bit(h->ring_size)) throw std::invalid_argument(q->config().name + ": ring size is not a power of two");
  h->mask = h->ring_size - 1;
  h->q = q;
  h->dest_fn = dest_fn;
  tx_.push_back(std::move(h));
  return static_cast<int>(tx_.size()) - 1;
}

void Nic::set_steering(int fn, std::uint32_t ntuple_flows, int ntuple_queue, bool exclude) {
  Function& f = fns_.at(static_cast<std::size_t>(fn));
  f.ntuple_flows = ntuple_flows;
  f.ntuple_queue = ntuple_queue;
  f.rss_exclude = exclude;
}

void Nic::set_wire_source(TrafficSource* src, int fn) {
  wire_src_ = src;
  wire_fn_ = fn;
  wire_src_fps_ = wire_.frame_ps(src->packet_bytes());
}

double Nic::in_window(double a, double b) const {
  const double lo = std::max(a, static_cast<double>(cfg_.window_start));
  const double hi = std::min(b, static_cast<double>(cfg_.window_end));
  return hi > lo ? hi - lo : 0.0;
}

void Nic::push(Picos t, Ev kind, std::uint32_t q, std::uint64_t a) {
  agenda_.push(Item{t, seq_++, kind, q, a});
  switch (kind) {
    case Ev::kRxIrqEnableWrite: case Ev::kRxIrqEnable: case Ev::kRxIrqFire:
    case Ev::kTxIrqEnableWrite: case Ev::kTxIrqEnable: case Ev::kTxIrqFire:
      // Interrupt state changes are due on time whoever else looks at the device.
      wakes_.push(t);
      proc_.wake_at(t);
      break;
    default:
      // A vector waiting for its first completion must see what this may cause.
      if (!advancing_ && armed_idle_ > 0) proc_.wake_at(t);
  }
}

// ---- the timeline -------------------------------------------------------------------------

void Nic::advance(Picos until) {
  if (advancing_) return;
  advancing_ = true;
  for (;;) {
    const Picos th = agenda_.empty() ? kNever : agenda_.top().t;
    const Picos ta = wire_src_ ? wire_src_->peek() : kNever;
    const Picos tf = fifo_.empty() ? kNever : rx_head_time();
    const Picos t = std::min({th, ta, tf});
    if (t > until) break;
    now_ = std::max(now_, t);
    if (th == t) {
      const Item it = agenda_.top();
      agenda_.pop();
      handle(it);
    } else if (ta == t) {
      wire_arrival(th);
    } else {
      rx_head(t);
    }
  }
  if (until > now_) now_ = until;
  advancing_ = false;
  reschedule();
}

Picos Nic::next_event() {
  Picos t = agenda_.empty() ? kNever : agenda_.top().t;
  if (wire_src_) t = std::min(t, wire_src_->peek());
  if (!fifo_.empty()) t = std::min(t, rx_head_time());
  return t;
}

// The device needs a simulation event only for interrupts: a running moderation timer, or, while
// some vector is armed with no completion yet, whatever happens next on the timeline (it may be
// that completion).
void Nic::reschedule() {
  while (!wakes_.empty() && wakes_.top() <= now_) wakes_.pop();
  Picos w = wakes_.empty() ? kNever : wakes_.top();
  if (armed_idle_ > 0) w = std::min(w, next_event());
  if (w == proc_.pending()) return;
  proc_.cancel();
  if (w != kNever) proc_.wake_at(w);
}

void Nic::on_wake() { advance(kernel_.now()); }

void Nic::handle(const Item& it) {
  const Picos t = it.t;
  switch (it.kind) {
    case Ev::kRxTailWrite: {
      RxHw& h = *rx_[it.q];
      if (!h.open) break;
      ++h.doorbells;
      push(fabric_.write_down(h.req, 4, t).done, Ev::kRxTail, it.q, it.a);
      break;
    }
    case Ev::kRxTail: {
      RxHw& h = *rx_[it.q];
      if (!h.open) break;
      h.tail = std::max(h.tail, it.a);
      fetch(h, t, true);
      break;
    }
    case Ev::kRxIrqEnableWrite: {
      RxHw& h = *rx_[it.q];
      if (h.open) push(fabric_.write_down(h.req, 4, t).done, Ev::kRxIrqEnable, it.q);
      break;
    }
    case Ev::kRxIrqEnable:
      if (rx_[it.q]->open) arm(*rx_[it.q], true, it.q, t);
      break;
    case Ev::kRxIrqFire: {
      RxHw& h = *rx_[it.q];
      if (h.open && h.vec.armed && it.a == h.vec.gen) fire(h, true, it.q, t);
      break;
    }
    case Ev::kRxWbTimer: {
      RxHw& h = *rx_[it.q];
      if (!h.open || it.a != h.wb_timer_gen) break;
      h.wb_timer = false;
      write_back(h, true, it.q, h.head, t);
      break;
    }
    case Ev::kTxTailWrite: {
      TxHw& h = *tx_[it.q];
      if (!h.open) break;
      ++h.doorbells;
      push(fabric_.write_down(h.req, 4, t).done, Ev::kTxTail, it.q, it.a);
      break;
    }
    case Ev::kTxTail: {
      TxHw& h = *tx_[it.q];
      if (!h.open) break;
      h.tail = std::max(h.tail, it.a);
      tx_engine(it.q, t);
      break;
    }
    case Ev::kTxIrqEnableWrite: {
      TxHw& h = *tx_[it.q];
      if (h.open) push(fabric_.write_down(h.req, 4, t).done, Ev::kTxIrqEnable, it.q);
      break;
    }
    case Ev::kTxIrqEnable:
      if (tx_[it.q]->open) arm(*tx_[it.q], false, it.q, t);
      break;
    case Ev::kTxIrqFire: {
      TxHw& h = *tx_[it.q];
      if (h.open && h.vec.armed && it.a == h.vec.gen) fire(h, false, it.q, t);
      break;
    }
    case Ev::kTxWb: {
      TxHw& h = *tx_[it.q];
      if (h.open) write_back(h, false, it.q, it.a, t);
      break;
    }
    case Ev::kTxWbTimer: {
      TxHw& h = *tx_[it.q];
      if (!h.open || it.a != h.wb_timer_gen) break;
      h.wb_timer = false;
      if (h.wb_sched >= h.head) break;
      if (h.last_read_done <= t) {
        h.wb_sched = h.head;
        write_back(h, false, it.q, h.head, t);
      } else {  // the data of the last descriptors is still being read
        h.wb_timer = true;
        push(h.last_read_done, Ev::kTxWbTimer, it.q, ++h.wb_timer_gen);
      }
      break;
    }
    case Ev::kTxEngine: {
      TxHw& h = *tx_[it.q];
      if (it.a != h.engine_gen) break;
      h.engine_at = kNever;
      tx_engine(it.q, t);
      break;
    }
    case Ev::kHairpin:
      ++hairpin_packets_;
      rx_admit(t, static_cast<std::uint32_t>(it.a & 0xffffffffu), static_cast<int>(it.q),
               static_cast<std::uint32_t>(it.a >> 32));
      break;
  }
}

// ---- receive ------------------------------------------------------------------------------

void Nic::wire_arrival(Picos next_item) {
  const Picos t = wire_src_->peek();
  const std::uint32_t frame = wire_src_->packet_bytes();
  const std::uint32_t flow = wire_src_->flow();
  wire_src_->pop();
  ++rx_arrivals_;
  wire_rx_bytes_ += frame;
  if (in_window(t)) {
    // The frame occupied the line for the frame time before it arrived.
    const double from = static_cast<double>(t) - wire_src_fps_;
    wire_rx_busy_ps_ += from >= static_cast<double>(cfg_.window_start) ? wire_src_fps_ : in_window(from, static_cast<double>(t));
    wire_rx_win_bytes_ += frame;
  }
  if (fifo_.empty() && next_item > t && wire_src_->peek() > t && rx_direct(t, frame, flow)) return;
  rx_admit(t, frame, wire_fn_, flow);
}

// A packet that finds the RX buffer empty, its descriptor fetched and the DMA engine free is
// written at once: the timeline would take it from the buffer next anyway, since nothing else is
// due at t (the caller checked the agenda and the next arrival). The buffer is skipped, not the
// admission check. False when any of that does not hold: it goes through the buffer as usual.
bool Nic::rx_direct(Picos t, std::uint32_t frame, std::uint32_t flow) {
  if (!rx_room(t, 0, frame) || engine_free_ > t) return false;
  const int q = rx_queue_of(wire_fn_, flow);
  RxHw& h = *rx_[static_cast<std::size_t>(q)];
  if (!h.accepting || !rx_desc_fetched(h) || fetch_ready(h, h.head) > t) return false;
  if (in_window(t)) ++rx_admitted_win_;
  rx_write(h, Packet{t, frame, static_cast<std::uint32_t>(q), flow}, t);
  return true;
}

// Steering: ntuple rules first, then RSS.
inline int Nic::rx_queue_of(int fn, std::uint32_t flow) const {
  const Function& f = fns_[static_cast<std::size_t>(fn)];
  if (f.only_rxq >= 0) return f.only_rxq;  // skips the steering tables' chain of loads
  return flow < f.ntuple_flows ? f.rxqs[static_cast<std::size_t>(f.ntuple_queue)]
                               : f.rss_queues[static_cast<std::size_t>(f.rss->queue_of(flow))];
}

inline void Nic::rx_admit(Picos t, std::uint32_t frame, int fn, std::uint32_t flow) {
  if (!rx_room(t, fifo_bytes_, frame)) {
    ++rx_fifo_drops_;
    return;
  }
  const int q = rx_queue_of(fn, flow);
  RxHw& h = *rx_[static_cast<std::size_t>(q)];
  if (!h.accepting) {  // the queue is being restarted: a device drop, counted
    ++h.switch_drops;
    return;
  }
  ++h.in_fifo;
  fifo_.push_back(Packet{t, frame, static_cast<std::uint32_t>(q), flow});
  fifo_bytes_ += frame;
  if (in_window(t)) ++rx_admitted_win_;
}

Picos Nic::fetch_ready(RingHw& h, std::uint64_t index) {
  while (!h.fetches.empty() && h.fetches.front().end <= index) h.fetches.pop_front();
  return h.fetches.front().ready;
}

// When the packet at the head of the RX buffer can be handled: the DMA engine took the previous
// packet (it issues the next write once the previous one started on the link, so the link never
// queues more than a packet ahead of descriptor fetches), the packet has arrived, and its
// descriptor has been fetched.
inline Picos Nic::rx_head_time() {
  const Packet& p = fifo_.front();
  RxHw& h = *rx_[p.q];
  const Picos base = std::max(p.t, engine_free_);
  return rx_desc_fetched(h) ? std::max(base, fetch_ready(h, h.head)) : base;
}

// The packet's data write is booked: the DMA engine and the descriptor move on.
inline void Nic::rx_written(RxHw& h, const Packet& p, std::uint32_t bytes, const PcieTiming& w, Picos t) {
  sending_until_ = w.sent;
  sending_bytes_ = p.frame;
  engine_free_ = w.start;
  ++h.head;
  ++h.packets;
  h.bytes += bytes;
  if (in_window(t)) {
    ++h.win_packets;
    h.win_bytes += bytes;
  }
}

// A prefetch needs fetch_threshold descriptors visible and room for them (fetch checks again).
inline void Nic::rx_prefetch(RxHw& h, Picos t) {
  if (h.tail - h.fetched >= h.cfg.fetch_threshold && h.cfg.desc_cache - (h.fetched - h.head) >= h.cfg.fetch_threshold)
    fetch(h, t, false);
}

// What the device writes into the descriptor with the packet.
static void fill_desc(RxQueue::Desc& d, std::uint32_t bytes, std::uint32_t flow, Picos done) {
  d.pkt_bytes = bytes;
  d.flow = flow;
  d.done = done;
}

void Nic::rx_head(Picos t) {
  const Packet p = fifo_.front();
  RxHw& h = *rx_[p.q];
  if (!h.open || h.head == h.tail) {  // no descriptor posted: drop (SRRCTL.DROP_EN semantics)
    fifo_.pop_front();
    fifo_bytes_ -= p.frame;
    --h.in_fifo;
    if (h.open) ++h.missed;
    else ++rx_discarded_;
    return;
  }
  if (h.head >= h.fetched) {  // visible but not fetched: fetch now, the head waits for it
    fetch(h, t, true);
    return;
  }
  const Picos could = std::max(p.t, engine_free_);
  if (t > could) rx_stall_ps_ += in_window(static_cast<double>(could), static_cast<double>(t));
  fifo_.pop_front();
  fifo_bytes_ -= p.frame;
  --h.in_fifo;
  rx_write(h, p, t);
}

// The packet's data write (and, as configured, its header write and write-back), at t.
void Nic::rx_write(RxHw& h, const Packet& p, Picos t) {
  const std::uint32_t bytes = wire_.dma_bytes(p.frame);
  RxQueue::Desc& d = h.q->desc(h.head);
  PcieTiming w;
  if (h.cfg.header_split && bytes > h.cfg.hdr_bytes) {
    // Headers into the descriptor's header buffer, then the payload into the page: two writes.
    const PcieTiming hw = fabric_.write_up(h.req, PcieOp::kDmaWrite, h.cfg.hdr_bytes, t);
    w = fabric_.write_up(h.req, PcieOp::kDmaWrite, bytes - h.cfg.hdr_bytes, t);
    w.start = hw.start;
    ++h.hdr_writes;
    world_.emit(PageEv::kDmaWrite, d.page, h.q->pool().id(), d.offset, bytes - h.cfg.hdr_bytes, nullptr, nullptr, w.done,
                p.flow);
  } else if (h.cfg.wb_batch == 1 && h.wb_from == h.head) {
    // The usual case: the packet's write-back follows it at once (one descriptor). Both
    // writes are booked together; the rest is what write_back does for one completion.
    Picos vis;
    fabric_.write_up_pair(h.req, bytes, h.cfg.wb_bytes, t, w, vis);
    world_.emit(PageEv::kDmaWrite, d.page, h.q->pool().id(), d.offset, bytes, nullptr, nullptr, w.done, p.flow);
    fill_desc(d, bytes, p.flow, w.done);
    rx_written(h, p, bytes, w, t);
    ++h.wb_writes;
    written_back(h, true, p.q, h.head, 1, vis);
    rx_prefetch(h, t);
    return;
  } else {
    w = fabric_.write_up(h.req, PcieOp::kDmaWrite, bytes, t);
    world_.emit(PageEv::kDmaWrite, d.page, h.q->pool().id(), d.offset, bytes, nullptr, nullptr, w.done, p.flow);
  }
  fill_desc(d, bytes, p.flow, w.done);
  rx_written(h, p, bytes, w, t);
  if (h.head - h.wb_from >= h.cfg.wb_batch) {
    write_back(h, true, p.q, h.head, t);
  } else if (h.cfg.wb_timeout > 0 && !h.wb_timer) {
    h.wb_timer = true;
    push(t + h.cfg.wb_timeout, Ev::kRxWbTimer, p.q, ++h.wb_timer_gen);
  }
  rx_prefetch(h, t);
}

// Descriptor fetch: reads of up to fetch_batch contiguous descriptors while the device's cache
// has room. On a doorbell or on demand any number is fetched; as a prefetch, only once
// fetch_threshold are visible.
void Nic::fetch(RingHw& h, Picos t, bool any_size) {
  for (;;) {
    const std::uint64_t avail = h.tail - h.fetched;
    const std::uint64_t room = h.cfg.desc_cache - (h.fetched - h.head);
    std::uint64_t n = std::min<std::uint64_t>({h.cfg.fetch_batch, avail, room});
    if (n == 0 || (!any_size && n < h.cfg.fetch_threshold)) return;
    const std::uint64_t first = h.slot(h.fetched);
    n = std::min<std::uint64_t>(n, h.ring_size - first);  // a read does not wrap around the ring
    const Picos ready = fabric_.read(h.req, static_cast<std::int64_t>(n * h.cfg.desc_bytes), t).done;
    h.fetched += n;
    h.fetches.push_back(Fetch{h.fetched, ready});
    ++h.fetch_reads;
    h.fetched_descs += n;
  }
}

// Write back completions [wb_from, upto) in place: one write per contiguous run.
Picos Nic::write_back(RingHw& h, bool rx, std::uint32_t q, std::uint64_t upto, Picos t) {
  if (upto <= h.wb_from) return t;
  const std::uint64_t n = upto - h.wb_from;
  const std::uint64_t first = h.slot(h.wb_from);
  const std::uint64_t run = std::min<std::uint64_t>(n, h.ring_size - first);
  Picos vis = fabric_.write_up(h.req, PcieOp::kDmaWrite, static_cast<std::int64_t>(run * h.cfg.wb_bytes), t).done;
  ++h.wb_writes;
  if (run < n) {
    vis = fabric_.write_up(h.req, PcieOp::kDmaWrite, static_cast<std::int64_t>((n - run) * h.cfg.wb_bytes), t).done;
    ++h.wb_writes;
  }
  written_back(h, rx, q, upto, static_cast<std::uint32_t>(n), vis);
  return vis;
}

// Completions up to `upto` (n of them) become visible to the driver at `vis`.
inline void Nic::written_back(RingHw& h, bool rx, std::uint32_t q, std::uint64_t upto, std::uint32_t n, Picos vis) {
  h.wbs.push_back(Landing{upto, vis});
  h.wb_from = upto;
  completed(h, rx, q, n, vis);
}

// ---- interrupts ---------------------------------------------------------------------------

void Nic::completed(RingHw& h, bool rx, std::uint32_t q, std::uint32_t n, Picos visible) {
  Vector& v = h.vec;
  if (!v.armed) return;
  v.frames += n;
  const Ev kind = rx ? Ev::kRxIrqFire : Ev::kTxIrqFire;
  if (!v.timer) {
    v.timer = true;
    --armed_idle_;
    push(visible + h.cfg.irq_coalesce, kind, q, v.gen);
  }
  if (h.cfg.irq_coalesce_frames > 0 && v.frames >= h.cfg.irq_coalesce_frames) push(visible, kind, q, v.gen);
}

void Nic::arm(RingHw& h, bool rx, std::uint32_t q, Picos t) {
  Vector& v = h.vec;
  if (v.armed) return;
  v.armed = true;
  v.timer = false;
  v.frames = 0;
  ++armed_idle_;
  // A cause already pending (completions written back the driver has not cleaned) starts the
  // timer at once, as re-enabling a vector with its cause bit set does.
  const std::uint64_t cleaned = rx ? rx_[q]->q->cleaned() : tx_[q]->q->cleaned();
  if (h.wb_from > cleaned) completed(h, rx, q, 0, t);
}

void Nic::fire(RingHw& h, bool rx, std::uint32_t q, Picos t) {
  Vector& v = h.vec;
  v.armed = false;
  v.timer = false;
  ++v.gen;
  ++v.fired;
  // Write back what is pending before the interrupt (posted writes stay in order, so the MSI-X
  // lands after it).
  if (rx) {
    if (h.head > h.wb_from) write_back(h, true, q, h.head, t);
  } else {
    TxHw& tx = static_cast<TxHw&>(h);
    if (tx.wb_sched < tx.head && tx.last_read_done <= t) {
      tx.wb_sched = tx.head;
      write_back(h, false, q, tx.head, t);
    }
  }
  const Picos lands = fabric_.write_up(h.req, PcieOp::kMsix, 4, t).done;
  if (rx) rx_[q]->q->raise_irq(lands);
  else tx_[q]->q->raise_irq(lands);
}

void Nic::disarm(RingHw& h) {
  if (h.vec.armed && !h.vec.timer) --armed_idle_;
  h.vec.armed = h.vec.timer = false;
  ++h.vec.gen;
}

// ---- transmit -----------------------------------------------------------------------------

void Nic::tx_engine_at(std::uint32_t q, Picos t) {
  TxHw& h = *tx_[q];
  if (t >= h.engine_at) return;
  h.engine_at = t;
  push(t, Ev::kTxEngine, q, ++h.engine_gen);
}

// Read the data of every fetched descriptor, in order, as long as a tag and room in the TX
// packet buffer are free; then the packet goes to the wire (after the previous frame) or through
// the embedded switch to its destination function's RX path.
void Nic::tx_engine(std::uint32_t q, Picos t) {
  TxHw& h = *tx_[q];
  if (!h.open) return;
  for (;;) {
    if (h.head == h.tail) return;  // nothing visible: the next doorbell restarts the engine
    if (h.head >= h.fetched) {
      fetch(h, t, true);
      if (h.head >= h.fetched) return;  // cannot happen while head < tail; kept as a guard
    }
    const Picos ready = fetch_ready(h, h.head);
    if (ready > t) return tx_engine_at(q, ready);
    const Picos tag = fabric_.next_tag_free(h.req);
    if (tag > t) return tx_engine_at(q, tag);
    const TxPacket& p = h.q->desc(h.head);
    while (!h.fifo.empty() && h.fifo.front().first <= t) {
      h.fifo_bytes -= h.fifo.front().second;
      h.fifo.pop_front();
    }
    if (!h.fifo.empty() && h.fifo_bytes + p.frame_bytes > cfg_.tx_fifo_bytes) return tx_engine_at(q, h.fifo.front().first);
    const std::uint32_t bytes = wire_.dma_bytes(p.frame_bytes);  // the NIC appends the FCS
    const Picos got = fabric_.read(h.req, bytes, t).done;
    Picos leaves;
    if (h.dest_fn < 0) {
      const double start = std::max(static_cast<double>(got), wire_tx_free_);
      const double end = start + wire_.frame_ps(p.frame_bytes);
      wire_tx_free_ = end;
      wire_tx_busy_ps_ += in_window(start, end);
      ++wire_tx_packets_;
      wire_tx_bytes_ += p.frame_bytes;
      if (start >= static_cast<double>(cfg_.window_start) && start < static_cast<double>(cfg_.window_end))
        wire_tx_win_bytes_ += p.frame_bytes;
      leaves = static_cast<Picos>(end);
    } else if (cfg_.eswitch_port_gbps > 0) {
      // The switch forwards through the port's pipeline: one frame at a time at port speed.
      const double start = std::max(static_cast<double>(got), eswitch_free_);
      const double end = start + static_cast<double>(wire_.line_bytes(p.frame_bytes)) * 8000.0 / cfg_.eswitch_port_gbps;
      eswitch_free_ = end;
      eswitch_busy_ps_ += in_window(start, end);
      leaves = static_cast<Picos>(end) + cfg_.eswitch_latency;
      push(leaves, Ev::kHairpin, static_cast<std::uint32_t>(h.dest_fn),
           (static_cast<std::uint64_t>(p.flow) << 32) | p.frame_bytes);
      ++h.hairpinned;
    } else {
      leaves = got + cfg_.eswitch_latency;
      push(leaves, Ev::kHairpin, static_cast<std::uint32_t>(h.dest_fn),
           (static_cast<std::uint64_t>(p.flow) << 32) | p.frame_bytes);
      ++h.hairpinned;
    }
    h.fifo.push_back({leaves, p.frame_bytes});
    h.fifo_bytes += p.frame_bytes;
    ++h.head;
    ++h.packets;
    h.bytes += bytes;
    if (in_window(leaves)) {  // counted as it leaves the device
      ++h.win_packets;
      h.win_bytes += bytes;
    }
    h.last_read_done = std::max(h.last_read_done, got);
    if (h.head - h.wb_sched >= h.cfg.wb_batch) {
      h.wb_sched = h.head;
      push(got, Ev::kTxWb, q, h.head);
    } else if (h.cfg.wb_timeout > 0 && !h.wb_timer) {
      h.wb_timer = true;
      push(got + h.cfg.wb_timeout, Ev::kTxWbTimer, q, ++h.wb_timer_gen);
    }
    fetch(h, t, false);
  }
}

// ---- driver → device ----------------------------------------------------------------------

void Nic::rx_tail_write(int q, std::uint64_t tail, Picos t) { push(t, Ev::kRxTailWrite, static_cast<std::uint32_t>(q), tail); }
void Nic::rx_irq_enable(int q, Picos t) { push(t, Ev::kRxIrqEnableWrite, static_cast<std::uint32_t>(q)); }
void Nic::tx_tail_write(int q, std::uint64_t tail, Picos t) { push(t, Ev::kTxTailWrite, static_cast<std::uint32_t>(q), tail); }
void Nic::tx_irq_enable(int q, Picos t) { push(t, Ev::kTxIrqEnableWrite, static_cast<std::uint32_t>(q)); }

void Nic::rx_enable(int q, bool on) {
  RxHw& h = *rx_[static_cast<std::size_t>(q)];
  h.open = on;
  if (!on) disarm(h);
}

void Nic::rx_stop_accepting(int q, Picos t) {
  RxHw& h = *rx_[static_cast<std::size_t>(q)];
  h.accepting = false;
  if (h.head > h.wb_from) write_back(h, true, static_cast<std::uint32_t>(q), h.head, t);
}

void Nic::rx_reset_ring(int q, std::uint64_t index) {
  RxHw& h = *rx_[static_cast<std::size_t>(q)];
  h.head = h.tail = h.fetched = h.wb_from = h.done = index;
  h.fetches.clear();
  h.wbs.clear();
  h.wb_timer = false;
  ++h.wb_timer_gen;
}

bool Nic::rx_quiesced(int q) const {
  const RxHw& h = *rx_[static_cast<std::size_t>(q)];
  return h.in_fifo == 0 && h.wb_from == h.head;
}

std::uint64_t Nic::rx_switch_drops_total() const {
  std::uint64_t n = 0;
  for (const auto& h : rx_) n += h->switch_drops;
  return n;
}

void Nic::tx_enable(int q, bool on) {
  TxHw& h = *tx_[static_cast<std::size_t>(q)];
  h.open = on;
  if (!on) disarm(h);
}

std::uint64_t Nic::rx_done(int q, Picos now) {
  RxHw& h = *rx_[static_cast<std::size_t>(q)];
  while (!h.wbs.empty() && h.wbs.front().at <= now) {
    h.done = h.wbs.front().end;
    h.wbs.pop_front();
  }
  return h.done;
}

std::uint64_t Nic::tx_done(int q, Picos now) {
  TxHw& h = *tx_[static_cast<std::size_t>(q)];
  while (!h.wbs.empty() && h.wbs.front().at <= now) {
    h.done = h.wbs.front().end;
    h.wbs.pop_front();
  }
  return h.done;
}

// ---- measurements -------------------------------------------------------------------------

double Nic::window_ps() const { return static_cast<double>(cfg_.window_end - cfg_.window_start); }
double Nic::wire_rx_utilization() const { return sim::ratio(wire_rx_busy_ps_, window_ps()); }
double Nic::wire_tx_utilization() const { return sim::ratio(wire_tx_busy_ps_, window_ps()); }
double Nic::rx_fetch_stall_utilization() const { return sim::ratio(rx_stall_ps_, window_ps()); }
double Nic::eswitch_utilization() const { return sim::ratio(eswitch_busy_ps_, window_ps()); }

std::uint64_t Nic::rx_missed_total() const {
  std::uint64_t n = 0;
  for (const auto& h : rx_) n += h->missed;
  return n;
}
std::uint64_t Nic::rx_packets_in_window() const {
  std::uint64_t n = 0;
  for (const auto& h : rx_) n += h->win_packets;
  return n;
}
std::uint64_t Nic::rx_bytes_in_window() const {
  std::uint64_t n = 0;
  for (const auto& h : rx_) n += h->win_bytes;
  return n;
}
std::uint64_t Nic::tx_packets_in_window() const {
  std::uint64_t n = 0;
  for (const auto& h : tx_) n += h->win_packets;
  return n;
}
std::uint64_t Nic::tx_bytes_in_window() const {
  std::uint64_t n = 0;
  for (const auto& h : tx_) n += h->win_bytes;
  return n;
}

void Nic::register_stats() {
  for (auto& f : fns_) {
    if (f.rxqs.empty()) continue;
    f.rss_queues.clear();
    for (int i = 0; i < static_cast<int>(f.rxqs.size()); ++i)
      if (!(f.rss_exclude && i == f.ntuple_queue && f.rxqs.size() > 1)) f.rss_queues.push_back(f.rxqs[static_cast<std::size_t>(i)]);
    f.rss = std::make_unique<RssMap>(f.rss_flows, static_cast<int>(f.rss_queues.size()));
    f.only_rxq = f.rxqs.size() == 1 ? f.rxqs[0] : -1;
  }
  sim::Stats& s = stats_;
  auto ring_stats = [&s](RingHw* h, const std::string& n) {
    s.reader(n + ".desc_fetches", "reads", "descriptor fetch DMA reads", [h] { return h->fetch_reads; });
    s.reader(n + ".descs_fetched", "descriptors", "descriptors fetched", [h] { return h->fetched_descs; });
    s.reader(n + ".wb_writes", "writes", "completion write-back DMA writes", [h] { return h->wb_writes; });
    s.reader(n + ".msix", "interrupts", "MSI-X messages the queue's vector sent", [h] { return h->vec.fired; });
  };
  for (auto& up : rx_) {
    RxHw* h = up.get();
    const std::string& n = h->q->config().name;
    s.reader(n + ".rx_packets", "packets", "packets the device wrote into a descriptor's buffer", [h] { return h->packets; });
    s.reader(n + ".rx_bytes", "bytes", "bytes the device wrote into buffers (frames without FCS)", [h] { return h->bytes; });
    s.reader(n + ".rx_missed", "packets", "packets dropped by the device: no posted descriptor", [h] { return h->missed; });
    s.reader(n + ".rx_switch_drops", "packets", "packets dropped by the device while the queue was being restarted (mode switch)",
             [h] { return h->switch_drops; });
    s.reader(n + ".rx_hdr_writes", "writes", "header-split DMA writes into header buffers", [h] { return h->hdr_writes; });
    ring_stats(h, n);
  }
  for (auto& up : tx_) {
    TxHw* h = up.get();
    const std::string& n = h->q->config().name;
    s.reader(n + ".tx_packets", "packets", "packets whose data the device read (then sent or hairpinned)", [h] { return h->packets; });
    s.reader(n + ".tx_bytes", "bytes", "bytes the device read (frames without FCS)", [h] { return h->bytes; });
    s.reader(n + ".hairpinned", "packets", "packets the embedded switch turned back to a function of this NIC",
             [h] { return h->hairpinned; });
    ring_stats(h, n);
  }
  const std::string& n = cfg_.name;
  const double win_s = window_ps() / 1e12;
  s.reader(n + ".rx_arrivals", "packets", "frames received from the wire", [this] { return rx_arrivals_; });
  s.reader(n + ".rx_fifo_drops", "packets", "packets dropped because the RX packet buffer was full", [this] { return rx_fifo_drops_; });
  s.reader(n + ".rx_discarded", "packets", "packets still in the RX packet buffer when their queue was stopped (teardown)",
           [this] { return rx_discarded_; });
  s.reader(n + ".hairpin_packets", "packets", "packets that entered the RX path from the embedded switch", [this] { return hairpin_packets_; });
  s.formula(n + ".rx_gbps", "Gb/s", "bytes written to RX buffers inside the measurement window * 8 / window (all queues)",
            [this, win_s] { return sim::ratio(static_cast<double>(rx_bytes_in_window()) * 8.0, win_s * 1e9); });
  s.formula(n + ".rx_mpps", "Mpps", "packets written to RX buffers inside the measurement window / window / 1e6",
            [this, win_s] { return sim::ratio(static_cast<double>(rx_packets_in_window()), win_s * 1e6); });
  s.formula(n + ".tx_gbps", "Gb/s", "bytes of transmitted frames (without FCS) leaving the device inside the window * 8 / window",
            [this, win_s] { return sim::ratio(static_cast<double>(tx_bytes_in_window()) * 8.0, win_s * 1e9); });
  s.formula(n + ".tx_mpps", "Mpps", "transmitted packets leaving the device (wire or embedded switch) inside the window / 1e6 s",
            [this, win_s] { return sim::ratio(static_cast<double>(tx_packets_in_window()), win_s * 1e6); });
  s.formula(n + ".wire.line_rate_gbps", "Gb/s", "line rate", [this] { return wire_.config().gbps; });
  s.formula(n + ".wire.rx_utilization", "ratio", "time the receive line was busy with frames / window",
            [this] { return wire_rx_utilization(); });
  s.formula(n + ".wire.tx_utilization", "ratio", "time the transmit line was busy with frames / window",
            [this] { return wire_tx_utilization(); });
  s.reader(n + ".wire.tx_packets", "packets", "frames sent on the wire", [this] { return wire_tx_packets_; });
  s.formula(n + ".wire.rx_gbps", "Gb/s", "frame bytes (FCS included) arriving inside the window * 8 / window",
            [this, win_s] { return sim::ratio(static_cast<double>(wire_rx_win_bytes_) * 8.0, win_s * 1e9); });
  s.formula(n + ".wire.tx_gbps", "Gb/s", "frame bytes (FCS included) sent inside the window * 8 / window",
            [this, win_s] { return sim::ratio(static_cast<double>(wire_tx_win_bytes_) * 8.0, win_s * 1e9); });
  s.reader(n + ".wire.rx_bytes", "bytes", "frame bytes received (FCS included, overhead excluded)", [this] { return wire_rx_bytes_; });
  s.reader(n + ".wire.tx_bytes", "bytes", "frame bytes sent (FCS included, overhead excluded)", [this] { return wire_tx_bytes_; });
  if (wire_src_) {
    const std::uint32_t pkt = wire_src_->packet_bytes();
    s.formula(n + ".wire.rx_max_mpps", "Mpps", "packet rate the line allows for the received frame size",
              [this, pkt] { return wire_.max_pps(pkt) / 1e6; });
  }
  s.formula(n + ".rx_fetch_stall_utilization", "ratio",
            "time the RX DMA engine waited for a descriptor fetch in flight / window", [this] { return rx_fetch_stall_utilization(); });
}

}  // namespace ppsim::nic
