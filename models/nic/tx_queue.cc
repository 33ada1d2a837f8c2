#include "models/nic/tx_queue.h"

#include <algorithm>

#include "models/nic/nic.h"

namespace ppsim::nic {

TxSender::TxSender(sim::Kernel& kernel, const Config& cfg, std::vector<sim::Cpu>& cpus, TrafficSource& src,
                   TxPort& port, sim::Stats& stats)
    : cfg_(cfg), cpus_(cpus), src_(src), port_(port), batch_(cfg.batch ? cfg.batch : 1),
      proc_(kernel, cfg.name, [this] { on_wake(); }) {
  if (cfg_.batch == 0) cfg_.batch = 1;
  cpus_[static_cast<std::size_t>(cfg_.cpu)].label_task(this, "sender");
  port_.on_space = [this](sim::Picos t) {
    if (!blocked_ || !running_) return;
    blocked_ = false;
    blocked_ps_ += static_cast<double>(t - blocked_since_);
    proc_.wake_at(t);
  };
  const std::string& n = cfg_.name;
  stats.reader(n + ".sent", "packets", "packets the sending application handed to its port", [this] { return sent_; });
  stats.reader(n + ".batches", "batches", "send batches (one doorbell each on a NIC port)", [this] { return batches_; });
  stats.formula(n + ".blocked_ns", "ns", "time the sender waited for room (TX ring or veth ring full)",
                [this] { return blocked_ps_ / 1000.0; });
}

void TxSender::start(sim::Picos t) {
  running_ = true;
  const sim::Picos first = src_.peek();
  if (first != sim::kNever) proc_.wake_at(std::max(t, first));
}

void TxSender::stop() {
  running_ = false;
  proc_.cancel();
}

void TxSender::on_wake() {
  // While a batch is on the CPU, its completion continues the loop (batch_done).
  if (!running_ || busy_) return;
  const sim::Picos now = proc_.kernel().now();
  const std::uint32_t room = port_.space();
  if (room == 0) {
    blocked_ = true;
    blocked_since_ = now;
    return;
  }
  const std::uint32_t want = std::min(cfg_.batch, room);
  while (in_batch_ < want && src_.peek() <= now) {
    batch_[in_batch_++] = TxPacket{src_.packet_bytes(), src_.flow()};
    src_.pop();
  }
  if (in_batch_ == 0) {
    const sim::Picos next = src_.peek();
    if (next != sim::kNever) proc_.wake_at(next);
    return;
  }
  const sim::Picos cost = in_batch_ * (cfg_.per_packet + port_.per_packet_cost()) + port_.per_batch_cost();
  busy_ = true;
  cpus_[static_cast<std::size_t>(cfg_.cpu)].run_work(now, cost, this, [this] { batch_done(); });
}

// The batch had its CPU time (later, if softirq work preempted it): hand it to the driver.
void TxSender::batch_done() {
  busy_ = false;
  if (!running_) return;
  port_.post(batch_.data(), in_batch_, proc_.kernel().now());
  sent_ += in_batch_;
  ++batches_;
  in_batch_ = 0;
  on_wake();
}

TxQueue::TxQueue(sim::Kernel& kernel, const Config& cfg, std::vector<sim::Cpu>& cpus, Nic& nic, int fn,
                 const RingHwConfig& hw, int dest_fn, sim::Stats& stats)
    : cfg_(cfg), kernel_(kernel), cpus_(cpus), nic_(nic), ring_(cfg.ring_size), mask_(cfg.ring_size - 1),
      irq_proc_(kernel, cfg.name + ".irq", [this] { on_irq(); }),
      poll_proc_(kernel, cfg.name + ".napi", [this] { on_poll(); }) {
  id_ = nic.add_tx_queue(fn, this, hw, dest_fn);
  const std::string& n = cfg_.name;
  stats.reader(n + ".napi_polls", "polls", "TX completion NAPI polls", [this] { return polls_; });
  stats.reader(n + ".irqs", "interrupts", "TX interrupts handled", [this] { return irqs_; });
  stats.reader(n + ".doorbells", "writes", "TX tail doorbells written by the driver (MMIO)", [this] { return doorbells_; });
  stats.reader(n + ".cleaned", "descriptors", "completed descriptors the driver cleaned", [this] { return cleaned_total_; });
}

void TxQueue::open(sim::Picos now) {
  open_ = true;
  nic_.tx_enable(id_, true);
  nic_.tx_irq_enable(id_, now);
}

void TxQueue::close(sim::Picos now) {
  (void)now;
  open_ = false;
  nic_.tx_enable(id_, false);
  irq_proc_.cancel();
  poll_proc_.cancel();
  napi_scheduled_ = completing_ = false;
  ntc_ = ntu_;
}

void TxQueue::post(const TxPacket* p, std::uint32_t n, sim::Picos t) {
  if (!open_ || n == 0) return;
  for (std::uint32_t i = 0; i < n; ++i) ring_[(ntu_ + i) & mask_] = p[i];
  ntu_ += n;
  nic_.tx_tail_write(id_, ntu_, t);
  ++doorbells_;
}

void TxQueue::on_irq() {
  if (!open_) return;
  ++irqs_;
  const sim::Picos now = kernel_.now();
  if (napi_scheduled_) return;
  napi_scheduled_ = true;
  poll_proc_.wake_at(cpus_[static_cast<std::size_t>(cfg_.cpu)].softirq_start(now + cfg_.irq_latency));
}

void TxQueue::on_poll() {
  if (!open_) return;
  const sim::Picos now = kernel_.now();
  if (completing_) {
    completing_ = false;
    napi_scheduled_ = false;
    nic_.tx_irq_enable(id_, now);
    return;
  }
  sim::Cpu& cpu = cpus_[static_cast<std::size_t>(cfg_.cpu)];
  const sim::Picos start = cpu.softirq_start(now);
  if (start > now) {
    poll_proc_.wake_at(start);
    return;
  }
  nic_.advance(start);
  const std::uint64_t done = nic_.tx_done(id_, start);
  const auto n = static_cast<std::uint32_t>(std::min<std::uint64_t>(cfg_.clean_budget, done - ntc_));
  sim::Picos cost = cfg_.poll_overhead + n * cfg_.clean_per_packet;
  if (n < cfg_.clean_budget) cost += cfg_.mmio_cpu;
  ntc_ += n;
  cleaned_total_ += n;
  ++polls_;
  cpu.run_softirq(start, cost, "napi_poll tx clean");
  const sim::Picos end = start + cost;
  if (n > 0 && on_space) on_space(end);
  if (n < cfg_.clean_budget) completing_ = true;
  poll_proc_.wake_at(end);
}

}  // namespace ppsim::nic
