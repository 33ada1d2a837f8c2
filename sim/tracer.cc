#include "sim/tracer.h"

#include <algorithm>
#include <cinttypes>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "sim/error.h"

namespace ppsim::sim {

TraceWriter::~TraceWriter() { close(); }

void TraceWriter::open(const std::string& path, int ncpus) {
  close();
  f_ = std::fopen(path.c_str(), "w");
  if (!f_) throw ScenarioError(path, "", std::string("cannot open the trace file for writing: ") + std::strerror(errno));
  ncpus_ = ncpus;
  lines_.clear();
}

void TraceWriter::close() {
  if (!f_) return;
  std::stable_sort(lines_.begin(), lines_.end(),
                   [](const Line& a, const Line& b) { return a.t != b.t ? a.t < b.t : a.seq < b.seq; });
  std::fprintf(f_,
               "# tracer: nop\n#\n# entries-in-buffer/entries-written: %zu/%zu   #P:%d\n#\n"
               "#                                _-----=> irqs-off/BH-disabled\n"
               "#                               / _----=> need-resched\n"
               "#                              | / _---=> hardirq/softirq\n"
               "#                              || / _--=> preempt-depth\n"
               "#                              ||| / _-=> migrate-disable\n"
               "#                              |||| /     delay\n"
               "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n"
               "#              | |         |   |||||     |         |\n",
               lines_.size(), lines_.size(), ncpus_);
  for (const auto& l : lines_) std::fputs(l.text.c_str(), f_);
  std::fclose(f_);
  f_ = nullptr;
  lines_.clear();
}

void TraceWriter::line(const TraceCtx& ctx, Picos t, const char* event, const std::string& fields) {
  if (!f_) return;
  const std::int64_t us = t / kPicosPerUs;
  // As the kernel prints them: process context ".....", softirq "..s1.", BH disabled "b....".
  char flags[6] = {ctx.bh_disabled ? 'b' : '.', '.', ctx.softirq ? 's' : '.', ctx.softirq ? '1' : '.', '.', 0};
  char head[64];
  std::snprintf(head, sizeof head, "%s-%d", ctx.task, ctx.pid);
  char buf[512];
  std::snprintf(buf, sizeof buf, "%22s [%03d] %s %5" PRId64 ".%06" PRId64 ": %s: ", head, ctx.cpu, flags,
                us / 1000000, us % 1000000, event);
  lines_.push_back({t, lines_.size(), std::string(buf) + fields + "\n"});
}

}  // namespace ppsim::sim
