#include "models/world/zerocopy.h"

#include <algorithm>

#include "sim/error.h"

namespace ppsim::world {

using page_pool::Caller;
using page_pool::Mutant;
using page_pool::PageEv;
using sim::Picos;

void register_zerocopy_params(sim::ParamRegistry& r) {
  r.add_bool("zerocopy.enabled", false,
             "an application receives its flows zero-copy: pages mapped read-only into it (queue forced to read-only mode)");
  r.add_int("zerocopy.queue", "", 0, "the PF receive queue whose XDP selector redirects the application's flows", 0, 4095);
  r.add_int("zerocopy.app_flows", "flows", 1, "flows 0 .. app_flows-1 of traffic.flows are the application's", 1, 1 << 24);
  r.add_enum("zerocopy.steering", "dedicated", {"rss", "ntuple", "dedicated"},
             "how the application's flows reach the queue: RSS like any flow; an ntuple filter (other flows still "
             "RSS over every queue); or ntuple plus an RSS table without the queue (a queue of its own)");
  r.add_enum("zerocopy.mapping", "per_page", {"per_page", "persistent"},
             "map each page on delivery and unmap it (TLB shootdown) on return, or map once and keep it mapped "
             "(registered memory: AF_XDP UMEM, io_uring zcrx)");
  r.add_enum("zerocopy.clear", "tagged", {"tagged", "always"},
             "clear bytes outside the packet only on pages that may hold foreign data (a tag reset when another "
             "flow's packet or the allocator had the page), or before every mapping");
  r.add_int("zerocopy.queue_pages", "pages", 256, "delivery queue depth (full: the packet is dropped and counted)", 1, 1 << 24);
  r.add_int("zerocopy.max_user_pages", "pages", 2048,
            "pages the zero-copy pool lets out at once (on the NIC ring, in flight or held by the application); at the "
            "limit the ring cannot refill and the queue's NIC drops (0: no limit)", 0, 1 << 24);
  r.add_int("zerocopy.batch_pages", "pages", 32, "packets the application takes (and maps) per receive call", 1, 1 << 20);
  r.add_int("zerocopy.return_batch_pages", "pages", 32, "pages returned (unmapped, one shootdown) per call", 1, 1 << 20);
  r.add_int("zerocopy.app_cpu", "", 1, "CPU the application runs on", 0, 4095);
  r.add_int("zerocopy.app_cpus_ran", "cpus", 2,
            "CPUs in the application's mm_cpumask: an unmap sends a TLB shootdown IPI to all but the unmapping one", 1, 4096);
  r.add_float("zerocopy.app_wakeup_us", "us", 5.0, "wake-up latency of the idle application after a delivery", 0, 1e9,
              "ppsim assumption (as stack.reader_wakeup_us)");
  r.add_float("zerocopy.app_per_packet_ns", "ns", 50.0, "the application's work per packet besides touching the data",
              0, 1e9, "ppsim assumption (reading a completion entry)");
  r.add_float("zerocopy.app_touch_ns_per_kib", "ns/KiB", 0.0,
              "the application reading the payload (0: not charged, as the copy path's reader does not charge it either)",
              0, 1e9);
  r.add_float("zerocopy.app_hold_us", "us", 0.0, "how long the application keeps each batch before returning it", 0, 1e12);
  r.add_float("zerocopy.xdp_ns", "ns", 60.0, "the XDP selector per packet: program run and, for a match, the redirect",
              0, 1e9, "ppsim assumption");
  const std::string cal = "ppsim assumption; `ppsim calibrate` measures this machine (docs/zerocopy.md)";
  r.add_float("zerocopy.map_fixed_ns", "ns", 400.0, "one map call: syscall, mmap_lock, VMA lookup", 0, 1e9, cal);
  r.add_float("zerocopy.map_per_page_ns", "ns", 70.0, "per 4 KiB page mapped (vm_insert_pages: PTE, page ref, rmap)", 0, 1e9, cal);
  r.add_float("zerocopy.unmap_fixed_ns", "ns", 300.0, "one unmap call: syscall, zap, local TLB flush", 0, 1e9, cal);
  r.add_float("zerocopy.unmap_per_page_ns", "ns", 40.0, "per 4 KiB page unmapped", 0, 1e9, cal);
  r.add_float("zerocopy.shootdown_ns", "ns", 2000.0, "TLB shootdown: IPIs to the other CPUs and waiting for their acks",
              0, 1e9, cal);
  r.add_float("zerocopy.shootdown_per_page_ns", "ns", 0.0,
              "TLB shootdown: the initiator's wait per page unmapped (the other CPUs flush page by page up to 33 "
              "pages, tlb_single_page_flush_ceiling)", 0, 1e9, cal);
  r.add_float("zerocopy.shootdown_remote_ns", "ns", 1000.0, "each remote CPU's flush interrupt", 0, 1e9, cal);
  r.add_float("zerocopy.clear_ns_per_kib", "ns/KiB", 85.0, "zeroing bytes outside the packet", 0, 1e9,
              "11.8 GB/s page-at-a-time clearing on AMD Milan (A. Arora, x86 folio_zero_user multi-page clearing, "
              "linux-mm, June 2025)");
  r.add_float("zerocopy.return_per_page_ns", "ns", 20.0, "persistent mapping: returning a buffer through the refill ring",
              0, 1e9, "ppsim assumption");
  r.add_float("zerocopy.switch_at_us", "us", 0.0,
              "0: the queue runs zero-copy from the start; > 0: it starts in nic.rx_mode and switches at this time", 0, 1e12);
  r.add_float("zerocopy.switch_fixed_us", "us", 50.0,
              "queue stop and start commands of a restart, besides freeing and refilling the ring", 0, 1e9,
              "ppsim assumption (firmware commands are tens of microseconds)");
}

ZeroCopyConfig zerocopy_config_from(const sim::Params& p) {
  ZeroCopyConfig c;
  auto ns = [&](const char* k) { return sim::from_ns(p.get_double(k)); };
  c.app_cpu = static_cast<int>(p.get_int("zerocopy.app_cpu"));
  c.app_cpus_ran = static_cast<int>(p.get_int("zerocopy.app_cpus_ran"));
  c.persistent = p.get_string("zerocopy.mapping") == "persistent";
  c.clear_always = p.get_string("zerocopy.clear") == "always";
  c.queue_pages = static_cast<std::uint32_t>(p.get_int("zerocopy.queue_pages"));
  c.batch_pages = static_cast<std::uint32_t>(p.get_int("zerocopy.batch_pages"));
  c.return_batch_pages = static_cast<std::uint32_t>(p.get_int("zerocopy.return_batch_pages"));
  c.wakeup = sim::from_us(p.get_double("zerocopy.app_wakeup_us"));
  c.per_packet = ns("zerocopy.app_per_packet_ns");
  c.touch_ps_per_byte = p.get_double("zerocopy.app_touch_ns_per_kib") * 1000.0 / 1024.0;
  c.hold = sim::from_us(p.get_double("zerocopy.app_hold_us"));
  c.costs.map_fixed = ns("zerocopy.map_fixed_ns");
  c.costs.map_per_page = ns("zerocopy.map_per_page_ns");
  c.costs.unmap_fixed = ns("zerocopy.unmap_fixed_ns");
  c.costs.unmap_per_page = ns("zerocopy.unmap_per_page_ns");
  c.costs.shootdown = ns("zerocopy.shootdown_ns");
  c.costs.shootdown_per_page = ns("zerocopy.shootdown_per_page_ns");
  c.costs.shootdown_remote = ns("zerocopy.shootdown_remote_ns");
  c.costs.return_per_page = ns("zerocopy.return_per_page_ns");
  c.costs.clear_ps_per_byte = p.get_double("zerocopy.clear_ns_per_kib") * 1000.0 / 1024.0;
  return c;
}

ZeroCopyConsumer::ZeroCopyConsumer(sim::Kernel& kernel, const ZeroCopyConfig& cfg, std::vector<sim::Cpu>& cpus,
                                   page_pool::PageWorld& world, sim::Stats& stats, page_pool::MutantSet mutants)
    : kernel_(kernel), cfg_(cfg), cpus_(cpus), world_(world), mutants_(mutants) {
  for (auto& cpu : cpus_) cpu.label_task(this, "app (zero-copy)");
  wake_proc_ = std::make_unique<sim::Process>(kernel, cfg.name + ".app", [this] {
    woken_ = false;
    app_run();
  });
  hold_proc_ = std::make_unique<sim::Process>(kernel, cfg.name + ".hold", [this] {
    const Picos now = kernel_.now();
    while (!holding_.empty() && holding_.front().first <= now) {
      held_pages_ -= holding_.front().second.size();
      for (auto& e : holding_.front().second) returning_.push_back(e);
      holding_.pop_front();
    }
    if (!holding_.empty()) hold_proc_->wake_at(holding_.front().first);
    flush_returns(now);
  });
  const std::string& n = cfg_.name;
  const double win_s = sim::to_sec(cfg_.window_end - cfg_.window_start);
  stats.reader(n + ".delivered", "packets", "packets XDP redirected into the application's delivery queue", [this] { return delivered_; });
  stats.reader(n + ".queue_full_drops", "packets", "redirected packets dropped because the delivery queue was full",
               [this] { return queue_drops_; });
  stats.reader(n + ".received", "packets", "packets the application processed", [this] { return received_; });
  stats.reader(n + ".rx_bytes", "bytes", "packet bytes the application read through its mappings", [this] { return rx_bytes_; });
  stats.reader(n + ".map_calls", "calls", "map calls (one per receive batch)", [this] { return map_calls_; });
  stats.reader(n + ".pages_mapped", "pages", "4 KiB pages mapped into the application", [this] { return pages_mapped_; });
  stats.reader(n + ".pages_cleared", "pages", "pages cleared outside the packet before mapping", [this] { return pages_cleared_; });
  stats.reader(n + ".bytes_cleared", "bytes", "bytes zeroed before mapping", [this] { return bytes_cleared_; });
  stats.reader(n + ".unmap_calls", "calls", "unmap calls (one per return batch)", [this] { return unmap_calls_; });
  stats.reader(n + ".pages_unmapped", "pages", "4 KiB pages unmapped", [this] { return pages_unmapped_; });
  stats.reader(n + ".shootdowns", "shootdowns", "TLB shootdowns (one per unmap call when other CPUs ran the application)",
               [this] { return shootdowns_; });
  stats.reader(n + ".ipis", "interrupts", "shootdown IPIs sent", [this] { return ipis_; });
  stats.reader(n + ".pages_returned", "pages", "pages the application gave back to their pool", [this] { return returned_; });
  stats.reader(n + ".app_busy_ns", "ns", "the application's CPU time (map, process, unmap, shootdown wait)",
               [this] { return static_cast<std::int64_t>(busy_ps_ / 1000); });
  stats.formula(n + ".rx_mpps", "Mpps", "packets the application processed inside the measurement window / window / 1e6",
                [this, win_s] { return sim::ratio(static_cast<double>(win_packets_), win_s * 1e6); });
  stats.formula(n + ".rx_gbps", "Gb/s", "packet bytes the application processed inside the window * 8 / window",
                [this, win_s] { return sim::ratio(static_cast<double>(win_bytes_) * 8.0, win_s * 1e9); });
}

Caller ZeroCopyConsumer::app_caller() const {
  Caller c;
  c.ctx.cpu = cfg_.app_cpu;
  c.ctx.task = "zc-app";
  c.ctx.pid = 5000 + cfg_.app_cpu;
  return c;
}

// The 4 KiB pages the packet covers (a jumbo frame in a 16 KiB page maps 3 of its 4 pages).
std::uint32_t ZeroCopyConsumer::pages_of(const Entry& e) const {
  return cost::pte_pages(std::uint64_t{e.offset % cost::kPteBytes} + std::max<std::uint32_t>(e.bytes, 1));
}

bool ZeroCopyConsumer::deliver_user(Caller& c, const nic::Skb& skb) {
  if (closed_ || queue_.size() >= cfg_.queue_pages) {
    ++queue_drops_;
    return false;
  }
  queue_.push_back(Entry{skb.page, skb.pool, skb.offset, skb.page_bytes ? skb.page_bytes : skb.bytes, skb.flow});
  ++delivered_;
  skb.pool->user_hold();
  world_.emit(PageEv::kUserDeliver, skb.page, skb.pool->id(), skb.offset, 0, &c.ctx, &c.cost, -1, skb.flow);
  if (!busy_ && !woken_) wake(world_.now + cfg_.wakeup);
  return true;
}

void ZeroCopyConsumer::wake(Picos at) {
  woken_ = true;
  wake_proc_->wake_at(at);
}

// One receive call: map a batch (clearing where needed), then process it.
void ZeroCopyConsumer::app_run() {
  if (busy_ || closed_ || queue_.empty()) return;
  const Picos now = kernel_.now();
  Caller c = app_caller();
  world_.now = now;
  const auto n = std::min<std::size_t>(cfg_.batch_pages, queue_.size());
  std::uint32_t map_pages = 0;
  for (std::size_t i = 0; i < n; ++i) {
    Entry e = queue_.front();
    queue_.pop_front();
    page_pool::Page& pg = world_.page(e.page);
    const bool need_map = !cfg_.persistent || !mapped(e.page);
    if (need_map && (cfg_.clear_always || !pg.zc_clean) && !bug(Mutant::kZcNoClear)) {
      // Zero what is outside the packet: the page may hold the allocator's or another flow's data.
      const std::uint64_t page_bytes = std::uint64_t{page_pool::kPageSize} << pg.order;
      const std::uint64_t clear = page_bytes > e.bytes ? page_bytes - e.bytes : 0;
      if (clear > 0) {  // a packet that fills the page overwrote everything already
        c.cost += cost::clear_cost(cfg_.costs, clear);
        bytes_cleared_ += clear;
        ++pages_cleared_;
        world_.emit(PageEv::kPageClear, e.page, e.pool->id(), e.offset, static_cast<std::int64_t>(clear), &c.ctx, &c.cost);
      }
    }
    pg.zc_clean = true;
    if (need_map) {
      map_pages += pages_of(e);
      world_.emit(PageEv::kUserMap, e.page, e.pool->id(), e.offset, 0, &c.ctx, &c.cost, -1, cfg_.persistent ? 1 : 0);
      if (cfg_.persistent) {
        if (e.page >= persist_.size()) persist_.resize(e.page + 1024, false);
        persist_[e.page] = true;
        persist_list_.push_back(e.page);
      }
    }
    c.cost += cfg_.per_packet + static_cast<Picos>(cfg_.touch_ps_per_byte * e.bytes);
    batch_.push_back(e);
  }
  if (map_pages) {
    c.cost += cost::map_cost(cfg_.costs, map_pages);
    ++map_calls_;
    pages_mapped_ += map_pages;
  }
  busy_ = true;
  busy_ps_ += static_cast<std::uint64_t>(c.cost);
  cpus_[static_cast<std::size_t>(cfg_.app_cpu)].run_work(now, c.cost, this, [this] { batch_done(); });
}

void ZeroCopyConsumer::batch_done() {
  if (closed_) return;
  const Picos now = kernel_.now();
  for (const auto& e : batch_) {
    ++received_;
    rx_bytes_ += e.bytes;
    if (now >= cfg_.window_start && now < cfg_.window_end) {
      ++win_packets_;
      win_bytes_ += e.bytes;
    }
  }
  if (cfg_.hold > 0) {
    held_pages_ += batch_.size();
    holding_.emplace_back(now + cfg_.hold, std::move(batch_));
    batch_.clear();
    if (holding_.size() == 1) hold_proc_->wake_at(now + cfg_.hold);
  } else {
    for (auto& e : batch_) returning_.push_back(e);
    batch_.clear();
  }
  busy_ = false;
  flush_returns(now);
  if (!busy_) app_run();
}

// Give back what is ready: a full return batch, or everything when nothing else is waiting.
void ZeroCopyConsumer::flush_returns(Picos now) {
  if (busy_ || closed_ || returning_.empty()) return;
  if (returning_.size() < cfg_.return_batch_pages && !queue_.empty()) return;
  const auto n = std::min<std::size_t>(cfg_.return_batch_pages, returning_.size());
  unmapping_.assign(returning_.begin(), returning_.begin() + static_cast<std::ptrdiff_t>(n));
  returning_.erase(returning_.begin(), returning_.begin() + static_cast<std::ptrdiff_t>(n));
  Caller c = app_caller();
  world_.now = now;
  if (cfg_.persistent) {
    c.cost += static_cast<Picos>(unmapping_.size()) * cfg_.costs.return_per_page;
    for (const auto& e : unmapping_) give_back(c, e);
    unmapping_.clear();
  } else {
    if (bug(Mutant::kZcRecycleWhileMapped))
      for (const auto& e : unmapping_) give_back(c, e);  // back to the pool while still mapped
    std::uint32_t pages = 0;
    for (const auto& e : unmapping_) {
      pages += pages_of(e);
      world_.emit(PageEv::kUserUnmap, e.page, e.pool->id(), e.offset, 0, &c.ctx, &c.cost);
    }
    const int remote = cfg_.app_cpus_ran - 1;
    c.cost += cost::unmap_cost(cfg_.costs, pages, remote);
    ++unmap_calls_;
    pages_unmapped_ += pages;
    if (remote > 0) {
      ++shootdowns_;
      ipis_ += static_cast<std::uint64_t>(remote);
      // The other CPUs that ran the application take the flush interrupt.
      const int ncpu = static_cast<int>(cpus_.size());
      for (int k = 1; k <= remote && k < ncpu; ++k) {
        sim::Cpu& other = cpus_[static_cast<std::size_t>((cfg_.app_cpu + k) % ncpu)];
        other.run_softirq(other.softirq_start(now), cfg_.costs.shootdown_remote, "TLB shootdown IPI");
      }
    }
    if (bug(Mutant::kZcSkipShootdownWait) && !bug(Mutant::kZcRecycleWhileMapped))
      for (const auto& e : unmapping_) give_back(c, e);  // recycled before the other CPUs flushed
    if (bug(Mutant::kZcRecycleWhileMapped) || bug(Mutant::kZcSkipShootdownWait))
      for (auto& e : unmapping_) e.page = page_pool::kNoPage;  // already given back
  }
  busy_ = true;
  busy_ps_ += static_cast<std::uint64_t>(c.cost);
  cpus_[static_cast<std::size_t>(cfg_.app_cpu)].run_work(now, c.cost, this, [this] { returns_done(); });
}

// The shootdown's acks are in: the pages are the kernel's again.
void ZeroCopyConsumer::returns_done() {
  if (closed_) return;
  const Picos now = kernel_.now();
  Caller c = app_caller();
  world_.now = now;
  for (const auto& e : unmapping_) {
    if (e.page == page_pool::kNoPage) continue;
    world_.emit(PageEv::kTlbShootdown, e.page, e.pool->id(), e.offset, cfg_.app_cpus_ran - 1, &c.ctx, &c.cost);
    give_back(c, e);
  }
  unmapping_.clear();
  if (c.cost > 0) cpus_[static_cast<std::size_t>(cfg_.app_cpu)].run_work(now, c.cost, this, nullptr);
  busy_ = false;
  flush_returns(now);
  if (!busy_) app_run();
}

void ZeroCopyConsumer::give_back(Caller& c, const Entry& e) {
  world_.emit(PageEv::kUserReturn, e.page, e.pool->id(), e.offset, 0, &c.ctx, &c.cost);
  e.pool->user_unhold();
  ++returned_;
  e.pool->put(c, e.page, -1, false, e.offset);
}

void ZeroCopyConsumer::close(Picos now) {
  if (closed_) return;
  Caller c = app_caller();
  world_.now = now;
  // The application exits: its mappings go (one shootdown for all), then every page it held is
  // the kernel's again.
  std::vector<Entry> mapped_now;  // held and mapped (per-page mode)
  for (auto& e : batch_) mapped_now.push_back(e);
  for (auto& e : returning_) mapped_now.push_back(e);
  for (auto& h : holding_)
    for (auto& e : h.second) mapped_now.push_back(e);
  const int remote = cfg_.app_cpus_ran - 1;
  if (cfg_.persistent) {
    for (const page_pool::PageId p : persist_list_) {
      world_.emit(PageEv::kUserUnmap, p, world_.page(p).pool, 0, 0, &c.ctx, &c.cost);
      world_.emit(PageEv::kTlbShootdown, p, world_.page(p).pool, 0, remote, &c.ctx, &c.cost);
    }
  } else {
    for (const auto& e : mapped_now) world_.emit(PageEv::kUserUnmap, e.page, e.pool->id(), e.offset, 0, &c.ctx, &c.cost);
    for (const auto& e : mapped_now) world_.emit(PageEv::kTlbShootdown, e.page, e.pool->id(), e.offset, remote, &c.ctx, &c.cost);
  }
  for (const auto& e : unmapping_) {  // unmapped already, the shootdown was under way
    if (e.page == page_pool::kNoPage) continue;
    world_.emit(PageEv::kTlbShootdown, e.page, e.pool->id(), e.offset, remote, &c.ctx, &c.cost);
    mapped_now.push_back(e);
  }
  for (const auto& e : mapped_now) give_back(c, e);
  for (const auto& e : queue_) give_back(c, e);  // delivered, never mapped
  queue_.clear();
  batch_.clear();
  returning_.clear();
  unmapping_.clear();
  holding_.clear();
  held_pages_ = 0;
  persist_list_.clear();
  persist_.clear();
  closed_ = true;
  wake_proc_->cancel();
  hold_proc_->cancel();
}

}  // namespace ppsim::world
