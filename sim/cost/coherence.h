// Cacheline ownership: who holds each modelled hot cacheline, and what an access costs.
//
// Each line is MESI-like: Modified/Exclusive in one CPU's private caches, Shared by a set of
// CPUs, or Invalid (in memory, or — after a DDIO device write — only in one cache domain's LLC).
// An access by a CPU costs the *extra* time over a private-cache hit (the hit itself is part of
// the base cost of the code that does the access, e.g. page_pool.cost.*):
//   hit                          0
//   fill from another CPU        transfer_ns[distance(owner or nearest sharer, cpu)]
//   write to a line others share the same, to the farthest other sharer (invalidation round trip)
//   fill from the LLC / DRAM     llc_hit_ns / dram_ns (dram_remote_ns from another socket)
// Out-of-order hardware hides part of a miss:
//   - a plain store that misses retires into the store buffer: it costs min(that, store_miss_ns)
//     now, but the next atomic (a lock-prefixed RMW drains the store buffer) of the same CPU
//     waits for the slowest store miss still outstanding;
//   - a load miss on the line right after the one this CPU last took of the same type (walking a
//     ring) costs min(that, stream_line_ns): prefetch and overlapped misses;
//   - a write to the line this CPU's previous access of that type just filled by a read (read the
//     slot, then store into it) needs no separate upgrade: CPUs hand such migratory lines over
//     with write permission on the read;
//   - other loads and atomics pay in full.
// Without store_miss / stream_line in the profile nothing is hidden.
// A device write (NIC DMA) invalidates every CPU copy; with DDIO the line is allocated in the
// LLC of the NIC's cache domain, so the next CPU read there is an LLC hit instead of DRAM.
//
// The costs come from a MachineProfile: published figures (scenarios/machines/*.json) or the
// host's own, measured by `ppsim calibrate`. Pure C++, no SystemC.
#pragma once
#include <array>
#include <bitset>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "sim/cost/cpu_topology.h"

namespace ppsim::cost {

// The hot lines of the receive path (docs/coherence.md maps kernel fields to them).
enum class LineType : std::uint8_t {
  kStructPage,        // struct page: pp_ref_count, _refcount, pp, pp_magic, dma_addr (one 64 B line)
  kPtrRingProducer,   // ptr_ring: producer index + producer_lock
  kPtrRingConsumer,   // ptr_ring: consumer_head, consumer_tail (+ consumer_lock)
  kPtrRingSlot,       // ptr_ring queue[]: 8 pointers per line
  kAllocCache,        // pool->alloc: count and the cache[] array
  kPoolStats,         // hold count, release count (atomic), alloc/recycle stats, frag state
  kNicDesc,           // RX descriptors (several per line)
  kDriverRingIndex,   // driver ring indices (next_to_use / next_to_clean)
  kSocketQueue,       // socket receive queue head (lock, qlen, list) and queued-skb lines
  kSkbDeferList,      // per-CPU skb defer list (softnet_data defer_lock, defer_list, defer_count)
  kPacketData,        // packet buffer lines (headers first)
};
constexpr int kLineTypes = 11;
const char* line_type_name(LineType t);  // "struct_page", "ptr_ring_producer", ...

enum class Access : std::uint8_t { kRead, kWrite, kAtomic };
const char* access_name(Access a);

struct MachineProfile {
  std::string name, description, file;
  CpuTopology topology{std::vector<CpuPlace>{CpuPlace{}}};
  // One-way transfer of a line between two CPUs, by distance (index kLocal unused = 0).
  // A class absent from the topology may be left unset (NaN).
  std::array<double, kDistances> transfer_ns{};
  std::vector<std::vector<double>> transfer_matrix_ns;  // optional per-pair values (calibrated hosts)
  double llc_hit_ns = 0, dram_ns = 0, dram_remote_ns = 0;
  double atomic_ns = 0;              // an uncontended lock-prefixed RMW on a local line (reported; base costs include it)
  double store_miss_ns = -1;         // what a plain store miss costs the CPU at once (-1: in full)
  double stream_line_ns = -1;        // what a sequential load miss costs (-1: in full)
  bool ddio = false;
  int nic_domain = 0;                // cache domain whose LLC DDIO allocates into
  std::map<std::string, double> base_ns;  // optional calibrated base costs of the recycle ops
  nlohmann::json sources = nlohmann::json::object();  // where each figure comes from
  nlohmann::json extra = nlohmann::json::object();    // measurements kept for reports (calibrate)

