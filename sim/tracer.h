// Writes what a model does as tracefs text, the format `cat /sys/kernel/tracing/trace` prints:
//   TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: FIELDS
// so ppsim's own traces go through the same parser (python/ppsim/trace.py) as kernel captures.
// Models may emit a little out of time order (a NAPI poll stamps its events over the poll's
// duration), so lines are kept and written sorted by time at close(), as ftrace merges its
// per-CPU buffers.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "sim/time.h"

namespace ppsim::sim {

// Execution context of a traced event, as ftrace's flag columns show it.
struct TraceCtx {
  const char* task = "ppsim";
  int pid = 0;
  int cpu = 0;
  bool softirq = false;      // 's' in the hardirq/softirq column
  bool bh_disabled = false;  // 'b' in the irqs-off/BH column (process context with BH off)
};

class TraceWriter {
 public:
  TraceWriter() = default;
  ~TraceWriter();
  // Opens `path` for writing (the header is written at close()); throws ScenarioError naming the
  // path and the reason when it cannot.
  void open(const std::string& path, int ncpus);
  bool enabled() const { return f_ != nullptr; }
  void line(const TraceCtx& ctx, Picos t, const char* event, const std::string& fields);
  // Sorts and writes the buffered lines, then closes the file.
  void close();
  std::size_t lines() const { return lines_.size(); }

 private:
  struct Line {
    Picos t;
    std::uint64_t seq;
    std::string text;
  };
  std::FILE* f_ = nullptr;
  std::vector<Line> lines_;
  int ncpus_ = 1;
};

}  // namespace ppsim::sim
