// User-space stand-ins for the kernel structures page recycling touches, shared by the
// calibration tool (single-core base costs) and bench/native_recycle.cc (the two patterns).
// Each structure keeps the kernel's cacheline layout, so that the same lines bounce:
//   FakePage      struct page: one 64-byte line holding pp_ref_count, _refcount and flags
//   LifoCache     struct pp_alloc_cache: u32 count, then cache[128] (slot i at byte 8 + 8 i)
//   PtrRingLike   struct ptr_ring: producer + producer_lock on one line, consumer_head/tail on
//                 another, size/batch/queue on a third; slots NULLed in batches of 16
//   HandoffRing   a lockless SPSC ring of page pointers (8 per line): the consumer NULLs each
//                 entry, the producer needs it NULL again (the "driver → reader" hand-off)
// Compiler barriers (not fences) keep every load and store of the loops real, and the operations
// are out-of-line calls as in the kernel (page_pool_alloc_netmems, page_pool_put_unrefed_netmem
// and ptr_ring_produce are not inlined into drivers), so their costs add up as the model adds them.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace ppsim::calib {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}
inline void compiler_barrier() { asm volatile("" ::: "memory"); }
#define PPSIM_OUT_OF_LINE __attribute__((noinline))

struct alignas(64) FakePage {
  std::atomic<long> pp_ref_count{1};
  std::atomic<int> refcount{1};
  long flags = 0;  // page_to_nid() reads these
  char pad[64 - sizeof(std::atomic<long>) - sizeof(std::atomic<int>) - sizeof(long) - 4];
};
static_assert(sizeof(FakePage) == 64, "struct page is one cacheline");

class SpinLock {
 public:
  void lock() {
    while (v_.exchange(1, std::memory_order_acquire))
      while (v_.load(std::memory_order_relaxed)) cpu_relax();
  }
  void unlock() { v_.store(0, std::memory_order_release); }

 private:
  std::atomic<int> v_{0};
};

constexpr std::uint32_t kCacheSize = 128, kRefill = 64;

struct alignas(64) LifoCache {
  std::uint32_t count = 0;
  FakePage* cache[kCacheSize];
  PPSIM_OUT_OF_LINE FakePage* pop() {
    compiler_barrier();
    FakePage* p = count ? cache[--count] : nullptr;
    compiler_barrier();
    return p;
  }
  PPSIM_OUT_OF_LINE bool push(FakePage* p) {
    compiler_barrier();
    if (count == kCacheSize) return false;
    cache[count++] = p;
    compiler_barrier();
    return true;
  }
};

class PtrRingLike {
 public:
  explicit PtrRingLike(int size) : size_(size), batch_(16), q_(new std::atomic<FakePage*>[size]) {
    if (batch_ > size_ / 2) batch_ = 1;
    for (int i = 0; i < size; ++i) q_[i].store(nullptr, std::memory_order_relaxed);
  }
  // ptr_ring_produce: spin_lock(producer_lock); slot must be NULL; store; producer++.
  PPSIM_OUT_OF_LINE bool produce(FakePage* p) {
    prod_.lock.lock();
    bool ok = false;
    if (q_[prod_.producer].load(std::memory_order_relaxed) == nullptr) {
      q_[prod_.producer].store(p, std::memory_order_release);
      if (++prod_.producer >= size_) prod_.producer = 0;
      ok = true;
    }
    prod_.lock.unlock();
    return ok;
  }
  bool empty() const { return q_[cons_.head].load(std::memory_order_acquire) == nullptr; }
  // True when `n` entries are ready (the entry n-1 past the head is set).
  bool ready(int n) const { return q_[(cons_.head + n - 1) % size_].load(std::memory_order_acquire) != nullptr; }
  // __ptr_ring_consume (no consumer lock: page_pool's refill runs in NAPI context).
  PPSIM_OUT_OF_LINE FakePage* consume() {
    FakePage* p = q_[cons_.head].load(std::memory_order_acquire);
    if (!p) return nullptr;
    int consumer_head = cons_.head;
    int head = consumer_head++;
    if (consumer_head - cons_.tail >= batch_ || consumer_head >= size_) {
      while (head >= cons_.tail) q_[head--].store(nullptr, std::memory_order_relaxed);
      cons_.tail = consumer_head;
    }
    if (consumer_head >= size_) consumer_head = cons_.tail = 0;
    cons_.head = consumer_head;
    return p;
  }

 private:
  struct alignas(64) Prod {
    int producer = 0;
    SpinLock lock;
  } prod_;
  struct alignas(64) Cons {
    int head = 0, tail = 0;
  } cons_;
  alignas(64) int size_;
  int batch_;
  std::unique_ptr<std::atomic<FakePage*>[]> q_;
};

class HandoffRing {
 public:
  explicit HandoffRing(int size) : size_(size), q_(new Slot[size / 8 + 1]) {}
  PPSIM_OUT_OF_LINE bool enqueue(FakePage* p) {
    auto& s = at(head_.i);
    if (s.load(std::memory_order_acquire)) return false;
    s.store(p, std::memory_order_release);
    if (++head_.i >= size_) head_.i = 0;
    return true;
  }
  PPSIM_OUT_OF_LINE FakePage* dequeue() {
    auto& s = at(tail_.i);
    FakePage* p = s.load(std::memory_order_acquire);
    if (!p) return nullptr;
    s.store(nullptr, std::memory_order_release);
    if (++tail_.i >= size_) tail_.i = 0;
    return p;
  }

 private:
  struct alignas(64) Slot {
    std::atomic<FakePage*> e[8]{};
  };
  std::atomic<FakePage*>& at(int i) { return q_[i / 8].e[i % 8]; }
  struct alignas(64) Idx {
    int i = 0;
  };
  int size_;
  Idx head_, tail_;
  std::unique_ptr<Slot[]> q_;
};

// What page_pool's put fast path reads: pp_ref_count == 1 (page_pool_unref_netmem) and
// _refcount == 1 (__page_pool_page_can_be_recycled), both on the struct page line.
PPSIM_OUT_OF_LINE inline bool page_put_check(const FakePage* p) {
  return p->pp_ref_count.load(std::memory_order_relaxed) == 1 && p->refcount.load(std::memory_order_relaxed) == 1;
}

}  // namespace ppsim::calib
