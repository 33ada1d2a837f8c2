#include "models/nic/bottleneck.h"

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

namespace ppsim::nic {

namespace {
std::string pct(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", 100.0 * v);
  return b;
}

// The largest of `names` in u (first wins ties, so the order is part of the rule).
std::pair<std::string, double> busiest(const std::map<std::string, double>& u, const std::vector<std::string>& names) {
  std::pair<std::string, double> best{names.front(), -1};
  for (const auto& n : names) {
    const double v = u.at(n);
    if (v > best.second) best = {n, v};
  }
  return best;
}
}  // namespace

Bottleneck classify(const BottleneckInput& in, double saturated, double drop_share) {
  Bottleneck b;
  auto& u = b.utilization;
  u["wire_rx"] = in.wire_rx;
  u["wire_tx"] = in.wire_tx;
  u["pcie_up"] = in.pcie_up;
  u["pcie_down"] = in.pcie_down;
  u["pcie_read_latency"] = std::max(in.pcie_tags, in.rx_fetch_stall);
  u["pcie_tags"] = in.pcie_tags;
  u["rx_fetch_stall"] = in.rx_fetch_stall;
  u["cpu_softirq"] = in.cpu_softirq;
  u["cpu_sender"] = in.cpu_sender;
  u["cpu_reader"] = in.cpu_reader;
  u["cpu_app"] = in.cpu_app;
  u["eswitch_port"] = in.eswitch_port;

  const double floor = std::max(1.0, drop_share * static_cast<double>(in.offered));
  auto share = [&](std::uint64_t n) { return pct(in.offered ? static_cast<double>(n) / in.offered : 0.0); };
  if (static_cast<double>(in.app_drops) >= floor) {
    b.name = "cpu_app";
    b.why = "the zero-copy delivery queue dropped " + share(in.app_drops) + " of packets; application CPU " +
            pct(in.cpu_app) + " busy";
    return b;
  }
  if (static_cast<double>(in.socket_drops) >= floor) {
    b.name = "cpu_reader";
    b.why = "the socket dropped " + share(in.socket_drops) + " of packets; reader CPU " + pct(in.cpu_reader) + " busy";
    return b;
  }
  if (static_cast<double>(in.ring_drops) >= floor && in.user_limited) {
    b.name = "user_page_limit";
    b.why = "the device found no posted descriptor for " + share(in.ring_drops) +
            " of packets while the application held as many pages as the pool lets out";
    return b;
  }
  if (static_cast<double>(in.ring_drops) >= floor) {
    b.name = in.cpu_softirq >= 0.8 ? "cpu_softirq" : "rx_ring";
    b.why = "the device found no posted descriptor for " + share(in.ring_drops) + " of packets; NAPI CPU " +
            pct(in.cpu_softirq) + " busy";
    return b;
  }
  if (static_cast<double>(in.fifo_drops + in.fifo_backlog) >= floor) {
    if (in.rx_fetch_stall < 0.05) b.name = "pcie_up";
    else b.name = in.pcie_down >= saturated ? "pcie_down" : "pcie_read_latency";
    b.why = "the RX packet buffer dropped " + share(in.fifo_drops) + " of packets" +
            (in.fifo_backlog ? " and backlogged " + share(in.fifo_backlog) : std::string()) + "; DMA engine waited for descriptors " +
            pct(in.rx_fetch_stall) + " of the time; " + b.name + " " + pct(u.at(b.name));
    return b;
  }
  if (in.tx_active) {
    auto [name, v] = in.sender_kept_up
                         ? busiest(u, {"cpu_sender", "pcie_up", "pcie_down", "wire_tx", "eswitch_port", "cpu_softirq", "cpu_app"})
                         : busiest(u, {"pcie_up", "pcie_down", "wire_tx", "eswitch_port", "cpu_softirq", "cpu_app"});
    // A saturated link also keeps read tags busy (completions queue behind it): name the link
    // first, the read latency only when no link direction is saturated.
    if (v < saturated && in.pcie_tags >= saturated) {
      name = "pcie_read_latency";
      v = in.pcie_tags;
    }
    if (v >= saturated) {
      b.name = name;
      b.why = "transmit is closed-loop and " + name + " is " + pct(v) + " busy";
      return b;
    }
  }
  if (in.rx_above_line_rate || in.wire_rx >= 0.95) {
    b.name = "wire";
    b.why = "the offered load arrives at line rate (line " + pct(in.wire_rx) + " busy) and nothing dropped";
    return b;
  }
  b.name = "none";
  b.why = "the offered load went through; the busiest resource is " + busiest(u, {"wire_rx", "wire_tx", "pcie_up", "pcie_down",
                                                                                   "pcie_read_latency", "cpu_softirq", "cpu_sender", "cpu_reader",
                                                                                   "cpu_app"})
                                                                              .first;
  return b;
}

}  // namespace ppsim::nic
