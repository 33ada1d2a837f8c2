#include "tools/calibrate/zerocopy_bench.h"

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tools/calibrate/recycle_kernels.h"

namespace ppsim::calib {
namespace {

using json = nlohmann::json;
constexpr std::size_t kPage = 4096;
constexpr std::size_t kFilePages = 64;

double now_ns() {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void pin_self(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// A memfd whose pages are in the page cache: what a mapping inserts without allocating.
int page_cache_file() {
  const int fd = static_cast<int>(syscall(SYS_memfd_create, "ppsim-zc", 0));
  if (fd < 0) return -1;
  std::vector<char> data(kFilePages * kPage, 1);
  if (pwrite(fd, data.data(), data.size(), 0) != static_cast<ssize_t>(data.size())) return -1;
  return fd;
}

// Mean ns of one map and one unmap call of `pages` pages.
void map_unmap(int fd, std::size_t pages, int iters, double* map_ns, double* unmap_ns) {
  double m = 0, u = 0;
  for (int i = 0; i < iters; ++i) {
    const double t0 = now_ns();
    void* p = mmap(nullptr, pages * kPage, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    const double t1 = now_ns();
    if (p == MAP_FAILED) return;
    munmap(p, pages * kPage);
    const double t2 = now_ns();
    m += t1 - t0;
    u += t2 - t1;
  }
  *map_ns = m / iters;
  *unmap_ns = u / iters;
}


double memcpy_ns(std::size_t bytes, int iters) {
  std::vector<char> a(bytes, 1), b(bytes, 2);
  std::memcpy(b.data(), a.data(), bytes);
  const double t0 = now_ns();
  for (int i = 0; i < iters; ++i) {
    std::memcpy((i & 1 ? a : b).data(), (i & 1 ? b : a).data(), bytes);
    asm volatile("" : : "r"(a.data()), "r"(b.data()) : "memory");
  }
  return (now_ns() - t0) / iters;
}

double clear_ns(int iters) {
  std::vector<char> a(kPage, 1);
  const double t0 = now_ns();
  for (int i = 0; i < iters; ++i) {
    std::memset(a.data(), 0, kPage);
    asm volatile("" : : "r"(a.data()) : "memory");
  }
  return (now_ns() - t0) / iters;
}

double pread_ns(int fd, std::size_t bytes, int iters) {
  std::vector<char> buf(bytes);
  if (pread(fd, buf.data(), bytes, 0) != static_cast<ssize_t>(bytes)) return -1;
  const double t0 = now_ns();
  for (int i = 0; i < iters; ++i)
    if (pread(fd, buf.data(), bytes, 0) != static_cast<ssize_t>(bytes)) return -1;
  return (now_ns() - t0) / iters;
}

// A thread of this process spinning on another CPU: it keeps the mm loaded there, so every
// unmap must shoot its TLB down.
class Spinner {
 public:
  explicit Spinner(int cpu) : t_([this, cpu] {
      pin_self(cpu);
      up_.store(true);
      while (!stop_.load(std::memory_order_relaxed)) cpu_relax();
    }) {
    while (!up_.load()) cpu_relax();
  }
  ~Spinner() {
    stop_.store(true);
    t_.join();
  }

 private:
  std::atomic<bool> up_{false}, stop_{false};
  std::thread t_;
};

// Runs `body` in a fresh child process pinned to `cpu` and returns the JSON it produced.
template <class F>
json in_child(int cpu, F body) {
  int fds[2];
  if (pipe(fds) != 0) return json();
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    pin_self(cpu);
    const std::string out = body().dump();
    const char* p = out.data();
    std::size_t left = out.size();
    while (left > 0) {
      const ssize_t n = write(fds[1], p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return json::parse(text, nullptr, false);
}

}  // namespace

json zerocopy_measurements(int cpu_a, int cpu_b, int reps, bool quick, json (*summarize)(std::vector<double>)) {
  const int it = quick ? 400 : 3000;
  auto rep = [&](auto f) {
    std::vector<double> v;
    f();  // warm-up
    for (int r = 0; r < reps; ++r) v.push_back(f());
    return summarize(v);
  };
  json out = in_child(cpu_a, [&] {
    json j;
    const int fd = page_cache_file();
    if (fd < 0) return json{{"error", "memfd_create or pwrite failed"}};
    j["read_1b_ns"] = rep([&] { return pread_ns(fd, 1, it * 4); });
    // A long read (32 pages, a size the composites below do not use): what the kernel's copy to
    // user costs per page besides the bytes (the page walk and per-page setup of copy_page_to_iter).
    j["read_128k_ns"] = rep([&] { return pread_ns(fd, 32 * kPage, it / 2); });
    for (std::size_t s : {std::size_t{64}, std::size_t{1500}, std::size_t{4096}, std::size_t{16384}, std::size_t{65536}})
      j["memcpy_ns"][std::to_string(s)] = rep([&] { return memcpy_ns(s, s > 4096 ? it * 4 : it * 40); });
    j["clear_4k_ns"] = rep([&] { return clear_ns(it * 40); });
    for (std::size_t n : {std::size_t{1}, std::size_t{32}}) {
      j["map_ns"][std::to_string(n)] = rep([&] {
        double m = 0, u = 0;
        map_unmap(fd, n, it, &m, &u);
        return m;
      });
      j["unmap_ns"][std::to_string(n)] = rep([&] {
        double m = 0, u = 0;
        map_unmap(fd, n, it, &m, &u);
        return u;
      });
    }
    close(fd);
    return j;
  });
  if (cpu_b == cpu_a) return out;
  json remote = in_child(cpu_a, [&] {
    json j;
    const int fd = page_cache_file();
    if (fd < 0) return json{{"error", "memfd_create or pwrite failed"}};
    // Native composites first without the spinner for the copy (it does not unmap), then with it.
    for (std::size_t s : {std::size_t{4096}, std::size_t{16384}, std::size_t{65536}})
      j["copy_to_user_ns"][std::to_string(s)] = rep([&] { return pread_ns(fd, s, it); });
    Spinner spin(cpu_b);
    for (std::size_t n : {std::size_t{1}, std::size_t{32}})  // 32: the shootdown's growth with pages
      j["unmap_remote_ns"][std::to_string(n)] = rep([&] {
        double m = 0, u = 0;
        map_unmap(fd, n, it, &m, &u);
        return u;
      });
    for (std::size_t s : {std::size_t{4096}, std::size_t{16384}, std::size_t{65536}})
      j["map_unmap_ns"][std::to_string(s)] = rep([&] {
        double m = 0, u = 0;
        map_unmap(fd, s / kPage, it, &m, &u);
        return m + u;
      });
    close(fd);
    return j;
  });
  for (auto it2 = remote.begin(); it2 != remote.end(); ++it2) out[it2.key()] = it2.value();
  out["cpus"] = {cpu_a, cpu_b};
  return out;
}

}  // namespace ppsim::calib
