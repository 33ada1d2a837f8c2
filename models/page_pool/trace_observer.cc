#include "models/page_pool/trace_observer.h"

#include <cinttypes>
#include <cstdio>

namespace ppsim::page_pool {

namespace {
sim::TraceCtx trace_ctx(const PageEvent& ev) {
  sim::TraceCtx t;
  if (ev.ctx) {
    t.task = ev.ctx->task;
    t.pid = ev.ctx->pid;
    t.cpu = ev.ctx->cpu;
    t.softirq = ev.ctx->softirq;
    t.bh_disabled = ev.ctx->bh_disabled;
  }
  return t;
}
}  // namespace

std::uint64_t TraceObserver::pool_ptr(int pool_id) {
  return 0x00000000a1c30000ULL + static_cast<std::uint64_t>(pool_id) * 0x1100ULL;
}

std::uint64_t TraceObserver::netmem_ptr(std::uint64_t pfn) {
  // struct page lives in vmemmap: 64 bytes per pfn; shown through a stable stand-in for the hash.
  return (0x00000000e0000000ULL + pfn * 64) & 0xffffffffffffULL;
}

void TraceObserver::add_pool(const PagePool* pool) {
  if (static_cast<int>(pools_.size()) <= pool->id()) pools_.resize(pool->id() + 1, nullptr);
  pools_[pool->id()] = pool;
}

void TraceObserver::on_event(const PageEvent& ev, const PageWorld& world) {
  char f[256];
  switch (ev.kind) {
    case PageEv::kHold: {
      const Page& pg = world.page(ev.page);
      std::snprintf(f, sizeof f, "page_pool=%016" PRIx64 " netmem=%016" PRIx64 " is_net_iov=0, pfn=0x%" PRIx64
                    " hold=%u", pool_ptr(ev.pool), netmem_ptr(pg.pfn), pg.pfn, static_cast<unsigned>(ev.value));
      out_.line(trace_ctx(ev), ev.time, "page_pool_state_hold", f);
      break;
    }
    case PageEv::kRelease: {
      const Page& pg = world.page(ev.page);
      std::snprintf(f, sizeof f, "page_pool=%016" PRIx64 " netmem=%016" PRIx64 " is_net_iov=0 pfn=0x%" PRIx64
                    " release=%u", pool_ptr(ev.pool), netmem_ptr(pg.pfn), pg.pfn, static_cast<unsigned>(ev.value));
      out_.line(trace_ctx(ev), ev.time, "page_pool_state_release", f);
      break;
    }
    case PageEv::kPoolReleaseTry: {
      const PagePool* p = ev.pool < static_cast<int>(pools_.size()) ? pools_[ev.pool] : nullptr;
      if (!p) break;
      std::snprintf(f, sizeof f, "page_pool=%016" PRIx64 " inflight=%d hold=%u release=%u cnt=%" PRIu64,
                    pool_ptr(ev.pool), static_cast<int>(ev.value), p->hold_cnt(), p->release_cnt(), p->destroy_cnt());
      out_.line(trace_ctx(ev), ev.time, "page_pool_release", f);
      break;
    }
    case PageEv::kUpdateNid: {
      const PagePool* p = ev.pool < static_cast<int>(pools_.size()) ? pools_[ev.pool] : nullptr;
      if (!p) break;
      std::snprintf(f, sizeof f, "page_pool=%016" PRIx64 " pool_nid=%d new_nid=%d", pool_ptr(ev.pool), p->params().nid,
                    static_cast<int>(ev.value));
      out_.line(trace_ctx(ev), ev.time, "page_pool_update_nid", f);
      break;
    }
    default: break;
  }
}

}  // namespace ppsim::page_pool
