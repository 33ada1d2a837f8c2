// Memory that faults on first touch: a user buffer malloc'd and never written, or a fresh
// page_frag. Touching its first `bytes` costs one fault per 4 KiB page not touched before; pages
// once touched stay warm.
#pragma once
#include <cstdint>

#include "models/page_pool/page.h"
#include "sim/time.h"

namespace ppsim::world {

class FirstTouch {
 public:
  explicit FirstTouch(sim::Picos per_page = 0) : per_page_(per_page) {}
  bool on() const { return per_page_ > 0; }
  // The cost of the faults taken by touching bytes [0, bytes).
  sim::Picos touch(std::uint64_t bytes) {
    const std::uint64_t pages = (bytes + page_pool::kPageSize - 1) / page_pool::kPageSize;
    if (pages <= touched_) return 0;
    const std::uint64_t fresh = pages - touched_;
    touched_ = pages;
    return static_cast<sim::Picos>(fresh) * per_page_;
  }
  // Pages faulted in so far.
  std::uint64_t faults() const { return touched_; }

 private:
  sim::Picos per_page_ = 0;
  std::uint64_t touched_ = 0;
};

}  // namespace ppsim::world
