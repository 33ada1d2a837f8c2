#include "sim/cpu.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace ppsim::sim {

void Cpu::attach(Kernel& kernel) {
  dispatcher_ = std::make_unique<Process>(kernel, "cpu" + std::to_string(id_), [this] { on_job_end(); });
}

void Cpu::name_task(const void* task, const std::string& name) { entity(task).stats.name = name; }

void Cpu::set_sleeping_lag(const void* task, Picos lag) {
  Entity& e = entity(task);
  e.vlag = std::clamp(lag, -eevdf_.lag_limit, eevdf_.lag_limit);
  e.is_new = false;
}

void Cpu::trace_task(const void* task, const char* comm, int pid) {
  Entity& e = entity(task);
  e.comm = comm;
  e.pid = pid;
}

// As the kernel prints them: sched_switch from __schedule with IRQs off; sched_wakeup on the CPU
// the task wakes on, in the context of whatever runs there (a wakeup from another CPU arrives
// there as an IPI). The idle task is swapper/N in the fields and <idle>-0 in the task column.
// Every task has nice 0: prio 120.
void Cpu::trace_switch(Picos now, const Entity* prev, char prev_state, const Entity* next) {
  if (!tw_) return;
  const std::string idle = "swapper/" + std::to_string(id_);
  const char* pc = prev ? prev->comm : idle.c_str();
  const char* nc = next ? next->comm : idle.c_str();
  char buf[256];
  std::snprintf(buf, sizeof buf, "prev_comm=%s prev_pid=%d prev_prio=120 prev_state=%c ==> next_comm=%s next_pid=%d next_prio=120",
                pc, prev ? prev->pid : 0, prev ? prev_state : 'R', nc, next ? next->pid : 0);
  TraceCtx ctx;
  ctx.task = prev ? prev->comm : "<idle>";
  ctx.pid = prev ? prev->pid : 0;
  ctx.cpu = id_;
  tw_->line(ctx, now, "sched_switch", buf);
}

void Cpu::trace_wakeup(Picos now, const Entity& e) {
  if (!tw_) return;
  char buf[128];
  std::snprintf(buf, sizeof buf, "comm=%s pid=%d prio=120 target_cpu=%03d", e.comm, e.pid, id_);
  TraceCtx ctx;
  ctx.task = curr_ ? curr_->comm : "<idle>";
  ctx.pid = curr_ ? curr_->pid : 0;
  ctx.cpu = id_;
  tw_->line(ctx, now, "sched_wakeup", buf);
}

std::vector<const TaskSchedStats*> Cpu::task_stats() const {
  std::vector<const TaskSchedStats*> out;
  for (const auto& e : entities_) out.push_back(&e->stats);
  return out;
}

void Cpu::set_timeline(Timeline* tl) {
  tl_ = tl && tl->enabled() ? tl : nullptr;
  if (!tl_) return;
  tl_softirq_ = tl_->slice_track("CPUs", "cpu" + std::to_string(id_) + " softirq", 2 * id_);
  tl_process_ = tl_->slice_track("CPUs", "cpu" + std::to_string(id_) + " tasks", 2 * id_ + 1);
}

const char* Cpu::task_name(const void* task) const {
  for (const auto& e : entities_)
    if (e->task == task && !e->stats.name.empty()) return e->stats.name.c_str();
  for (const auto& [t, label] : labels_)
    if (t == task) return label;
  return "task";
}

// A process job holds the CPU from its start to its end, softirq work that interrupts it included.
void Cpu::job_started(Picos at) { job_start_ = at; }

void Cpu::job_ended(Picos at) {
  if (tl_) tl_->slice(tl_process_, task_name(current_job_.task), job_start_, at - job_start_);
}

