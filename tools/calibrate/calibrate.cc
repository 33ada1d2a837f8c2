// ppsim_calibrate: measures the machine it runs on for the cacheline model (docs/coherence.md).
//
// Every measurement is repeated --reps times; each repetition gives one number (an average over
// many iterations) and the tool reports median, p10, p90, min and max of the repetitions.
//   transfer        one-way cacheline transfer between each CPU pair: two pinned threads
//                   compare-and-swap one shared line back and forth; round trip / 2
//   atomic          lock-prefixed increment of a private line (uncontended), and of one line by
//                   two CPUs at once (contended; ns per increment seen by one thread)
//   stream          64 lines another CPU just wrote: ns per line to read them in order
//                   (prefetch and overlapped misses) and to store once into each, shuffled
//   ring_handoff    ptr_ring-like producer (with producer lock) on one CPU, consumer (batched
//                   16-slot NULLing) on another: ns per item
//   chase           dependent loads over a random cycle of lines, at several working-set sizes
//   memcpy          GB/s copying a cache-resident buffer and a DRAM-sized one
//   page            user-space approximations of page allocation: mmap+touch+munmap of 4 KiB,
//                   malloc+touch+free of 4 KiB, madvise(MADV_DONTNEED)+refault of 4 KiB. They
//                   include syscalls and page faults the kernel's buddy allocator does not pay.
//   base            single-core (all lines local) cost of each recycle operation on the
//                   structures of recycle_kernels.h: LIFO pop/push, ring produce/consume,
//                   hand-off enqueue/dequeue
//   zerocopy        what the zero-copy model charges (syscall, memcpy by size, page clearing,
//                   map/unmap per call and per page, TLB shootdown) and the native composites it
//                   is checked against (copy to user vs map/unmap at 3 sizes): zerocopy_bench.h
// Output: one JSON object (stdout or --out). `ppsim calibrate` turns it into a machine profile.
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sim/cost/cpu_topology.h"
#include "tools/calibrate/recycle_kernels.h"
#include "tools/calibrate/zerocopy_bench.h"

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace ppsim::calib;

