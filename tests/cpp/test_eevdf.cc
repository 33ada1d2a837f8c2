// The EEVDF CPU model (sim/cpu.h) against the rules of kernel/sched/fair.c (6.18) that decide
// when a task that shares its CPU gets to run: slice protection, the tick, lag kept across sleeps,
// DELAY_DEQUEUE, and wake-ups at the end of a system call.
#include <gtest/gtest.h>

#include <functional>
#include <tuple>
#include <vector>

#include "sim/cpu.h"
#include "sim/kernel.h"

using namespace ppsim::sim;

namespace {

constexpr Picos us(double v) { return static_cast<Picos>(v * kPicosPerUs); }

// A sender that runs back-to-back jobs (each ends at a schedule point, like sendmsg returning)
// and a reader that runs one job per wake-up, then sleeps.
struct TwoTasks {
  Kernel k;
  Cpu cpu{0, 0};
  const int s = 0, r = 0;  // their addresses name the tasks
  Picos send_job, read_job;
  int sends_left;
  std::vector<Picos> reader_starts, send_ends;
  std::function<void()> after_send;  // runs at the end of each send job

  TwoTasks(EevdfConfig cfg, Picos send, Picos read, int sends) : send_job(send), read_job(read), sends_left(sends) {
    cpu.attach(k);
    cpu.set_eevdf(cfg);
    cpu.name_task(&s, "sender");
    cpu.name_task(&r, "reader");
  }
  void send() {
    if (sends_left-- <= 0) return;
    cpu.run_work(k.now(), send_job, &s, [this] {
      send_ends.push_back(k.now());
      if (after_send) after_send();
      send();
    });
  }
  void wake_reader() {
    cpu.run_work_at_start(k.now(), &r, [this] { reader_starts.push_back(k.now()); return read_job; }, nullptr);
  }
};

EevdfConfig config(Picos tick_phase = 0) {
  EevdfConfig c;
  c.base_slice = us(1400);
  c.tick = us(4000);
  c.lag_limit = c.base_slice + c.tick;
  c.tick_phase = tick_phase;
  return c;
}

}  // namespace

TEST(Eevdf, AWakeeWithNoLagWaitsForTheTickAfterTheRunningTaskUsedItsFirstHalfSlice) {
  // RUN_TO_PARITY: the running task keeps the CPU for the slice it was picked with, and under
  // preempt=none the used-up slice is only noticed by the tick.
  for (Picos phase : {us(0), us(1000)}) {
    TwoTasks t(config(phase), us(10), us(1), 1000);
    Process go(t.k, "go", [&] { t.send(); });
    Process wake(t.k, "wake", [&] { t.wake_reader(); });
    go.wake_at(0);
    wake.wake_at(us(100));
    t.k.run();
    ASSERT_FALSE(t.reader_starts.empty());
    // Ticks at phase + k x 4 ms; the first one after the sender's first deadline ends its turn. A
    // new task's first deadline is half a slice away (PLACE_DEADLINE_INITIAL): 0.7 ms.
    EXPECT_EQ(t.reader_starts[0], phase == 0 ? us(4000) : us(1000)) << "phase " << phase;
  }
}

TEST(Eevdf, AReaderBackFromSleepWithPositiveLagPreemptsAtTheSendersNextSyscallReturn) {
  // The reader waited 4 ms for its first turn, so it sleeps with a large positive lag; each later
  // wake-up places it left of the average, the sender becomes ineligible and loses its protection,
  // and the reader runs when the send that woke it returns.
  TwoTasks t(config(), us(6), us(2), 2000);
  bool reader_asleep = true;
  t.cpu.run_work_at_start(0, &t.r, [&] { t.reader_starts.push_back(t.k.now()); return us(2); },
                          [&] { reader_asleep = true; });
  Process go(t.k, "go", [&] { t.send(); });
  go.wake_at(0);
  t.after_send = [&] {
    if (reader_asleep) {
      reader_asleep = false;
      t.cpu.run_work_at_start(t.k.now(), &t.r, [&] { t.reader_starts.push_back(t.k.now()); return us(2); },
                              [&] { reader_asleep = true; });
    }
  };
  t.k.run();
  ASSERT_GT(t.reader_starts.size(), 100u);
  // After the first 4 ms, strict alternation: one send (6 us), one read (2 us), for as long as the
  // lag lasts (it shrinks by half of each read).
  int alternations = 0;
  for (std::size_t i = 1; i + 1 < t.reader_starts.size(); ++i)
    alternations += t.reader_starts[i + 1] - t.reader_starts[i] == us(8);
  EXPECT_GT(alternations, 100);
}

