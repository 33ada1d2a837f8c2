#include "models/nic/rss.h"

namespace ppsim::nic {

const std::array<std::uint8_t, 40>& default_rss_key() {
  static const std::array<std::uint8_t, 40> k = {
      0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
      0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
      0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};
  return k;
}

std::uint32_t toeplitz(const std::uint8_t* in, int len, const std::array<std::uint8_t, 40>& key) {
  // A 64-bit window over the key: its top 32 bits are the key bits aligned with the input bit
  // being consumed. Each set input bit XORs that 32-bit slice into the result.
  std::uint64_t window = 0;
  for (int i = 0; i < 8; ++i) window = (window << 8) | key[i];
  std::uint32_t result = 0;
  int next_key_byte = 8;
  for (int b = 0; b < len; ++b) {
    for (int bit = 7; bit >= 0; --bit) {
      if (in[b] >> bit & 1) result ^= static_cast<std::uint32_t>(window >> 32);
      window <<= 1;
    }
    // Eight key bits were shifted out of the window's top; refill its low byte.
    window |= next_key_byte < 40 ? key[next_key_byte] : 0;
    ++next_key_byte;
  }
  return result;
}

std::uint32_t rss_hash(const FlowTuple& t, bool with_ports, const std::array<std::uint8_t, 40>& key) {
  const std::uint8_t in[12] = {
      static_cast<std::uint8_t>(t.src_ip >> 24), static_cast<std::uint8_t>(t.src_ip >> 16),
      static_cast<std::uint8_t>(t.src_ip >> 8),  static_cast<std::uint8_t>(t.src_ip),
      static_cast<std::uint8_t>(t.dst_ip >> 24), static_cast<std::uint8_t>(t.dst_ip >> 16),
      static_cast<std::uint8_t>(t.dst_ip >> 8),  static_cast<std::uint8_t>(t.dst_ip),
      static_cast<std::uint8_t>(t.src_port >> 8), static_cast<std::uint8_t>(t.src_port),
      static_cast<std::uint8_t>(t.dst_port >> 8), static_cast<std::uint8_t>(t.dst_port)};
  return toeplitz(in, with_ports ? 12 : 8, key);
}

FlowTuple synthetic_flow(std::uint32_t f) {
  FlowTuple t;
  t.src_ip = (10u << 24) | (f & 0xffffffu);
  t.dst_ip = (192u << 24) | (168u << 16) | 1u;
  t.src_port = static_cast<std::uint16_t>(1024 + f % 64512);
  t.dst_port = 9;
  return t;
}

RssMap::RssMap(std::uint32_t flows, int queues) : queues_(queues) {
  std::array<std::uint16_t, kTableEntries> indir{};
  for (int i = 0; i < kTableEntries; ++i) indir[i] = static_cast<std::uint16_t>(i % queues);
  map_.resize(flows ? flows : 1);
  for (std::uint32_t f = 0; f < map_.size(); ++f)
    map_[f] = indir[rss_hash(synthetic_flow(f), true, default_rss_key()) % kTableEntries];
}

}  // namespace ppsim::nic
