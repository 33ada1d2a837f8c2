#include "models/nic/pcie_fabric.h"

#include <algorithm>

namespace ppsim::nic {

using cost::PcieOp;
using sim::Picos;

int PcieFabric::add_link(const std::string& name, const cost::PcieConfig& cfg, Picos switch_latency) {
  Link l{name, cost::PcieLink(cfg), switch_latency, {}, {}, {}};
  links_.push_back(std::move(l));
  return static_cast<int>(links_.size()) - 1;
}

int PcieFabric::add_requester(const std::string& name, std::vector<int> route) {
  Requester r;
  r.name = name;
  r.route = std::move(route);
  if (r.route.size() == 1) r.link0 = r.route[0];
  const cost::PcieConfig& c = links_.at(static_cast<std::size_t>(r.route.at(0))).model.config();
  r.tag_release.assign(static_cast<std::size_t>(c.max_tags), 0);
  r.rtt = c.latency ? sim::from_ns(c.read_rtt_ns) : 0;
  r.write_latency = c.latency ? sim::from_ns(c.write_latency_ns) : 0;
  r.mrrs = c.mrrs_bytes;
  reqs_.push_back(std::move(r));
  return static_cast<int>(reqs_.size()) - 1;
}

void PcieFabric::set_window(Picos start, Picos end) {
  w_start_ = start;
  w_end_ = end;
}

// The ACK/UpdateFC DLLPs a transaction provokes travel the other way. They are a few bytes; they
// are charged to the reverse direction from the transaction's issue time. (write_up, in the
// header, takes a one-link route itself.)
PcieTiming PcieFabric::write_up_route(Requester& r, PcieOp op, std::int64_t bytes, Picos t) {
  PcieTiming tm;
  Picos s = t, end = t;
  for (std::size_t i = 0; i < r.route.size(); ++i) {
    Link& l = links_[static_cast<std::size_t>(r.route[i])];
    CostCache::Entry& e = cost_of(l, op, bytes);
    const cost::PcieCost& c = e.cost;
    const Picos start = reserve(l.up, s, c.up.serialization_ps);
    tally(l, e);
    if (i == 0) {
      tm.start = start;
      tm.sent = start + c.up.serialization_ps;
    }
    if (c.down.serialization_ps > 0) reserve(l.down, t, c.down.serialization_ps);
    end = std::max(end, start + c.up.serialization_ps);
    s = start + l.switch_ps;  // cut-through: the next link can start once the header crossed the switch
    end += l.switch_ps;
  }
  tm.done = end + r.write_latency;
  return tm;
}

PcieTiming PcieFabric::write_down(int req, std::int64_t bytes, Picos t) {
  PcieTiming tm;
  Requester& r = reqs_[static_cast<std::size_t>(req)];
  ++r.mmio_writes;
  Picos s = t, end = t;
  for (std::size_t k = r.route.size(); k-- > 0;) {
    Link& l = links_[static_cast<std::size_t>(r.route[k])];
    CostCache::Entry& e = cost_of(l, PcieOp::kMmioWrite, bytes);
    const cost::PcieCost& c = e.cost;
    const Picos start = reserve(l.down, s, c.down.serialization_ps);
    tally(l, e);
    if (k + 1 == r.route.size()) {
      tm.start = start;
      tm.sent = start + c.down.serialization_ps;
    }
    if (c.up.serialization_ps > 0) reserve(l.up, t, c.up.serialization_ps);
    end = std::max(end, start + c.down.serialization_ps);
    // Going down, the switch sits at the upper end of the next (lower) link.
    const Picos hop = k > 0 ? links_[static_cast<std::size_t>(r.route[k - 1])].switch_ps : 0;
    s = start + hop;
    end += hop;
  }
  tm.done = end + r.write_latency;
  return tm;
}

PcieTiming PcieFabric::read(int req, std::int64_t bytes, Picos t) {
  PcieTiming tm;
  tm.start = -1;
  Requester& r = reqs_[static_cast<std::size_t>(req)];
  ++r.dma_reads;
  Picos done = t;
  const std::size_t n = r.route.size();
  for (std::int64_t off = 0; off < bytes; off += r.mrrs) {
    const std::int64_t chunk = std::min<std::int64_t>(r.mrrs, bytes - off);
    ++r.read_requests;
    Picos& tag = r.tag_release[r.next_tag];
    if (++r.next_tag == r.tag_release.size()) r.next_tag = 0;
    const Picos issue = std::max(t, tag);
    // The request goes up, device side first.
    Picos s = issue;
    for (std::size_t i = 0; i < n; ++i) {
      Link& l = links_[static_cast<std::size_t>(r.route[i])];
      CostCache::Entry& e = cost_of(l, PcieOp::kDmaRead, chunk);
      const cost::PcieCost& c = e.cost;
      const Picos start = reserve(l.up, s, c.up.serialization_ps);
      tally(l, e);  // the request up and its completions down (booked below)
      if (i == 0) {
        if (tm.start < 0) tm.start = start;
        tm.sent = start + c.up.serialization_ps;
      }
      s = start + (i + 1 < n ? l.switch_ps : 0);
    }
    // The completions leave the root complex one round trip later and come down.
    Picos cs = s + r.rtt, end = cs;
    for (std::size_t k = n; k-- > 0;) {
      Link& l = links_[static_cast<std::size_t>(r.route[k])];
      const cost::PcieCost& c = cost_of(l, PcieOp::kDmaRead, chunk).cost;
      const Picos start = reserve(l.down, cs, c.down.serialization_ps);
      end = std::max(end, start + c.down.serialization_ps);
      const Picos hop = k > 0 ? links_[static_cast<std::size_t>(r.route[k - 1])].switch_ps : 0;
      cs = start + hop;
      end += hop;
    }
    tag = end;
    r.tag_busy_ps += in_window(issue, end);
    done = std::max(done, end);
  }
  if (tm.start < 0) tm.start = tm.sent = t;
  tm.done = done;
  return tm;
}

double PcieFabric::tag_utilization(int req) const {
  const Requester& r = reqs_[static_cast<std::size_t>(req)];
  const double w = window_ps();
  return w > 0 ? static_cast<double>(r.tag_busy_ps) / (w * static_cast<double>(r.tag_release.size())) : 0;
}

void PcieFabric::register_stats(sim::Stats& s) {
  for (std::size_t i = 0; i < links_.size(); ++i) {
    Link* l = &links_[i];
    const std::string base = "pcie." + l->name + ".";
    s.reader(base + "gen", "", "PCIe generation of the link", [l] { return l->model.config().gen; });
    s.reader(base + "lanes", "lanes", "link width", [l] { return l->model.config().lanes; });
    s.formula(base + "capacity_gbps", "Gb/s", "TLP/DLLP byte rate per direction after line coding and SKP",
              [l] { return l->model.tlp_capacity_gbps(); });
    for (int d = 0; d < 2; ++d) {
      const Direction* dir = d == 0 ? &l->up : &l->down;
      const bool up = d == 0;
      const std::string n = base + (d == 0 ? "up." : "down.");
      const std::string way = d == 0 ? "device → root complex" : "root complex → device";
      s.formula(n + "utilization", "ratio", "busy time / measurement window, " + way,
                [this, dir] { return utilization(*dir); });
      s.formula(n + "busy_ns", "ns", "time occupied by TLPs and DLLPs inside the measurement window, " + way,
                [dir] { return static_cast<double>(dir->busy_ps) / 1000.0; });
      s.reader(n + "bytes", "bytes", "TLP bytes on the wire (headers, framing, LCRC included), " + way,
               [l, up] { return totals(*l, up).tlp_bytes; });
      s.reader(n + "payload_bytes", "bytes", "TLP payload bytes (data), " + way,
               [l, up] { return totals(*l, up).payload_bytes; });
      s.reader(n + "tlps", "TLPs", "TLPs, " + way, [l, up] { return totals(*l, up).tlps; });
      s.formula(n + "dllps", "DLLPs", "ACK/UpdateFC DLLPs (amortised), " + way, [dir] { return dir->dllps; });
      s.formula(n + "gbps", "Gb/s", "TLP bytes * 8 / measurement window, " + way, [this, l, up] {
        return sim::ratio(static_cast<double>(totals(*l, up).tlp_bytes) * 8.0, window_ps() / 1000.0);
      });
    }
  }
  for (std::size_t i = 0; i < reqs_.size(); ++i) {
    Requester* r = &reqs_[i];
    const int id = static_cast<int>(i);
    const std::string n = "pcie." + r->name + ".";
    s.reader(n + "dma_writes", "transactions", "DMA writes issued by the function (packet data, write-backs)",
             [r] { return r->dma_writes; });
    s.reader(n + "dma_reads", "transactions", "DMA reads issued by the function (descriptors, TX data)",
             [r] { return r->dma_reads; });
    s.reader(n + "read_requests", "TLPs", "MRd requests (one per MRRS bytes), each holding a tag", [r] { return r->read_requests; });
    s.reader(n + "mmio_writes", "transactions", "MMIO writes to the function's registers (doorbells, IRQ re-enable)",
             [r] { return r->mmio_writes; });
    s.reader(n + "msix", "interrupts", "MSI-X messages sent", [r] { return r->msix; });
    s.formula(n + "tag_utilization", "ratio", "average share of the function's read tags in use over the window",
              [this, id] { return tag_utilization(id); });
  }
}

}  // namespace ppsim::nic
