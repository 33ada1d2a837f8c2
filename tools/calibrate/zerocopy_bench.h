// Native measurements behind the zero-copy cost model (sim/cost/zerocopy.h).
//
// Primitives, each what the model charges:
//   read_1b_ns        a one-byte read() of the memfd: the system call and the read path's setup,
//                     the fixed part of a copy to user
//   read_128k_ns      a 32-page read(): beyond the fixed part and memcpy's bytes, the kernel copy's
//                     cost per page (the page walk and copy_page_to_iter's setup)
//   memcpy_ns         memcpy of cache-resident buffers at several sizes
//   clear_4k_ns       zeroing 4 KiB (memset; the kernel's clear_page does the same stores)
//   map_ns / unmap_ns mmap(MAP_SHARED | MAP_POPULATE) of N page-cache pages of a memfd, read-only,
//                     and its munmap, at N = 1 and N = 32: per call and per page. The process is a
//                     fresh single-threaded child pinned to one CPU, so no other CPU has its mm.
//   unmap_remote_ns   munmap of 1 and 32 pages while a thread of the same process spins on a
//                     second CPU: the difference to unmap_ns is the TLB shootdown, whose growth
//                     from 1 to 32 pages is its part per page (the other CPU flushes page by page)
// Native composites, compared with the model's prediction from the primitives (`ppsim calibrate`):
//   copy_to_user_ns   pread() of S bytes from the memfd's page cache into a user buffer
//   map_unmap_ns      mmap(MAP_POPULATE) of S bytes of it, then munmap, with the remote thread
//                     spinning (every unmap shoots down the other CPU)
// Each figure runs in a forked child so that earlier threads do not leave the mm on other CPUs.
#pragma once
#include <nlohmann/json.hpp>

namespace ppsim::calib {

// `summarize` turns repetitions into {median, p10, p90, ...}; `cpu_a` runs the measurements,
// `cpu_b` the spinning thread (equal to cpu_a on a one-CPU machine: no remote figures then).
nlohmann::json zerocopy_measurements(int cpu_a, int cpu_b, int reps, bool quick,
                                     nlohmann::json (*summarize)(std::vector<double>));

}  // namespace ppsim::calib
