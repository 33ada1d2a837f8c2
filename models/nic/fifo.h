// A growable circular FIFO for the per-packet queues of the NIC model (arrivals, the RX packet
// buffer, write-backs in flight). Unlike std::deque it does not allocate and free blocks as
// elements stream through it.
#pragma once
#include <cstddef>
#include <vector>

namespace ppsim::nic {

template <typename T>
class Fifo {
 public:
  bool empty() const { return head_ == tail_; }
  std::size_t size() const { return tail_ - head_; }
  T& front() { return buf_[head_ & mask_]; }
  const T& front() const { return buf_[head_ & mask_]; }
  T& operator[](std::size_t i) { return buf_[(head_ + i) & mask_]; }
  void pop_front() { ++head_; }
  void clear() { head_ = tail_ = 0; }
  void push_back(const T& v) {
    if (tail_ - head_ == buf_.size()) grow();
    buf_[tail_++ & mask_] = v;
  }

 private:
  void grow() {
    std::vector<T> n(buf_.empty() ? 16 : buf_.size() * 2);
    for (std::size_t i = 0; i < size(); ++i) n[i] = buf_[(head_ + i) & mask_];
    tail_ = size();
    head_ = 0;
    buf_.swap(n);
    mask_ = buf_.size() - 1;
  }
  std::vector<T> buf_;
  std::size_t head_ = 0, tail_ = 0, mask_ = 0;
};

}  // namespace ppsim::nic