void Cpu::run_softirq(Picos start, Picos cost, const char* what) {
  if (start + cost > softirq_free_) softirq_free_ = start + cost;
  softirq_busy_ += cost;
  if (tl_) tl_->slice(tl_softirq_, what, start, cost);
  if (cost == 0 || !running_) return;
  // The running process job is interrupted if the softirq work overlaps it (softirq work is
  // booked at or after the job's start: the job started once earlier softirq work was done).
  if (job_end_ > start) {
    job_end_ += cost;
    dispatcher_->cancel();
    dispatcher_->wake_at(job_end_);
  }
}

void Cpu::run_work(Picos now, Picos cost, const void* task, std::function<void()> done, bool schedule_point) {
  if (!dispatcher_) throw std::logic_error("ppsim: Cpu::attach() was not called");
  process_busy_ += cost;
  if (policy_ == Policy::kEevdf) {
    eevdf_submit(now, Job{task, cost, std::move(done), schedule_point, nullptr});
    return;
  }
  waiting_.push_back(Job{task, cost, std::move(done), schedule_point, nullptr});
  if (!running_ && !in_done_) dispatch(now);
}

void Cpu::run_work_at_start(Picos now, const void* task, std::function<Picos()> start, std::function<void()> done,
                            bool schedule_point) {
  if (!dispatcher_) throw std::logic_error("ppsim: Cpu::attach() was not called");
  Job job{task, 0, std::move(done), schedule_point, std::move(start)};
  if (policy_ == Policy::kEevdf) {
    eevdf_submit(now, std::move(job));
    return;
  }
  waiting_.push_back(std::move(job));
  if (!running_ && !in_done_) dispatch(now);
}

Picos Cpu::job_cost(Job& job) {
  if (job.start) {
    job.cost = job.start();
    process_busy_ += job.cost;
    job.start = nullptr;
  }
  return job.cost;
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
  job_started(now > softirq_free_ ? now : softirq_free_);
  job_end_ = (now > softirq_free_ ? now : softirq_free_) + job_cost(current_job_);
  dispatcher_->wake_at(job_end_);
}

void Cpu::on_job_end() {
  const Picos now = dispatcher_->kernel().now();
  if (!running_ || now < job_end_) {
    end_deferred_ = false;
    return;
  }
  if (policy_ == Policy::kEevdf) {
    // A wake-up due at the very end of the job (the softirq at the end of a system call) is seen
    // before the task decides whether to go on: the end is handled one delta cycle later.
    if (!end_deferred_) {
      end_deferred_ = true;
      dispatcher_->wake_at(now);
      return;
    }
    end_deferred_ = false;
    eevdf_job_end(now);
    return;
  }
  running_ = false;
  job_ended(now);
  in_done_ = true;
  auto done = std::move(current_job_.done);
  if (done) done();
  in_done_ = false;
  dispatch(now);
}

// ---- EEVDF ---------------------------------------------------------------------------------

Cpu::Entity& Cpu::entity(const void* task) {
  for (auto& e : entities_)
    if (e->task == task) return *e;
  entities_.push_back(std::make_unique<Entity>());
  entities_.back()->task = task;
  // A pid of its own until trace_task names it: trace readers take pid 0 for the idle task.
  entities_.back()->pid = 4000 + 100 * id_ + static_cast<int>(entities_.size());
  return *entities_.back();
}

int Cpu::nr_queued() const {
  int n = 0;
  for (const auto& e : entities_) n += e->queued ? 1 : 0;
  return n;
}

// avg_vruntime(): the average virtual runtime of everything queued, the running task and the
// sleepers kept by DELAY_DEQUEUE included (all weights equal).
Picos Cpu::avg_vruntime() const {
  Picos sum = 0;
  int n = 0;
  for (const auto& e : entities_)
    if (e->queued) {
      sum += e->v;
      ++n;
    }
  return n ? sum / n : zero_v_;
}

