// PCIe links as timed resources, on top of the cost model in sim/cost/pcie.h.
//
// Each link direction is a FIFO resource with a busy-until time: a transaction's TLPs (and the
// DLLPs its receiver sends back) occupy a direction for PcieLink::cost(...).serialization_ps,
// starting when both the transaction is issued and the direction is free. A requester is one PCIe
// function (PF or VF): it has a route (the links from its device to the root complex, device side
// first, from sim::Topology::links_on) and its own tag space. Crossing a switch adds its latency.
//
//   write_up   DMA write or MSI-X (posted, device → host): visible in host memory after the last
//              link's serialization plus write_latency_ns.
//   read       DMA read (device ← host): one MRd per MRRS bytes, each needs a free tag; the
//              completions leave the root complex read_rtt_ns after the request went up, serialize
//              on the way down, and free the tag when the last byte arrives.
//   write_down MMIO write by the CPU (posted, host → device): arrives after serialization plus
//              write_latency_ns.
//
// Contract: callers issue transactions in nondecreasing issue time (the NIC's device timeline
// does). A read books its completions at issue time for a start one round trip later; what is
// issued meanwhile may use the idle interval before them (one such interval per direction is
// remembered; docs/nic.md discusses the approximation). Busy time, tag holding time and counters are kept per direction / requester;
// utilisation is busy time inside the measurement window over the window.
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "sim/cost/pcie.h"
#include "sim/stats.h"
#include "sim/time.h"

namespace ppsim::nic {

// When a transaction's TLPs started and finished leaving the issuing side (on its first link), and
// when it completed (write: visible at the target; read: last completion byte at the device).
struct PcieTiming {
  sim::Picos start = 0, sent = 0, done = 0;
};

class PcieFabric {
 public:
  struct Direction {
    sim::Picos free = 0;  // busy until
    sim::Picos gap_start = 0, gap_end = 0;  // idle interval before the latest booking
    sim::Picos busy_ps = 0;  // occupied time inside the window (whole picoseconds: an exact sum)
    std::int64_t tlp_bytes = 0, payload_bytes = 0, tlps = 0;
    double dllps = 0;
  };

  // Returns the link's id (its index, as carried by the topology's kPcieLink edges). The switch
  // latency is that of a switch at the link's host end (0 when the link ends at the root port).
  int add_link(const std::string& name, const cost::PcieConfig& cfg, sim::Picos switch_latency);
  // `route`: link ids from the function's device up to the root complex. Tag count, RTT and
  // write latency come from the first link's configuration.
  int add_requester(const std::string& name, std::vector<int> route);
  void set_window(sim::Picos start, sim::Picos end);

  // Inline: the device's own link to the root port is the per-packet case (two writes a packet).
  [[gnu::always_inline]] PcieTiming write_up(int req, cost::PcieOp op, std::int64_t bytes, sim::Picos t) {
    Requester& r = reqs_[static_cast<std::size_t>(req)];
    if (op == cost::PcieOp::kMsix) ++r.msix;
    else ++r.dma_writes;
    if (r.link0 < 0) return write_up_route(r, op, bytes, t);
    Link& l = links_[static_cast<std::size_t>(r.link0)];
    return book_write(l, r, cost_of(l, op, bytes), t);
  }
  // Two DMA writes issued back to back at `t` by one requester (a packet and its descriptor's
  // write-back): the same bookings as two write_up calls, with one lookup of the route.
  [[gnu::always_inline]] void write_up_pair(int req, std::int64_t bytes1, std::int64_t bytes2, sim::Picos t,
                                            PcieTiming& first, sim::Picos& second_done) {
    Requester& r = reqs_[static_cast<std::size_t>(req)];
    if (r.link0 < 0) {
      first = write_up(req, cost::PcieOp::kDmaWrite, bytes1, t);
      second_done = write_up(req, cost::PcieOp::kDmaWrite, bytes2, t).done;
      return;
    }
    r.dma_writes += 2;
    Link& l = links_[static_cast<std::size_t>(r.link0)];
    first = book_write(l, r, cost_of(l, cost::PcieOp::kDmaWrite, bytes1), t);
    second_done = book_write(l, r, cost_of(l, cost::PcieOp::kDmaWrite, bytes2), t).done;
  }
  PcieTiming read(int req, std::int64_t bytes, sim::Picos t);
  PcieTiming write_down(int req, std::int64_t bytes, sim::Picos t);
  // Earliest time the requester's next read request can get a tag.
  sim::Picos next_tag_free(int req) const {
    const Requester& r = reqs_[static_cast<std::size_t>(req)];
    return r.tag_release[r.next_tag];
  }

  void register_stats(sim::Stats& stats);
  int links() const { return static_cast<int>(links_.size()); }
  const std::string& link_name(int id) const { return links_[static_cast<std::size_t>(id)].name; }
  const cost::PcieLink& link_model(int id) const { return links_[static_cast<std::size_t>(id)].model; }
  // A direction's totals so far (the writes still counted in the cost cache included).
  Direction up(int id) const { return totals(links_[static_cast<std::size_t>(id)], true); }
  Direction down(int id) const { return totals(links_[static_cast<std::size_t>(id)], false); }
  double utilization(const Direction& d) const { return window_ps() > 0 ? static_cast<double>(d.busy_ps) / window_ps() : 0; }
  // Average share of the requester's tags in use over the window.
  double tag_utilization(int req) const;
  int requesters() const { return static_cast<int>(reqs_.size()); }
  const std::string& requester_name(int r) const { return reqs_[static_cast<std::size_t>(r)].name; }
  const std::vector<int>& route(int r) const { return reqs_[static_cast<std::size_t>(r)].route; }
  double window_ps() const { return static_cast<double>(w_end_ - w_start_); }

