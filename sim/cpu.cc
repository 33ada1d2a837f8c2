#include "sim/cpu.h"

#include <stdexcept>

namespace ppsim::sim {

void Cpu::attach(Kernel& kernel) {
  dispatcher_ = std::make_unique<Process>(kernel, "cpu" + std::to_string(id_), [this] { on_job_end(); });
}

void Cpu::run_softirq(Picos start, Picos cost) {
  if (start + cost > softirq_free_) softirq_free_ = start + cost;
  softirq_busy_ += cost;
  if (cost == 0 || !running_) return;
  // The running process job is interrupted if the softirq work overlaps it.
  if (job_end_ > start) {
    if (job_start_ > start) job_start_ = job_start_ < start + cost ? start + cost : job_start_ + cost;
    job_end_ += cost;
    dispatcher_->cancel();
    dispatcher_->wake_at(job_end_);
  }
}

void Cpu::run_work(Picos now, Picos cost, const void* task, std::function<void()> done) {
  if (!dispatcher_) throw std::logic_error("ppsim: Cpu::attach() was not called");
  waiting_.push_back(Job{task, cost, std::move(done)});
  process_busy_ += cost;
  if (!running_ && !in_done_) dispatch(now);
}

Picos Cpu::run_process(Picos now, Picos cost, Process* owner) {
  // Estimate for callers that keep it: first come, first served behind what is booked.
  Picos start = running_ ? job_end_ : now;
  for (const auto& j : waiting_) start += j.cost;
  if (softirq_free_ > start) start = softirq_free_;
  run_work(now, cost, owner, [owner, this] {
    if (owner) owner->wake_at(job_end_);
  });
  return start + cost;
}

void Cpu::dispatch(Picos now) {
  if (waiting_.empty()) return;
  // Prefer the current task while its slice lasts; otherwise the longest-waiting other task.
  auto pick = waiting_.end();
  if (now < slice_end_ || slice_ == kNever) {
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
      if (it->task == current_task_) { pick = it; break; }
  }
  if (pick == waiting_.end()) {
    for (auto it = waiting_.begin(); it != waiting_.end(); ++it)
      if (it->task != current_task_) { pick = it; break; }
  }
  if (pick == waiting_.end()) pick = waiting_.begin();
  if (pick->task != current_task_ || now >= slice_end_) {
    if (pick->task != current_task_ && current_task_ != nullptr) ++switches_;
    current_task_ = pick->task;
    if (slice_ == kNever) {
      slice_end_ = kNever;
    } else {
      // The slice is checked at the scheduler tick, whose phase against the task's start is
      // arbitrary: on average the tick that ends it comes half a tick after the base slice.
      slice_end_ = now + slice_ + tick_ / 2;
    }
  }
  current_job_ = std::move(*pick);
  waiting_.erase(pick);
  running_ = true;
  job_start_ = now > softirq_free_ ? now : softirq_free_;
  job_end_ = job_start_ + current_job_.cost;
  dispatcher_->wake_at(job_end_);
}

void Cpu::on_job_end() {
  const Picos now = dispatcher_->kernel().now();
  if (!running_ || now < job_end_) return;
  running_ = false;
  in_done_ = true;
  auto done = std::move(current_job_.done);
  if (done) done();
  in_done_ = false;
  dispatch(now);
}

}  // namespace ppsim::sim
