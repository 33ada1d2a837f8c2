// include/linux/ptr_ring.h, the parts page_pool uses: a fixed array of slots where NULL means
// free. The producer fails when its slot is still occupied. The consumer does not clear slots
// one by one: it clears a batch of SMP_CACHE_BYTES*2/sizeof(void*) = 16 consumed slots at a time
// (or at the end of the array), so a ring can report "full" up to batch-1 slots early.
#pragma once
#include <cstdint>
#include <vector>

#include "models/page_pool/page.h"

namespace ppsim::page_pool {

class PtrRing {
 public:
  explicit PtrRing(std::uint32_t size, std::uint32_t cacheline_bytes = 64)
      : queue_(size, kNoPage), size_(size) {
    batch_ = cacheline_bytes * 2 / 8;
    if (batch_ > size_ / 2 || batch_ == 0) batch_ = 1;  // __ptr_ring_set_size
  }
  // __ptr_ring_produce: false when full (-ENOSPC).
  bool produce(PageId p) {
    if (size_ == 0 || queue_[producer_] != kNoPage) return false;
    queue_[producer_++] = p;
    if (producer_ >= size_) producer_ = 0;
    ++count_;
    return true;
  }
  // __ptr_ring_empty
  bool empty() const { return size_ == 0 || queue_[consumer_head_] == kNoPage; }
  // __ptr_ring_consume: kNoPage when empty.
  PageId consume() {
    if (empty()) return kNoPage;
    PageId p = queue_[consumer_head_];
    discard_one();
    --count_;
    return p;
  }
  std::uint32_t size() const { return size_; }
  std::uint32_t batch() const { return batch_; }
  std::uint32_t count() const { return count_; }  // entries not yet consumed
  // Slots the producer cannot use: unconsumed entries plus consumed-but-not-yet-cleared ones.
  std::uint32_t occupied_slots() const {
    std::uint32_t n = 0;
    for (auto s : queue_) n += s != kNoPage;
    return n;
  }
  std::uint32_t producer_index() const { return producer_; }
  std::uint32_t consumer_index() const { return consumer_head_; }

 private:
  // __ptr_ring_discard_one: advance the head; clear a batch of slots (in reverse) once enough
  // have been consumed or the head reaches the end of the array.
  void discard_one() {
    std::uint32_t consumer_head = consumer_head_;
    std::int64_t head = consumer_head++;
    if (consumer_head - consumer_tail_ >= batch_ || consumer_head >= size_) {
      while (head >= static_cast<std::int64_t>(consumer_tail_)) queue_[head--] = kNoPage;
      consumer_tail_ = consumer_head;
    }
    if (consumer_head >= size_) {
      consumer_head = 0;
      consumer_tail_ = 0;
    }
    consumer_head_ = consumer_head;
  }
  std::vector<PageId> queue_;
  std::uint32_t size_, batch_ = 1;
  std::uint32_t producer_ = 0, consumer_head_ = 0, consumer_tail_ = 0, count_ = 0;
};

}  // namespace ppsim::page_pool