 private:
  // PcieLink::cost is ~20 ns; a run uses a handful of (op, size) pairs, so keep them.
  struct CostCache {
    struct Entry {
      std::int64_t key = -1;
      cost::PcieCost cost;
      // Bookings of this cost on the link whose integer counts (TLP bytes, payload bytes, TLPs,
      // both directions) are not yet in the link's Direction totals: one increment a booking
      // instead of six. Added in when the entry is replaced and whenever the totals are read.
      std::int64_t uses = 0;
    };
    std::array<Entry, 64> e;
  };
  struct Link {
    std::string name;
    cost::PcieLink model;
    sim::Picos switch_ps = 0;
    Direction up, down;
    CostCache cache;
  };
  struct Requester {
    std::string name;
    std::vector<int> route;
    int link0 = -1;  // route[0] when the route is that one link, else -1
    std::vector<sim::Picos> tag_release;  // in request order: tags are reused first in, first out
    std::size_t next_tag = 0;
    sim::Picos rtt = 0, write_latency = 0;
    std::int64_t mrrs = 512;
    sim::Picos tag_busy_ps = 0;
    std::int64_t dma_writes = 0, dma_reads = 0, read_requests = 0, mmio_writes = 0, msix = 0;
  };
  PcieTiming write_up_route(Requester& r, cost::PcieOp op, std::int64_t bytes, sim::Picos t);
  // A posted write up the requester's one link: its TLPs up, the DLLPs they provoke down.
  [[gnu::always_inline]] PcieTiming book_write(Link& l, const Requester& r, CostCache::Entry& e, sim::Picos t) {
    const cost::PcieCost& c = e.cost;
    PcieTiming tm;
    tm.start = reserve(l.up, t, c.up.serialization_ps);
    tm.sent = tm.start + c.up.serialization_ps;
    if (c.down.serialization_ps > 0) reserve(l.down, t, c.down.serialization_ps);
    tally(l, e);
    tm.done = std::max(t, tm.sent) + l.switch_ps + r.write_latency;
    return tm;
  }
  [[gnu::always_inline]] CostCache::Entry& cost_of(Link& l, cost::PcieOp op, std::int64_t bytes) {
    const std::int64_t key = bytes * 8 + static_cast<int>(op);
    auto& slot = l.cache.e[(static_cast<std::uint64_t>(key) * 0x9E3779B97F4A7C15ULL) >> 58];
    if (slot.key != key) [[unlikely]] cost_miss(l, slot, op, bytes, key);
    return slot;
  }
  [[gnu::noinline]] static void cost_miss(Link& l, CostCache::Entry& slot, cost::PcieOp op, std::int64_t bytes,
                                          std::int64_t key) {
    add_uses(l.up, slot.cost.up, slot.uses);
    add_uses(l.down, slot.cost.down, slot.uses);
    slot.uses = 0;
    slot.key = key;
    slot.cost = l.model.cost(op, bytes);
  }
  // A transaction with cost entry e booked on link l (its TLPs one way, the DLLPs they provoke
  // the other). DLLPs are fractional and summed at once, so each direction's sum keeps its order.
  static void tally(Link& l, CostCache::Entry& e) {
    ++e.uses;
    l.up.dllps += e.cost.up.dllps;
    l.down.dllps += e.cost.down.dllps;
  }
  static void add_uses(Direction& d, const cost::PcieDirCost& c, std::int64_t n) {
    d.tlp_bytes += n * c.tlp_bytes;
    d.payload_bytes += n * c.payload_bytes;
    d.tlps += n * c.tlps;
  }
  static Direction totals(const Link& l, bool up) {
    Direction d = up ? l.up : l.down;
    for (const auto& e : l.cache.e) add_uses(d, up ? e.cost.up : e.cost.down, e.uses);
    return d;
  }
  // First come, first served, except that a transaction fits into the idle interval left before
  // the latest booking when it can (a read's completions are booked a round trip ahead, and what
  // is issued meanwhile may go first).
  [[gnu::always_inline]] sim::Picos reserve(Direction& d, sim::Picos t, sim::Picos ser) {
    sim::Picos start;
    if (t < d.gap_end && std::max(t, d.gap_start) + ser <= d.gap_end) {
      start = std::max(t, d.gap_start);
      d.gap_start = start + ser;
    } else {
      start = std::max(t, d.free);
      if (start > d.free) {
        d.gap_start = d.free;
        d.gap_end = start;
      }
      d.free = start + ser;
    }
    d.busy_ps += in_window(start, start + ser);
    return start;
  }
  sim::Picos in_window(sim::Picos a, sim::Picos b) const {
    if (a >= w_start_ && b <= w_end_) return b - a;
    const sim::Picos lo = a > w_start_ ? a : w_start_, hi = b < w_end_ ? b : w_end_;
    return hi > lo ? hi - lo : 0;
  }

  std::vector<Link> links_;
  std::vector<Requester> reqs_;
  sim::Picos w_start_ = 0, w_end_ = 0;
};

}  // namespace ppsim::nic
