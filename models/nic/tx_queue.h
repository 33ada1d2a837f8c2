// The transmit side: a sending application (TxSender) and where its packets go (a TxPort): a
// NIC TX ring (TxQueue) or the host kernel's software switch (models/nic/kernel_path.h).
//
// TxSender is a thread in process context on one CPU. Its offered load is a TrafficSource; it
// sends in batches of up to `batch` packets (sendmmsg / xmit_more: the driver writes the tail
// doorbell once per batch), each packet costing per_packet (syscall, stack, driver) plus what the
// port adds. When the port has no room (TX ring full, queue stopped) the sender blocks until the
// port reports room (netif_tx_wake_queue after TX completions). One event per batch.
//
// TxQueue: descriptor ring in host memory, written by the sender, read by the device (Nic), with
// completions written back by the device and cleaned by a TX NAPI on the queue's CPU (interrupt
// moderated like RX; up to clean_budget completions per poll, IXGBE_DEFAULT_TX_WORK).
//   free --sender posts--> posted --tail doorbell--> device: fetched, data read, sent
//   --write-back lands--> completed --TX clean--> free
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/nic/rx_queue.h"
#include "models/nic/traffic.h"
#include "sim/cpu.h"
#include "sim/kernel.h"
#include "sim/stats.h"

namespace ppsim::nic {

struct TxPacket {
  std::uint32_t frame_bytes = 0;
  std::uint32_t flow = 0;
};

class TxPort {
 public:
  virtual ~TxPort() = default;
  // Packets that can be posted now.
  virtual std::uint32_t space() const = 0;
  // The sender's batch ends at `t`: its packets are handed over (descriptors written, tail rung).
  virtual void post(const TxPacket* p, std::uint32_t n, sim::Picos t) = 0;
  // CPU time the port adds to each packet on the sender's CPU, and once per batch.
  virtual sim::Picos per_packet_cost() const { return 0; }
  virtual sim::Picos per_batch_cost() const { return 0; }
  // Set by the sender: called with the time room appears again.
  std::function<void(sim::Picos)> on_space;
};

class TxSender {
 public:
  struct Config {
    int cpu = 0;
    sim::Picos per_packet = 0;
    std::uint32_t batch = 1;
    std::string name = "traffic.tx";
  };
  TxSender(sim::Kernel& kernel, const Config& cfg, std::vector<sim::Cpu>& cpus, TrafficSource& src, TxPort& port,
           sim::Stats& stats);
  void start(sim::Picos t);
  void stop();
  std::uint64_t sent() const { return sent_; }
  // Time spent blocked on a full port, up to `now` (an ongoing wait counts).
  double blocked_ps(sim::Picos now) const {
    return blocked_ps_ + (blocked_ ? static_cast<double>(now - blocked_since_) : 0.0);
  }

 private:
  void on_wake();
  void batch_done();
  Config cfg_;
  std::vector<sim::Cpu>& cpus_;
  TrafficSource& src_;
  TxPort& port_;
  std::vector<TxPacket> batch_;
  std::uint32_t in_batch_ = 0;
  sim::Picos blocked_since_ = 0;
  bool busy_ = false, blocked_ = false, running_ = false;
  std::uint64_t sent_ = 0, batches_ = 0;
  double blocked_ps_ = 0;
  sim::Process proc_;
};

class TxQueue : public TxPort {
 public:
  struct Config {
    int index = 0;
    int cpu = 0;                  // TX interrupt and NAPI
    std::uint32_t ring_size = 1024;
    std::uint32_t clean_budget = 256;
    sim::Picos clean_per_packet = 0;  // napi_consume_skb + unmap per completed descriptor
    sim::Picos poll_overhead = 0;
    sim::Picos mmio_cpu = 0;
    sim::Picos irq_latency = 0;
    std::string name = "txq0";
  };
  // Registers itself with `nic` as a queue of function `fn`; dest_fn < 0 sends to the wire.
  TxQueue(sim::Kernel& kernel, const Config& cfg, std::vector<sim::Cpu>& cpus, Nic& nic, int fn,
          const RingHwConfig& hw, int dest_fn, sim::Stats& stats);

  std::uint32_t space() const override { return cfg_.ring_size - static_cast<std::uint32_t>(ntu_ - ntc_); }
  void post(const TxPacket* p, std::uint32_t n, sim::Picos t) override;
  sim::Picos per_batch_cost() const override { return cfg_.mmio_cpu; }

  void open(sim::Picos now);
  void close(sim::Picos now);
  // Device side.
  const TxPacket& desc(std::uint64_t i) const { return ring_[i & mask_]; }
  void raise_irq(sim::Picos lands_at) { irq_proc_.wake_at(lands_at); }
  std::uint64_t cleaned() const { return ntc_; }
  const Config& config() const { return cfg_; }

 private:
  void on_irq();
  void on_poll();
  Config cfg_;
  sim::Kernel& kernel_;
  std::vector<sim::Cpu>& cpus_;
  Nic& nic_;
  int id_ = 0;
  std::vector<TxPacket> ring_;
  std::uint64_t mask_ = 0;
  std::uint64_t ntu_ = 0, ntc_ = 0;
  bool open_ = false, napi_scheduled_ = false, completing_ = false;
  sim::Process irq_proc_, poll_proc_;
  std::uint64_t polls_ = 0, irqs_ = 0, doorbells_ = 0, cleaned_total_ = 0;
};

}  // namespace ppsim::nic
