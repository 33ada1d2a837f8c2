// What zero-copy delivery costs the CPU, as pure functions (no SystemC): mapping pages into an
// application, unmapping them with a TLB shootdown, clearing bytes, and, to compare with,
// copying to user space. The simulator's zero-copy consumer charges these; `ppsim calibrate`
// measures the same primitives natively and checks the composite predictions against a native
// benchmark (docs/zerocopy.md).
#pragma once
#include <cmath>
#include <cstdint>

#include "sim/time.h"

namespace ppsim::cost {

constexpr std::uint32_t kPteBytes = 4096;  // mappings are made of 4 KiB PTEs

struct ZeroCopyCosts {
  sim::Picos map_fixed = 0;         // one map call (syscall, mmap_lock, VMA lookup)
  sim::Picos map_per_page = 0;      // per 4 KiB page inserted (PTE, page reference, rmap)
  sim::Picos unmap_fixed = 0;       // one unmap call (syscall, zap, local TLB flush)
  sim::Picos unmap_per_page = 0;    // per 4 KiB page zapped
  sim::Picos shootdown = 0;         // initiator: IPIs to the other CPUs and waiting for their acks
  sim::Picos shootdown_per_page = 0;  // initiator: the wait grows with the pages the others flush
  sim::Picos shootdown_remote = 0;  // each remote CPU: the flush interrupt it runs
  sim::Picos return_per_page = 0;   // persistent mapping: handing a buffer back (refill ring)
  double clear_ps_per_byte = 0;     // zeroing (clear_page / memset)
  sim::Picos copy_fixed = 0;        // copy to user: per call (syscall, socket)
  sim::Picos copy_per_page = 0;     // copy to user: per 4 KiB page copied (page walk, per-page setup)
  double copy_ps_per_byte = 0;      // copy to user: per byte
};

inline std::uint32_t pte_pages(std::uint64_t bytes) {
  return static_cast<std::uint32_t>((bytes + kPteBytes - 1) / kPteBytes);
}

// One call mapping `pages` 4 KiB pages.
inline sim::Picos map_cost(const ZeroCopyCosts& c, std::uint32_t pages) {
  return pages ? c.map_fixed + static_cast<sim::Picos>(pages) * c.map_per_page : 0;
}

// One call unmapping `pages`, with a shootdown when other CPUs ran the application.
inline sim::Picos unmap_cost(const ZeroCopyCosts& c, std::uint32_t pages, int remote_cpus) {
  if (!pages) return 0;
  return c.unmap_fixed + static_cast<sim::Picos>(pages) * c.unmap_per_page +
         (remote_cpus > 0 ? c.shootdown + static_cast<sim::Picos>(pages) * c.shootdown_per_page : 0);
}

inline sim::Picos clear_cost(const ZeroCopyCosts& c, std::uint64_t bytes) {
  return static_cast<sim::Picos>(std::llround(c.clear_ps_per_byte * static_cast<double>(bytes)));
}

inline sim::Picos copy_cost(const ZeroCopyCosts& c, std::uint64_t bytes) {
  return c.copy_fixed + static_cast<sim::Picos>(pte_pages(bytes)) * c.copy_per_page +
         static_cast<sim::Picos>(std::llround(c.copy_ps_per_byte * static_cast<double>(bytes)));
}

// A receive of `bytes` mapped, then unmapped (the application's whole cost of one buffer when
// it maps and returns it alone).
inline sim::Picos map_unmap_cost(const ZeroCopyCosts& c, std::uint64_t bytes, int remote_cpus) {
  const std::uint32_t pages = pte_pages(bytes);
  return map_cost(c, pages) + unmap_cost(c, pages, remote_cpus);
}

}  // namespace ppsim::cost
