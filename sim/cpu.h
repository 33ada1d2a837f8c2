// A CPU as a two-class server.
//  - Softirq work (NAPI polls, defer-list flushes, IPIs) runs before process work and preempts
//    it; softirq jobs run in arrival order without preempting each other. Models compute a job's
//    cost, ask softirq_start() when it can run and book it with run_softirq().
//  - Process work runs in jobs submitted by tasks (a socket reader, a sender, a transmit batch);
//    a job's end moves later by any softirq time that interrupts it. How tasks share the CPU:
//      kFifo    jobs run first come, first served (the default);
//      kSlices  the running task keeps the CPU while it submits more work within a fixed slice;
//      kEevdf   Linux's EEVDF as of 6.18 (kernel/sched/fair.c) with preempt=none: each task has a
//               virtual runtime, a virtual deadline one base slice after it was (re)placed, and a
//               lag saved when it sleeps. Eligible tasks have v <= V (the average v of the queued
//               tasks, sleepers kept by DELAY_DEQUEUE included); the eligible one with the earliest
//               deadline runs, except that the current task keeps the CPU for the slice it was
//               picked with (RUN_TO_PARITY) while it stays eligible. A woken task is placed at
//               V - lag (PLACE_LAG, scaled for the weight it adds) and preempts the current one iff
//               that pick chooses it. A slice is renewed at the first scheduler tick (1/HZ) after
//               it is used up. Under preempt=none a reschedule only takes effect at a schedule
//               point: the end of a job submitted with `schedule_point` (a system call's return) or
//               when the task blocks (no further job). A task blocks when its last job ends; an
//               ineligible task that blocks stays queued (DELAY_DEQUEUE) until it is picked, then
//               leaves with its lag clipped to 0 (DELAY_ZERO). Time in softirq is charged to the
//               task that was running (no IRQ time accounting, as on the capture machine). All
//               tasks have nice 0.
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sim/kernel.h"
#include "sim/time.h"
#include "sim/timeline.h"
#include "sim/tracer.h"

namespace ppsim::sim {

struct EevdfConfig {
  Picos base_slice = 1'400'000'000;   // sysctl_sched_base_slice: 0.7 ms x (1 + ilog2(min(ncpu, 8)))
  Picos tick = 4'000'000'000;         // 1/CONFIG_HZ (HZ=250)
  Picos tick_phase = 0;               // ticks at tick_phase + k * tick
  Picos lag_limit = 5'400'000'000;    // update_entity_lag clamp: slice + tick (6.17+)
  bool run_to_parity = true;          // RUN_TO_PARITY
  bool delay_dequeue = true;          // DELAY_DEQUEUE (+ DELAY_ZERO)
  bool clock_skip = false;            // rq_clock_skip_update after a wake-up that preempts
  Picos context_switch = 0;           // __schedule + context_switch, charged to the task switched in
};

// What one task got from the CPU (for comparison with a kernel trace's sched events).
struct TaskSchedStats {
  std::string name;
  std::uint64_t turns = 0;            // times it got the CPU
  std::uint64_t blocked = 0;          // turns that ended because it had nothing left to run
  std::uint64_t preempted = 0;        // turns that ended at a schedule point with work left
  std::uint64_t wakeups = 0;
  Picos runtime = 0;
  std::vector<Picos> turn_lengths;    // each finished turn
  std::vector<Picos> wakeup_waits;    // wakeup until it ran
};

class Cpu {
 public:
  enum class Policy { kFifo, kSlices, kEevdf };

  Cpu(int id, int node) : id_(id), node_(node) {}
  int id() const { return id_; }
  int node() const { return node_; }

  // Process-context jobs need the event kernel (the CPU wakes itself when a job ends). Call it
  // once the Cpu has its final address (e.g. after the vector of CPUs is built).
  void attach(Kernel& kernel);
  // Fixed slices (kSlices): base slice and tick period (0: slices end exactly at the base slice).
  void set_slice(Picos base, Picos tick = 0) {
    policy_ = Policy::kSlices;
    slice_ = base;
    tick_ = tick;
  }
  void set_eevdf(const EevdfConfig& cfg) {
    policy_ = Policy::kEevdf;
    eevdf_ = cfg;
  }
  Policy policy() const { return policy_; }
  // A name for a task's statistics (any stable pointer names a task).
  void name_task(const void* task, const std::string& name);
  // EEVDF: the task has run before and now sleeps with this lag (it is not a new task).
  void set_sleeping_lag(const void* task, Picos lag);

  // When softirq work arriving at `now` can start.
  Picos softirq_start(Picos now) const { return now > softirq_free_ ? now : softirq_free_; }
  // Account softirq work [start, start+cost); start must be softirq_start(...) or later. `what`
  // names it on the timeline (a literal).
  void run_softirq(Picos start, Picos cost, const char* what = "softirq");
  // Show this CPU's softirq work and process jobs as slices on `tl` (null: not recorded).
  void set_timeline(Timeline* tl);
  // EEVDF: write the kernel's sched_switch and sched_wakeup lines for this CPU to `tw` (null:
  // none), so that a replay's trace shows what ran as a capture's does. Tasks appear under the
  // command name and pid given here (a literal); others as "task" with a pid of 4000 + 100 × CPU
  // + n, an idle CPU as swapper/N (<idle>-0 in the task column).
  void set_trace(TraceWriter* tw) { tw_ = tw && tw->enabled() ? tw : nullptr; }
  void trace_task(const void* task, const char* comm, int pid);
  // The name a task's jobs get on the timeline (a literal), when name_task() did not name it.
  void label_task(const void* task, const char* label) { labels_.emplace_back(task, label); }

