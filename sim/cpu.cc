#include "sim/cpu.h"

namespace ppsim::sim {

void Cpu::run_softirq(Picos start, Picos cost) {
  if (start + cost > softirq_free_) softirq_free_ = start + cost;
  softirq_busy_ += cost;
  if (cost == 0) return;
  // Drop finished process jobs, then push back every job still running or queued after `start`.
  while (!jobs_.empty() && jobs_.front().end <= start) jobs_.pop_front();
  for (auto& j : jobs_) {
    if (j.end <= start) continue;
    if (j.start >= start + cost) {
      j.start += cost;
    } else if (j.start > start) {
      j.start = start + cost;
    }
    j.end += cost;
    if (j.owner) {
      j.owner->cancel();
      j.owner->wake_at(j.end);
    }
  }
}

Picos Cpu::run_process(Picos now, Picos cost, Process* owner) {
  while (!jobs_.empty() && jobs_.front().end <= now) jobs_.pop_front();
  Picos start = now;
  if (!jobs_.empty() && jobs_.back().end > start) start = jobs_.back().end;
  // Softirq work already booked runs first.
  Picos end = start + cost;
  if (softirq_free_ > start) end += softirq_free_ - start;
  jobs_.push_back({start, end, owner});
  process_busy_ += cost;
  if (owner) owner->wake_at(end);
  return end;
}

}  // namespace ppsim::sim
