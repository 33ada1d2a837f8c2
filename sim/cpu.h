// A CPU as a two-class server: softirq work (NAPI polls, deferred frees) runs before process
// work and preempts it; work within one class runs in arrival order without preemption.
// Models hand the CPU a cost (already computed) and get back when the work runs/ends; a
// preempted process job's end moves later by the softirq time that interrupted it, and its
// owner Process is re-woken at the new end.
#pragma once
#include <cstdint>
#include <deque>

#include "sim/kernel.h"
#include "sim/time.h"

namespace ppsim::sim {

class Cpu {
 public:
  Cpu(int id, int node) : id_(id), node_(node) {}
  int id() const { return id_; }
  int node() const { return node_; }

  // When softirq work arriving at `now` can start.
  Picos softirq_start(Picos now) const { return now > softirq_free_ ? now : softirq_free_; }
  // Account softirq work [start, start+cost); start must be softirq_start(...) or later.
  void run_softirq(Picos start, Picos cost);
  // Queue process-context work of `cost` arriving at `now`; `owner` is woken when it ends
  // (again, later, if softirq work preempts it). Returns the current estimate of its end.
  Picos run_process(Picos now, Picos cost, Process* owner);
  // True while softirq work occupies the CPU at time t.
  bool in_softirq_at(Picos t) const { return t < softirq_free_; }

  Picos softirq_busy() const { return softirq_busy_; }
  Picos process_busy() const { return process_busy_; }

 private:
  struct Job {
    Picos start, end;
    Process* owner;
  };
  int id_, node_;
  Picos softirq_free_ = 0;
  Picos softirq_busy_ = 0, process_busy_ = 0;
  std::deque<Job> jobs_;  // process jobs not yet finished, in order
};

}  // namespace ppsim::sim