  // Process-context work of `cost` for task `task`. `done` runs, synchronously, when the job has
  // had its CPU time; it may submit the task's next job. With `schedule_point` the job's end is a
  // point where a pending reschedule takes effect (a system call's return); without it the next
  // job of the task continues at once (the same system call goes on).
  void run_work(Picos now, Picos cost, const void* task, std::function<void()> done, bool schedule_point = true);
  // The same, with the cost decided when the job starts running (`start` returns it): a system
  // call that works on what is there when the task gets the CPU (recvmsg takes what is queued).
  void run_work_at_start(Picos now, const void* task, std::function<Picos()> start, std::function<void()> done,
                         bool schedule_point = true);

  // EEVDF: a reschedule of the running task is pending (its softirq loop stops restarting).
  bool need_resched() const { return need_resched_; }
  const void* current_task() const { return policy_ == Policy::kEevdf ? (curr_ ? curr_->task : nullptr) : current_task_; }

  // Nothing runs or waits in process context (softirq aside): a wakeup has to bring the CPU out
  // of idle first.
  bool idle() const { return !running_ && !in_done_ && (policy_ == Policy::kEevdf ? curr_ == nullptr : waiting_.empty()); }
  Picos softirq_busy() const { return softirq_busy_; }
  Picos process_busy() const { return process_busy_; }
  std::uint64_t context_switches() const { return switches_; }
  // Per-task statistics (EEVDF), in the order tasks first ran.
  std::vector<const TaskSchedStats*> task_stats() const;

 private:
  struct Job {
    const void* task;
    Picos cost;
    std::function<void()> done;
    bool schedule_point = true;
    std::function<Picos()> start;  // when set, decides the cost as the job starts
  };
  Picos job_cost(Job& job);
  const char* task_name(const void* task) const;
  void job_started(Picos at);
  void job_ended(Picos at);
  // EEVDF's per-task state (struct sched_entity, the parts that matter here).
  struct Entity {
    const void* task = nullptr;
    std::deque<Job> jobs;
    Picos v = 0, deadline = 0, vprot = 0, vlag = 0;
    bool queued = false, delayed = false;
    bool is_new = true;  // never placed: a forked task (PLACE_DEADLINE_INITIAL)
    Picos picked_at = 0, woken_at = -1;
    TaskSchedStats stats;
    const char* comm = "task";  // for sched trace lines
    int pid = 0;                // set by entity(), or by trace_task
  };
  void trace_switch(Picos now, const Entity* prev, char prev_state, const Entity* next);
  void trace_wakeup(Picos now, const Entity& e);

  void dispatch(Picos now);
  void on_job_end();
  // EEVDF
  Entity& entity(const void* task);
  void eevdf_submit(Picos now, Job job);
  void eevdf_job_end(Picos now);
  void eevdf_schedule(Picos now, Entity* blocked = nullptr);  // blocked: the task that just blocked
  void eevdf_start_job(Picos now, Picos extra);
  // `clock_update`: the kernel updates the run queue's clock here (a wake-up); otherwise, while a
  // clock skip is pending, only the ticks up to `now` are charged.
  void update_curr(Picos now, bool check_resched = true, bool clock_update = false);
  Picos avg_vruntime() const;
  bool eligible(const Entity& e) const { return e.v <= avg_vruntime(); }
  Entity* pick(bool protect);
  void place(Entity& e);
  void wakeup(Picos now, Entity& e);
  int nr_queued() const;

  int id_, node_;
  Picos softirq_free_ = 0;
  Picos softirq_busy_ = 0, process_busy_ = 0;
  Policy policy_ = Policy::kFifo;
  Picos slice_ = kNever, tick_ = 0;
  std::unique_ptr<Process> dispatcher_;
  std::deque<Job> waiting_;
  bool running_ = false, in_done_ = false;
  Job current_job_{};
  Picos job_end_ = 0;
  const void* current_task_ = nullptr;
  Picos slice_end_ = 0;
  std::uint64_t switches_ = 0;
  Timeline* tl_ = nullptr;
  TraceWriter* tw_ = nullptr;
  std::vector<std::pair<const void*, const char*>> labels_;
  int tl_softirq_ = -1, tl_process_ = -1;
  Picos job_start_ = 0;
  // EEVDF
  EevdfConfig eevdf_;
  std::vector<std::unique_ptr<Entity>> entities_;
  Entity* curr_ = nullptr;
  bool need_resched_ = false;
  bool end_deferred_ = false;  // the job end waits one delta cycle for same-time wake-ups
  Picos charged_until_ = 0;   // curr's v is up to date until here: the run queue's clock
  // clock_skip: a wake-up decided to preempt; until the switch the clock stands at its last
  // update (that wake-up, or a later tick or wake-up).
  bool skip_pending_ = false;
  Picos next_tick_ = 0;       // the next scheduler tick after charged_until_
  Picos zero_v_ = 0;          // V when nothing is queued (cfs_rq->zero_vruntime)
};

}  // namespace ppsim::sim
