#define SC_INCLUDE_DYNAMIC_PROCESSES
#include "sim/kernel.h"

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
  kernel_.count_dispatch();
  if (kernel_.stopped()) return;
  callback_();
}

}  // namespace ppsim::sim

// libsystemc ships its own main() that calls sc_main(); ppsim's executables and the Python
// module have their own entry points, but the shared library still needs the symbol resolved.
int sc_main(int, char**) { return 0; }
