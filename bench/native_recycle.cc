// ppsim_native_recycle: real threads and real atomics reproducing two page-recycling patterns,
// and the cacheline model's prediction of the same patterns (docs/coherence.md, "Validation").
//   direct     one CPU: pop a page from a LIFO cache, read its refcount line (page_pool's put
//              fast path), push it back (page_pool_recycle_direct)
//   cross_cpu  CPU A pops pages (refilling 64 at a time from a ptr_ring-like ring) and hands them
//              to CPU B over a lockless SPSC ring; B reads the refcount line and produces the page
//              into the ptr_ring under its producer lock
// With --profile, the model (PagePool + CoherenceObserver on that machine profile) predicts both
// and the tool prints native, model and the error. --json prints one JSON object instead.
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "models/page_pool/coherence_observer.h"
#include "sim/cost/cpu_topology.h"
#include "sim/error.h"
#include "tools/calibrate/recycle_kernels.h"

using json = nlohmann::json;
using namespace ppsim::calib;

namespace {

double now_ns() {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void pin(int os_cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(os_cpu, &s);
  pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

// A waits for a whole refill batch rather than hammering the slot B is writing: a kernel pool
// sized for its in-flight pages finds 64 ready; polling would add transfers no kernel path has.
void backoff(int pauses = 64) {
  for (int i = 0; i < pauses; ++i) cpu_relax();
}

// ns/packet is the median over chunks of kChunk packets: on a shared machine a pinned thread is
// preempted now and then, and that chunk becomes an outlier instead of shifting a mean.
constexpr long kChunk = 4096;
// Pauses between two looks at the ring when A waits for a refill batch. Each look takes a line B
// is filling, and B pays a full transfer to get it back: polling rarely keeps that artefact
// (which no kernel path has: the pool would allocate instead) well below a nanosecond per packet.
int kRefillBackoff = 2048;
double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

double native_direct(int cpu, long packets) {
  pin(cpu);
  std::vector<FakePage> pages(kCacheSize);
  LifoCache cache;
  for (auto& p : pages) cache.push(&p);
  long bad = 0;
  std::vector<double> chunks;
  double t0 = now_ns();
  for (long i = 0; i < packets; ++i) {
    FakePage* p = cache.pop();
    if (!page_put_check(p)) ++bad;
    cache.push(p);
    if ((i + 1) % kChunk == 0) {
      const double t1 = now_ns();
      chunks.push_back((t1 - t0) / kChunk);
      t0 = t1;
    }
  }
  if (bad) std::fprintf(stderr, "unexpected refcount\n");
  return median_of(chunks);
}

double native_cross(int cpu_a, int cpu_b, long packets, int npages) {
  std::vector<FakePage> pages(npages);
  PtrRingLike ring(1024);
  HandoffRing handoff(256);
  LifoCache cache;  // A's
  for (auto& p : pages) ring.produce(&p);
  const long warm = packets / 10, total = warm + packets;
  std::atomic<int> ready{0};
  std::vector<double> chunks;
  std::thread b([&] {
    pin(cpu_b);
    ready.fetch_add(1);
    while (ready.load() < 2) cpu_relax();
    double t0 = now_ns();
    for (long i = 0; i < total; ++i) {
      FakePage* p;
      while (!(p = handoff.dequeue())) backoff();
      if (!page_put_check(p)) std::abort();
      while (!ring.produce(p)) cpu_relax();  // sized so that it never fills
      if ((i + 1) % kChunk == 0) {
        const double t1 = now_ns();
        if (i >= warm) chunks.push_back((t1 - t0) / kChunk);
        t0 = t1;
      }
    }
  });
  pin(cpu_a);
  ready.fetch_add(1);
  while (ready.load() < 2) cpu_relax();
  for (long i = 0; i < total; ++i) {
    FakePage* p = cache.pop();
    if (!p) {
      // page_pool_refill_alloc_cache: up to 64 from the ring, reading each page's node.
      while (!ring.ready(kRefill)) backoff(kRefillBackoff);
      for (std::uint32_t k = 0; k < kRefill; ++k) {
        FakePage* r = ring.consume();
        asm volatile("" : : "r"(r->flags));
        cache.push(r);
      }
      p = cache.pop();
    }
    while (!handoff.enqueue(p)) backoff();
  }
  b.join();
  return median_of(chunks);
}

json stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const double med = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  return {{"median", med}, {"min", v.front()}, {"max", v.back()}, {"reps", v.size()}};
}

int usage(const char* msg) {
  std::fprintf(stderr,
               "ppsim_native_recycle: %s\nusage: ppsim_native_recycle [--packets N] [--reps R] [--cpus A,B] "
               "[--pages P] [--profile FILE] [--json]\n",
               msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  long packets = 1000000;
  int reps = 7, npages = 512;
  int ca = -1, cb = -1;
  bool as_json = false;
  std::string profile;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--packets") {
      packets = std::atol(val().c_str());
      if (packets < 40000) return usage("--packets: expected at least 40000");
    } else if (a == "--reps") {
      reps = std::atoi(val().c_str());
      if (reps < 1) return usage("--reps: expected a positive integer");
    } else if (a == "--pages") {
      npages = std::atoi(val().c_str());
      if (npages < 128 || npages > 1024) return usage("--pages: expected 128..1024 (the ring holds 1024)");
    } else if (a == "--cpus") {
      const std::string v = val();
      if (std::sscanf(v.c_str(), "%d,%d", &ca, &cb) != 2 || ca < 0 || cb < 0 || ca == cb)
        return usage("--cpus: expected two different CPU numbers A,B");
    } else if (a == "--profile") {
      profile = val();
      if (profile.empty()) return usage("--profile: expected a machine profile JSON");
    } else if (a == "--backoff") {
      kRefillBackoff = std::atoi(val().c_str());
      if (kRefillBackoff < 1) return usage("--backoff: expected a positive number of pauses");
    } else if (a == "--json") {
      as_json = true;
    } else {
      return usage(("unknown argument '" + a + "'").c_str());
    }
  }
  // Profile CPUs 0 and 1 by default; the OS numbers come from the host topology.
  const auto topo = ppsim::cost::CpuTopology::from_host();
  if (topo.cpus() < 2) return usage("needs at least two online CPUs");
  const int model_a = ca >= 0 ? ca : 0, model_b = cb >= 0 ? cb : 1;
  if (!topo.has_cpu(model_a) || !topo.has_cpu(model_b)) return usage("--cpus: CPU outside the host topology");
  const int os_a = topo.place(model_a).os_cpu, os_b = topo.place(model_b).os_cpu;

  std::string load_before;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    char buf[128] = {};
    if (std::fgets(buf, sizeof buf, f)) load_before = buf;
    std::fclose(f);
    if (!load_before.empty() && load_before.back() == '\n') load_before.pop_back();
  }
  std::vector<double> d, x;
  native_direct(os_a, packets / 10);  // warm-up
  for (int r = 0; r < reps; ++r) {
    d.push_back(native_direct(os_a, packets));
    x.push_back(native_cross(os_a, os_b, packets / 4, npages));
  }
  json out = {{"packets", packets}, {"reps", reps}, {"cpus", {model_a, model_b}}, {"loadavg", load_before},
              {"native", {{"direct", stats(d)}, {"cross_cpu", stats(x)}}}};
  if (!profile.empty()) {
    try {
      const auto prof = ppsim::cost::MachineProfile::load(profile);
      using ppsim::page_pool::RecyclePattern;
      const auto pd = ppsim::page_pool::predict_recycle(prof, RecyclePattern::kDirect, 200000, model_a, model_b);
      const auto px = ppsim::page_pool::predict_recycle(prof, RecyclePattern::kCrossCpu, 200000, model_a, model_b);
      auto row = [](const ppsim::page_pool::RecyclePrediction& p, double native) {
        return json{{"ns_per_packet", p.ns_per_packet}, {"alloc_cpu_ns", p.alloc_cpu_ns}, {"free_cpu_ns", p.free_cpu_ns},
                    {"coherence_ns", p.coherence_ns}, {"transfers", p.transfers}, {"by_line_type", p.by_line_type},
                    {"error_pct", 100.0 * (p.ns_per_packet - native) / native}};
      };
      const double nd = out["native"]["direct"]["median"], nx = out["native"]["cross_cpu"]["median"];
      out["model"] = {{"profile", profile}, {"direct", row(pd, nd)}, {"cross_cpu", row(px, nx)}};
      out["same_ranking"] = (pd.ns_per_packet < px.ns_per_packet) == (nd < nx);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ppsim_native_recycle: %s\n", e.what());
      return 2;
    }
  }
  if (as_json) {
    std::puts(out.dump(1).c_str());
    return 0;
  }
  std::printf("native recycling patterns, %ld packets x %d reps, CPUs %d,%d, load %s\n", packets, reps, model_a,
              model_b, load_before.c_str());
  std::printf("%-10s %12s %12s %12s %12s %9s\n", "pattern", "native ns", "min..max", "model ns", "coherence", "error %");
  for (const char* pat : {"direct", "cross_cpu"}) {
    const json& n = out["native"][pat];
    char range[64];
    std::snprintf(range, sizeof range, "%.2f..%.2f", n["min"].get<double>(), n["max"].get<double>());
    if (out.contains("model")) {
      const json& m = out["model"][pat];
      std::printf("%-10s %12.2f %12s %12.2f %12.2f %+9.1f\n", pat, n["median"].get<double>(), range,
                  m["ns_per_packet"].get<double>(), m["coherence_ns"].get<double>(), m["error_pct"].get<double>());
    } else {
      std::printf("%-10s %12.2f %12s\n", pat, n["median"].get<double>(), range);
    }
  }
  if (out.contains("model")) std::printf("same ranking: %s\n", out["same_ranking"].get<bool>() ? "yes" : "no");
  return 0;
}
