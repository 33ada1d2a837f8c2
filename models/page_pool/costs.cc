#include "models/page_pool/costs.h"

#include "sim/error.h"

namespace ppsim::page_pool {

// Cost defaults. Brouer's bench_page_pool_simple on an E5-1650v4 (6.13-rc6, lore 2025-01-07;
// shared/reference/page_pool_6.18.md §5) gives per alloc+free pair: fast path 5.4 ns (direct
// recycle), ptr_ring path 15.1 ns, slow path (page freed to the buddy allocator and allocated
// again) 66.1 ns; a bulk buddy alloc+free costs about 30.6 ns per page. ppsim splits those pairs
// into the pieces it charges separately:
//   alloc_fast + recycle_direct                         = 5.4  → 2.7 + 2.7
//   alloc_fast + refill_per_page + recycle_ring         = 15.1 → 2.7 + 1.5 + 10.9
//   alloc_fast + slow_per_page + release (+ fixed/64)   = 66.1 → 2.7 + 15.3 + 47.6 (+ 0.5)
// The split is ppsim's assumption; only the pair totals are measured.
void register_params(sim::ParamRegistry& r) {
  r.add_int("page_pool.pool_size_pages", "pages", 1024,
            "ptr_ring size (pool_size); the kernel uses 1024 when a driver passes 0", 1, 1e9);
  r.add_int("page_pool.order", "", 0, "page order of each pool page (0 = 4 KiB)", 0, 64);
  r.add_int("page_pool.nid", "", -1, "NUMA node for allocations (-1 = NUMA_NO_NODE: the allocating CPU's node)", -1, 63);
  r.add_bool("page_pool.dma_map", true, "PP_FLAG_DMA_MAP: the pool maps pages for the device");
  r.add_bool("page_pool.dma_sync", true, "PP_FLAG_DMA_SYNC_DEV: sync for the device on recycle");
  r.add_bool("page_pool.dma_need_sync", false,
             "dma_dev_need_sync(dev): false on cache-coherent x86 without swiotlb (syncs are no-ops)");
  r.add_enum("page_pool.dma_dir", "from_device", {"from_device", "bidirectional"},
             "DMA direction (bidirectional for XDP_TX)");
  r.add_int("page_pool.max_len_bytes", "bytes", 4096, "max_len: bytes synced for the device per recycle", 0, 1 << 22);
  r.add_int("page_pool.offset_bytes", "bytes", 0, "offset of the DMA area in each page (headroom)", 0, 1 << 22);
  r.add_bool("page_pool.napi_bound", true,
             "p.napi is set: frees in softirq on the CPU that owns the NAPI recycle directly into the cache");
  r.add_int("page_pool.percpu_cpu", "", -1, "page_pool_create_percpu(): pool->cpuid (-1 = none)", -1, 4095);
  r.add_int("page_pool.dma_cache_alignment_bytes", "bytes", 1,
            "dma_get_cache_alignment(): frag sizes are rounded up to it (1 on x86, 64/128 on arm64)", 1, 4096);
  r.add_int("page_pool.cacheline_bytes", "bytes", 64, "SMP_CACHE_BYTES: sets the ptr_ring consumer batch (2 lines)", 8, 4096);

  const std::string src = "Brouer bench_page_pool_simple, E5-1650v4, 6.13 (split per costs.cc)";
  r.add_float("page_pool.cost.alloc_fast_ns", "ns", 2.7, "alloc-cache pop", 0, 1e6, src);
  r.add_float("page_pool.cost.refill_per_page_ns", "ns", 1.5, "ptr_ring consume into the alloc cache, per page", 0, 1e6, src);
  r.add_float("page_pool.cost.slow_fixed_ns", "ns", 30.0, "one bulk allocation call (alloc_pages_bulk_node)", 0, 1e6,
              "ppsim assumption (amortized over 64 pages: 0.5 ns/page)");
  r.add_float("page_pool.cost.slow_per_page_ns", "ns", 15.3, "buddy allocator, per page of a bulk allocation", 0, 1e6,
              "half of 30.6 ns bulk alloc+free per page (reference §5)");
  r.add_float("page_pool.cost.dma_map_ns", "ns", 0.0,
              "dma_map_page_attrs per page (0: direct mapping without an IOMMU; tens to hundreds of ns with one)", 0, 1e6);
  r.add_float("page_pool.cost.dma_unmap_ns", "ns", 0.0, "dma_unmap_page_attrs per page", 0, 1e6);
  r.add_float("page_pool.cost.dma_sync_fixed_ns", "ns", 20.0, "one dma_sync_single_for_device call when a sync is needed", 0, 1e6,
              "ppsim assumption");
  r.add_float("page_pool.cost.dma_sync_per_byte_ps", "ps", 15.0,
              "cache maintenance per synced byte (about 1 ns per 64-byte line)", 0, 1e6, "ppsim assumption");
  r.add_float("page_pool.cost.recycle_direct_ns", "ns", 2.7, "push into the alloc cache", 0, 1e6, src);
  r.add_float("page_pool.cost.recycle_ring_ns", "ns", 10.9, "producer lock + ptr_ring produce", 0, 1e6, src);
  r.add_float("page_pool.cost.release_ns", "ns", 47.6, "page_pool_return_netmem + put_page back to the allocator", 0, 1e6, src);
  r.add_float("page_pool.cost.frag_ns", "ns", 2.0, "frag bookkeeping per frag handed out", 0, 1e6, "ppsim assumption");
  r.add_float("page_pool.cost.put_atomic_ns", "ns", 5.0, "atomic pp_ref_count decrement on a frag page", 0, 1e6,
              "ppsim assumption (uncontended lock-prefixed op)");
}

PoolParams pool_params_from(const sim::Params& p) {
  PoolParams pp;
  const std::string& f = p.file();
  auto err = [&](const char* path, const std::string& what) { return sim::ScenarioError(f, sim::json_path(path), what); };
  const auto size = p.get_int("page_pool.pool_size_pages");
  if (size > kMaxRingSize)
    throw err("page_pool.pool_size_pages", "expected at most " + std::to_string(kMaxRingSize) +
                                               " pages (the ptr_ring limit: page_pool_init would clamp it), got " +
                                               std::to_string(size));
  pp.pool_size = static_cast<std::uint32_t>(size);
  const auto order = p.get_int("page_pool.order");
  if (order > kMaxPageOrder)
    throw err("page_pool.order", "expected at most MAX_PAGE_ORDER = " + std::to_string(kMaxPageOrder) +
                                     " (page_pool_init returns -EINVAL), got " + std::to_string(order));
  pp.order = static_cast<std::uint32_t>(order);
  pp.nid = static_cast<int>(p.get_int("page_pool.nid"));
  pp.dma_map = p.get_bool("page_pool.dma_map");
  pp.dma_sync = p.get_bool("page_pool.dma_sync");
  pp.dma_need_sync = p.get_bool("page_pool.dma_need_sync");
  pp.dma_dir = p.get_string("page_pool.dma_dir") == "bidirectional" ? DmaDir::kBidirectional : DmaDir::kFromDevice;
  pp.max_len = static_cast<std::uint32_t>(p.get_int("page_pool.max_len_bytes"));
  pp.offset = static_cast<std::uint32_t>(p.get_int("page_pool.offset_bytes"));
  pp.cpuid = static_cast<int>(p.get_int("page_pool.percpu_cpu"));
  pp.dma_cache_alignment = static_cast<std::uint32_t>(p.get_int("page_pool.dma_cache_alignment_bytes"));
  pp.cacheline_bytes = static_cast<std::uint32_t>(p.get_int("page_pool.cacheline_bytes"));
  if (pp.dma_sync && !pp.dma_map)
    throw err("page_pool.dma_sync", "expected false when dma_map is false (PP_FLAG_DMA_SYNC_DEV needs PP_FLAG_DMA_MAP; "
                                    "page_pool_init returns -EINVAL)");
  if (pp.dma_sync && pp.max_len == 0)
    throw err("page_pool.max_len_bytes", "expected > 0 with dma_sync (page_pool_init returns -EINVAL)");
  if (pp.max_len + static_cast<std::uint64_t>(pp.offset) > (std::uint64_t{kPageSize} << pp.order))
    throw err("page_pool.max_len_bytes", "expected offset_bytes + max_len_bytes <= the pool's page size (" +
                                             std::to_string(kPageSize << pp.order) + " bytes)");
  return pp;
}

PoolCosts pool_costs_from(const sim::Params& p) {
  auto ns = [&](const char* path) { return sim::from_ns(p.get_double(path)); };
  PoolCosts c;
  c.alloc_fast = ns("page_pool.cost.alloc_fast_ns");
  c.refill_per_page = ns("page_pool.cost.refill_per_page_ns");
  c.slow_fixed = ns("page_pool.cost.slow_fixed_ns");
  c.slow_per_page = ns("page_pool.cost.slow_per_page_ns");
  c.dma_map = ns("page_pool.cost.dma_map_ns");
  c.dma_unmap = ns("page_pool.cost.dma_unmap_ns");
  c.dma_sync_fixed = ns("page_pool.cost.dma_sync_fixed_ns");
  c.dma_sync_per_byte_ps = p.get_double("page_pool.cost.dma_sync_per_byte_ps");
  c.recycle_direct = ns("page_pool.cost.recycle_direct_ns");
  c.recycle_ring = ns("page_pool.cost.recycle_ring_ns");
  c.release = ns("page_pool.cost.release_ns");
  c.frag = ns("page_pool.cost.frag_ns");
  c.put_atomic = ns("page_pool.cost.put_atomic_ns");
  return c;
}

}  // namespace ppsim::page_pool
