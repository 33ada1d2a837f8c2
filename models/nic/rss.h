// Receive-side scaling: a Toeplitz hash over the flow's IPv4 addresses and ports picks an entry of
// the indirection table, which names the queue (Microsoft, "RSS hashing functions"; the table is
// filled as ethtool_rxfh_indir_default() does: entry i → queue i mod n). Flows are synthetic:
// flow f is 10.(f>>16).(f>>8).f:(1024 + f mod 64512) → 192.168.0.1:9. Pure C++.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace ppsim::nic {

struct FlowTuple {
  std::uint32_t src_ip = 0, dst_ip = 0;  // host order
  std::uint16_t src_port = 0, dst_port = 0;
};

// The 40-byte default key of the Microsoft RSS verification suite (also many drivers' default).
const std::array<std::uint8_t, 40>& default_rss_key();
// Toeplitz hash of `len` input bytes.
std::uint32_t toeplitz(const std::uint8_t* input, int len, const std::array<std::uint8_t, 40>& key);
// Hash of the IPv4 4-tuple (with_ports) or of the two addresses only.
std::uint32_t rss_hash(const FlowTuple& t, bool with_ports, const std::array<std::uint8_t, 40>& key);
FlowTuple synthetic_flow(std::uint32_t flow);

// flow → queue for `flows` flows over `queues` queues (precomputed: one lookup per packet).
class RssMap {
 public:
  static constexpr int kTableEntries = 128;
  RssMap(std::uint32_t flows, int queues);
  // Flows are drawn below the configured count, so the modulo (a division) is rarely needed.
  int queue_of(std::uint32_t flow) const { return map_[flow < map_.size() ? flow : flow % map_.size()]; }
  int queues() const { return queues_; }

 private:
  std::vector<std::uint16_t> map_;
  int queues_;
};

}  // namespace ppsim::nic