  // Validates the profile format (docs/coherence.md); errors are sim::ScenarioError naming
  // `file` and the JSON path: unknown keys, negative or missing latencies, a class of distance
  // the topology needs but the profile lacks, a NIC domain outside the topology.
  static MachineProfile from_json(const nlohmann::json& j, const std::string& file);
  static MachineProfile load(const std::string& path);
  nlohmann::json to_json() const;
  // Cost of moving a line from CPU `from` to CPU `to` (matrix when given, else by class).
  double transfer(int from, int to) const;
};

struct LineStats {
  std::uint64_t accesses = 0, hits = 0;
  std::array<std::uint64_t, kDistances> transfers{};  // fills from another CPU's cache, by distance
  std::uint64_t invalidations = 0;      // copies removed from other CPUs by a write/atomic
  std::uint64_t dma_invalidations = 0;  // copies removed by a device write
  std::uint64_t llc_fills = 0, dram_fills = 0, device_writes = 0, atomics = 0;
  double ns = 0;
  std::uint64_t transfer_count() const;
  void add(const LineStats& o);
};

class CoherenceModel {
 public:
  explicit CoherenceModel(MachineProfile profile);

  // CPU `cpu` reads/writes/RMWs line (type, index). Returns the extra ns (0 on a hit) and
  // updates the line's state and the per-type and per-CPU stats. Throws std::out_of_range for a
  // CPU outside the topology.
  double access(int cpu, LineType type, std::uint64_t index, Access a);
  // The device writes the whole line (DMA): every CPU copy is invalidated.
  void device_write(LineType type, std::uint64_t index);

  const MachineProfile& profile() const { return p_; }
  const LineStats& stats(LineType t) const { return by_type_[static_cast<int>(t)]; }
  LineStats total() const;
  double cpu_ns(int cpu) const { return cpu_ns_.at(cpu); }
  std::size_t lines() const { return lines_.size(); }
  void reset_stats();

  // Inspection for tests: 'M', 'E', 'S' or 'I', the owner (M/E), sharers (S).
  char state_of(LineType type, std::uint64_t index) const;
  int owner_of(LineType type, std::uint64_t index) const;
  std::vector<int> sharers_of(LineType type, std::uint64_t index) const;

 private:
  enum class St : std::uint8_t { kI, kS, kE, kM };
  struct Line {
    St st = St::kI;
    std::int16_t owner = -1;        // M/E
    std::int16_t llc_domain = -1;   // I: the line sits in this domain's LLC (DDIO), else in DRAM
    std::int16_t last_cpu = -1;     // the CPU that touched it last (-1: the device)
    std::bitset<kMaxCpus> sharers;  // S
  };
  static std::uint64_t key(LineType t, std::uint64_t index) { return (std::uint64_t{static_cast<std::uint8_t>(t)} << 56) | index; }
  double fill_from_memory(int cpu, const Line& l, LineStats& s) const;

  MachineProfile p_;
  std::unordered_map<std::uint64_t, Line> lines_;
  std::array<LineStats, kLineTypes> by_type_{};
  std::vector<double> cpu_ns_;
  std::vector<std::uint64_t> last_;  // per (cpu, type): index of the last line accessed
  std::vector<std::uint8_t> last_fill_;  // per (cpu, type): that access was a read filled from a peer
  struct Drain {
    double ns = 0;  // slowest plain-store miss still in the store buffer
    int type = 0;
  };
  std::vector<Drain> drain_;  // per CPU
};

}  // namespace ppsim::cost
