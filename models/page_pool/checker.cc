#include "models/page_pool/checker.h"

#include <algorithm>
#include <cstdio>

namespace ppsim::page_pool {

const char* PageChecker::sname(S s) {
  switch (s) {
    case S::kBuddy: return "buddy";
    case S::kAllocCache: return "alloc_cache";
    case S::kRing: return "ring";
    case S::kCarving: return "frag_page";
    case S::kOut: return "out";
    case S::kReturning: return "returning";
    case S::kDetached: return "detached";
  }
  return "?";
}

void PageChecker::add_pool(const PagePool* pool) {
  if (static_cast<int>(pools_.size()) <= pool->id()) {
    pools_.resize(pool->id() + 1);
    npools_ = static_cast<std::uint32_t>(pools_.size());
  }
  PoolShadow& ps = pools_[pool->id()];
  if (ps.pool == pool) return;
  // Only the pool's configuration is read here (what page_pool_create was given); its state is
  // followed from events.
  ps.pool = pool;
  const PoolParams& p = pool->params();
  ps.listed = p.netdev;
  ps.cpuid = p.cpuid;
  ps.nid = p.nid;
  ps.ring_size = pool->ring().size();
  ps.ring_batch = pool->ring().batch();
  if (p.napi_list_owner) {
    add_napi(p.napi_id, p.napi_list_owner);
    ps.napi = ps.ever_napi = p.napi_id;
    ps.napi_owner = p.napi_list_owner;
  }
}

void PageChecker::add_napi(int id, const int* list_owner) {
  NapiShadow& n = napi(id);
  if (!n.list_owner) n.list_owner = list_owner;
}

PageChecker::NapiShadow& PageChecker::napi(int id) {
  for (auto& [nid, n] : napis_)
    if (nid == id) return n;
  napis_.emplace_back(id, NapiShadow{});
  return napis_.back().second;
}

void PageChecker::set_owner_napi(const PagePool* pool, const int* list_owner) {
  add_pool(pool);
  pools_[pool->id()].owner_napi = list_owner;
}

void PageChecker::BufList::grow() {
  auto bigger = std::make_unique<Buf[]>(2 * cap_);
  std::copy(data_, data_ + n_, bigger.get());
  heap_ = std::move(bigger);
  data_ = heap_.get();
  cap_ *= 2;
}

// A moved list keeps its heap block; an inline one is copied (data_ points into the object).
void PageChecker::BufList::take(BufList& o) {
  n_ = o.n_;
  cap_ = o.cap_;
  heap_ = std::move(o.heap_);
  if (heap_) {
    data_ = heap_.get();
  } else {
    data_ = inline_;
    std::copy(o.inline_, o.inline_ + n_, inline_);
  }
  o.data_ = o.inline_;
  o.n_ = 0;
  o.cap_ = kInline;
}

PageChecker::Shadow& PageChecker::grow(PageId p) {
  pages_.resize(static_cast<std::size_t>(p) + 1024);
  npages_ = static_cast<std::uint32_t>(pages_.size());
  return pages_[p];
}

void PageChecker::fail(const char* invariant, const PageEvent& ev, const std::string& detail) {
  sim::Violation v;
  v.invariant = invariant;
  v.time = ev.time;
  v.event = ev_name(ev.kind);
  if (ev.ctx) {
    char c[64];
    std::snprintf(c, sizeof c, " (cpu %d, %s)", ev.ctx->cpu,
                  ev.ctx->softirq ? "softirq" : ev.ctx->exclusive ? "exclusive" : "process");
    v.event += c;
  }
  v.detail = detail;
  if (ev.page != kNoPage) {
    char subj[96];
    std::snprintf(subj, sizeof subj, "page %u (pool %d)", ev.page, ev.pool);
    v.subject = subj;
    Shadow& s = sh(ev.page);
    const std::uint32_t n = std::min<std::uint32_t>(s.nrec, kHistory);
    for (std::uint32_t i = 0; i < n; ++i) {
      const Hist& h = s.hist[(s.nrec - n + i) % kHistory];
      char line[160];
      std::snprintf(line, sizeof line, "t=%.6f us  %-20s -> %-11s cpu %d%s off %u", sim::to_us(h.t), ev_name(h.ev),
                    sname(h.to), h.ctx >> 1, (h.ctx & 1) ? " softirq" : "", h.offset);
      v.history.push_back(line);
    }
  } else {
    v.subject = "pool " + std::to_string(ev.pool);
  }
  if (verdicts_.report(std::move(v)) && !stop_) {
    stop_ = true;
    if (on_stop) on_stop();
  }
}

[[gnu::always_inline]] inline bool PageChecker::napi_context(const PoolShadow& ps, const PageEvent& ev, const PageWorld& world) const {
  if (!ev.ctx) return false;
  if (ev.ctx->exclusive) return true;
  if (ev.ctx->hardirq) return false;
  if (!ev.ctx->softirq && !ev.ctx->bh_disabled) return false;
  // PREEMPT_RT: a BH-disabled section runs preemptibly, so the NAPI poll can interrupt it in the
  // middle of a cache operation; only the softirq itself owns the cache.
  if (world.preempt_rt() && !ev.ctx->softirq) return false;
  if (ps.cpuid == ev.ctx->cpu) return true;
  if (ps.owner_napi && *ps.owner_napi == ev.ctx->cpu) return true;
  return ps.napi_owner && *ps.napi_owner == ev.ctx->cpu;
}

// page_pool_napi_local() as the checker sees the pool's links: may this free recycle directly?
[[gnu::always_inline]] inline bool PageChecker::napi_local(const PoolShadow& ps, const PageEvent& ev, const PageWorld& world) const {
  if (!ev.ctx || ev.ctx->hardirq || world.preempt_rt()) return false;
  if (!ev.ctx->softirq && !ev.ctx->bh_disabled) return false;
  if (ps.cpuid == ev.ctx->cpu) return true;
  return ps.napi_owner && *ps.napi_owner == ev.ctx->cpu;
}

[[gnu::always_inline]] inline PageChecker::Buf* PageChecker::find_holder_buf(Shadow& s, std::uint32_t offset, std::uint32_t holder) {
  // The holder's own reference first; an unnamed one (driver-built skbs, legacy callers) matches any.
  for (auto& b : s.bufs)
    if (b.offset == offset && b.holder == holder) return &b;
  for (auto& b : s.bufs)
    if (b.offset == offset && (holder == 0 || b.holder == 0)) return &b;
  return nullptr;
}

bool PageChecker::holds_pp_ref(const Shadow& s, std::uint32_t holder) const {
  if (holder == 0) return false;
  for (const auto& b : s.bufs)
    if (b.holder == holder) return true;
  return false;
}

void PageChecker::on_napi_event(const PageEvent& ev) {
  const int id = static_cast<int>(ev.value);
  NapiShadow& n = napi(id);
  switch (ev.kind) {
    case PageEv::kNapiEnable: n.enabled = true; break;
    case PageEv::kNapiDisable: n.enabled = false; break;
    case PageEv::kNapiDel:
      n.enabled = false;
      n.deleted = true;
      for (const auto& ps : pools_) {
        if (!ps.pool || ps.freed || ps.napi != id) continue;
        PageEvent e2 = ev;
        e2.pool = ps.pool->id();
        fail("napi_outlives_pool", e2,
             "NAPI " + std::to_string(id) + " freed (netif_napi_del) while the pool still points at it (p.napi)");
        if (stop_) return;
      }
      break;
    default: break;
  }
}

// recycle_efficiency: a window of packets received into the pool's buffers.
void PageChecker::count_window(PoolShadow& ps, const PageEvent& ev) {
  if (limits_.window_packets == 0) return;
  if (++ps.win_packets < limits_.window_packets) return;
  const double per_packet = static_cast<double>(ps.win_released) / static_cast<double>(ps.win_packets);
  if (ps.windows++ > 0 && per_packet > limits_.max_release_pages_per_packet) {
    char d[200];
    std::snprintf(d, sizeof d,
                  "%llu recyclable pages released over the last %llu packets (%.3f pages/packet, limit %.3f): the pool "
                  "does not recycle in a steady state the kernel recycles",
                  static_cast<unsigned long long>(ps.win_released), static_cast<unsigned long long>(ps.win_packets),
                  per_packet, limits_.max_release_pages_per_packet);
    PageEvent e2 = ev;
    e2.page = kNoPage;
    fail("recycle_efficiency", e2, d);
  }
  ps.win_packets = ps.win_released = 0;
}

void PageChecker::wrong_state(Shadow& s, const PageEvent& ev, S allowed) {
  fail("state_transition", ev, std::string("page is in ") + sname(s.s) + ", event needs it in " + sname(allowed));
}

[[gnu::always_inline]] inline PageChecker::Buf* PageChecker::find_buf(Shadow& s, std::uint32_t offset) {
  for (auto& b : s.bufs)
    if (b.offset == offset) return &b;
  return nullptr;
}

std::string PageChecker::content_names(std::uint8_t bits) {
  std::string out;
  auto add = [&](std::uint8_t bit, const char* name) {
    if (bits & bit) out += (out.empty() ? "" : " and ") + std::string(name);
  };
  add(kKernelData, "stale kernel data (never cleared)");
  add(kOtherFlow, "another flow's packet");
  add(kAppFlow, "the application's packet");
  return out.empty() ? "nothing" : out;
}

void PageChecker::with_user(Shadow& s, const PageEvent& ev, const char* what) {
  if (s.user_held)
    fail("user_page_reuse", ev, std::string(what) + " while the application holds the page");
  else if (s.user_mapped && !s.persistent)
    fail("user_page_reuse", ev, std::string(what) + " while the page is mapped into the application");
  else if (s.tlb_stale)
    fail("user_unmap_shootdown", ev, std::string(what) + " before the TLB shootdown of its unmapping completed");
}

// A packet landed in buffer `b` (device DMA or a software copy): whose bytes the page now holds.
[[gnu::always_inline]] inline void PageChecker::packet_written(Shadow& s, Buf* b, const PageEvent& ev, const Page& pg) {
  const std::uint8_t cls = packet_content(s, b, ev, pg);
  if (s.user_mapped && s.persistent && cls != kAppFlow)
    fail("user_page_foreign_data", ev, "another flow's packet was written into a page the application keeps mapped");
}

[[gnu::always_inline]] inline std::uint8_t PageChecker::packet_content(Shadow& s, Buf* b, const PageEvent& ev, const Page& pg) {
  const std::uint8_t cls = content_class(ev.flow);
  const std::uint64_t page_bytes = std::uint64_t{kPageSize} << pg.order;
  if (ev.offset == 0 && static_cast<std::uint64_t>(ev.value) >= page_bytes)
    s.content = cls;  // the whole page overwritten
  else
    s.content |= cls;
  s.last_packet = cls;
  if (b) {
    b->filled = true;
    b->accounted = false;
  }
  return cls;
}

void PageChecker::conservation_failed(const PoolShadow& ps, const PageEvent& ev) {
  const std::int64_t model = ps.pool->inflight();
  char d[160];
  std::snprintf(d, sizeof d, "hold %u - release %u = %lld, but %lld pages are in the pool's world",
                ps.pool->hold_cnt(), ps.pool->release_cnt(), static_cast<long long>(model),
                static_cast<long long>(ps.in_world));
  fail("conservation", ev, d);
}

void PageChecker::on_pool_event(PoolShadow& ps, const PageEvent& ev, const PageWorld& world) {
  switch (ev.kind) {
    case PageEv::kPoolDestroy:
      ps.destroyed = true;
      if (ev.ctx && (ev.ctx->atomic || ev.ctx->softirq || ev.ctx->hardirq))
        fail("destroy_may_sleep", ev, std::string("page_pool_destroy in ") +
                                          (ev.ctx->hardirq ? "hard interrupt" : ev.ctx->softirq ? "softirq" : "an RCU/spinlock section") +
                                          ": it takes page_pools_lock (a mutex)");
      if (ps.napi >= 0 && napi(ps.napi).deleted)
        fail("napi_outlives_pool", ev, "destroy reads p.napi, but NAPI " + std::to_string(ps.napi) + " was already freed");
      break;
    case PageEv::kDirectRecycling: {
      const int now_napi = static_cast<int>(ev.value);
      if (ps.napi >= 0 && now_napi != ps.napi) {
        const NapiShadow& n = napi(ps.napi);
        if (n.deleted)
          fail("napi_outlives_pool", ev, "the pool unlinks NAPI " + std::to_string(ps.napi) + ", which was already freed");
        else if (n.enabled)
          fail("unlink_napi_disabled", ev, "the pool is unlinked from NAPI " + std::to_string(ps.napi) +
                                               " while that NAPI is enabled and may recycle into it (napi_assert_will_not_race)");
      }
      ps.napi = now_napi;
      ps.napi_owner = now_napi >= 0 ? napi(now_napi).list_owner : nullptr;
      if (now_napi >= 0) ps.ever_napi = now_napi;
      ps.cpuid = static_cast<int>(ev.offset) - 1;
      break;
    }
    case PageEv::kUpdateNid: ps.nid = static_cast<int>(ev.value); break;
    case PageEv::kPoolUnlist:
      if (!ps.listed) fail("pool_list_consistent", ev, "page_pool_unlist of a pool that was never listed (it has no netdev)");
      ps.listed = false;
      break;
    case PageEv::kPoolReleaseTry: {
      // The retry work stops once a release it ran saw inflight <= 0 (the first try is destroy's).
      if (ps.retry_saw_nonpositive)
        fail("release_retry_stops", ev, "the deferred release ran again after a retry that saw inflight " +
                                            std::to_string(ps.in_world) + " <= 0");
      if (++ps.tries >= 2 && ps.in_world <= 0) ps.retry_saw_nonpositive = true;
      if (!ps.released_once) {
        ps.released_once = true;
        for (PageId p = 0; p < pages_.size(); ++p) {
          const Shadow& s = pages_[p];
          if (s.pool == ev.pool && s.mapped) {
            PageEvent e2 = ev;
            e2.page = p;
            fail("unmapped_at_destroy", e2,
                 std::string("page is still DMA-mapped after page_pool_release (it is in ") + sname(s.s) + ")");
            if (stop_) return;
          }
        }
      }
      break;
    }
    case PageEv::kPoolFreed:
      if (ps.in_world != 0)
        fail("inflight_zero_after_destroy", ev,
             "pool freed with " + std::to_string(ps.in_world) + " pages still in its world");
      if (ps.producers > 0)
        fail("pool_free_with_ops_in_progress", ev,
             "pool freed while " + std::to_string(ps.producers) + " producer(s) are inside its ptr_ring lock");
      ps.freed = true;
      break;
    default: break;
  }
  (void)world;
}

// The fast path. Each case mirrors its case in full_event: the same conditions for raising
// nothing, then the same updates. Whatever it does not know to pass goes to full_event before the
// first update (a tail call, so that this function saves no registers).
inline void PageChecker::observe(const PageEvent& ev, const PageWorld& world) {
  if (ev.page >= npages_ || static_cast<std::uint32_t>(ev.pool) >= npools_) return full_event(ev, world);
  PoolShadow& ps = pools_[static_cast<std::uint32_t>(ev.pool)];
  if (!ps.pool || ps.freed) return full_event(ev, world);
  // A refill in progress lets only its next ring-to-cache move through (full_event ends it).
  if (ps.refilling && !(ev.kind == PageEv::kRingConsume && ev.to == PageLoc::kAllocCache))
    return full_event(ev, world);
  // None of these events moves a page into or out of the pool's world.
  if (ps.pool->inflight() != ps.in_world) return full_event(ev, world);
  Shadow& s = pages_[ev.page];
  auto app_has_page = [&s] { return s.user_held || s.user_mapped || s.tlb_stale; };
  auto needs_sync_after = [&ps] { return ps.pool->params().dma_sync && ps.pool->params().dma_need_sync; };
  switch (ev.kind) {
    case PageEv::kCachePop:
      // alloc_in_poll can only raise for a pool whose NAPI link was cleared.
      if (s.s != S::kAllocCache || ev.to == PageLoc::kBuddy || ps.napi < 0 || !napi_context(ps, ev, world))
        return full_event(ev, world);
      --ps.cache;
      s.s = S::kOut;
      s.bufs.assign_one({0, BufLoc::kDriver});
      break;

    case PageEv::kCachePush: {
      const Page& pg = world.page(ev.page);
      if (s.s != S::kReturning || s.pfmemalloc || ps.destroyed ||
          ps.cache + 1 > static_cast<std::int64_t>(kAllocCacheSize) || !napi_context(ps, ev, world) ||
          pg.refcount != 1 || pg.pp_ref_count != 1)
        return full_event(ev, world);
      s.s = S::kAllocCache;
      if (s.direct_eligible) ++ps.d_eligible;
      s.decision = s.direct_eligible = false;
      ++ps.cache;
      break;
    }

    case PageEv::kFragCarve:
      if (!(s.s == S::kOut && s.bufs.size() == 1 && s.bufs[0].loc == BufLoc::kDriver && s.bufs[0].offset == 0) &&
          !(s.s == S::kCarving && s.bufs.empty()))
        return full_event(ev, world);
      s.bufs.clear();
      s.s = S::kCarving;
      break;

    case PageEv::kFragHandOut:
      if (s.s != S::kCarving || find_buf(s, ev.offset) || !s.bufs.has_room()) return full_event(ev, world);
      s.bufs.push_back_in_room({ev.offset, BufLoc::kDriver});
      break;

    case PageEv::kFragDrain:
      if (s.s != S::kCarving || ev.value < 0) return full_event(ev, world);
      if (ev.to == PageLoc::kCarving) {
        if (!s.bufs.empty() || s.pfmemalloc) return full_event(ev, world);
        s.needs_sync = needs_sync_after();
      } else if (ev.value == 0) {
        if (!s.bufs.empty()) return full_event(ev, world);
        s.s = S::kReturning;
        s.decision = true;
        s.direct_eligible = false;
      } else {
        if (ev.value != static_cast<std::int64_t>(s.bufs.size())) return full_event(ev, world);
        s.s = S::kOut;
      }
      break;

    // The longest case, out of line: its registers would be saved on every event.
    case PageEv::kPut: return fast_put(ev, world, s, ps);

    case PageEv::kProducerLock:
      if (ev.ctx && (ev.ctx->hardirq || (ev.value == 0 && !ev.ctx->softirq && !ev.ctx->bh_disabled)))
        return full_event(ev, world);
      ++ps.producers;
      ps.lock_variant = ev.value;
      break;

    case PageEv::kProducerUnlock:
      if (ps.lock_variant >= 0 && ev.value != ps.lock_variant) return full_event(ev, world);
      --ps.producers;
      break;

    case PageEv::kRingProduce: {
      const Page& pg = world.page(ev.page);
      // A direct_recycle_efficiency window that closes here is decided in full_event.
      if (s.s != S::kReturning || s.pfmemalloc || pg.refcount != 1 || pg.pp_ref_count != 1 ||
          (limits_.window_packets && ps.d_eligible + s.direct_eligible >= limits_.window_packets))
        return full_event(ev, world);
      s.s = S::kRing;
      ++ps.ring;
      if (s.direct_eligible) {
        ++ps.d_eligible;
        ++ps.d_missed;
      }
      s.decision = s.direct_eligible = false;
      break;
    }

    case PageEv::kRingConsume: return fast_ring_consume(ev, world, s, ps);

    case PageEv::kDmaSyncForDevice:
      if (ps.pool->params().dma_map && !s.mapped) return full_event(ev, world);
      s.needs_sync = false;
      break;

    case PageEv::kPostToNic: {
      Buf* b = find_buf(s, ev.offset);
      if (!b || b->loc != BufLoc::kDriver || app_has_page() || (ps.pool->params().dma_map && !s.mapped)) return full_event(ev, world);
      if (ev.value > 0 && s.s == S::kOut && s.bufs.size() == 1) {
        const double page_bytes = static_cast<double>(std::uint64_t{kPageSize} << world.page(ev.page).order);
        if (page_bytes >= limits_.max_pinned_per_buffer_ratio * static_cast<double>(ev.value)) return full_event(ev, world);
      }
      b->loc = BufLoc::kNicRing;
      b->filled = b->accounted = false;
      break;
    }

    case PageEv::kDmaWrite: {
      Buf* b = find_buf(s, ev.offset);
      if (!b || b->loc != BufLoc::kNicRing || s.needs_sync || app_has_page()) return full_event(ev, world);
      const Page& pg = world.page(ev.page);
      if (ps.pool->params().dma_map && (!s.mapped || pg.dma_addr == 0)) return full_event(ev, world);
      packet_content(s, b, ev, pg);
      break;
    }

    case PageEv::kToStack: {
      Buf* b = find_buf(s, ev.offset);
      if (!b || b->loc == BufLoc::kStack) return full_event(ev, world);
      // A window closes on this packet: count_window decides in full_event.
      if (limits_.window_packets && ps.win_packets + 1 >= limits_.window_packets) return full_event(ev, world);
      b->loc = BufLoc::kStack;
      b->accounted = true;
      if (ev.holder) b->holder = ev.holder;
      if (limits_.window_packets) ++ps.win_packets;
      break;
    }

    default: return full_event(ev, world);
  }
  accept(s, ev);
}

void PageChecker::on_event(const PageEvent& ev, const PageWorld& world) { observe(ev, world); }

// PageWorld's bus, here so that the checker's fast path is inlined into it (no virtual call on
// every checked event). Observers after the first are called in subscription order as before.
void PageWorld::emit(const PageEvent& ev) const {
  std::size_t i = 0;
  if (checker_first_) {
    static_cast<PageChecker*>(observers_[0])->observe(ev, *this);
    i = 1;
  }
  for (; i < observers_.size(); ++i) observers_[i]->on_event(ev, *this);
}

void PageChecker::fast_put(const PageEvent& ev, const PageWorld& world, Shadow& s, PoolShadow& ps) {
  if ((s.s != S::kOut && s.s != S::kCarving) || s.user_held || s.user_mapped || s.tlb_stale || ev.value < 0)
    return full_event(ev, world);
  Buf* b = find_holder_buf(s, ev.offset, ev.holder);
  if (!b || (b->filled && !b->accounted)) return full_event(ev, world);
  const std::int64_t left = s.bufs.size() - 1;
  if (s.s == S::kCarving ? ev.value == 0 : ev.value != left) return full_event(ev, world);
  *b = s.bufs.back();
  s.bufs.pop_back();
  if (s.s == S::kOut && ev.value == 0) {
    s.s = S::kReturning;
    s.needs_sync = ps.pool->params().dma_sync && ps.pool->params().dma_need_sync;
    s.decision = true;
    s.direct_eligible = napi_local(ps, ev, world) && ps.cache < static_cast<std::int64_t>(kAllocCacheSize);
  }
  accept(s, ev);
}

void PageChecker::fast_ring_consume(const PageEvent& ev, const PageWorld& world, Shadow& s, PoolShadow& ps) {
  if (s.s != S::kRing) return full_event(ev, world);
  if (ev.to != PageLoc::kAllocCache) {
    --ps.ring;
    s.s = S::kReturning;
    s.decision = false;
    return accept(s, ev);
  }
  const int want = ps.nid >= 0 ? ps.nid : world.node_of_cpu(ev.ctx ? ev.ctx->cpu : 0);
  if ((!ps.refilling && ps.cache > 0) || world.page(ev.page).nid != want ||
      ps.cache + 1 > static_cast<std::int64_t>(kAllocCacheSize) || !napi_context(ps, ev, world) || ps.napi < 0)
    return full_event(ev, world);
  --ps.ring;
  s.s = S::kAllocCache;
  ps.refilling = true;
  ++ps.cache;
  accept(s, ev);
}

void PageChecker::full_event(const PageEvent& ev, const PageWorld& world) {
  ++events_;
  PoolShadow* ps = ev.pool >= 0 && ev.pool < static_cast<int>(pools_.size()) && pools_[ev.pool].pool
                       ? &pools_[ev.pool]
                       : nullptr;
  if (ps && ps->freed) {
    fail("no_use_after_free", ev, "the pool was already freed (__page_pool_destroy)");
    return;
  }
  if (ev.kind == PageEv::kNapiEnable || ev.kind == PageEv::kNapiDisable || ev.kind == PageEv::kNapiDel) {
    on_napi_event(ev);
    return;
  }
  if (ev.page == kNoPage) {
    if (ps) on_pool_event(*ps, ev, world);
    return;
  }
  Shadow& s = sh(ev.page);
  const Page& pg = world.page(ev.page);
  auto cache_access = [&](const char* what) __attribute__((always_inline)) {
    if (ps && !napi_context(*ps, ev, world))
      fail("cache_napi_only", ev, std::string(what) + " outside the pool's NAPI context");
  };
  // A pool that had direct recycling, lost it, and serves its NAPI's allocations again.
  auto alloc_in_poll = [&]() __attribute__((always_inline)) {
    if (!ps || ps->napi >= 0 || ps->ever_napi < 0 || ps->destroyed || ps->lost_reported || !ev.ctx) return;
    if (!ev.ctx->softirq && !ev.ctx->bh_disabled) return;
    const NapiShadow& n = napi(ps->ever_napi);
    if (!n.list_owner || *n.list_owner != ev.ctx->cpu) return;
    ps->lost_reported = true;
    fail("direct_recycling_lost", ev, "NAPI " + std::to_string(ps->ever_napi) +
                                          " allocates from this pool again, but its direct recycling was disabled and "
                                          "never re-enabled (page_pool_enable_direct_recycling)");
  };
  auto never_recycle = [&](const char* where) __attribute__((always_inline)) {
    if (s.pfmemalloc)
      fail("never_recycle_pfmemalloc", ev, std::string("a pfmemalloc page (emergency reserves) entered the ") + where);
  };
  if (ps && ps->refilling && !(ev.kind == PageEv::kRingConsume && ev.to == PageLoc::kAllocCache)) ps->refilling = false;

  switch (ev.kind) {
    case PageEv::kHold:
      expect(s, ev, S::kBuddy);
      s.pool = ev.pool;
      s.bufs.clear();
      s.page_refs.clear();
      s.pfmemalloc = pg.pfmemalloc;  // what the allocator handed out (page_is_pfmemalloc)
      alloc_in_poll();
      s.content = kKernelData;  // whatever the allocator's previous user left in it
      s.user_held = s.user_mapped = s.persistent = s.tlb_stale = false;
      if (ps) ++ps->in_world;
      if (ev.to == PageLoc::kAllocCache) {
        s.s = S::kAllocCache;
        if (ps) ++ps->cache;
        cache_access("slow-path fill of the alloc cache");
      } else {
        s.s = S::kOut;
        s.bufs.push_back({0, BufLoc::kDriver});
      }
      break;

    case PageEv::kCachePop:
      expect(s, ev, S::kAllocCache);
      if (ps) --ps->cache;
      cache_access("alloc-cache pop");
      if (ev.to == PageLoc::kBuddy) {
        s.s = S::kReturning;
        s.decision = false;
      } else {
        alloc_in_poll();
        s.s = S::kOut;
        s.bufs.assign_one({0, BufLoc::kDriver});
      }
      break;

    case PageEv::kCachePush:
      expect(s, ev, S::kReturning);
      s.s = S::kAllocCache;
      never_recycle("alloc cache");
      if (ps && s.direct_eligible) ++ps->d_eligible;
      s.decision = s.direct_eligible = false;
      if (ps) {
        ++ps->cache;
        if (ps->destroyed) fail("no_cache_after_destroy", ev, "recycled into the alloc cache of a destroyed pool");
        if (ps->cache > static_cast<std::int64_t>(kAllocCacheSize))
          fail("cache_bound", ev, "alloc cache holds " + std::to_string(ps->cache) + " pages (limit 128)");
      }
      cache_access("direct recycle into the alloc cache");
      if (pg.refcount != 1 || pg.pp_ref_count != 1)
        fail("recycle_refcount_one", ev, "refcount " + std::to_string(pg.refcount) + ", pp_ref_count " +
                                             std::to_string(pg.pp_ref_count));
      break;

    case PageEv::kRingProduce:
      expect(s, ev, S::kReturning);
      s.s = S::kRing;
      never_recycle("ptr_ring");
      if (ps) {
        ++ps->ring;
        if (s.direct_eligible) {
          ++ps->d_eligible;
          ++ps->d_missed;
        }
        if (limits_.window_packets && ps->d_eligible >= limits_.window_packets) {
          const double ratio = static_cast<double>(ps->d_missed) / static_cast<double>(ps->d_eligible);
          if (ratio > limits_.max_direct_miss_ratio) {
            char d[220];
            std::snprintf(d, sizeof d,
                          "%llu of %llu pages freed where page_pool_napi_local() holds went to the ptr_ring with room in "
                          "the alloc cache (%.2f, limit %.2f)",
                          static_cast<unsigned long long>(ps->d_missed), static_cast<unsigned long long>(ps->d_eligible),
                          ratio, limits_.max_direct_miss_ratio);
            fail("direct_recycle_efficiency", ev, d);
          }
          ps->d_eligible = ps->d_missed = 0;
        }
      }
      s.decision = s.direct_eligible = false;
      if (pg.refcount != 1 || pg.pp_ref_count != 1)
        fail("recycle_refcount_one", ev, "refcount " + std::to_string(pg.refcount) + ", pp_ref_count " +
                                             std::to_string(pg.pp_ref_count));
      break;

    case PageEv::kRingConsume:
      expect(s, ev, S::kRing);
      if (ps) --ps->ring;
      if (ev.to == PageLoc::kAllocCache) {
        s.s = S::kAllocCache;
        if (ps) {
          // page_pool_refill_alloc_cache runs only when the cache is empty (304db6cb7610).
          if (!ps->refilling && ps->cache > 0)
            fail("refill_only_when_empty", ev, "the ring refilled an alloc cache that still holds " +
                                                   std::to_string(ps->cache) + " pages");
          ps->refilling = true;
          // Refill keeps only pages of the preferred node (44768decb7c0 moved the test here).
          const int want = ps->nid >= 0 ? ps->nid : world.node_of_cpu(ev.ctx ? ev.ctx->cpu : 0);
          if (pg.nid != want)
            fail("refill_node_local", ev, "refill put a page of node " + std::to_string(pg.nid) +
                                              " into the alloc cache; the pool's node is " + std::to_string(want));
          ++ps->cache;
          if (ps->cache > static_cast<std::int64_t>(kAllocCacheSize))
            fail("cache_bound", ev, "alloc cache holds " + std::to_string(ps->cache) + " pages (limit 128)");
        }
        cache_access("refill of the alloc cache");
        alloc_in_poll();
      } else {
        s.s = S::kReturning;
        s.decision = false;
      }
      break;

    case PageEv::kRelease:
      expect(s, ev, S::kReturning);
      // A page the kernel would have recycled: the last pp reference was dropped, the pool owns the
      // page alone, it is not from the reserves, the pool is live and its ring has room.
      if (ps && s.decision && !s.pfmemalloc && s.page_refs.empty() && !ps->destroyed &&
          ps->ring + ps->ring_batch < ps->ring_size)
        ++ps->win_released;
      s.decision = s.direct_eligible = false;
      if (s.mapped || pg.dma_addr != 0) fail("release_unmapped", ev, "page leaves the pool still DMA-mapped");
      if (s.user_mapped || s.tlb_stale || s.user_held) check_not_with_user(s, ev, "page freed to the allocator");
      if (ps) --ps->in_world;
      s.s = ev.to == PageLoc::kBuddy ? S::kBuddy : S::kDetached;
      s.pool = -1;
      s.bufs.clear();
      break;

    case PageEv::kFragCarve:
      if (s.s == S::kOut && s.bufs.size() == 1 && s.bufs[0].loc == BufLoc::kDriver && s.bufs[0].offset == 0) {
        s.bufs.clear();
      } else if (s.s == S::kCarving) {
        if (!s.bufs.empty())
          fail("frag_reuse_with_users", ev, std::to_string(s.bufs.size()) + " frags of the page are still out");
      } else {
        expect(s, ev, S::kCarving);
      }
      s.bufs.clear();
      s.s = S::kCarving;
      break;

    case PageEv::kFragHandOut:
      expect(s, ev, S::kCarving);
      if (find_buf(s, ev.offset)) fail("state_transition", ev, "frag offset handed out twice");
      s.bufs.push_back({ev.offset, BufLoc::kDriver});
      break;

    case PageEv::kFragDrain:
      expect(s, ev, S::kCarving);
      if (ev.value < 0) fail("pp_ref_count_nonneg", ev, "pp_ref_count " + std::to_string(ev.value));
      if (ev.to == PageLoc::kCarving) {
        if (!s.bufs.empty())
          fail("frag_reuse_with_users", ev, std::to_string(s.bufs.size()) + " frags of the page are still out");
        never_recycle("frag page reuse");
        s.bufs.clear();
        s.needs_sync = ps && ps->pool->params().dma_sync && ps->pool->params().dma_need_sync;
      } else if (ev.value == 0) {
        if (!s.bufs.empty())
          fail("pp_ref_count_consistent", ev, "pp_ref_count reached 0 with " + std::to_string(s.bufs.size()) +
                                                  " frags still out");
        s.s = S::kReturning;
        s.decision = true;
        s.direct_eligible = false;
      } else {
        if (ev.value != static_cast<std::int64_t>(s.bufs.size()))
          fail("pp_ref_count_consistent", ev, "pp_ref_count " + std::to_string(ev.value) + " but " +
                                                  std::to_string(s.bufs.size()) + " frags are out");
        s.s = S::kOut;
      }
      break;

    case PageEv::kPut: {
      if (s.s != S::kOut && s.s != S::kCarving) {
        fail("no_double_put", ev, std::string("put of a page that is in ") + sname(s.s));
        break;
      }
      Buf* b = find_holder_buf(s, ev.offset, ev.holder);
      if (!b) {
        if (ev.holder && std::find(s.page_refs.begin(), s.page_refs.end(), ev.holder) != s.page_refs.end())
          fail("ref_kind_match", ev, "page_pool put by holder " + std::to_string(ev.holder) +
                                         ", whose reference on the page was taken with get_page (a page reference)");
        else
          fail("no_double_put", ev, "put of frag offset " + std::to_string(ev.offset) + " that is not outstanding");
        break;
      }
      if (b->filled && !b->accounted)
        fail("rx_packet_lost", ev, "the buffer holds a received packet that was neither delivered nor counted as dropped");
      check_not_with_user(s, ev, "put back into the pool");
      *b = s.bufs.back();
      s.bufs.pop_back();
      if (ev.value < 0) {
        fail("pp_ref_count_nonneg", ev, "pp_ref_count " + std::to_string(ev.value));
        break;
      }
      if (s.s == S::kCarving) {
        if (ev.value == 0) fail("pp_ref_count_consistent", ev, "pp_ref_count reached 0 while the pool carves the page");
      } else if (ev.value != static_cast<std::int64_t>(s.bufs.size())) {
        fail("pp_ref_count_consistent", ev, "pp_ref_count " + std::to_string(ev.value) + " but " +
                                                std::to_string(s.bufs.size()) + " buffers remain out");
      } else if (ev.value == 0) {
        s.s = S::kReturning;
        s.needs_sync = ps && ps->pool->params().dma_sync && ps->pool->params().dma_need_sync;
        s.decision = true;
        s.direct_eligible = ps && napi_local(*ps, ev, world) && ps->cache < static_cast<std::int64_t>(kAllocCacheSize);
      }
      break;
    }

    case PageEv::kPpRef: {
      if (s.s != S::kOut && s.s != S::kCarving) {
        fail("state_transition", ev, std::string("pp reference taken on a page that is in ") + sname(s.s));
        break;
      }
      s.bufs.push_back({ev.offset, BufLoc::kStack, false, false, ev.holder});
      if (s.s == S::kOut && ev.value != static_cast<std::int64_t>(s.bufs.size()))
        fail("pp_ref_count_consistent", ev, "pp_ref_count " + std::to_string(ev.value) + " but " +
                                                std::to_string(s.bufs.size()) + " references are out");
      break;
    }

    case PageEv::kRefMove: {
      const auto from = static_cast<std::uint32_t>(ev.value);
      bool moved = false;
      for (auto& b : s.bufs)
        if (b.offset == ev.offset && (b.holder == from || b.holder == 0)) {
          b.holder = ev.holder;
          moved = true;
          break;
        }
      if (!moved)
        for (auto& h : s.page_refs)
          if (h == from) {
            h = ev.holder;
            moved = true;
            break;
          }
      if (!moved) fail("state_transition", ev, "reference moved from holder " + std::to_string(from) + ", which holds none");
      break;
    }

    case PageEv::kDmaMap:
      if (s.mapped) fail("state_transition", ev, "page mapped twice");
      s.mapped = true;
      s.needs_sync = ps && ps->pool->params().dma_sync && ps->pool->params().dma_need_sync;
      break;

    case PageEv::kDmaUnmap:
      if (!s.mapped) fail("state_transition", ev, "unmap of a page that is not mapped");
      if (ps && ps->released_once && s.s != S::kReturning)
        fail("unmapped_at_destroy", ev, "inflight page unmapped after the pool's release started");
      s.mapped = false;
      break;

    case PageEv::kDmaSyncForDevice:
      if (ps && ps->pool->params().dma_map && !s.mapped)
        fail("dma_sync_unmapped", ev, "dma_sync_single_for_device on a page that is no longer DMA-mapped");
      s.needs_sync = false;
      break;

    case PageEv::kProducerLock:
      if (ev.ctx && ev.ctx->hardirq)
        fail("ring_lock_variant", ev, "ptr_ring producer lock taken in hard interrupt context");
      else if (ev.value == 0 && ev.ctx && !ev.ctx->softirq && !ev.ctx->bh_disabled)
        fail("ring_lock_variant", ev, "plain spin_lock on the producer lock with bottom halves enabled (a softirq on this "
                                      "CPU that recycles into the same ring would deadlock)");
      if (ps) {
        ++ps->producers;
        ps->lock_variant = ev.value;
      }
      break;

    case PageEv::kProducerUnlock:
      if (ps) {
        if (ps->lock_variant >= 0 && ev.value != ps->lock_variant)
          fail("ring_lock_balanced", ev, std::string("producer lock taken with ") + (ps->lock_variant ? "spin_lock_bh" : "spin_lock") +
                                             " but released with " + (ev.value ? "spin_unlock_bh" : "spin_unlock") +
                                             (ps->lock_variant ? ": bottom halves stay disabled" : ""));
        --ps->producers;
      }
      break;

    case PageEv::kPostToNic: {
      Buf* b = find_buf(s, ev.offset);
      if (!b || b->loc != BufLoc::kDriver) {
        fail("state_transition", ev, "posted buffer is not held by the driver");
        break;
      }
      // page_pool_alloc_netmem gives a whole page only to a buffer larger than half of it.
      if (ev.value > 0 && s.s == S::kOut && s.bufs.size() == 1) {
        const double page_bytes = static_cast<double>(std::uint64_t{kPageSize} << pg.order);
        if (page_bytes >= limits_.max_pinned_per_buffer_ratio * static_cast<double>(ev.value))
          fail("rx_buffer_waste", ev, "a whole " + std::to_string(static_cast<long long>(page_bytes)) +
                                          "-byte page posted for a " + std::to_string(ev.value) + "-byte RX buffer");
      }
      b->loc = BufLoc::kNicRing;
      b->filled = b->accounted = false;
      check_not_with_user(s, ev, "posted to the NIC");
      if (ps && ps->pool->params().dma_map && !s.mapped)
        fail("dma_into_posted_mapped", ev, "buffer posted to the device while its page is not DMA-mapped");
      break;
    }

    case PageEv::kDmaWrite: {
      Buf* b = find_buf(s, ev.offset);
      if (!b || b->loc != BufLoc::kNicRing) {
        fail("dma_into_posted_mapped", ev, "device wrote into a buffer that is not posted on its RX ring");
        break;
      }
      if (ps && ps->pool->params().dma_map && (!s.mapped || pg.dma_addr == 0))
        fail("dma_into_posted_mapped", ev, "device wrote into an unmapped page");
      if (s.needs_sync) fail("sync_for_device", ev, "device wrote into a page not synced for the device after CPU use");
      check_not_with_user(s, ev, "device DMA into the page");
      packet_written(s, b, ev, pg);
      break;
    }

    case PageEv::kDataWrite: {
      Buf* b = find_buf(s, ev.offset);
      if (!b || b->loc != BufLoc::kDriver) {
        fail("state_transition", ev, "packet data written into a buffer the driver does not hold");
        break;
      }
      check_not_with_user(s, ev, "packet data written into the page");
      packet_written(s, b, ev, pg);
      break;
    }

    case PageEv::kCpuWrite:
      if (ps && ps->pool->params().read_only)
        fail("read_only_no_cpu_write", ev, "the CPU wrote " + std::to_string(ev.value) + " bytes at offset " +
                                               std::to_string(ev.offset) + " into a page of a read-only pool");
      s.content |= kKernelData;
      break;

    case PageEv::kRxDropCounted: {
      Buf* b = find_buf(s, ev.offset);
      if (b) b->accounted = true;
      break;
    }

    case PageEv::kUserDeliver: {
      Buf* b = find_buf(s, ev.offset);
      if (!b || b->loc != BufLoc::kStack) {
        fail("state_transition", ev, "buffer redirected to the application is not held by the receive path");
        break;
      }
      if (s.bufs.size() != 1)
        fail("user_page_exclusive", ev, "the page delivered to the application holds " + std::to_string(s.bufs.size()) +
                                            " buffers: other packets share it");
      else if (s.user_held)
        fail("user_page_reuse", ev, "page delivered to the application twice");
      s.user_held = true;
      if (ps) {
        ++ps->user_held;
        const std::uint32_t limit = ps->pool->params().user_limit;
        if (limit && ps->user_held > static_cast<std::int64_t>(limit))
          fail("user_limit", ev, std::to_string(ps->user_held) + " pages out to the application, limit " +
                                     std::to_string(limit));
      }
      if (s.user_mapped && s.persistent && (s.content & ~kAppFlow))
        fail("user_page_foreign_data", ev, "the application's mapped page holds " + content_names(s.content & ~kAppFlow));
      break;
    }

    case PageEv::kPageClear:
      s.content = s.last_packet;  // zeroed around the packet it holds
      break;

    case PageEv::kUserMap:
      if (!s.user_held) fail("user_page_reuse", ev, "page mapped into the application without being delivered to it");
      if (s.user_mapped) fail("state_transition", ev, "page mapped into the application twice");
      if (s.bufs.size() != 1)
        fail("user_page_exclusive", ev, "the mapped page holds " + std::to_string(s.bufs.size()) +
                                            " buffers: other packets share it");
      if (s.content & ~kAppFlow)
        fail("user_page_foreign_data", ev, "the page mapped into the application holds " +
                                               content_names(s.content & ~kAppFlow));
      s.user_mapped = true;
      s.persistent = ev.flow != 0;
      break;

    case PageEv::kUserUnmap:
      if (!s.user_mapped) fail("state_transition", ev, "unmap of a page that is not mapped into the application");
      s.user_mapped = s.persistent = false;
      s.tlb_stale = true;
      break;

    case PageEv::kTlbShootdown:
      s.tlb_stale = false;
      break;

    case PageEv::kUserReturn:
      if (!s.user_held) {
        fail("user_page_reuse", ev, "the application returned a page it does not hold");
        break;
      }
      s.user_held = false;
      if (ps) --ps->user_held;
      check_not_with_user(s, ev, "returned by the application");
      break;

    case PageEv::kToStack: {
      Buf* b = find_buf(s, ev.offset);
      if (!b || b->loc == BufLoc::kStack) {
        fail("state_transition", ev, "buffer handed to the stack is not held by the NIC ring or the driver");
        break;
      }
      b->loc = BufLoc::kStack;
      b->accounted = true;
      if (ev.holder) b->holder = ev.holder;
      break;
    }

    case PageEv::kGetPage: s.page_refs.push_back(ev.holder); break;
    case PageEv::kPutPage: {
      // Back to the allocator while a pool still counts the page: it left by the wrong door.
      if (ev.value == 0 && s.pool >= 0 && s.s != S::kDetached && s.s != S::kBuddy)
        fail("pp_page_door", ev, std::string("put_page freed a page of pool ") + std::to_string(s.pool) + " (it is in " +
                                     sname(s.s) + "): it went neither through page_pool_put nor through a release");
      auto it = std::find(s.page_refs.begin(), s.page_refs.end(), ev.holder);
      if (it != s.page_refs.end())
        s.page_refs.erase(it);
      else if (holds_pp_ref(s, ev.holder))
        fail("ref_kind_match", ev, "put_page by holder " + std::to_string(ev.holder) +
                                       ", whose reference on the page is a page_pool (pp) reference");
      else
        fail("state_transition", ev, "put_page without a matching get_page");
      if (s.s == S::kDetached && ev.value == 0) s.s = S::kBuddy;
      break;
    }

    default: break;
  }
  record(s, ev);
  if (ps) {
    check_conservation(*ps, ev);
    if (ev.kind == PageEv::kToStack) count_window(*ps, ev);
  }
}

void PageChecker::finish(sim::Picos now, const PageWorld& world, bool consumers_done) {
  if (!consumers_done) return;
  for (const auto& ps : pools_) {
    if (!ps.pool || !ps.destroyed || ps.freed) continue;
    PageEvent ev{PageEv::kPoolReleaseTry};
    ev.pool = ps.pool->id();
    ev.time = now;
    fail("inflight_zero_after_destroy", ev,
         "pool destroyed but never freed: inflight " + std::to_string(ps.pool->inflight()) + " after every consumer let go");
    int reported = 0;
    for (PageId p = 0; p < pages_.size() && reported < 5; ++p) {
      const Shadow& s = pages_[p];
      if (s.pool != ev.pool || s.s == S::kBuddy || s.s == S::kDetached) continue;
      PageEvent e2 = ev;
      e2.page = p;
      fail("inflight_zero_after_destroy", e2, std::string("page stranded in ") + sname(s.s));
      ++reported;
    }
  }
  (void)world;
}

}  // namespace ppsim::page_pool
