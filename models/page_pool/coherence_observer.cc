#include "models/page_pool/coherence_observer.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "sim/error.h"

#ifndef PPSIM_MACHINES_DIR
#define PPSIM_MACHINES_DIR ""
#endif

namespace ppsim::page_pool {

using cost::Access;
using cost::LineType;

namespace {

// Line ids within a type: pool-scoped structures are spread by pool id.
constexpr std::uint64_t kPoolSpan = 1ull << 24;
// struct page_pool lines other than alloc/ring (include/net/page_pool/types.h):
constexpr std::uint64_t kHdrLine = 0;      // p, cpuid, pages_state_hold_cnt
constexpr std::uint64_t kAllocStats = 1;   // alloc_stats (softirq only)
constexpr std::uint64_t kReleaseLine = 2;  // pages_state_release_cnt, right after ptr_ring's size/batch/queue
constexpr std::uint64_t kFragLine = 3;     // frag_users, frag_page, frag_offset (own cacheline group)
constexpr std::uint64_t kRecycleStats = 16;  // + cpu: per-CPU recycle_stats
constexpr std::uint32_t kPtrsPerLine = 8;

std::uint64_t slot_line(int pool, std::uint32_t slot) { return pool * kPoolSpan + slot / kPtrsPerLine; }
// pp_alloc_cache { u32 count; netmem_ref cache[128]; }: cache[i] sits at byte 8 + 8 i.
std::uint64_t cache_line(int pool, std::uint32_t i) { return pool * 64ull + (i + 1) / kPtrsPerLine; }
std::uint64_t data_line(PageId p, std::uint32_t byte) { return (std::uint64_t{p} << 12) | (byte / 64); }

}  // namespace

CoherenceObserver::CoherenceObserver(cost::MachineProfile profile, const CoherenceOptions& opt)
    : model_(std::move(profile)), opt_(opt) {
  if (opt_.descs_per_line == 0 || opt_.socket_entries_per_line == 0 || opt_.socket_entries == 0 || opt_.desc_ring_size == 0)
    throw std::invalid_argument("coherence: line geometry values must be positive");
}

void CoherenceObserver::add_pool(const PagePool* p) {
  PoolMirror& m = pool(p->id());
  m.ring_size = p->ring().size();
  m.batch = p->ring().batch();
}

CoherenceObserver::PoolMirror& CoherenceObserver::pool(int id) {
  if (id < 0) id = 0;
  if (static_cast<int>(pools_.size()) <= id) pools_.resize(id + 1);
  return pools_[id];
}

double CoherenceObserver::touch(int cpu, LineType t, std::uint64_t index, Access a) {
  return model_.access(cpu, t, index, a);
}

void CoherenceObserver::charge(const PageEvent& ev, double ns) {
  if (ev.cost && ns > 0) *ev.cost += sim::from_ns(ns);
}

void CoherenceObserver::close_pending() {
  if (!pending_.open) return;
  if (pending_.path >= 0) {
    paths_[pending_.path].ns += pending_.put.ns;
    paths_[pending_.path].transfers += pending_.put.transfers;
  }
  pending_ = Pending{};
}

void CoherenceObserver::on_event(const PageEvent& ev, const PageWorld& world) {
  const bool continues_free = pending_.open && ev.ctx == pending_.ctx && ev.cost == pending_.cost &&
                              (ev.kind == PageEv::kCachePush || ev.kind == PageEv::kRingProduce ||
                               ev.kind == PageEv::kRelease || ev.kind == PageEv::kDmaSyncForDevice ||
                               ev.kind == PageEv::kDmaUnmap || ev.kind == PageEv::kProducerLock ||
                               ev.kind == PageEv::kProducerUnlock);
  if (!continues_free) close_pending();

  const int cpu = ev.ctx ? model_cpu(ev.ctx->cpu) : -1;
  const int pid = ev.pool;
  const PageId pg = ev.page;
  if (pg != kNoPage && pg >= alloc_cpu_.size()) {
    alloc_cpu_.resize(pg + 1024, -1);
    frag_.resize(pg + 1024, 0);
  }
  double ns = 0;
  int path = -1;
  auto t = [&](LineType type, std::uint64_t index, Access a) { ns += touch(cpu, type, index, a); };

  switch (ev.kind) {
    case PageEv::kCachePop: {
      if (!ev.ctx) break;
      PoolMirror& m = pool(pid);
      if (m.alloc_count > 0) --m.alloc_count;
      t(LineType::kAllocCache, cache_line(pid, 0), Access::kWrite);  // count
      t(LineType::kAllocCache, cache_line(pid, m.alloc_count), Access::kRead);
      if (ev.to == PageLoc::kOut) {
        t(LineType::kPoolStats, pid * kPoolSpan + kAllocStats, Access::kWrite);
        alloc_cpu_[pg] = static_cast<std::int16_t>(cpu);
        frag_[pg] = 0;
        path = kDirect;
      } else {
        path = kRelease;  // flushed out of the cache to be released
      }
      break;
    }
    case PageEv::kCachePush: {
      if (!ev.ctx) break;
      PoolMirror& m = pool(pid);
      t(LineType::kAllocCache, cache_line(pid, 0), Access::kWrite);
      t(LineType::kAllocCache, cache_line(pid, m.alloc_count), Access::kWrite);
      ++m.alloc_count;
      t(LineType::kPoolStats, pid * kPoolSpan + kRecycleStats + cpu, Access::kWrite);
      path = kDirect;
      break;
    }
    case PageEv::kHold: {
      if (!ev.ctx) break;
      t(LineType::kStructPage, pg, Access::kWrite);  // page_pool_set_pp_info
      t(LineType::kPoolStats, pid * kPoolSpan + kHdrLine, Access::kWrite);
      if (ev.to == PageLoc::kAllocCache) {
        PoolMirror& m = pool(pid);
        t(LineType::kAllocCache, cache_line(pid, m.alloc_count), Access::kWrite);
        ++m.alloc_count;
      }
      frag_[pg] = 0;
      path = kRelease;
      break;
    }
    case PageEv::kRelease: {
      if (!ev.ctx) break;
      t(LineType::kPoolStats, pid * kPoolSpan + kReleaseLine, Access::kAtomic);
      t(LineType::kStructPage, pg, Access::kAtomic);  // clear pp/pp_magic, put_page: _refcount
      path = kRelease;
      break;
    }
    case PageEv::kRingProduce: {
      if (!ev.ctx) break;
      PoolMirror& m = pool(pid);
      const std::uint32_t slot = m.prod;
      m.prod = m.prod + 1 >= m.ring_size ? 0 : m.prod + 1;
      t(LineType::kPtrRingProducer, pid, Access::kAtomic);  // spin_lock(producer_lock); producer++
      t(LineType::kPoolStats, pid * kPoolSpan + kReleaseLine, Access::kRead);  // r->size, r->queue
      t(LineType::kPtrRingSlot, slot_line(pid, slot), Access::kRead);  // slot must be NULL
      t(LineType::kPtrRingSlot, slot_line(pid, slot), Access::kWrite);
      t(LineType::kPoolStats, pid * kPoolSpan + kRecycleStats + cpu, Access::kWrite);
      path = kRing;
      break;
    }
    case PageEv::kRingConsume: {
      if (!ev.ctx) break;
      PoolMirror& m = pool(pid);
      t(LineType::kPoolStats, pid * kPoolSpan + kReleaseLine, Access::kRead);
      t(LineType::kPtrRingSlot, slot_line(pid, m.cons_head), Access::kRead);
      // __ptr_ring_discard_one: NULL the consumed slots once a batch is complete.
      const std::uint32_t head = m.cons_head;
      ++m.cons_head;
      if (m.cons_head - m.cons_tail >= m.batch || m.cons_head >= m.ring_size) {
        for (std::uint32_t l = m.cons_tail / kPtrsPerLine; l <= head / kPtrsPerLine; ++l)
          t(LineType::kPtrRingSlot, pid * kPoolSpan + l, Access::kWrite);
        m.cons_tail = m.cons_head;
      }
      if (m.cons_head >= m.ring_size) m.cons_head = m.cons_tail = 0;
      t(LineType::kPtrRingConsumer, pid, Access::kWrite);
      if (pg != kNoPage) t(LineType::kStructPage, pg, Access::kRead);  // netmem_is_pref_nid
      if (ev.to == PageLoc::kAllocCache) {
        t(LineType::kAllocCache, cache_line(pid, 0), Access::kWrite);
        t(LineType::kAllocCache, cache_line(pid, m.alloc_count), Access::kWrite);
        ++m.alloc_count;
      }
      path = kRing;
      break;
    }
    case PageEv::kPut: {
      if (!ev.ctx) break;
      ++puts_;
      t(LineType::kStructPage, pg, frag_[pg] ? Access::kAtomic : Access::kRead);
      pending_.open = true;
      pending_.ctx = ev.ctx;
      pending_.cost = ev.cost;
      pending_.path = -1;
      pending_.free = alloc_cpu_[pg] >= 0 && alloc_cpu_[pg] != cpu ? kCrossCpu : kSameCpu;
      ++frees_[pending_.free].ops;
      break;
    }
    case PageEv::kFragCarve:
      if (!ev.ctx) break;
      t(LineType::kStructPage, pg, Access::kWrite);  // pp_ref_count = BIAS_MAX
      t(LineType::kPoolStats, pid * kPoolSpan + kFragLine, Access::kWrite);
      frag_[pg] = 1;
      break;
    case PageEv::kFragHandOut:
      if (!ev.ctx) break;
      t(LineType::kPoolStats, pid * kPoolSpan + kFragLine, Access::kWrite);
      alloc_cpu_[pg] = static_cast<std::int16_t>(cpu);
      break;
    case PageEv::kFragDrain:
      if (!ev.ctx) break;
      t(LineType::kStructPage, pg, Access::kAtomic);
      t(LineType::kPoolStats, pid * kPoolSpan + kFragLine, Access::kWrite);
      break;
    case PageEv::kDmaMap:
    case PageEv::kDmaUnmap:
      if (ev.ctx && pg != kNoPage) t(LineType::kStructPage, pg, Access::kWrite);  // dma_addr
      break;
    case PageEv::kDmaSyncForDevice:
      if (ev.ctx) t(LineType::kStructPage, pg, Access::kRead);
      break;
    case PageEv::kPostToNic: {
      if (!ev.ctx) break;
      PoolMirror& m = pool(pid);
      const std::uint64_t d = m.posted++ % opt_.desc_ring_size;
      t(LineType::kNicDesc, pid * kPoolSpan + d / opt_.descs_per_line, Access::kWrite);
      t(LineType::kDriverRingIndex, pid * 2ull, Access::kWrite);  // next_to_use
      if (pg != kNoPage) alloc_cpu_[pg] = static_cast<std::int16_t>(cpu);
      break;
    }
    case PageEv::kDmaWrite: {
      // The device writes the packet and then the descriptor's completion.
      PoolMirror& m = pool(pid);
      const std::uint64_t d = m.completed++ % opt_.desc_ring_size;
      const std::uint32_t bytes = static_cast<std::uint32_t>(std::max<std::int64_t>(ev.value, 1));
      if (pg != kNoPage) {
        for (std::uint32_t b = ev.offset / 64 * 64; b < ev.offset + bytes; b += 64)
          model_.device_write(LineType::kPacketData, data_line(pg, b));
        dma_bytes_[(std::uint64_t{pg} << 32) | ev.offset] = bytes;
      }
      model_.device_write(LineType::kNicDesc, pid * kPoolSpan + d / opt_.descs_per_line);
      break;
    }
    case PageEv::kToStack: {
      if (!ev.ctx) break;
      PoolMirror& m = pool(pid);
      const std::uint64_t d = m.cleaned++ % opt_.desc_ring_size;
      t(LineType::kNicDesc, pid * kPoolSpan + d / opt_.descs_per_line, Access::kRead);
      t(LineType::kDriverRingIndex, pid * 2ull + 1, Access::kWrite);  // next_to_clean
      if (pg != kNoPage) {
        t(LineType::kStructPage, pg, Access::kRead);  // dma_addr for the sync, skb frag setup
        auto it = dma_bytes_.find((std::uint64_t{pg} << 32) | ev.offset);
        const std::uint32_t bytes = it == dma_bytes_.end() ? 64 : it->second;
        const std::uint32_t lines = std::min<std::uint32_t>(opt_.header_lines, (bytes + 63) / 64);
        for (std::uint32_t i = 0; i < lines; ++i)
          t(LineType::kPacketData, data_line(pg, ev.offset / 64 * 64 + 64 * i), Access::kRead);
      }
      ++packets_;
      break;
    }
    case PageEv::kGetPage:
      if (ev.ctx) t(LineType::kStructPage, pg, Access::kAtomic);
      break;
    case PageEv::kSockEnqueue: {
      if (!ev.ctx) break;
      PoolMirror& m = pool(pid);
      const std::uint64_t e = m.sock_in++ % opt_.socket_entries;
      if (opt_.socket_queue_lock) t(LineType::kSocketQueue, pid * kPoolSpan, Access::kAtomic);
      t(LineType::kSocketQueue, pid * kPoolSpan + 1 + e / opt_.socket_entries_per_line, Access::kWrite);
      break;
    }
    case PageEv::kSockDequeue: {
      if (!ev.ctx) break;
      PoolMirror& m = pool(pid);
      const std::uint64_t e = m.sock_out++ % opt_.socket_entries;
      const std::uint64_t line = pid * kPoolSpan + 1 + e / opt_.socket_entries_per_line;
      if (opt_.socket_queue_lock) t(LineType::kSocketQueue, pid * kPoolSpan, Access::kAtomic);
      t(LineType::kSocketQueue, line, Access::kRead);
      if (!opt_.socket_queue_lock) t(LineType::kSocketQueue, line, Access::kWrite);  // SPSC: the consumer NULLs the entry
      if (pg != kNoPage && ev.value > 0)  // recvmsg copies the packet
        for (std::uint32_t b = ev.offset / 64 * 64; b < ev.offset + ev.value; b += 64)
          t(LineType::kPacketData, data_line(pg, b), Access::kRead);
      break;
    }
    case PageEv::kUserDeliver: {
      // The delivery queue is a single-producer ring: the softirq writes the entry (no lock).
      if (!ev.ctx) break;
      PoolMirror& m = pool(pid);
      const std::uint64_t e = m.sock_in++ % opt_.socket_entries;
      t(LineType::kSocketQueue, pid * kPoolSpan + 1 + e / opt_.socket_entries_per_line, Access::kWrite);
      break;
    }
    case PageEv::kUserMap: {
      // The application takes the entry (and NULLs it); the payload is not read by the kernel.
      if (!ev.ctx) break;
      PoolMirror& m = pool(pid);
      const std::uint64_t e = m.sock_out++ % opt_.socket_entries;
      const std::uint64_t line = pid * kPoolSpan + 1 + e / opt_.socket_entries_per_line;
      t(LineType::kSocketQueue, line, Access::kRead);
      t(LineType::kSocketQueue, line, Access::kWrite);
      if (pg != kNoPage) t(LineType::kStructPage, pg, Access::kAtomic);  // get_page for the mapping
      break;
    }
    case PageEv::kPageClear:
      if (ev.ctx && pg != kNoPage)
        for (std::uint32_t b = 0; b < std::min<std::int64_t>(ev.value, 4096); b += 64)
          t(LineType::kPacketData, data_line(pg, 4095 - b), Access::kWrite);  // from the page's end down
      break;
    case PageEv::kHeadCopy:
      // The header lines were read at kToStack; the copy lands in a CPU-local head.
      break;
    case PageEv::kDeferFree:
      if (ev.ctx && model_.profile().topology.has_cpu(model_cpu(static_cast<int>(ev.value))))
        t(LineType::kSkbDeferList, static_cast<std::uint64_t>(model_cpu(static_cast<int>(ev.value))), Access::kAtomic);
      break;
    case PageEv::kDeferFlush:
      if (ev.ctx) t(LineType::kSkbDeferList, static_cast<std::uint64_t>(cpu), Access::kAtomic);
      break;
    default: break;
  }

  const std::uint64_t tr_now = model_.total().transfer_count();
  const std::uint64_t tr = tr_now - transfers_seen_;
  transfers_seen_ = tr_now;
  charge(ev, ns);
  if (ev.kind == PageEv::kPut) {
    pending_.put.ns = ns;
    pending_.put.transfers = tr;
    frees_[pending_.free].ns += ns;
    frees_[pending_.free].transfers += tr;
    return;
  }
  if (continues_free) {
    frees_[pending_.free].ns += ns;
    frees_[pending_.free].transfers += tr;
    if (path >= 0) pending_.path = path;
  }
  if (path >= 0) {
    paths_[path].ns += ns;
    paths_[path].transfers += tr;
    if (ev.kind == PageEv::kCachePush || ev.kind == PageEv::kRingProduce || ev.kind == PageEv::kRelease) ++paths_[path].ops;
  }
  (void)world;
}

void CoherenceObserver::register_stats(sim::Stats& s) {
  auto per_packet = [this](double v) {
    const double n = packets_ ? static_cast<double>(packets_) : static_cast<double>(puts_);
    return sim::ratio(v, n);
  };
  s.reader("coherence.packets", "packets",
           "packets the model counted (descriptors handed to the stack; puts when there is no NIC)",
           [this] { return static_cast<std::int64_t>(packets_ ? packets_ : puts_); });
  for (int i = 0; i < cost::kLineTypes; ++i) {
    const auto type = static_cast<LineType>(i);
    const std::string n = std::string("coherence.") + cost::line_type_name(type) + ".";
    s.reader(n + "accesses", "accesses", "modelled accesses to these cachelines",
             [this, type] { return static_cast<std::int64_t>(model_.stats(type).accesses); });
    s.reader(n + "transfers", "transfers", "fills of these lines from another CPU's cache",
             [this, type] { return static_cast<std::int64_t>(model_.stats(type).transfer_count()); });
    s.reader(n + "invalidations", "copies", "copies invalidated in other CPUs by writes and atomics",
             [this, type] { return static_cast<std::int64_t>(model_.stats(type).invalidations); });
    s.reader(n + "dma_invalidations", "copies", "CPU copies invalidated by device (DMA) writes",
             [this, type] { return static_cast<std::int64_t>(model_.stats(type).dma_invalidations); });
    s.formula(n + "ns", "ns", "CPU time spent waiting for these lines (transfers, invalidations, LLC/DRAM fills)",
              [this, type] { return model_.stats(type).ns; });
    s.formula(n + "transfers_per_packet", "transfers/packet", "transfers of these lines / coherence.packets",
              [this, type, per_packet] { return per_packet(static_cast<double>(model_.stats(type).transfer_count())); });
    s.formula(n + "ns_per_packet", "ns/packet", "coherence ns on these lines / coherence.packets",
              [this, type, per_packet] { return per_packet(model_.stats(type).ns); });
  }
  s.formula("coherence.transfers", "transfers", "cacheline transfers between CPUs, all line types",
            [this] { return static_cast<double>(model_.total().transfer_count()); });
  s.formula("coherence.ns", "ns", "CPU time spent on cacheline bouncing and misses, all line types",
            [this] { return model_.total().ns; });
  s.formula("coherence.transfers_per_packet", "transfers/packet", "coherence.transfers / coherence.packets",
            [this, per_packet] { return per_packet(static_cast<double>(model_.total().transfer_count())); });
  s.formula("coherence.ns_per_packet", "ns/packet", "coherence.ns / coherence.packets",
            [this, per_packet] { return per_packet(model_.total().ns); });
  s.formula("coherence.llc_fills", "lines", "lines filled from the LLC (DDIO-allocated device writes)",
            [this] { return static_cast<double>(model_.total().llc_fills); });
  s.formula("coherence.dram_fills", "lines", "lines filled from DRAM",
            [this] { return static_cast<double>(model_.total().dram_fills); });
  for (int d = 1; d < cost::kDistances; ++d) {
    const std::string dn = cost::distance_name(static_cast<cost::Distance>(d));
    s.formula("coherence.transfers_" + dn, "transfers", "transfers between CPUs at distance " + dn,
              [this, d] { return static_cast<double>(model_.total().transfers[d]); });
  }
  static const char* const path_names[kPaths] = {"direct", "ring", "release"};
  static const char* const path_docs[kPaths] = {
      "pages recycled through the alloc cache (pops and direct recycles)",
      "pages recycled through the ptr_ring (produce on free, consume on refill)",
      "pages released to the page allocator and taken again (release, hold)"};
  for (int p = 0; p < kPaths; ++p) {
    const std::string n = std::string("coherence.path.") + path_names[p] + ".";
    s.reader(n + "pages", "pages", std::string("recycle/release operations: ") + path_docs[p],
             [this, p] { return static_cast<std::int64_t>(paths_[p].ops); });
    s.formula(n + "transfers", "transfers", std::string("cacheline transfers of the ") + path_names[p] + " path",
              [this, p] { return static_cast<double>(paths_[p].transfers); });
    s.formula(n + "ns", "ns", std::string("coherence ns of the ") + path_names[p] + " path (including the put that chose it)",
              [this, p] { return paths_[p].ns; });
    s.formula(n + "ns_per_page", "ns/page", "path ns / path pages", [this, p] {
      return sim::ratio(paths_[p].ns, static_cast<double>(paths_[p].ops));
    });
    s.formula(n + "transfers_per_page", "transfers/page", "path transfers / path pages", [this, p] {
      return sim::ratio(static_cast<double>(paths_[p].transfers), static_cast<double>(paths_[p].ops));
    });
  }
  static const char* const free_names[kFrees] = {"same_cpu", "cross_cpu"};
  for (int f = 0; f < kFrees; ++f) {
    const std::string n = std::string("coherence.free.") + free_names[f] + ".";
    const std::string what = f == kSameCpu ? "on the CPU that allocated the page" : "on another CPU than the allocating one";
    s.reader(n + "frees", "puts", "page_pool puts " + what, [this, f] { return static_cast<std::int64_t>(frees_[f].ops); });
    s.formula(n + "transfers", "transfers", "transfers during puts " + what + " (the put and the recycle/release it does)",
              [this, f] { return static_cast<double>(frees_[f].transfers); });
    s.formula(n + "ns", "ns", "coherence ns of puts " + what, [this, f] { return frees_[f].ns; });
    s.formula(n + "ns_per_free", "ns/put", "free ns / frees",
              [this, f] { return sim::ratio(frees_[f].ns, static_cast<double>(frees_[f].ops)); });
    s.formula(n + "transfers_per_free", "transfers/put", "free transfers / frees", [this, f] {
      return sim::ratio(static_cast<double>(frees_[f].transfers), static_cast<double>(frees_[f].ops));
    });
  }
  for (int c = 0; c < model_.profile().topology.cpus(); ++c)
    s.formula("coherence.cpu" + std::to_string(c) + ".ns", "ns", "coherence ns charged to profile CPU " + std::to_string(c),
              [this, c] { return model_.cpu_ns(c); });
}

// ---------------------------------------------------------------------------------------------
// Parameters

void register_coherence_params(sim::ParamRegistry& r) {
  r.add_bool("coherence.enabled", false,
             "model cacheline ownership of the hot receive-path lines and add the bouncing latency to CPU costs");
  r.add_string("coherence.profile", "published-xeon-e5-2695v4",
               "machine profile: a name in scenarios/machines/ (or $PPSIM_MACHINES) or a path to a profile JSON");
  r.add_enum("coherence.ddio", "profile", {"profile", "on", "off"},
             "DDIO: device writes allocate into the LLC (on), go to DRAM (off), or as the profile says");
  r.add_int("coherence.nic_domain", "", -1, "cache domain whose LLC DDIO fills (-1: the profile's)", -1, 4095);
  r.add_int("coherence.first_cpu", "", 0, "profile CPU that scenario CPU 0 runs on", 0, 4095);
  r.add_int("coherence.cpu_stride", "", 1, "scenario CPU i runs on profile CPU first_cpu + i * cpu_stride", 1, 4096);
  r.add_int("coherence.header_lines", "lines", 2, "packet lines the driver and stack read per packet in the poll (headers)", 0,
            1024);
  r.add_int("coherence.descs_per_line", "descriptors", 4, "RX descriptors per cacheline (16-byte descriptors)", 1, 64);
  r.add_int("coherence.socket_entries_per_line", "skbs", 1,
            "queued skbs whose list linkage shares one cacheline (1: each skb has its own)", 1, 64);
}

std::string resolve_machine_profile(const std::string& v, const std::string& scenario_file) {
  namespace fs = std::filesystem;
  const fs::path scen_dir = scenario_file.empty() ? fs::path(".") : fs::path(scenario_file).parent_path();
  std::vector<fs::path> tried;
  const bool is_path = v.find('/') != std::string::npos || (v.size() > 5 && v.substr(v.size() - 5) == ".json");
  if (is_path) {
    tried.push_back(fs::path(v));
    if (fs::path(v).is_relative()) tried.push_back(scen_dir / v);
  } else {
    tried.push_back(scen_dir / "machines" / (v + ".json"));
    if (const char* env = std::getenv("PPSIM_MACHINES")) tried.push_back(fs::path(env) / (v + ".json"));
    if (std::string(PPSIM_MACHINES_DIR).size()) tried.push_back(fs::path(PPSIM_MACHINES_DIR) / (v + ".json"));
  }
  std::string where;
  for (const auto& t : tried) {
    std::error_code ec;
    if (fs::is_regular_file(t, ec)) return t.string();
    where += (where.empty() ? "" : ", ") + t.string();
  }
  throw sim::ScenarioError(scenario_file, "$.coherence.profile",
                           "expected a machine profile name or path; \"" + v + "\" not found (looked at " + where + ")");
}

std::unique_ptr<CoherenceObserver> make_coherence_observer(const sim::Params& p) {
  const std::string& f = p.file();
  cost::MachineProfile prof = cost::MachineProfile::load(resolve_machine_profile(p.get_string("coherence.profile"), f));
  const std::string& ddio = p.get_string("coherence.ddio");
  if (ddio == "on") prof.ddio = true;
  if (ddio == "off") prof.ddio = false;
  const auto nic_domain = p.get_int("coherence.nic_domain");
  if (nic_domain >= 0) {
    if (prof.topology.first_cpu_of_domain(static_cast<int>(nic_domain)) < 0)
      throw sim::ScenarioError(f, "$.coherence.nic_domain",
                               "expected -1 or a cache domain of profile \"" + prof.name + "\" (0.." +
                                   std::to_string(prof.topology.domains() - 1) + "), got " + std::to_string(nic_domain));
    prof.nic_domain = static_cast<int>(nic_domain);
  }
  CoherenceOptions o;
  o.first_cpu = static_cast<int>(p.get_int("coherence.first_cpu"));
  o.cpu_stride = static_cast<int>(p.get_int("coherence.cpu_stride"));
  o.header_lines = static_cast<std::uint32_t>(p.get_int("coherence.header_lines"));
  o.descs_per_line = static_cast<std::uint32_t>(p.get_int("coherence.descs_per_line"));
  o.socket_entries_per_line = static_cast<std::uint32_t>(p.get_int("coherence.socket_entries_per_line"));
  o.desc_ring_size = static_cast<std::uint32_t>(p.get_int("nic.rx_ring_size_descs"));
  const auto ncpu = p.get_int("cpus.count");
  const std::int64_t last = o.first_cpu + (ncpu - 1) * o.cpu_stride;
  if (last >= prof.topology.cpus())
    throw sim::ScenarioError(f, p.was_set("coherence.cpu_stride") || p.was_set("coherence.first_cpu") ? "$.coherence.first_cpu" : "$.cpus.count",
                             "expected every scenario CPU to map to a CPU of machine profile \"" + prof.name + "\" (" +
                                 std::to_string(prof.topology.cpus()) + " CPUs); scenario CPU " + std::to_string(ncpu - 1) +
                                 " maps to CPU " + std::to_string(last));
  return std::make_unique<CoherenceObserver>(std::move(prof), o);
}

// ---------------------------------------------------------------------------------------------
// Validation driver

RecyclePrediction predict_recycle(const cost::MachineProfile& profile, RecyclePattern pattern, std::uint64_t packets,
                                  int alloc_cpu, int free_cpu, std::uint32_t batch) {
  const int ncpu = profile.topology.cpus();
  if (!profile.topology.has_cpu(alloc_cpu) || (pattern == RecyclePattern::kCrossCpu && !profile.topology.has_cpu(free_cpu)))
    throw std::invalid_argument("predict_recycle: CPU outside profile \"" + profile.name + "\" (" + std::to_string(ncpu) +
                                " CPUs)");
  if (pattern == RecyclePattern::kCrossCpu && alloc_cpu == free_cpu)
    throw std::invalid_argument("predict_recycle: the cross-CPU pattern needs two different CPUs");
  if (packets == 0 || batch == 0) throw std::invalid_argument("predict_recycle: packets and batch must be positive");
  auto base = [&](const char* k) {
    auto it = profile.base_ns.find(k);
    return it == profile.base_ns.end() ? 0.0 : it->second;
  };
  PageWorld::Config wc;
  wc.capacity_pages = 1u << 20;
  wc.cpu_node.assign(ncpu, 0);
  PageWorld world(wc);
  PoolParams pp;
  pp.pool_size = 1024;
  pp.dma_map = false;
  pp.dma_sync = false;
  // Only the steady-state operations carry a base cost; warm-up (slow path) is not measured.
  PoolCosts pc;
  pc.alloc_fast = sim::from_ns(base("alloc_fast"));
  pc.recycle_direct = sim::from_ns(base("recycle_direct"));
  pc.refill_per_page = sim::from_ns(base("refill_per_page"));
  pc.recycle_ring = sim::from_ns(base("recycle_ring"));
  PagePool pool(0, world, pp, pc, ncpu);
  CoherenceOptions o;
  o.socket_entries_per_line = 8;  // the hand-off ring: 8 pointers per line, no lock
  o.socket_entries = 256;
  o.socket_queue_lock = false;
  CoherenceObserver obs(profile, o);
  obs.add_pool(&pool);
  world.subscribe(&obs);

  Caller a, b;
  a.ctx.cpu = alloc_cpu;
  a.ctx.softirq = true;
  b.ctx.cpu = free_cpu;
  b.ctx.softirq = false;  // process context: allow_direct is false, the put goes to the ring
  const sim::Picos q_enq = sim::from_ns(base("queue_enqueue")), q_deq = sim::from_ns(base("queue_dequeue"));
  const sim::Picos ref_read = sim::from_ns(base("page_ref_read"));  // the put's refcount checks
  std::vector<PageId> inflight;
  auto emit_q = [&](PageEv kind, PageId p, Caller& c) {
    PageEvent ev{kind};
    ev.page = p;
    ev.pool = 0;
    ev.ctx = &c.ctx;
    ev.cost = &c.cost;
    world.emit(ev);
  };
  auto run = [&](std::uint64_t n) {
    if (pattern == RecyclePattern::kDirect) {
      for (std::uint64_t i = 0; i < n; ++i) {
        const PageId p = pool.alloc(a);
        a.cost += ref_read;
        pool.put(a, p, -1, true);  // page_pool_recycle_direct
      }
      return;
    }
    for (std::uint64_t done = 0; done < n;) {
      const std::uint64_t k = std::min<std::uint64_t>(batch, n - done);
      inflight.clear();
      for (std::uint64_t i = 0; i < k; ++i) {
        const PageId p = pool.alloc(a);
        a.cost += q_enq;
        emit_q(PageEv::kSockEnqueue, p, a);
        inflight.push_back(p);
      }
      for (PageId p : inflight) {
        b.cost += q_deq;
        emit_q(PageEv::kSockDequeue, p, b);
        b.cost += ref_read;
        pool.put(b, p, -1, false);
      }
      done += k;
    }
  };
  run(std::max<std::uint64_t>(4096, 8ull * batch));  // warm-up: pool grown, lines in steady state
  a.cost = b.cost = 0;
  obs.model().reset_stats();
  run(packets);

  RecyclePrediction r;
  const double n = static_cast<double>(packets);
  r.alloc_cpu_ns = sim::to_ns(a.cost) / n;
  r.free_cpu_ns = pattern == RecyclePattern::kCrossCpu ? sim::to_ns(b.cost) / n : 0.0;
  r.ns_per_packet = std::max(r.alloc_cpu_ns, r.free_cpu_ns);
  const auto tot = obs.model().total();
  r.coherence_ns = tot.ns / n;
  r.transfers = static_cast<double>(tot.transfer_count()) / n;
  r.by_line_type = nlohmann::json::object();
  for (int i = 0; i < cost::kLineTypes; ++i) {
    const auto& s = obs.model().stats(static_cast<LineType>(i));
    if (s.accesses == 0) continue;
    r.by_line_type[cost::line_type_name(static_cast<LineType>(i))] = {
        {"accesses", s.accesses / n}, {"transfers", s.transfer_count() / n}, {"ns", s.ns / n}};
  }
  world.unsubscribe(&obs);
  return r;
}

}  // namespace ppsim::page_pool
