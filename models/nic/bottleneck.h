// Which resource limits a run, from utilisations over the measurement window and where packets
// were dropped. Pure C++.
//
// Receive is a pipeline without back-pressure: wire → RX packet buffer (PCIe, descriptor fetch) →
// RX ring (NAPI on its CPU) → socket (reader CPU). Each stage drops what it cannot take, so the
// slowest stage is the most downstream one that drops (stages behind it only see its output).
// Transmit is closed-loop: the sender blocks when the ring is full, so only the limiting
// resource is saturated. Rules, in order:
//   1. drops above drop_share of the offered packets: the most downstream dropping stage —
//      zero-copy delivery queue → cpu_app; socket → cpu_reader; ring while the pool was at its
//      outstanding user page limit → user_page_limit; ring → cpu_softirq (or rx_ring when the NAPI CPU is not busy: the ring
//      is too small for the interrupt/poll latency); packet buffer (drops, or a backlog still
//      growing at the end of the window) → pcie_up when the DMA engine rarely waited for
//      descriptors (its writes could not keep up), else pcie_down if that direction is
//      saturated (descriptor completions queue behind other traffic), else pcie_read_latency;
//   2. transmit active: the most utilised of cpu_sender (only if the path kept up with the
//      sender: it never waited for room and what it sent left the NIC), pcie_up, pcie_down,
//      wire_tx, eswitch_port, cpu_softirq, cpu_app if at least `saturated`, else pcie_read_latency if the tags are (a
//      saturated link keeps tags busy too, so the link is named first);
//   3. receive at line rate (offered above it, or the line ≥ 95 % busy): wire;
//   4. otherwise none: the offered load went through.
#pragma once
#include <cstdint>
#include <map>
#include <string>

namespace ppsim::nic {

struct BottleneckInput {
  double wire_rx = 0, wire_tx = 0;
  double pcie_up = 0, pcie_down = 0;  // busiest link, each direction
  double pcie_tags = 0;               // busiest requester's share of tags in use
  double rx_fetch_stall = 0;          // RX DMA engine waiting for a descriptor fetch
  double cpu_softirq = 0;             // busiest CPU running receive or TX-completion NAPI
  double cpu_sender = 0;              // transmitting application's CPU (process context)
  double cpu_reader = 0;              // socket reader's CPU (process context)
  double cpu_app = 0;                 // zero-copy application's CPU (process context)
  double eswitch_port = 0;            // port-bound embedded switch: busy share
  std::uint64_t offered = 0;          // packets offered to the receive path
  std::uint64_t fifo_drops = 0, ring_drops = 0, socket_drops = 0;
  std::uint64_t app_drops = 0;        // zero-copy delivery queue full
  bool user_limited = false;          // a pool refused allocations at its outstanding user page limit
  std::uint64_t fifo_backlog = 0;     // packets the RX buffer took in but had not written out (growth)
  bool rx_above_line_rate = false;
  bool tx_active = false;
  // Closed-loop transmit: the sender limits only if it never waited for room and the path kept
  // up with it (its CPU can also be 100 % busy while a large ring is still filling).
  bool sender_kept_up = true;
};

struct Bottleneck {
  std::string name;  // wire, wire_tx, pcie_up, pcie_down, pcie_read_latency, eswitch_port, cpu_softirq, cpu_sender,
                     // cpu_reader, cpu_app, user_page_limit, rx_ring, none
  std::string why;
  std::map<std::string, double> utilization;
};

Bottleneck classify(const BottleneckInput& in, double saturated = 0.9, double drop_share = 0.001);

}  // namespace ppsim::nic