namespace {

struct Opts {
  int reps = 7;
  bool quick = false;
  std::vector<int> cpus;  // OS CPU ids
  std::string out;
  std::string only;  // run one group (for tests): transfer, atomic, ring, chase, memcpy, page, base
};

double now_ns() { return std::chrono::duration<double, std::nano>(Clock::now().time_since_epoch()).count(); }

bool pin(int os_cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(os_cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

json summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto q = [&](double f) {
    const double pos = f * (v.size() - 1);
    const std::size_t i = static_cast<std::size_t>(pos);
    const double frac = pos - i;
    return i + 1 < v.size() ? v[i] * (1 - frac) + v[i + 1] * frac : v[i];
  };
  return {{"median", q(0.5)}, {"p10", q(0.1)}, {"p90", q(0.9)}, {"min", v.front()}, {"max", v.back()},
          {"reps", v.size()}};
}

template <class F>
json repeat(int reps, F f) {
  std::vector<double> v;
  f();  // warm-up repetition, discarded
  for (int i = 0; i < reps; ++i) v.push_back(f());
  return summarize(v);
}

// Runs `a` pinned to cpu_a and `b` pinned to cpu_b, both released together.
template <class A, class B>
void run_pair(int cpu_a, int cpu_b, A a, B b) {
  std::atomic<int> ready{0};
  std::thread tb([&] {
    pin(cpu_b);
    ready.fetch_add(1);
    while (ready.load() < 2) cpu_relax();
    b();
  });
  pin(cpu_a);
  ready.fetch_add(1);
  while (ready.load() < 2) cpu_relax();
  a();
  tb.join();
}

// Median over short samples: the VM's other load preempts a pinned thread now and then, and a
// preempted sample is an outlier rather than a shift of the mean.
double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

double pingpong_once(int ca, int cb, long iters) {
  alignas(64) static std::atomic<int> flag;
  flag.store(0);
  constexpr long kSample = 200;
  std::vector<double> samples;
  run_pair(
      ca, cb,
      [&] {
        for (long done = 0; done < iters; done += kSample) {
          const double t0 = now_ns();
          for (long i = 0; i < kSample; ++i) {
            int e = 1;
            while (!flag.compare_exchange_weak(e, 0, std::memory_order_relaxed)) e = 1;
          }
          samples.push_back((now_ns() - t0) / kSample / 2.0);
        }
      },
      [&] {
        for (long done = 0; done < iters; done += kSample)
          for (long i = 0; i < kSample; ++i) {
            int e = 0;
            while (!flag.compare_exchange_weak(e, 1, std::memory_order_relaxed)) e = 0;
          }
      });
  return median_of(samples);
}

double atomic_uncontended(long iters) {
  alignas(64) static std::atomic<long> x;
  const double t0 = now_ns();
  for (long i = 0; i < iters; ++i) x.fetch_add(1, std::memory_order_relaxed);
  return (now_ns() - t0) / iters;
}

double atomic_contended(int ca, int cb, long iters) {
  alignas(64) static std::atomic<long> x;
  alignas(64) static std::atomic<int> running;
  running.store(2);
  constexpr long kSample = 1000;
  std::vector<double> samples;
  run_pair(
      ca, cb,
      [&] {
        for (long done = 0; done < iters; done += kSample) {
          const double t0 = now_ns();
          for (long i = 0; i < kSample; ++i) x.fetch_add(1, std::memory_order_relaxed);
          samples.push_back((now_ns() - t0) / kSample);
        }
        running.fetch_sub(1);
      },
      [&] {  // keeps contending until the timed side is done
        running.fetch_sub(1);
        while (running.load(std::memory_order_relaxed) > 0)
          for (int i = 0; i < 100; ++i) x.fetch_add(1, std::memory_order_relaxed);
      });
  return median_of(samples);
}

double ring_handoff(int ca, int cb, long items) {
  PtrRingLike ring(1024);
  std::vector<FakePage> pages(1024);
  constexpr long kSample = 4096;
  std::vector<double> samples;
  run_pair(
      ca, cb,
      [&] {
        for (long i = 0; i < items; ++i)
          while (!ring.produce(&pages[i & 1023])) cpu_relax();
      },
      [&] {
        double t0 = now_ns();
        for (long i = 0; i < items; ++i) {
          while (!ring.consume()) cpu_relax();
          if ((i + 1) % kSample == 0) {
            const double t1 = now_ns();
            samples.push_back((t1 - t0) / kSample);
            t0 = t1;
          }
        }
      });
  return median_of(samples);
}

// Lines the other CPU just wrote, taken in batches of 64: per-line cost on the taking CPU.
// mode 0: read the 8 words of each line in address order (a consumer walking a ring: the
// prefetchers and out-of-order loads overlap the transfers); mode 1: one plain store to each
// line, in a shuffled order (store misses the store buffer can hide).
double batch_lines(int ca, int cb, int mode, int rounds) {
  constexpr int kLines = 64;
  struct alignas(64) L {
    std::atomic<long> w[8];
  };
  std::vector<L> lines(kLines);
  std::vector<int> order(kLines);
  for (int i = 0; i < kLines; ++i) order[i] = i;
  std::mt19937 rng(7);
  std::shuffle(order.begin(), order.end(), rng);
  alignas(64) static std::atomic<int> turn;
  alignas(64) static std::atomic<long> priv;
  turn.store(0);
  std::vector<double> samples;
  run_pair(
      ca, cb,
      [&] {  // writer: dirty every line, hand the batch over
        for (int r = 0; r < rounds; ++r) {
          while (turn.load(std::memory_order_acquire) != 0) cpu_relax();
          for (auto& l : lines)
            for (auto& w : l.w) w.store(r + 1, std::memory_order_relaxed);
          turn.store(1, std::memory_order_release);
        }
      },
      [&] {  // taker: timed
        long sink = 0;
        for (int r = 0; r < rounds; ++r) {
          while (turn.load(std::memory_order_acquire) != 1) cpu_relax();
          const double t0 = now_ns();
          if (mode == 0) {
            for (auto& l : lines)
              for (auto& w : l.w) sink += w.load(std::memory_order_relaxed);
          } else if (mode == 2) {  // a locked instruction after each line: no overlap across it
            for (auto& l : lines) {
              for (auto& w : l.w) sink += w.load(std::memory_order_relaxed);
              priv.fetch_add(1, std::memory_order_relaxed);
            }
          } else {
            for (int i : order) lines[i].w[0].store(0, std::memory_order_relaxed);
            std::atomic_thread_fence(std::memory_order_seq_cst);  // the stores are done when the batch is
          }
          samples.push_back((now_ns() - t0) / kLines);
          turn.store(0, std::memory_order_release);
        }
        asm volatile("" : : "r"(sink));
      });
  return median_of(samples);
}

double chase(std::size_t bytes, long steps) {
  const std::size_t n = bytes / 64;
  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(42);
  std::shuffle(order.begin(), order.end(), rng);
  struct alignas(64) Node {
    Node* next;
    char pad[56];
  };
  std::vector<Node> nodes(n);
  for (std::size_t i = 0; i < n; ++i) nodes[order[i]].next = &nodes[order[(i + 1) % n]];
  Node* p = &nodes[order[0]];
  for (std::size_t i = 0; i < n; ++i) p = p->next;  // touch everything once
  const double t0 = now_ns();
  for (long i = 0; i < steps; ++i) p = p->next;
  const double dt = now_ns() - t0;
  asm volatile("" : : "r"(p));
  return dt / steps;
}

double memcpy_gbps(std::size_t bytes, int rounds) {
  std::vector<char> a(bytes, 1), b(bytes, 2);
  std::memcpy(b.data(), a.data(), bytes);
  const double t0 = now_ns();
  for (int r = 0; r < rounds; ++r) {
    std::memcpy((r & 1 ? a : b).data(), (r & 1 ? b : a).data(), bytes);
    compiler_barrier();
  }
  return static_cast<double>(bytes) * rounds / (now_ns() - t0);  // bytes/ns = GB/s
}

double page_mmap(int n) {
  const double t0 = now_ns();
  for (int i = 0; i < n; ++i) {
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
    static_cast<volatile char*>(p)[0] = 1;
    munmap(p, 4096);
  }
  return (now_ns() - t0) / n;
}

double page_malloc(int n) {
  const double t0 = now_ns();
  for (int i = 0; i < n; ++i) {
    char* p = static_cast<char*>(std::malloc(4096));
    static_cast<volatile char*>(p)[0] = 1;
    std::free(p);
  }
  return (now_ns() - t0) / n;
}

double page_madvise(int n) {
  void* area = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (area == MAP_FAILED) return -1;
  static_cast<volatile char*>(area)[0] = 1;
  const double t0 = now_ns();
  for (int i = 0; i < n; ++i) {
    madvise(area, 4096, MADV_DONTNEED);
    static_cast<volatile char*>(area)[0] = 1;  // fault a fresh zeroed page in
  }
  const double dt = (now_ns() - t0) / n;
  munmap(area, 4096);
  return dt;
}

// Single-core base costs, in phases of 64 like a NAPI budget or a refill.
json base_costs(int reps, long rounds) {
  std::vector<FakePage> pages(256);
  json out;
  out["alloc_fast_plus_recycle_direct"] = repeat(reps, [&] {
    LifoCache c;
    for (int i = 0; i < 64; ++i) c.push(&pages[i]);
    const double t0 = now_ns();
    for (long i = 0; i < rounds * 64; ++i) c.push(c.pop());
    return (now_ns() - t0) / (rounds * 64);
  });
  std::vector<double> prod, cons, enq, deq;
  for (int rep = 0; rep <= reps; ++rep) {
    PtrRingLike ring(1024);
    LifoCache cache;
    HandoffRing q(256);
    double sp = 0, sc = 0, se = 0, sd = 0;
    for (long r = 0; r < rounds; ++r) {
      double t0 = now_ns();
      for (int i = 0; i < 64; ++i) ring.produce(&pages[i]);
      double t1 = now_ns();
      // page_pool_refill_alloc_cache: consume, check the page's node, push into the cache.
      for (int i = 0; i < 64; ++i) {
        FakePage* p = ring.consume();
        asm volatile("" : : "r"(p->flags));
        cache.push(p);
      }
      double t2 = now_ns();
      cache.count = 0;
      for (int i = 0; i < 64; ++i) q.enqueue(&pages[i]);
      double t3 = now_ns();
      for (int i = 0; i < 64; ++i) q.dequeue();
      double t4 = now_ns();
      sp += t1 - t0;
      sc += t2 - t1;
      se += t3 - t2;
      sd += t4 - t3;
    }
    if (rep == 0) continue;  // warm-up
    const double n = rounds * 64.0;
    prod.push_back(sp / n);
    cons.push_back(sc / n);
    enq.push_back(se / n);
    deq.push_back(sd / n);
  }
  out["page_ref_read"] = repeat(reps, [&] {
    long ok = 0;
    const double t0 = now_ns();
    for (long r = 0; r < rounds; ++r)
      for (auto& p : pages) ok += page_put_check(&p);
    asm volatile("" : : "r"(ok));
    return (now_ns() - t0) / (rounds * pages.size());
  });
  out["recycle_ring"] = summarize(prod);
  out["refill_per_page"] = summarize(cons);
  out["queue_enqueue"] = summarize(enq);
  out["queue_dequeue"] = summarize(deq);
  return out;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string s;
  std::getline(in, s);
  return s;
}

int usage(const char* msg) {
  std::fprintf(stderr,
               "ppsim_calibrate: %s\nusage: ppsim_calibrate [--reps N] [--quick] [--cpus a,b,...] [--only GROUP] [--out FILE]\n"
               "  GROUP: transfer, atomic, stream, ring, chase, memcpy, page, base, zerocopy\n",
               msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Opts o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) return "";
      return argv[++i];
    };
    if (a == "--reps") {
      const std::string v = next();
      o.reps = std::atoi(v.c_str());
      if (o.reps < 1 || o.reps > 1000) return usage("--reps: expected an integer from 1 to 1000");
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--cpus") {
      std::string v = next();
      std::size_t pos = 0;
      while (pos <= v.size() && !v.empty()) {
        const auto comma = v.find(',', pos);
        const std::string item = v.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        char* end = nullptr;
        const long c = std::strtol(item.c_str(), &end, 10);
        if (item.empty() || *end || c < 0) return usage(("--cpus: expected CPU numbers, got '" + item + "'").c_str());
        o.cpus.push_back(static_cast<int>(c));
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
    } else if (a == "--out") {
      o.out = next();
      if (o.out.empty()) return usage("--out: expected a file name");
    } else if (a == "--only") {
      o.only = next();
    } else {
      return usage(("unknown argument '" + a + "'").c_str());
    }
  }
  ppsim::cost::CpuTopology topo = ppsim::cost::CpuTopology::from_host();
  std::vector<int> os_of(topo.cpus());
  for (int c = 0; c < topo.cpus(); ++c) os_of[c] = topo.place(c).os_cpu;
  if (o.cpus.empty()) {
    for (int c = 0; c < topo.cpus() && c < 8; ++c) o.cpus.push_back(os_of[c]);
  }
  cpu_set_t allowed;
  sched_getaffinity(0, sizeof allowed, &allowed);
  for (int c : o.cpus)
    if (std::find(os_of.begin(), os_of.end(), c) == os_of.end() || !CPU_ISSET(c, &allowed))
      return usage(("--cpus: CPU " + std::to_string(c) + " is not online or not allowed for this process").c_str());
  const bool quick = o.quick;
  const int reps = o.reps;
  auto want = [&](const char* g) { return o.only.empty() || o.only == g; };

  json out;
  out["tool"] = "ppsim_calibrate";
  out["host"] = {{"cpu_model", cpu_model()}, {"loadavg_before", loadavg()}, {"topology", topo.to_json()},
                 {"cpus_measured", o.cpus}, {"quick", quick}};
  out["reps"] = reps;
  const int c0 = o.cpus[0], c1 = o.cpus.size() > 1 ? o.cpus[1] : o.cpus[0];
  const bool two = o.cpus.size() > 1;

  if (want("transfer") && two) {
    json pairs = json::array();
    const long iters = quick ? 5000 : 20000;
    for (std::size_t i = 0; i < o.cpus.size(); ++i)
      for (std::size_t j = i + 1; j < o.cpus.size(); ++j) {
        const int a = o.cpus[i], b = o.cpus[j];
        json s = repeat(reps, [&] { return pingpong_once(a, b, iters); });
        s["os_cpu_a"] = a;
        s["os_cpu_b"] = b;
        pairs.push_back(s);
      }
    out["transfer_ns"] = pairs;
  }
  if (want("atomic")) {
    pin(c0);
    const long it = quick ? 200000 : 2000000;
    out["atomic_uncontended_ns"] = repeat(reps, [&] { return atomic_uncontended(it); });
    if (two) out["atomic_contended_ns"] = repeat(reps, [&] { return atomic_contended(c0, c1, it / 4); });
  }
  if (want("stream") && two) {
    const int rounds = quick ? 500 : 4000;
    out["stream_read_ns_per_line"] = repeat(reps, [&] { return batch_lines(c0, c1, 0, rounds); });
    out["store_miss_ns_per_line"] = repeat(reps, [&] { return batch_lines(c0, c1, 1, rounds); });
    out["stream_read_serialized_ns_per_line"] = repeat(reps, [&] { return batch_lines(c0, c1, 2, rounds); });
  }
  if (want("ring") && two) {
    const long items = quick ? 50000 : 500000;
    out["ring_handoff_ns_per_item"] = repeat(reps, [&] { return ring_handoff(c0, c1, items); });
  }
  if (want("chase")) {
    pin(c0);
    json ch;
    const long steps = quick ? 200000 : 2000000;
    for (auto [name, bytes] : std::vector<std::pair<const char*, std::size_t>>{
             {"16KiB", 16u << 10}, {"256KiB", 256u << 10}, {"4MiB", 4u << 20}, {"256MiB", 256u << 20}}) {
      if (quick && bytes > (64u << 20)) bytes = 64u << 20;
      ch[name] = repeat(reps, [&, bytes = bytes] { return chase(bytes, steps); });
    }
    out["chase_ns"] = ch;
  }
  if (want("memcpy")) {
    pin(c0);
    out["memcpy_gbps"] = {{"1MiB", repeat(reps, [&] { return memcpy_gbps(1u << 20, quick ? 50 : 400); })},
                          {"64MiB", repeat(reps, [&] { return memcpy_gbps(64u << 20, quick ? 2 : 8); })}};
  }
  if (want("page")) {
    pin(c0);
    const int n = quick ? 2000 : 20000;
    out["page_ns"] = {{"mmap_touch_munmap_4k", repeat(reps, [&] { return page_mmap(n); })},
                      {"malloc_touch_free_4k", repeat(reps, [&] { return page_malloc(n); })},
                      {"madvise_dontneed_refault_4k", repeat(reps, [&] { return page_madvise(n); })},
                      {"note", "user-space approximations: syscalls and page faults included; the kernel's "
                               "buddy allocator does neither"}};
  }
  if (want("base")) {
    pin(c0);
    out["base_ns"] = base_costs(reps, quick ? 2000 : 20000);
  }
  if (want("zerocopy")) out["zerocopy"] = ppsim::calib::zerocopy_measurements(c0, c1, reps, quick, summarize);
  out["host"]["loadavg_after"] = loadavg();
  const std::string text = out.dump(1);
  if (o.out.empty()) {
    std::puts(text.c_str());
  } else {
    std::ofstream f(o.out);
    if (!f) return usage(("--out: cannot write " + o.out).c_str());
    f << text << "\n";
  }
  return 0;
}
