#include "models/nic/kernel_path.h"

#include <algorithm>

namespace ppsim::nic {

using page_pool::Caller;
using page_pool::PageEv;

KernelPath::KernelPath(sim::Kernel& kernel, const Config& cfg, Napi& napi, page_pool::PagePool& pool,
                       page_pool::PageWorld& world, std::vector<sim::Cpu>& cpus, PacketSink& sink, sim::Stats& stats)
    : cfg_(cfg), napi_(napi), pool_(pool), world_(world), cpus_(cpus), sink_(sink),
      poll_proc_(kernel, cfg.name + ".napi", [this] { on_poll(); }) {
  const std::string& n = cfg_.name;
  stats.reader(n + ".rx_packets", "packets", "packets copied into page_pool buffers and handed to the stack",
               [this] { return packets_; });
  stats.reader(n + ".rx_bytes", "bytes", "bytes handed to the stack", [this] { return bytes_; });
  stats.reader(n + ".copy_bytes", "bytes", "bytes copied by the CPU on the receive side", [this] { return copy_bytes_; });
  stats.reader(n + ".napi_polls", "polls", "receive NAPI polls", [this] { return polls_; });
  stats.reader(n + ".alloc_fail", "packets", "packets dropped because no buffer could be allocated", [this] { return alloc_fail_; });
  stats.reader(n + ".handoff_drops", "packets", "zero-copy: packets dropped because the receiver's delivery queue was full",
               [this] { return handoff_drops_; });
  poll_work_ = &stats.histogram(n + ".poll_work", "packets", "packets handled per receive NAPI poll");
}

void KernelPath::post(const TxPacket* p, std::uint32_t n, sim::Picos t) {
  if (!open_) return;
  for (std::uint32_t i = 0; i < n; ++i) ring_.push_back({p[i].frame_bytes, p[i].flow, t});
  schedule_napi(t);
}

void KernelPath::schedule_napi(sim::Picos at) {
  if (scheduled_) return;
  scheduled_ = true;
  napi_.list_owner = cfg_.rx_cpu;
  poll_proc_.wake_at(cpus_[static_cast<std::size_t>(cfg_.rx_cpu)].softirq_start(at));
}

void KernelPath::on_poll() {
  if (!open_) return;
  const sim::Picos now = poll_proc_.kernel().now();
  if (ring_.empty()) {  // the last poll emptied the ring: napi_complete_done()
    scheduled_ = false;
    napi_.list_owner = -1;
    return;
  }
  sim::Cpu& cpu = cpus_[static_cast<std::size_t>(cfg_.rx_cpu)];
  const sim::Picos start = cpu.softirq_start(now);
  if (start > now) {
    poll_proc_.wake_at(start);
    return;
  }
  Caller c;
  c.ctx.cpu = cfg_.rx_cpu;
  c.ctx.softirq = true;
  c.ctx.task = "<idle>";
  c.cost = cfg_.poll_overhead;
  world_.now = start;
  sink_.net_rx_action(c);
  const auto work = static_cast<std::uint32_t>(std::min<std::size_t>(cfg_.budget, ring_.size()));
  for (std::uint32_t i = 0; i < work; ++i) {
    const Entry e = ring_.front();
    ring_.pop_front();
    world_.now = start + c.cost;
    std::uint32_t offset = 0, size = cfg_.buffer_bytes;
    const page_pool::PageId page = pool_.alloc_netmem(c, &offset, &size);
    if (page == page_pool::kNoPage) {
      ++alloc_fail_;
      continue;
    }
    const std::uint32_t bytes = e.frame > cfg_.fcs_bytes ? e.frame - cfg_.fcs_bytes : 1;
    c.cost += cfg_.per_packet;
    if (!cfg_.zero_copy) {
      c.cost += static_cast<sim::Picos>(bytes * cfg_.copy_ps_per_byte + 0.5);
      copy_bytes_ += bytes;
    }
    world_.now = start + c.cost;
    world_.emit(PageEv::kDataWrite, page, pool_.id(), offset, bytes, &c.ctx, &c.cost, -1, e.flow);
    const std::uint32_t holder = world_.new_holder();
    world_.emit(PageEv::kToStack, page, pool_.id(), offset, 0, &c.ctx, &c.cost, -1, 0, holder);
    Skb skb;
    skb.id = skb.data = holder;
    skb.pp_recycle = true;  // the copy into a page_pool buffer is marked for recycling
    skb.page = page;
    skb.offset = offset;
    skb.bytes = bytes;
    skb.buf_bytes = size;
    skb.alloc_cpu = cfg_.rx_cpu;
    skb.flow = e.flow;
    skb.pool = &pool_;
    skb.rx_time = e.t;
    ++packets_;
    bytes_ += bytes;
    if (start >= cfg_.window_start && start < cfg_.window_end) {
      ++win_packets_;
      win_bytes_ += bytes;
    }
    if (cfg_.zero_copy && user_) {
      // Forwarding reads the headers from a read-only head; the page itself changes hands.
      const std::uint32_t hdr = std::min(cfg_.hdr_bytes, bytes);
      c.cost += cfg_.head_alloc + cfg_.hdr_copy_fixed + static_cast<sim::Picos>(hdr * cfg_.copy_ps_per_byte + 0.5);
      world_.emit(PageEv::kHeadCopy, page, pool_.id(), offset, hdr, &c.ctx, &c.cost);
      if (!user_->deliver_user(c, skb)) {
        ++handoff_drops_;
        pool_.put(c, page, -1, true, offset);
      }
      continue;
    }
    sink_.deliver(c, skb);
  }
  cpu.run_softirq(start, c.cost, "napi_poll kernel path");
  const sim::Picos end = start + c.cost;
  ++polls_;
  poll_work_->add(work);
  if (work > 0 && on_space) on_space(end);
  poll_proc_.wake_at(end);  // poll again, or complete if nothing came in meanwhile
}

void KernelPath::close(sim::Picos now) {
  (void)now;
  open_ = false;
  poll_proc_.cancel();
  scheduled_ = false;
  napi_.list_owner = -1;
  ring_.clear();
}

}  // namespace ppsim::nic