// update_curr(): charge the running task for the time it held the CPU (softirq included: no IRQ
// time accounting), renewing its deadline at the first tick (or other update) after it used its
// slice; a used-up slice asks for a reschedule when another task is queued.
void Cpu::update_curr(Picos now, bool check_resched, bool clock_update) {
  if (!curr_) {
    if (!skip_pending_) charged_until_ = now;  // else the switch starts from the stale clock
    return;
  }
  auto check = [&] {
    bool renewed = false;
    if (curr_->v >= curr_->deadline) {
      curr_->deadline = curr_->v + eevdf_.base_slice;
      renewed = true;
    }
    if (nr_queued() > 1 && (renewed || curr_->v >= curr_->vprot)) need_resched_ = true;
  };
  Picos t = charged_until_;
  if (eevdf_.tick > 0) {
    while (next_tick_ <= now) {
      if (next_tick_ > t) {
        curr_->v += next_tick_ - t;
        curr_->stats.runtime += next_tick_ - t;
        t = next_tick_;
        check();  // the scheduler tick (task_tick_fair → update_curr)
      }
      next_tick_ += eevdf_.tick;
    }
  }
  if (skip_pending_ && !clock_update) {
    // The clock stands at its last update (the wake-up, or the last tick since): nothing more
    // is charged until the switch, which charges it to the task switched in.
    charged_until_ = t;
    if (check_resched) check();
    zero_v_ = avg_vruntime();
    return;
  }
  if (now > t) {
    curr_->v += now - t;
    curr_->stats.runtime += now - t;
  }
  charged_until_ = std::max(charged_until_, now);
  if (check_resched) check();
  zero_v_ = avg_vruntime();
}

// pick_eevdf(): the running task while it is eligible and inside the slice it was picked with
// (RUN_TO_PARITY), else the eligible task with the earliest deadline. A sleeper kept by
// DELAY_DEQUEUE that would be picked leaves the queue instead, its lag clipped to 0.
Cpu::Entity* Cpu::pick(bool protect) {
  for (;;) {
    if (nr_queued() == 0) return nullptr;
    const Picos V = avg_vruntime();
    Entity* c = curr_ && curr_->queued && !curr_->delayed && curr_->v <= V ? curr_ : nullptr;
    if (protect && c && eevdf_.run_to_parity && c->v < c->vprot) return c;
    Entity* best = nullptr;
    for (auto& e : entities_) {
      if (!e->queued || e->v > V) continue;
      if (e.get() == curr_ && !c) continue;
      if (!best || e->deadline < best->deadline) best = e.get();
    }
    if (best && best->delayed) {
      best->queued = best->delayed = false;
      best->vlag = 0;  // DELAY_ZERO
      continue;
    }
    return best;
  }
}

// place_entity(): a woken task's lag is kept relative to the average, scaled for the weight its
// arrival adds (PLACE_LAG); its deadline is a full slice ahead.
void Cpu::place(Entity& e) {
  const int n = nr_queued();
  const Picos V = n ? avg_vruntime() : zero_v_;
  Picos lag = 0;
  if (n > 0 && e.vlag != 0) lag = e.vlag * (n + 1) / n;
  e.v = V - lag;
  // PLACE_DEADLINE_INITIAL: a new task's first deadline is half a slice away.
  e.deadline = e.v + (e.is_new ? eevdf_.base_slice / 2 : eevdf_.base_slice);
  e.is_new = false;
}

void Cpu::wakeup(Picos now, Entity& e) {
  update_curr(now, true, /*clock_update=*/true);  // ttwu updates the run queue's clock
  ++e.stats.wakeups;
  e.woken_at = now;
  trace_wakeup(now, e);
  if (e.delayed) {
    // requeue_delayed_entity(): still queued; a lag that became positive restarts at lag 0,
    // placed at the average of the others (the kernel takes it off the tree to place it).
    if (avg_vruntime() > e.v) {
      e.queued = false;
      e.vlag = 0;
      e.v = nr_queued() ? avg_vruntime() : e.v;
      e.deadline = e.v + eevdf_.base_slice;
      e.queued = true;
    }
    e.delayed = false;
  } else {
    place(e);
    e.queued = true;
  }
  // check_preempt_wakeup_fair(): the woken task preempts iff the protected pick chooses it; the
  // reschedule takes effect at the running task's next schedule point (preempt=none).
  if (curr_ && curr_ != &e && !need_resched_ && pick(true) == &e) need_resched_ = true;
  // wakeup_preempt(): a reschedule is coming, so the switch skips its clock update.
  if (eevdf_.clock_skip && curr_ && need_resched_) skip_pending_ = true;
}

