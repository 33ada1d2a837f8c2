// Zero-copy receive to user space: an application that gets its flows' packet pages mapped
// read-only into its address space instead of copied (Brouer's memory model; docs/zerocopy.md).
//
// A page's way through it, each step a PageEv the checker follows:
//   XDP redirect (kUserDeliver; the pool counts the page as out to the application)
//   → the bounded delivery queue (full: the caller drops the packet and counts it)
//   → the application's receive call maps a batch: bytes outside the packet are cleared first
//     when the page may hold someone else's data (kPageClear), then kUserMap
//   → it processes the packets
//   → it returns a batch: the PTEs go (kUserUnmap), the other CPUs that ran it flush their TLBs
//     (IPIs; kTlbShootdown once all acked), kUserReturn, and the page goes back to its pool from
//     process context (the ptr_ring).
// Persistent mapping (AF_XDP's UMEM, io_uring zcrx areas): a page is mapped on its first
// delivery and stays mapped; giving it back costs a refill-ring entry, no unmap, no shootdown.
// Costs are per call and per 4 KiB page (sim/cost/zerocopy.h); the application's CPU time is
// process work on its CPU, the IPIs interrupt the remote CPUs.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "models/nic/rx_queue.h"
#include "models/page_pool/mutants.h"
#include "sim/cost/zerocopy.h"
#include "sim/cpu.h"
#include "sim/kernel.h"
#include "sim/params.h"
#include "sim/stats.h"

namespace ppsim::world {

struct ZeroCopyConfig {
  int app_cpu = 1;
  int app_cpus_ran = 2;            // CPUs in the application's mm_cpumask (all get a shootdown but the unmapping one)
  bool persistent = false;         // map once, keep mapped
  bool clear_always = false;       // clear around every packet, not only pages that may hold foreign data
  std::uint32_t queue_pages = 256;
  std::uint32_t batch_pages = 32;  // packets taken (and mapped) per receive call
  std::uint32_t return_batch_pages = 32;
  sim::Picos wakeup = 0;           // idle application woken by a delivery
  sim::Picos per_packet = 0;       // the application's work per packet (descriptor, bookkeeping)
  double touch_ps_per_byte = 0;    // the application reading the payload
  sim::Picos hold = 0;             // how long it keeps a batch before returning it
  cost::ZeroCopyCosts costs;
  sim::Picos window_start = 0, window_end = sim::kNever;
  std::string name = "zc";
};

void register_zerocopy_params(sim::ParamRegistry& r);
// The consumer's part of the zerocopy.* parameters (window and name are the caller's).
ZeroCopyConfig zerocopy_config_from(const sim::Params& p);

class ZeroCopyConsumer : public nic::UserSink {
 public:
  ZeroCopyConsumer(sim::Kernel& kernel, const ZeroCopyConfig& cfg, std::vector<sim::Cpu>& cpus,
                   page_pool::PageWorld& world, sim::Stats& stats, page_pool::MutantSet mutants = {});
  bool deliver_user(page_pool::Caller& c, const nic::Skb& skb) override;
  // The application exits: what it holds goes back, persistent mappings are torn down.
  void close(sim::Picos now);
  // Pages queued for or held by the application.
  std::uint64_t outstanding() const {
    return queue_.size() + batch_.size() + returning_.size() + unmapping_.size() + held_pages_;
  }
  std::uint64_t received() const { return received_; }
  std::uint64_t received_in_window() const { return win_packets_; }
  std::uint64_t bytes_in_window() const { return win_bytes_; }
  std::uint64_t queue_full_drops() const { return queue_drops_; }
  const ZeroCopyConfig& config() const { return cfg_; }

 private:
  struct Entry {
    page_pool::PageId page;
    page_pool::PagePool* pool;
    std::uint32_t offset, bytes, flow;  // bytes: the packet's bytes in the page
  };
  void wake(sim::Picos at);
  void app_run();
  void batch_done();
  void flush_returns(sim::Picos now);
  void returns_done();
  void give_back(page_pool::Caller& c, const Entry& e);
  page_pool::Caller app_caller() const;
  std::uint32_t pages_of(const Entry& e) const;
  bool mapped(page_pool::PageId p) const { return p < persist_.size() && persist_[p]; }
  bool bug(page_pool::Mutant m) const { return mutants_.has(m); }

  sim::Kernel& kernel_;
  ZeroCopyConfig cfg_;
  std::vector<sim::Cpu>& cpus_;
  page_pool::PageWorld& world_;
  page_pool::MutantSet mutants_;
  std::deque<Entry> queue_;
  std::vector<Entry> batch_, returning_, unmapping_;
  std::vector<bool> persist_;            // pages mapped persistently
  std::vector<page_pool::PageId> persist_list_;
  std::unique_ptr<sim::Process> wake_proc_, hold_proc_;
  std::deque<std::pair<sim::Picos, std::vector<Entry>>> holding_;
  std::uint64_t held_pages_ = 0;
  bool busy_ = false, woken_ = false, closed_ = false;
  std::uint64_t delivered_ = 0, queue_drops_ = 0, received_ = 0, rx_bytes_ = 0, map_calls_ = 0, pages_mapped_ = 0,
                pages_cleared_ = 0, bytes_cleared_ = 0, unmap_calls_ = 0, pages_unmapped_ = 0, shootdowns_ = 0,
                ipis_ = 0, returned_ = 0, win_packets_ = 0, win_bytes_ = 0, busy_ps_ = 0;
};

}  // namespace ppsim::world
