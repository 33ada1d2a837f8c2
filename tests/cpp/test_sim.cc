#include <gtest/gtest.h>

#include <chrono>

#include "sim/error.h"
#include "sim/kernel.h"
#include "sim/params.h"
#include "sim/rng.h"
#include "sim/stats.h"
#include "sim/topology.h"

using namespace ppsim::sim;

TEST(Kernel, ProcessesFireInTimeOrderAndTimeRestartsPerKernel) {
  for (int round = 0; round < 2; ++round) {
    Kernel k;
    std::vector<std::pair<char, Picos>> seen;
    Process a(k, "a", [&] { seen.push_back({'a', k.now()}); });
    Process b(k, "b", [&] { seen.push_back({'b', k.now()}); });
    a.wake_at(300);
    b.wake_at(100);
    a.wake_at(500);  // later request is ignored: earliest wins
    k.run();
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0], std::make_pair('b', Picos{100}));
    EXPECT_EQ(seen[1], std::make_pair('a', Picos{300}));
    EXPECT_EQ(k.dispatched(), 2u);
  }
}

TEST(Kernel, RunUntilStopsAtTheLimitAndResumes) {
  Kernel k;
  int n = 0;
  Process p(k, "tick", [&] { ++n; p.wake_after(1000); });
  p.wake_at(0);
  k.run(10'500);
  EXPECT_EQ(n, 11);  // 0, 1000, …, 10000
  k.run(20'500);
  EXPECT_EQ(n, 21);
}

TEST(Kernel, TimerQueueDeliversEqualTimesInInsertionOrder) {
  Kernel k;
  std::vector<int> got;
  TimerQueue<int> q(k, "q", [&](int& v) { got.push_back(v); });
  q.schedule_at(50, 1);
  q.schedule_at(20, 2);
  q.schedule_at(50, 3);
  q.schedule_at(20, 4);
  k.run();
  EXPECT_EQ(got, (std::vector<int>{2, 4, 1, 3}));
}

namespace {
ParamRegistry registry() {
  ParamRegistry r;
  r.add_int("pool.size_pages", "pages", 1024, "ring size", 1, 16384);
  r.add_float("pool.cost_ns", "ns", 5.4, "fast path cost", 0);
  r.add_bool("pool.dma_map", true, "map pages");
  r.add_enum("traffic.pattern", "constant", {"constant", "poisson"}, "arrivals");
  return r;
}
std::string error_of(const ParamRegistry& r, const json& j) {
  try {
    r.resolve(j, "s.json");
  } catch (const ScenarioError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Params, DefaultsUnitsAndConversion) {
  auto r = registry();
  auto p = r.resolve(json::parse(R"({"pool": {"cost_ns": "2 us"}})"), "s.json");
  EXPECT_EQ(p.get_int("pool.size_pages"), 1024);
  EXPECT_DOUBLE_EQ(p.get_double("pool.cost_ns"), 2000.0);
  EXPECT_TRUE(p.was_set("pool.cost_ns"));
  EXPECT_FALSE(p.was_set("pool.size_pages"));
  EXPECT_EQ(p.to_json()["pool"]["size_pages"], 1024);
}

TEST(Params, ErrorsNameFilePathAndExpectation) {
  auto r = registry();
  EXPECT_EQ(error_of(r, json::parse(R"({"pool": {"size_pgaes": 3}})")),
            "s.json: at $.pool.size_pgaes: unknown key \"size_pgaes\" (did you mean \"size_pages\"?)");
  EXPECT_EQ(error_of(r, json::parse(R"({"pool": {"size_pages": -3}})")),
            "s.json: at $.pool.size_pages: expected an integer in pages from 1 to 16384, got -3");
  EXPECT_EQ(error_of(r, json::parse(R"({"pool": {"size_pages": 2.5}})")),
            "s.json: at $.pool.size_pages: expected an integer in pages from 1 to 16384, got 2.5");
  EXPECT_NE(error_of(r, json::parse(R"({"pool": {"cost_ns": "3 pages"}})")).find("wrong unit \"pages\": expected time"),
            std::string::npos);
  EXPECT_NE(error_of(r, json::parse(R"({"pool": 3})")).find("at $.pool: expected an object"), std::string::npos);
  EXPECT_NE(error_of(r, json::parse(R"({"traffic": {"pattern": "bursty"}})")).find("one of \"constant\", \"poisson\""),
            std::string::npos);
  EXPECT_NE(error_of(r, json::parse(R"({"pool": {"dma_map": 1}})")).find("expected true or false"), std::string::npos);
}

TEST(Rng, SameSeedSameStreamDifferentNamesDiffer) {
  Rng a(42), b(42);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(a.next(), b.next());
  Rng root(7);
  auto s1 = root.stream("traffic"), s2 = root.stream("traffic"), s3 = root.stream("consumer");
  EXPECT_EQ(s1.next(), s2.next());
  EXPECT_NE(s1.next(), s3.next());
  double sum = 0;
  for (int i = 0; i < 100000; ++i) sum += s3.exponential(10.0);
  EXPECT_NEAR(sum / 100000, 10.0, 0.2);
}

TEST(Stats, CountersReadersFormulasAndJson) {
  Stats s;
  auto& hits = s.counter("pp0.hits", "events", "hits");
  std::int64_t owned = 3;
  s.reader("pp0.owned", "pages", "model-owned", [&] { return owned; });
  s.formula("pp0.ratio", "ratio", "hits per owned", [&] { return ratio(s.value("pp0.hits"), s.value("pp0.owned")); });
  hits += 6;
  EXPECT_DOUBLE_EQ(s.value("pp0.ratio"), 2.0);
  auto j = s.to_json();
  EXPECT_EQ(j["stats"]["pp0.hits"]["value"], 6);
  EXPECT_EQ(j["stats"]["pp0.owned"]["unit"], "pages");
  EXPECT_THROW(s.counter("pp0.hits", "events", "again"), std::logic_error);
}

TEST(Topology, PathFollowsOnlyTheRequestedEdgeKind) {
  Topology t;
  auto rc = t.add(NodeKind::kRootComplex, "rc");
  auto sw = t.add(NodeKind::kPcieSwitch, "sw");
  auto vf0 = t.add(NodeKind::kEndpoint, "vf0");
  auto vf1 = t.add(NodeKind::kEndpoint, "vf1");
  t.connect(rc, sw, EdgeKind::kPcieLink, 0);
  t.connect(sw, vf0, EdgeKind::kPcieLink, 1);
  t.connect(sw, vf1, EdgeKind::kPcieLink, 2);
  t.connect(vf0, vf1, EdgeKind::kOther);
  auto p = t.path(vf0, rc, EdgeKind::kPcieLink);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(t.links_on(p), (std::vector<int>{1, 0}));
  EXPECT_EQ(t.path(vf0, vf1, EdgeKind::kPcieLink).size(), 3u);
}

#include "sim/cpu.h"

TEST(Cpu, TasksShareACpuInSlices) {
  Kernel k;
  Cpu cpu(0, 0);
  cpu.attach(k);
  cpu.set_slice(1000 * kPicosPerNs);  // 1 us slices, no tick rounding
  std::vector<std::pair<char, Picos>> done;
  int a_left = 30, b_left = 30;
  std::function<void()> run_a, run_b;
  const int ta = 0, tb = 0;  // distinct addresses name the two tasks
  run_a = [&] {
    if (a_left-- > 0) cpu.run_work(k.now(), 100 * kPicosPerNs, &ta, [&] { done.push_back({'a', k.now()}); run_a(); });
  };
  run_b = [&] {
    if (b_left-- > 0) cpu.run_work(k.now(), 100 * kPicosPerNs, &tb, [&] { done.push_back({'b', k.now()}); run_b(); });
  };
  Process start(k, "start", [&] { run_a(); run_b(); });
  start.wake_at(0);
  k.run();
  ASSERT_EQ(done.size(), 60u);
  // A runs its first slice (10 jobs of 100 ns), then B gets the CPU: they alternate per slice.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(done[i].first, 'a') << i;
  EXPECT_EQ(done[10].first, 'b');
  int switches = 0;
  for (std::size_t i = 1; i < done.size(); ++i) switches += done[i].first != done[i - 1].first;
  EXPECT_GE(switches, 5);
  EXPECT_EQ(done.back().second, 6000 * kPicosPerNs);  // 60 jobs back to back, no idle time
  EXPECT_EQ(cpu.process_busy(), 6000 * kPicosPerNs);
}

TEST(Cpu, SoftirqPushesARunningProcessJobLater) {
  // Softirq work booked in the middle of a process job delays that job's end by its length.
  const int ta = 0;
  Kernel k2;
  Cpu c2(0, 0);
  c2.attach(k2);
  Picos end = 0;
  Process p(k2, "p", [&] {
    c2.run_work(k2.now(), 1000, &ta, [&] { end = k2.now(); });
    c2.run_softirq(c2.softirq_start(k2.now() + 200), 300);
  });
  p.wake_at(0);
  k2.run();
  EXPECT_EQ(end, 1300);
}

#include "sim/json_reader.h"

namespace {
std::string parse_error_of(const std::string& text) {
  try {
    parse_json_text(text, "s.json");
  } catch (const ScenarioError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(JsonReader, AKeyGivenTwiceIsAnErrorNamingItsPath) {
  EXPECT_EQ(parse_error_of(R"({"sim": {"duration_us": 100, "duration_us": 200}})"),
            "s.json: at $.sim.duration_us: duplicate key \"duration_us\": given twice in one object (JSON objects must "
            "not repeat a key)");
  EXPECT_EQ(parse_error_of(R"({"a": [1, {"b": 1}, {"c": [0, {"d": 1, "d": 1}]}]})").substr(0, 28),
            "s.json: at $.a[2].c[1].d: du");
  EXPECT_EQ(parse_error_of(R"({"a": {"x": 1}, "b": {"x": 1}})"), "") << "the same key in two objects is fine";
  EXPECT_EQ(parse_json_text(R"({"a": [1, {"b": null}], "c": "d"})", "s.json"),
            json::parse(R"({"a": [1, {"b": null}], "c": "d"})"));
}

TEST(JsonReader, MalformedTextNamesLineAndColumn) {
  EXPECT_EQ(parse_error_of("{\n  \"a\": 1,\n}"),
            "s.json: malformed JSON at line 3, column 1: syntax error while parsing object key - unexpected '}'; "
            "expected string literal");
  EXPECT_NE(parse_error_of(R"({"a": 1e999})").find("line 1, column 7: number overflow parsing '1e999' (expected a finite number)"),
            std::string::npos);
  EXPECT_NE(parse_error_of(R"({"a": 1} // comment)").find("malformed JSON at line 1"), std::string::npos);
}

TEST(JsonReader, TooDeepNestingIsAnErrorNotAStackOverflow) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(parse_error_of(deep), "s.json: at $" + [] {
    std::string p;
    for (int i = 0; i < kMaxJsonDepth; ++i) p += "[0]";
    return p;
  }() + ": nested deeper than 64 levels");
  EXPECT_EQ(parse_error_of(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']')), "");
}

TEST(JsonReader, MessagesStayOneLineOfUtf8WhateverTheInput) {
  const std::string e = parse_error_of("{\"a\xff\n\": 1, \"a\xff\n\": 2}");
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  const std::string bin = parse_error_of(std::string("\x00\xff\xfe\x01garbage", 11));
  EXPECT_NE(bin.find("malformed JSON at line 1, column 1"), std::string::npos) << bin;
  for (unsigned char c : bin) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << bin;
  EXPECT_EQ(printable("caf\xc3\xa9\t\xed\xa0\x80"), "caf\xc3\xa9\\x09\\xed\\xa0\\x80") << "surrogates are not UTF-8";
}

TEST(Params, IntegersAreExactUpTo2To63Minus1) {
  ParamRegistry r;
  r.add_int("sim.seed", "", 1, "seed", 0, 9223372036854775807.0);
  EXPECT_EQ(r.resolve(json::parse(R"({"sim": {"seed": 9223372036854775807}})"), "s.json").get_int("sim.seed"),
            INT64_MAX);
  EXPECT_EQ(r.resolve(json::parse(R"({"sim": {"seed": 9007199254740993}})"), "s.json").get_int("sim.seed"),
            9007199254740993) << "2^53+1 does not survive a double";
  const std::string want = "s.json: at $.sim.seed: expected an integer from 0 to 9223372036854775807 (2^63-1), got ";
  EXPECT_EQ(error_of(r, json::parse(R"({"sim": {"seed": 9223372036854775808}})")), want + "9223372036854775808");
  EXPECT_EQ(error_of(r, json::parse(R"({"sim": {"seed": 18446744073709551616}})")), want + "1.8446744073709552e+19");
  EXPECT_EQ(error_of(r, json::parse(R"({"sim": {"seed": -1}})")), want + "-1");
  EXPECT_EQ(error_of(r, json::parse(R"({"sim": {"seed": 9.3e18}})")), want + "9.3e+18");
}

TEST(Kernel, AnEventLimitStopsTheRunAndSaysSo) {
  Kernel k;
  int n = 0;
  Process p(k, "tick", [&] { ++n; p.wake_after(1000); });
  RunLimits lim;
  lim.max_events = 10000;
  k.set_limits(lim);
  p.wake_at(0);
  k.run(kPicosPerSec);
  EXPECT_EQ(n, 10000) << "exactly max_events callbacks run";
  EXPECT_EQ(k.dispatched(), 10000u) << "the refused event is not counted";
  ASSERT_TRUE(k.limit_hit());
  EXPECT_EQ(k.limit_hit()->limit, "sim.max_events");
  EXPECT_LT(k.now(), Picos{10001} * 1000) << "simulated time stopped there too";
}

TEST(Kernel, AWallClockLimitIsCheckedEvery4096Events) {
  Kernel k;
  std::uint64_t n = 0;
  Process p(k, "spin", [&] {
    ++n;
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
    while (std::chrono::steady_clock::now() < until) {
    }
    p.wake_after(1);
  });
  RunLimits lim;
  lim.max_wall_s = 0.05;
  k.set_limits(lim);
  p.wake_at(0);
  k.run();
  ASSERT_TRUE(k.limit_hit());
  EXPECT_EQ(k.limit_hit()->limit, "sim.max_wall_s");
  EXPECT_NE(k.limit_hit()->message.find("more than the limit of 0.05 s"), std::string::npos) << k.limit_hit()->message;
  EXPECT_EQ(n % kLimitCheckEvents, 0u);
  EXPECT_LE(n, 2 * kLimitCheckEvents) << "2500 events are 0.05 s: the first check past it stops";
}

TEST(Kernel, WithoutLimitsNothingIsCheckedAndNothingStops) {
  Kernel k;
  int n = 0;
  Process p(k, "tick", [&] {
    if (++n < 20000) p.wake_after(1);
  });
  k.set_limits({});
  p.wake_at(0);
  k.run();
  EXPECT_EQ(n, 20000);
  EXPECT_FALSE(k.limit_hit());
}

TEST(Params, AValueThatIsNotUtf8GetsAnErrorNotAnException) {
  // Found by fuzz_units: quoting the bad value in the message called json::dump(), which throws
  // type_error 316 on invalid UTF-8 (possible when the JSON comes from C++, not from text).
  auto r = registry();
  json j;
  j["pool"]["cost_ns"] = std::string("3 \xbe\xef", 4);
  const std::string e = error_of(r, j);
  EXPECT_NE(e.find("s.json: at $.pool.cost_ns: wrong unit"), std::string::npos) << e;
  j["pool"]["cost_ns"] = json::array({std::string("\xff")});
  EXPECT_NE(error_of(r, j).find("expected a number in ns"), std::string::npos);
  EXPECT_EQ(json_brief(json(std::string(100, 'x'))).size(), 40u);
}

#include <cstdio>
#include <fstream>
#include <sstream>

#include "sim/timeline.h"

namespace {
std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
}  // namespace

TEST(Timeline, OverlappingSlicesGoToAnotherLaneAndNamesAreEscaped) {
  const std::string path = ::testing::TempDir() + "ppsim_timeline_test.json";
  {
    Timeline tl;
    tl.open(path);
    const int t = tl.slice_track("CPUs", "cpu0 \"softirq\"", 0);
    const int c = tl.counter("page_pool", "pool", "pages");
    tl.slice(t, "a", 1'000'000, 2'000'000);  // [1, 3) us
    tl.slice(t, "b", 2'000'000, 2'000'000);  // overlaps a: second lane
    tl.slice(t, "c", 3'000'000, 1);          // after a: back on the first lane
    tl.slice(t, "zero", 5'000'000, 0);       // nothing to draw
    tl.value(c, 1'500'000, 7);
    tl.close(10'000'000);
  }
  const std::string s = read_file(path);
  EXPECT_NE(s.find(R"j("name":"thread_name","args":{"name":"cpu0 \"softirq\""})j"), std::string::npos) << s;
  EXPECT_NE(s.find(R"j("args":{"name":"cpu0 \"softirq\" (overlap 1)"})j"), std::string::npos) << s;
  EXPECT_NE(s.find(R"j({"ph":"X","pid":1,"tid":1,"ts":1.000000,"dur":2.000000,"name":"a"})j"), std::string::npos) << s;
  EXPECT_NE(s.find(R"j({"ph":"X","pid":1,"tid":2,"ts":2.000000,"dur":2.000000,"name":"b"})j"), std::string::npos) << s;
  EXPECT_NE(s.find(R"j({"ph":"X","pid":1,"tid":1,"ts":3.000000,"dur":0.000001,"name":"c"})j"), std::string::npos) << s;
  EXPECT_EQ(s.find("zero"), std::string::npos);
  EXPECT_NE(s.find(R"j("name":"pool (pages)","args":{"value":7})j"), std::string::npos) << s;
  EXPECT_NE(s.find(R"j("truncated_at_us":null)j"), std::string::npos);
  std::remove(path.c_str());
}

TEST(Timeline, StopsAtItsBudgetAndRecordsWhere) {
  const std::string path = ::testing::TempDir() + "ppsim_timeline_budget.json";
  {
    Timeline tl;
    tl.open(path, 2);
    const int c = tl.counter("g", "n", "u");
    for (int i = 0; i < 5; ++i) tl.value(c, i * 1'000'000, i);
    EXPECT_EQ(tl.events(), 2u);
    tl.close(5'000'000);
  }
  const std::string s = read_file(path);
  EXPECT_NE(s.find(R"j("events":2,"truncated_at_us":2.000000)j"), std::string::npos) << s;
  std::remove(path.c_str());
}

TEST(Timeline, AnUnwritablePathIsAScenarioErrorNamingIt) {
  Timeline tl;
  try {
    tl.open("/nonexistent-ppsim-dir/t.json");
    FAIL() << "no error";
  } catch (const ScenarioError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-ppsim-dir/t.json"), std::string::npos) << e.what();
  }
}
