// A run's timeline as Chrome trace-event JSON (the format ui.perfetto.dev and chrome://tracing
// open): slices ("ph":"X") on named tracks and counters ("ph":"C"), grouped into processes.
//
// Models add slices and counter values as they go; nothing is written until close(), which sorts
// by time (ties in the order they were added) so a run and seed give the same bytes. Slices on one
// track must nest or follow each other: a slice that starts inside the previous one on its track
// and ends after it goes on an extra lane of that track ("TRACK (overlap)"), so the viewer shows
// it rather than mis-nesting it. Recording stops after max_events (the file says so in its
// metadata) so that a long run cannot fill the memory.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "sim/time.h"

namespace ppsim::sim {

class Timeline {
 public:
  static constexpr std::size_t kDefaultMaxEvents = 2'000'000;

  Timeline() = default;
  Timeline(const Timeline&) = delete;
  Timeline& operator=(const Timeline&) = delete;
  ~Timeline();

  // Opens `path` for writing; throws ScenarioError naming the path when it cannot.
  void open(const std::string& path, std::size_t max_events = kDefaultMaxEvents);
  bool enabled() const { return f_ != nullptr; }

  // A track for slices, inside a group ("CPUs", "NIC", ...); returns its id. `order` sorts the
  // tracks of a group in the viewer.
  int slice_track(const std::string& group, const std::string& name, int order);
  // A counter (one value over time), inside a group; returns its id.
  int counter(const std::string& group, const std::string& name, const std::string& unit);

  // A slice [start, start + dur) on `track`. `name` must outlive close() (a literal or a stable
  // string: task and queue names are).
  void slice(int track, const char* name, Picos start, Picos dur);
  void value(int counter, Picos t, double v);

  // Sorts and writes everything, then closes the file. `end` is the run's simulated end.
  void close(Picos end);
  std::size_t events() const { return events_.size(); }

 private:
  struct Track {
    int group;
    std::string name;
    int order;
    std::vector<Picos> lane_end;   // the end of the last slice on each lane
    std::vector<int> lane_tid;     // lane i's thread id in the output
  };
  struct Counter {
    int group;
    std::string name;
  };
  struct Event {
    Picos t;
    Picos dur;     // slices
    double v;      // counters
    const char* name;
    int tid;       // slices: the lane's thread id; counters: -1 - counter index
  };
  int group(const std::string& name);
  bool room();

  std::FILE* f_ = nullptr;
  std::string path_;
  std::size_t max_events_ = kDefaultMaxEvents;
  Picos truncated_at_ = -1;
  std::vector<std::string> groups_;
  std::vector<Track> tracks_;
  std::vector<Counter> counters_;
  struct Lane {
    int track;
    int lane;
  };
  std::vector<Lane> tids_;  // thread id → (track, lane)
  std::vector<Event> events_;
};

}  // namespace ppsim::sim
