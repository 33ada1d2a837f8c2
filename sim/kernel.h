// The event kernel: SystemC underneath, plain C++ callbacks on top.
//
// A Kernel owns one fresh SystemC simulation context, so one process can run many scenarios
// (Python sweeps, tests) one after another. A Process is one SC_METHOD bound to a callback and
// woken by its own sc_event: a model that has several pending deadlines keeps them itself (or
// in a TimerQueue) and asks to be woken at the earliest. No SystemC threads, no wait().
//
// Only sim/kernel.cc includes <systemc>.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <vector>

#include "sim/time.h"

namespace ppsim::sim {

// Budgets a run may not exceed (0: no limit). Events are counted exactly; wall-clock time every
// kLimitCheckEvents events and resident memory every 4 * kLimitCheckEvents, so the hot path pays
// one compare per event.
struct RunLimits {
  std::uint64_t max_events = 0;
  double max_wall_s = 0;
  std::uint64_t max_memory_bytes = 0;  // growth of the process's resident memory since set_limits()
};
constexpr std::uint64_t kLimitCheckEvents = 4096;

// Which limit stopped a run, and a one-line account of it.
struct LimitHit {
  std::string limit;    // the parameter: "sim.max_events", "sim.max_wall_s", "sim.max_memory_mib"
  std::string message;  // "4000000 events dispatched, the limit (sim.max_events)"
};

class Kernel {
 public:
  Kernel();
  ~Kernel();
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;

  Picos now() const;
  // Runs until no event is pending or `until` is reached, whichever comes first.
  void run(Picos until = kNever);
  // Ends the run after the current callback returns.
  void stop();
  bool stopped() const { return stop_requested_; }
  std::uint64_t dispatched() const { return dispatched_; }

  // Starts the wall clock and the memory baseline of `limits`.
  void set_limits(const RunLimits& limits);
  // Checks wall-clock time and memory now (a model that allocates in bulk calls it); on a breach
  // the run stops as with stop() and limit_hit() says why.
  void check_limits();
  const std::optional<LimitHit>& limit_hit() const { return limit_hit_; }

  // Called by Process before each callback; false when the callback must not run (the run was
  // stopped, or a limit stopped it now: that event is not counted).
  bool admit() {
    if (dispatched_ >= next_check_ && !periodic_check()) return false;
    ++dispatched_;
    return !stop_requested_;
  }

 private:
  bool periodic_check();
  void check_budgets(bool memory);
  void hit(const char* limit, const std::string& message);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::uint64_t dispatched_ = 0;
  std::uint64_t next_check_ = UINT64_MAX;
  std::uint64_t checks_ = 0;
  bool stop_requested_ = false;
  RunLimits limits_;
  std::optional<LimitHit> limit_hit_;
};

// One SC_METHOD. wake_at() keeps the earliest of several requests, like sc_event::notify.
class Process {
 public:
  Process(Kernel& kernel, const std::string& name, std::function<void()> callback);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  void wake_at(Picos t);
  void wake_after(Picos delay) { wake_at(kernel_.now() + delay); }
  void cancel();
  Picos pending() const { return pending_; }  // kNever when nothing is pending
  Kernel& kernel() { return kernel_; }

 private:
  void fire();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Kernel& kernel_;
  std::function<void()> callback_;
  Picos pending_ = kNever;
};

// Deadlines with payloads behind one Process: pops every item due now, in (time, insertion) order,
// so equal-time items are handled deterministically.
template <typename T>
class TimerQueue {
 public:
  TimerQueue(Kernel& kernel, const std::string& name, std::function<void(T&)> handler)
      : handler_(std::move(handler)), proc_(kernel, name, [this] { drain(); }) {}

  void schedule_at(Picos t, T item) {
    heap_.push(Item{t, seq_++, std::move(item)});
    proc_.wake_at(heap_.top().t);
  }
  void schedule_after(Picos d, T item) { schedule_at(proc_.kernel().now() + d, std::move(item)); }
  std::size_t size() const { return heap_.size(); }
  bool empty() const { return heap_.empty(); }

 private:
  struct Item {
    Picos t;
    std::uint64_t seq;
    T value;
    bool operator>(const Item& o) const { return t != o.t ? t > o.t : seq > o.seq; }
  };
  void drain() {
    const Picos now = proc_.kernel().now();
    while (!heap_.empty() && heap_.top().t <= now) {
      Item it = std::move(const_cast<Item&>(heap_.top()));
      heap_.pop();
      handler_(it.value);
      if (proc_.kernel().stopped()) return;
    }
    if (!heap_.empty()) proc_.wake_at(heap_.top().t);
  }
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap_;
  std::uint64_t seq_ = 0;
  std::function<void(T&)> handler_;
  Process proc_;
};

}  // namespace ppsim::sim