TEST(Eevdf, OnceTheReaderLagIsSpentTheSenderRunsUntilATick) {
  // A reader that costs as much as the sender spends its lag in the ping-pong; it then blocks
  // ineligible (DELAY_DEQUEUE), comes back at lag 0 and cannot preempt a protected sender: the
  // sender runs on until a tick finds its slice used up. Those long runs end on tick boundaries.
  TwoTasks t(config(us(300)), us(9), us(9), 4000);
  bool reader_asleep = true;
  std::function<void()> read = [&] {
    reader_asleep = false;
    t.cpu.run_work_at_start(t.k.now(), &t.r, [&] { t.reader_starts.push_back(t.k.now()); return us(9); },
                            [&] { reader_asleep = true; });
  };
  t.after_send = [&] {
    if (reader_asleep) read();
  };
  Process go(t.k, "go", [&] { t.send(); });
  go.wake_at(0);
  t.k.run();
  int long_waits = 0;
  for (std::size_t i = 1; i < t.reader_starts.size(); ++i) {
    const Picos gap = t.reader_starts[i] - t.reader_starts[i - 1];
    if (gap < us(1000)) continue;
    ++long_waits;
    // The sender's turn ended at its first job end at or after a tick (jobs are 9 us long).
    const Picos since_tick = (t.reader_starts[i] - us(300)) % us(4000);
    EXPECT_LT(since_tick, us(9)) << "reader start " << t.reader_starts[i];
  }
  EXPECT_GE(long_waits, 2);
  EXPECT_GT(t.reader_starts.size(), 500u);  // and ping-pong in between
}

TEST(Eevdf, AWakeUpAtTheVeryEndOfASyscallIsSeenBeforeTheTaskGoesOn) {
  // The softirq that wakes the reader runs at the end of sendmsg: a wake-up due at the same
  // instant as the job's end must make that end the switch point, not the end of the next job.
  TwoTasks t(config(), us(10), us(1), 1000);
  Process go(t.k, "go", [&] { t.send(); });
  Process wake(t.k, "wake", [&] { t.wake_reader(); });
  go.wake_at(0);
  wake.wake_at(us(50));
  t.k.run(us(5000));
  ASSERT_EQ(t.reader_starts.size(), 1u);
  EXPECT_EQ(t.reader_starts[0], us(4000));  // its first turn came with the tick; it slept with lag
  // Sends resume at 4001 us and end every 10 us: one ends at exactly 6001 us.
  wake.wake_at(us(6001));
  t.k.run();
  ASSERT_EQ(t.reader_starts.size(), 2u);
  EXPECT_EQ(t.reader_starts[1], us(6001));
}

TEST(Eevdf, ASleeperKeptByDelayDequeueComesBackAtTheOthersAverageAndWaits) {
  // The reader runs 4.5 ms in one go and blocks ineligible: DELAY_DEQUEUE keeps it queued. Once
  // the sender has caught up, a wake-up finds its lag positive; requeue_delayed_entity() places it
  // at the average of the *other* tasks (lag 0), so the sender, still inside its protected slice,
  // keeps the CPU until the tick that finds the slice used up.
  TwoTasks t(config(), us(10), us(4500), 2000);
  Process go(t.k, "go", [&] { t.send(); });
  Process wake(t.k, "wake", [&] { t.wake_reader(); });
  go.wake_at(0);
  wake.wake_at(us(1));
  t.k.run(us(9000));
  ASSERT_EQ(t.reader_starts.size(), 1u);
  EXPECT_EQ(t.reader_starts[0], us(4000));  // after the sender's first slice, at the tick
  wake.wake_at(us(9500));                   // the sender has run 1 ms since 8.5 ms
  t.k.run();
  ASSERT_EQ(t.reader_starts.size(), 2u);
  EXPECT_EQ(t.reader_starts[1], us(12000));  // not at 9.5 ms: the next tick after the slice
}

