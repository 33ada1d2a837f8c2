#include "sim/timeline.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstring>

#include "sim/error.h"

namespace ppsim::sim {

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (const unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// Microseconds, the trace-event format's unit, printed exactly from picoseconds.
void put_us(std::FILE* f, Picos t) {
  std::fprintf(f, "%" PRId64 ".%06" PRId64, t / kPicosPerUs, t % kPicosPerUs);
}

}  // namespace

Timeline::~Timeline() {
  if (f_) std::fclose(f_);
}

void Timeline::open(const std::string& path, std::size_t max_events) {
  f_ = std::fopen(path.c_str(), "w");
  if (!f_) throw ScenarioError(path, "", std::string("cannot open the timeline file for writing: ") + std::strerror(errno));
  path_ = path;
  max_events_ = max_events;
}

int Timeline::group(const std::string& name) {
  for (std::size_t i = 0; i < groups_.size(); ++i)
    if (groups_[i] == name) return static_cast<int>(i);
  groups_.push_back(name);
  return static_cast<int>(groups_.size()) - 1;
}

int Timeline::slice_track(const std::string& g, const std::string& name, int order) {
  tracks_.push_back(Track{group(g), name, order, {}, {}});
  return static_cast<int>(tracks_.size()) - 1;
}

int Timeline::counter(const std::string& g, const std::string& name, const std::string& unit) {
  counters_.push_back(Counter{group(g), name + " (" + unit + ")"});
  return static_cast<int>(counters_.size()) - 1;
}

bool Timeline::room() { return events_.size() < max_events_; }

void Timeline::slice(int track, const char* name, Picos start, Picos dur) {
  if (!f_ || truncated_at_ >= 0 || dur <= 0) return;
  if (!room()) {
    truncated_at_ = start;
    return;
  }
  Track& tr = tracks_[static_cast<std::size_t>(track)];
  // The first lane free at `start`: work that the model books overlapping other work on the same
  // track (two softirq jobs queued at once) is shown beside it, not nested inside it.
  std::size_t lane = 0;
  while (lane < tr.lane_end.size() && tr.lane_end[lane] > start) ++lane;
  if (lane == tr.lane_end.size()) {
    tr.lane_end.push_back(0);
    tr.lane_tid.push_back(static_cast<int>(tids_.size()) + 1);
    tids_.push_back(Lane{track, static_cast<int>(lane)});
  }
  tr.lane_end[lane] = start + dur;
  events_.push_back(Event{start, dur, 0.0, name, tr.lane_tid[lane]});
}

void Timeline::value(int c, Picos t, double v) {
  if (!f_ || truncated_at_ >= 0 || !std::isfinite(v)) return;
  if (!room()) {
    truncated_at_ = t;
    return;
  }
  events_.push_back(Event{t, 0, v, nullptr, -1 - c});
}

void Timeline::close(Picos end) {
  if (!f_) return;
  std::stable_sort(events_.begin(), events_.end(), [](const Event& a, const Event& b) { return a.t < b.t; });
  std::FILE* f = f_;
  std::fprintf(f, "{\"displayTimeUnit\":\"ns\",\n\"metadata\":{\"producer\":\"ppsim\",\"sim_end_us\":");
  put_us(f, end);
  std::fprintf(f, ",\"max_events\":%zu,\"events\":%zu,\"truncated_at_us\":", max_events_, events_.size());
  if (truncated_at_ >= 0) {
    put_us(f, truncated_at_);
  } else {
    std::fputs("null", f);
  }
  std::fputs("},\n\"traceEvents\":[\n", f);
  bool first = true;
  auto sep = [&] {
    if (!first) std::fputs(",\n", f);
    first = false;
  };
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    sep();
    std::fprintf(f, "{\"ph\":\"M\",\"pid\":%zu,\"tid\":0,\"name\":\"process_name\",\"args\":{\"name\":%s}}", g + 1,
                 quoted(groups_[g]).c_str());
    sep();
    std::fprintf(f, "{\"ph\":\"M\",\"pid\":%zu,\"tid\":0,\"name\":\"process_sort_index\",\"args\":{\"sort_index\":%zu}}",
                 g + 1, g);
  }
  for (std::size_t i = 0; i < tids_.size(); ++i) {
    const Track& tr = tracks_[static_cast<std::size_t>(tids_[i].track)];
    const std::string name = tids_[i].lane == 0 ? tr.name : tr.name + " (overlap " + std::to_string(tids_[i].lane) + ")";
    sep();
    std::fprintf(f, "{\"ph\":\"M\",\"pid\":%d,\"tid\":%zu,\"name\":\"thread_name\",\"args\":{\"name\":%s}}", tr.group + 1,
                 i + 1, quoted(name).c_str());
    sep();
    std::fprintf(f, "{\"ph\":\"M\",\"pid\":%d,\"tid\":%zu,\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":%d}}",
                 tr.group + 1, i + 1, tr.order * 16 + tids_[i].lane);
  }
  std::vector<std::string> cnames;
  for (const auto& c : counters_) cnames.push_back(quoted(c.name));
  for (const Event& e : events_) {
    sep();
    if (e.tid > 0) {
      const Track& tr = tracks_[static_cast<std::size_t>(tids_[static_cast<std::size_t>(e.tid - 1)].track)];
      std::fprintf(f, "{\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":", tr.group + 1, e.tid);
      put_us(f, e.t);
      std::fputs(",\"dur\":", f);
      put_us(f, e.dur);
      std::fprintf(f, ",\"name\":%s}", quoted(e.name).c_str());
    } else {
      const std::size_t c = static_cast<std::size_t>(-1 - e.tid);
      std::fprintf(f, "{\"ph\":\"C\",\"pid\":%d,\"tid\":0,\"ts\":", counters_[c].group + 1);
      put_us(f, e.t);
      std::fprintf(f, ",\"name\":%s,\"args\":{\"value\":%.10g}}", cnames[c].c_str(), e.v);
    }
  }
  std::fputs("\n]}\n", f);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  f_ = nullptr;
  events_.clear();
  if (failed) throw ScenarioError(path_, "", "writing the timeline failed (disk full?)");
}

}  // namespace ppsim::sim
