// A CPU as a two-class server.
//  - Softirq work (NAPI polls, defer-list flushes) runs before process work and preempts it;
//    softirq jobs run in arrival order without preempting each other. Models compute a job's
//    cost, ask softirq_start() when it can run and book it with run_softirq().
//  - Process work runs in jobs submitted by tasks (a socket reader, a sender, a transmit
//    batch). A job's end moves later by any softirq time that interrupts it. Tasks share the
//    CPU in time slices: the running task keeps the CPU while it submits more work within its
//    slice; when the slice is over and another task is waiting, the CPU switches. Without a
//    slice (kNever, the default) jobs run first come, first served. As with EEVDF on a kernel
//    without preemption on wakeup (RUN_TO_PARITY, PREEMPT_NONE), a woken task does not cut the
//    running one short: a slice lasts at least the base slice and ends at the next scheduler
//    tick after that, on average half a tick later (the tick's phase is not modelled).
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>

#include "sim/kernel.h"
#include "sim/time.h"

namespace ppsim::sim {

class Cpu {
 public:
  Cpu(int id, int node) : id_(id), node_(node) {}
  int id() const { return id_; }
  int node() const { return node_; }

  // Process-context jobs need the event kernel (the CPU wakes itself when a job ends). Call it
  // once the Cpu has its final address (e.g. after the vector of CPUs is built).
  void attach(Kernel& kernel);
  // Base slice (sysctl_sched_base_slice) and tick period (1/HZ; 0: slices end exactly).
  void set_slice(Picos base, Picos tick = 0) {
    slice_ = base;
    tick_ = tick;
  }

  // When softirq work arriving at `now` can start.
  Picos softirq_start(Picos now) const { return now > softirq_free_ ? now : softirq_free_; }
  // Account softirq work [start, start+cost); start must be softirq_start(...) or later.
  void run_softirq(Picos start, Picos cost);

  // Process-context work of `cost` for task `task` (any stable pointer naming the task).
  // `done` runs, synchronously, when the job has had its CPU time; it may submit the task's
  // next job, which then continues within the slice.
  void run_work(Picos now, Picos cost, const void* task, std::function<void()> done);

  Picos softirq_busy() const { return softirq_busy_; }
  Picos process_busy() const { return process_busy_; }
  std::uint64_t context_switches() const { return switches_; }

 private:
  struct Job {
    const void* task;
    Picos cost;
    std::function<void()> done;
  };
  void dispatch(Picos now);
  void on_job_end();

  int id_, node_;
  Picos softirq_free_ = 0;
  Picos softirq_busy_ = 0, process_busy_ = 0;
  Picos slice_ = kNever, tick_ = 0;
  std::unique_ptr<Process> dispatcher_;
  std::deque<Job> waiting_;
  bool running_ = false, in_done_ = false;
  Job current_job_{};
  Picos job_end_ = 0;
  const void* current_task_ = nullptr;
  Picos slice_end_ = 0;
  std::uint64_t switches_ = 0;
};

}  // namespace ppsim::sim
