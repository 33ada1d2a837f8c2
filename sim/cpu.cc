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
  // The running process job is interrupted if the softirq work overlaps it (softirq work is
  // booked at or after the job's start: the job started once earlier softirq work was done).
  if (job_end_ > start) {
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

void Cpu::dispatch(Picos now) {
  if (waiting_.empty()) return;
  // Prefer the current task while its slice lasts; otherwise the longest-waiting other task.
  auto pick = waiting_.end();
  if (slice_ == kNever) {
    pick = waiting_.begin();  // first come, first served
  } else if (now < slice_end_) {
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
  job_end_ = (now > softirq_free_ ? now : softirq_free_) + current_job_.cost;
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