TEST(Eevdf, ASleeperWithPositiveLagPreemptsANewTaskAtOnce) {
  // A reader that ran before and sleeps with lag (set_sleeping_lag) preempts the sender at the
  // first send's end; with no lag it waits for the tick.
  for (Picos lag : {us(0), us(100)}) {
    TwoTasks t(config(), us(10), us(1), 1000);
    t.cpu.set_sleeping_lag(&t.r, lag);
    Process go(t.k, "go", [&] { t.send(); });
    Process wake(t.k, "wake", [&] { t.wake_reader(); });
    go.wake_at(0);
    wake.wake_at(us(5));
    t.k.run();
    ASSERT_FALSE(t.reader_starts.empty());
    EXPECT_EQ(t.reader_starts[0], lag > 0 ? us(10) : us(4000)) << "lag " << lag;
  }
}

TEST(Eevdf, PerTaskStatisticsCountTurnsWakeupsAndRuntime) {
  TwoTasks t(config(), us(10), us(1), 100);
  Process go(t.k, "go", [&] { t.send(); });
  go.wake_at(0);
  t.k.run();
  const TaskSchedStats* sender = nullptr;
  for (const auto* st : t.cpu.task_stats())
    if (st->name == "sender") sender = st;
  ASSERT_NE(sender, nullptr);
  EXPECT_EQ(sender->turns, 1u);  // alone on the CPU: one turn, 100 jobs of 10 us
  EXPECT_EQ(sender->runtime, us(1000));
  EXPECT_EQ(sender->blocked, 1u);
  EXPECT_EQ(sender->preempted, 0u);
}

namespace {

// A TCP-like writer on one CPU: each write's first segment wakes the reader 2 us in, the rest of
// the write takes 20 us more, and the write returns (a schedule point). The reader reads for 8 us
// and sleeps. Returns the two tasks' statistics after `writes` writes, and the CPU's busy time.
std::tuple<TaskSchedStats, TaskSchedStats, Picos> one_write_cycles(bool clock_skip, int writes) {
  EevdfConfig cfg = config(us(300));
  cfg.clock_skip = clock_skip;
  Kernel k;
  Cpu cpu{0, 0};
  cpu.attach(k);
  cpu.set_eevdf(cfg);
  const int s = 0, r = 0;
  cpu.name_task(&s, "sender");
  cpu.name_task(&r, "reader");
  bool reader_asleep = true;
  std::function<void()> write = [&] {
    if (writes-- <= 0) return;
    cpu.run_work(k.now(), us(2), &s, [&] {
      if (reader_asleep) {
        reader_asleep = false;
        cpu.run_work(k.now(), us(8), &r, [&] { reader_asleep = true; });
      }
      cpu.run_work(k.now(), us(20), &s, [&] { write(); });
    }, /*schedule_point=*/false);
  };
  Process go(k, "go", [&] { write(); });
  go.wake_at(0);
  k.run();
  TaskSchedStats sender, reader;
  for (const auto* st : cpu.task_stats()) (st->name == "sender" ? sender : reader) = *st;
  return {sender, reader, cpu.process_busy()};
}

}  // namespace

TEST(Eevdf, AClockSkipChargesTheWaitAfterAPreemptingWakeUpToTheTaskSwitchedIn) {
  // wakeup_preempt → rq_clock_skip_update: the run queue's clock stands still from the wake-up
  // that decided to preempt until the switch, so the 20 us the writer runs after waking the
  // reader are charged to the reader. The CPU time charged is the same; who is charged is not.
  const auto [s0, r0, busy0] = one_write_cycles(false, 3000);
  const auto [s1, r1, busy1] = one_write_cycles(true, 3000);
  EXPECT_EQ(s0.runtime + r0.runtime, busy0);
  EXPECT_EQ(s1.runtime + r1.runtime, busy1);
  EXPECT_GT(r1.runtime, r0.runtime + us(20) * 100);
  // The reader spends its lag 20 us faster per cycle, so the alternation breaks sooner and the
  // writer runs alone more: fewer reader turns for the same writes.
  EXPECT_LT(r1.turns, r0.turns);
  EXPECT_GT(r0.turns, 1000u);
}
