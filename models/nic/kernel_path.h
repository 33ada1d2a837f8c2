// VM-to-VM (or container-to-container) through the host kernel instead of SR-IOV: a software
// switch (bridge + tap/veth, vhost-style backends) with no NIC and no PCIe crossing. What it
// costs instead is CPU:
//   - on the sender's CPU, forward_per_packet per packet on top of the sender's own cost
//     (veth_xmit / tun + bridge forwarding + the backend's handoff);
//   - on the receiving NAPI's CPU, a poll per up to `budget` packets taken from a bounded ring
//     (VETH_RING_SIZE = 256 entries), each packet copied into a page_pool buffer
//     (copy_ps_per_byte, as veth does when it turns an skb into a page_pool-backed xdp_buff, or
//     vhost copying into the guest's buffers) plus per_packet, then handed to the stack.
// veth schedules the peer's NAPI with napi_schedule() on the transmitting CPU; rx_cpu says where
// the receive work runs (the scenario decides: the sender's CPU as veth does, or a separate one as
// with a vhost worker or threaded NAPI).
// When the ring is full the sender blocks (the queue is stopped) until the NAPI makes room.
// Page events: the buffer is allocated in the poll (driver-held), written (kDataWrite) and goes to
// the stack (kToStack); there is no device, so no kPostToNic / kDmaWrite.
// Zero-copy handoff (zero_copy): the sender's data sits in a page of this path's read-only pool
// (one packet per page; the sender writes it there itself, so nothing is copied), the receive
// poll copies only the headers into a separate head for the forwarding decision and hands the
// page to the receiving side's UserSink, which maps it read-only (models/world/zerocopy.h).
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "models/nic/rx_queue.h"
#include "models/nic/tx_queue.h"
#include "models/page_pool/page_pool.h"
#include "sim/cpu.h"
#include "sim/kernel.h"
#include "sim/stats.h"

namespace ppsim::nic {

class KernelPath : public TxPort {
 public:
  struct Config {
    int rx_cpu = 0;
    std::uint32_t ring_size = 256;     // VETH_RING_SIZE
    std::uint32_t budget = 64;         // NAPI weight
    std::uint32_t buffer_bytes = 2048;
    std::uint32_t fcs_bytes = 4;       // frames are counted with FCS; software never carries it
    sim::Picos forward_per_packet = 0; // sender-side forwarding
    sim::Picos per_packet = 0;         // receive-side work besides the copy
    double copy_ps_per_byte = 0;
    sim::Picos poll_overhead = 0;
    sim::Picos window_start = 0, window_end = sim::kNever;  // measurement window
    std::string name = "kpath";
    bool zero_copy = false;
    std::uint32_t hdr_bytes = 66;       // headers copied into the read-only head (zero_copy)
    sim::Picos head_alloc = 0;          // the separate head (zero_copy)
    sim::Picos hdr_copy_fixed = 0;
  };
  KernelPath(sim::Kernel& kernel, const Config& cfg, Napi& napi, page_pool::PagePool& pool,
             page_pool::PageWorld& world, std::vector<sim::Cpu>& cpus, PacketSink& sink, sim::Stats& stats);

  std::uint32_t space() const override { return cfg_.ring_size - static_cast<std::uint32_t>(ring_.size()); }
  void post(const TxPacket* p, std::uint32_t n, sim::Picos t) override;
  sim::Picos per_packet_cost() const override { return cfg_.forward_per_packet; }
  void close(sim::Picos now);
  void attach_user(UserSink* user) { user_ = user; }
  std::uint64_t packets() const { return packets_; }
  std::uint64_t bytes() const { return bytes_; }
  std::uint64_t packets_in_window() const { return win_packets_; }
  std::uint64_t bytes_in_window() const { return win_bytes_; }
  int rx_cpu() const { return cfg_.rx_cpu; }

 private:
  struct Entry {
    std::uint32_t frame;
    std::uint32_t flow;
    sim::Picos t;
  };
  void schedule_napi(sim::Picos at);
  void on_poll();
  Config cfg_;
  Napi& napi_;
  page_pool::PagePool& pool_;
  page_pool::PageWorld& world_;
  std::vector<sim::Cpu>& cpus_;
  PacketSink& sink_;
  UserSink* user_ = nullptr;
  std::deque<Entry> ring_;
  bool scheduled_ = false, open_ = true;
  std::uint64_t packets_ = 0, bytes_ = 0, polls_ = 0, alloc_fail_ = 0, copy_bytes_ = 0, win_packets_ = 0, win_bytes_ = 0,
                handoff_drops_ = 0;
  sim::Histogram* poll_work_ = nullptr;
  sim::Process poll_proc_;
};

}  // namespace ppsim::nic
