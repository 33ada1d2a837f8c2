// The Ethernet wire: how long a frame occupies the line, and so the packet rate it allows.
// A frame of `frame_bytes` (destination MAC through FCS, the size "64-byte packets" means) costs
// preamble + SFD (7 + 1 B), the frame padded to the 64-byte minimum, and the inter-frame gap (12 B)
// on the line (IEEE 802.3 clauses 3.1.1 and 4.4.2). The NIC strips the 4-byte FCS before DMA.
// Pure C++: no SystemC.
#pragma once
#include <cstdint>

#include "sim/time.h"

namespace ppsim::nic {

struct WireConfig {
  double gbps = 25.0;               // line rate: 1, 2.5, 5, 10, 25, 40, 50, 100, 200 or 400
  std::uint32_t preamble_bytes = 8;  // 7 B preamble + 1 B start-of-frame delimiter
  std::uint32_t ifg_bytes = 12;      // minimum inter-frame gap
  std::uint32_t min_frame_bytes = 64;
  std::uint32_t fcs_bytes = 4;
};

class Wire {
 public:
  explicit Wire(const WireConfig& cfg) : cfg_(cfg) {}
  const WireConfig& config() const { return cfg_; }
  // Bytes the frame takes on the line, overhead included.
  std::uint64_t line_bytes(std::uint32_t frame_bytes) const {
    const std::uint32_t f = frame_bytes < cfg_.min_frame_bytes ? cfg_.min_frame_bytes : frame_bytes;
    return std::uint64_t{f} + cfg_.preamble_bytes + cfg_.ifg_bytes;
  }
  // Exact time on the line in picoseconds (fractional; callers accumulate in double).
  double frame_ps(std::uint32_t frame_bytes) const { return static_cast<double>(line_bytes(frame_bytes)) * 8000.0 / cfg_.gbps; }
  // Largest packet rate the line carries for back-to-back frames of this size.
  double max_pps(std::uint32_t frame_bytes) const { return 1e12 / frame_ps(frame_bytes); }
  // Bytes the NIC DMAs for a received frame (FCS stripped), never less than 1.
  std::uint32_t dma_bytes(std::uint32_t frame_bytes) const {
    return frame_bytes > cfg_.fcs_bytes ? frame_bytes - cfg_.fcs_bytes : 1;
  }

 private:
  WireConfig cfg_;
};

// True for the IEEE 802.3 rates ppsim accepts.
bool is_standard_line_rate(double gbps);

}  // namespace ppsim::nic