void Cpu::eevdf_submit(Picos now, Job job) {
  Entity& e = entity(job.task);
  e.jobs.push_back(std::move(job));
  if (&e == curr_) return;  // continues after its running job
  if (!e.queued || e.delayed) wakeup(now, e);
  if (!curr_ && !in_done_) eevdf_schedule(now);
}

void Cpu::eevdf_start_job(Picos now, Picos extra) {
  current_job_ = std::move(curr_->jobs.front());
  curr_->jobs.pop_front();
  running_ = true;
  process_busy_ += extra;
  job_started(now > softirq_free_ ? now : softirq_free_);
  job_end_ = (now > softirq_free_ ? now : softirq_free_) + extra + job_cost(current_job_);
  dispatcher_->wake_at(job_end_);
}

void Cpu::eevdf_schedule(Picos now, Entity* blocked) {
  update_curr(now);
  // With a clock skip pending, __schedule does not update the clock: the task switched in starts
  // from the stale clock and is charged the time since.
  const Picos clock = skip_pending_ ? charged_until_ : now;
  skip_pending_ = false;
  Entity* prev = curr_;
  Entity* next = pick(true);
  need_resched_ = false;
  if (next != prev || (blocked && !next)) trace_switch(now, prev ? prev : blocked, prev ? 'R' : 'S', next);
  if (next != prev) {
    if (prev) {  // preempted with work left (a blocked task left curr_ already)
      ++prev->stats.preempted;
      prev->stats.turn_lengths.push_back(now - prev->picked_at);
      ++switches_;
    }
    curr_ = next;
    if (next) {
      next->vprot = next->deadline;
      next->picked_at = now;
      ++next->stats.turns;
      if (next->woken_at >= 0) next->stats.wakeup_waits.push_back(now - next->woken_at);
      next->woken_at = -1;
    }
  }
  charged_until_ = clock;
  if (eevdf_.tick > 0 && next_tick_ <= now)
    next_tick_ = now < eevdf_.tick_phase ? eevdf_.tick_phase
                                         : eevdf_.tick_phase + ((now - eevdf_.tick_phase) / eevdf_.tick + 1) * eevdf_.tick;
  if (curr_) eevdf_start_job(now, next != prev ? eevdf_.context_switch : 0);
}

void Cpu::eevdf_job_end(Picos now) {
  running_ = false;
  job_ended(now);
  Entity* e = curr_;
  Job job = std::move(current_job_);
  in_done_ = true;
  if (job.done) job.done();
  in_done_ = false;
  // Charge the time; a used-up slice is noticed by the tick or the next scheduler event, not by
  // the task going on with its work.
  update_curr(now, /*check_resched=*/false);
  if (!e->jobs.empty() && !(job.schedule_point && need_resched_)) {
    eevdf_start_job(now, 0);  // the task goes on (the same system call, or no reschedule pending)
    return;
  }
  if (e->jobs.empty()) {
    // The task blocks. An ineligible one stays queued (DELAY_DEQUEUE); otherwise its lag is saved.
    ++e->stats.blocked;
    e->stats.turn_lengths.push_back(now - e->picked_at);
    const Picos V = avg_vruntime();
    if (eevdf_.delay_dequeue && e->v > V) {
      e->delayed = true;
    } else {
      e->vlag = std::clamp(V - e->v, -eevdf_.lag_limit, eevdf_.lag_limit);
      e->queued = false;
    }
    curr_ = nullptr;
    ++switches_;
    eevdf_schedule(now, e);
    return;
  }
  eevdf_schedule(now);
}

}  // namespace ppsim::sim
