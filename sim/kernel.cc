#define SC_INCLUDE_DYNAMIC_PROCESSES
#include "sim/kernel.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <systemc>

namespace ppsim::sim {
namespace {

sc_core::sc_time to_sc(Picos t) { return sc_core::sc_time(static_cast<double>(t), sc_core::SC_PS); }
Picos from_sc(const sc_core::sc_time& t) { return static_cast<Picos>(t.value()); }  // resolution is 1 ps

Kernel* g_active = nullptr;

}  // namespace

struct Kernel::Impl {
  sc_core::sc_simcontext* ctx = nullptr;
  double wall_start = 0;
  std::uint64_t rss_start = 0;
};

Kernel::Kernel() : impl_(std::make_unique<Impl>()) {
  if (g_active) throw std::logic_error("ppsim: only one sim::Kernel may exist at a time");
  g_active = this;
  ::setenv("SYSTEMC_DISABLE_COPYRIGHT_MESSAGE", "1", 0);
  // A fresh context per run: SystemC allows one elaboration per context, and time restarts at 0.
  // Old contexts are intentionally not deleted (SystemC 2.3 does not support tearing one down
  // safely); each is a few KiB once its processes have ended.
  impl_->ctx = new sc_core::sc_simcontext();
  sc_core::sc_curr_simcontext = impl_->ctx;
  sc_core::sc_default_global_context = impl_->ctx;
  sc_core::sc_report_handler::set_actions(sc_core::SC_WARNING, sc_core::SC_DO_NOTHING);
}

Kernel::~Kernel() { g_active = nullptr; }

Picos Kernel::now() const { return from_sc(impl_->ctx->time_stamp()); }

void Kernel::run(Picos until) {
  stop_requested_ = false;
  if (until == kNever) {
    sc_core::sc_start();
  } else {
    const Picos d = until - now();
    if (d > 0) sc_core::sc_start(to_sc(d), sc_core::SC_EXIT_ON_STARVATION);
  }
}

void Kernel::stop() {
  stop_requested_ = true;
  sc_core::sc_pause();
}

namespace {

// Resident set size from /proc/self/statm (0 when unavailable: memory is then not limited).
std::uint64_t resident_bytes() {
  const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(buf, "%llu %llu", &size, &resident) != 2) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

double wall_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

void Kernel::set_limits(const RunLimits& limits) {
  limits_ = limits;
  limit_hit_.reset();
  impl_->wall_start = wall_seconds();
  impl_->rss_start = limits.max_memory_bytes ? resident_bytes() : 0;
  const bool periodic = limits.max_wall_s > 0 || limits.max_memory_bytes > 0;
  next_check_ = periodic ? dispatched_ + kLimitCheckEvents : UINT64_MAX;
  if (limits.max_events) next_check_ = std::min(next_check_, limits.max_events);
}

void Kernel::hit(const char* limit, const std::string& message) {
  if (!limit_hit_) limit_hit_ = LimitHit{limit, message};
  stop();
}

void Kernel::check_limits() { check_budgets(true); }

void Kernel::check_budgets(bool memory) {
  if (limit_hit_) return;
  if (limits_.max_wall_s > 0) {
    const double used = wall_seconds() - impl_->wall_start;
    if (used > limits_.max_wall_s) {
      char m[160];
      std::snprintf(m, sizeof m, "%.2f s of wall-clock time used, more than the limit of %g s (sim.max_wall_s)", used,
                    limits_.max_wall_s);
      hit("sim.max_wall_s", m);
      return;
    }
  }
  if (memory && limits_.max_memory_bytes > 0 && impl_->rss_start > 0) {
    const std::uint64_t rss = resident_bytes();
    const std::uint64_t grown = rss > impl_->rss_start ? rss - impl_->rss_start : 0;
    if (grown > limits_.max_memory_bytes) {
      char m[160];
      std::snprintf(m, sizeof m, "the run grew resident memory by %llu MiB, more than the limit of %llu MiB (sim.max_memory_mib)",
                    static_cast<unsigned long long>(grown >> 20),
                    static_cast<unsigned long long>(limits_.max_memory_bytes >> 20));
      hit("sim.max_memory_mib", m);
    }
  }
}

bool Kernel::periodic_check() {
  if (limits_.max_events && dispatched_ >= limits_.max_events) {
    hit("sim.max_events", std::to_string(dispatched_) + " events dispatched, the limit (sim.max_events)");
    return false;
  }
  // Memory is read every fourth time: /proc costs a few microseconds.
  check_budgets(++checks_ % 4 == 0);
  next_check_ = dispatched_ + kLimitCheckEvents;
  if (limits_.max_events) next_check_ = std::min(next_check_, limits_.max_events);
  return !limit_hit_;
}

struct Process::Impl {
  sc_core::sc_event event;
  explicit Impl(const std::string& name) : event((name + ".ev").c_str()) {}
};

Process::Process(Kernel& kernel, const std::string& name, std::function<void()> callback)
    : impl_(std::make_unique<Impl>(name)), kernel_(kernel), callback_(std::move(callback)) {
  sc_core::sc_spawn_options opts;
  opts.spawn_method();
  opts.set_sensitivity(&impl_->event);
  opts.dont_initialize();
  sc_core::sc_spawn([this] { fire(); }, sc_core::sc_gen_unique_name(name.c_str()), &opts);
}

Process::~Process() = default;

void Process::wake_at(Picos t) {
  if (t >= pending_) return;
  const Picos now = kernel_.now();
  if (t < now) t = now;
  if (pending_ != kNever) impl_->event.cancel();
  pending_ = t;
  if (t == now)
    impl_->event.notify(sc_core::SC_ZERO_TIME);  // next delta cycle: never re-entrant
  else
    impl_->event.notify(to_sc(t - now));
}

void Process::cancel() {
  if (pending_ == kNever) return;
  impl_->event.cancel();
  pending_ = kNever;
}

void Process::fire() {
  pending_ = kNever;
  if (!kernel_.admit()) return;
  callback_();
}

}  // namespace ppsim::sim

// libsystemc ships its own main() that calls sc_main(); ppsim's executables and the Python
// module have their own entry points, but the shared library still needs the symbol resolved.
int sc_main(int, char**) { return 0; }
