#include "sim/cost/coherence.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "sim/error.h"
#include "sim/json_reader.h"

namespace ppsim::cost {

const char* line_type_name(LineType t) {
  switch (t) {
    case LineType::kStructPage: return "struct_page";
    case LineType::kPtrRingProducer: return "ptr_ring_producer";
    case LineType::kPtrRingConsumer: return "ptr_ring_consumer";
    case LineType::kPtrRingSlot: return "ptr_ring_slot";
    case LineType::kAllocCache: return "alloc_cache";
    case LineType::kPoolStats: return "pool_stats";
    case LineType::kNicDesc: return "nic_desc";
    case LineType::kDriverRingIndex: return "driver_ring_index";
    case LineType::kSocketQueue: return "socket_queue";
    case LineType::kSkbDeferList: return "skb_defer_list";
    case LineType::kPacketData: return "packet_data";
  }
  return "?";
}

const char* access_name(Access a) {
  switch (a) {
    case Access::kRead: return "read";
    case Access::kWrite: return "write";
    case Access::kAtomic: return "atomic";
  }
  return "?";
}

std::uint64_t LineStats::transfer_count() const {
  std::uint64_t n = 0;
  for (auto t : transfers) n += t;
  return n;
}

void LineStats::add(const LineStats& o) {
  accesses += o.accesses;
  hits += o.hits;
  for (int i = 0; i < kDistances; ++i) transfers[i] += o.transfers[i];
  invalidations += o.invalidations;
  dma_invalidations += o.dma_invalidations;
  llc_fills += o.llc_fills;
  dram_fills += o.dram_fills;
  device_writes += o.device_writes;
  atomics += o.atomics;
  ns += o.ns;
}

// ---------------------------------------------------------------------------------------------
// Profile

namespace {

using nlohmann::json;

const char* const kTransferKeys[kDistances] = {nullptr, "transfer_smt", "transfer_domain", "transfer_socket",
                                               "transfer_remote"};
const char* const kBaseKeys[] = {"alloc_fast",   "recycle_direct", "refill_per_page", "recycle_ring",
                                 "release",      "slow_per_page",  "queue_enqueue",   "queue_dequeue",
                                 "page_ref_read"};

double nonneg(const json& v, const std::string& file, const std::string& path) {
  if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0)
    throw sim::ScenarioError(file, path, "expected a number >= 0 (ns), got " + sim::json_brief(v));
  return v.get<double>();
}

}  // namespace

MachineProfile MachineProfile::from_json(const json& j, const std::string& file) {
  if (!j.is_object()) throw sim::ScenarioError(file, "$", "expected a machine profile object, got " + sim::json_brief(j));
  MachineProfile p;
  p.file = file;
  static const char* top_keys[] = {"name", "description", "topology", "latency_ns", "transfer_matrix_ns",
                                   "ddio", "base_ns", "sources", "measurements", "zerocopy"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find_if(std::begin(top_keys), std::end(top_keys), [&](const char* k) { return it.key() == k; }) ==
        std::end(top_keys))
      throw sim::ScenarioError(file, "$." + it.key(),
                               "unknown key \"" + it.key() +
                                   "\" (a machine profile has name, description, topology, latency_ns, "
                                   "transfer_matrix_ns, ddio, base_ns, sources, measurements, zerocopy)");
  auto str = [&](const char* k) { return sim::optional_string(j, k, file, "$"); };
  p.name = str("name");
  p.description = str("description");
  if (!j.contains("topology")) throw sim::ScenarioError(file, "$.topology", "missing: the machine's CPU topology");
  p.topology = CpuTopology::from_json(j.at("topology"), file, "$.topology");

  if (!j.contains("latency_ns") || !j.at("latency_ns").is_object())
    throw sim::ScenarioError(file, "$.latency_ns", "expected an object of latencies in ns (transfer_*, llc_hit, dram, ...)");
  const json& lat = j.at("latency_ns");
  for (auto it = lat.begin(); it != lat.end(); ++it) {
    const std::string& k = it.key();
    bool known = k == "llc_hit" || k == "dram" || k == "dram_remote" || k == "atomic" || k == "store_miss" ||
                 k == "stream_line";
    for (int d = 1; d < kDistances; ++d) known = known || k == kTransferKeys[d];
    if (!known)
      throw sim::ScenarioError(file, "$.latency_ns." + k,
                               "unknown key \"" + k + "\" (expected transfer_smt, transfer_domain, transfer_socket, "
                                                      "transfer_remote, llc_hit, dram, dram_remote, atomic, store_miss, stream_line)");
    nonneg(it.value(), file, "$.latency_ns." + k);
  }
  p.transfer_ns.fill(std::numeric_limits<double>::quiet_NaN());
  p.transfer_ns[0] = 0;
  for (int d = 1; d < kDistances; ++d) {
    if (lat.contains(kTransferKeys[d])) {
      p.transfer_ns[d] = lat.at(kTransferKeys[d]).get<double>();
    } else if (p.topology.has_distance(static_cast<Distance>(d))) {
      throw sim::ScenarioError(file, std::string("$.latency_ns.") + kTransferKeys[d],
                               std::string("missing: the topology has CPU pairs at distance \"") +
                                   distance_name(static_cast<Distance>(d)) + "\"");
    }
  }
  auto need = [&](const char* k) {
    if (!lat.contains(k)) throw sim::ScenarioError(file, std::string("$.latency_ns.") + k, "missing (ns)");
    return lat.at(k).get<double>();
  };
  p.llc_hit_ns = need("llc_hit");
  p.dram_ns = need("dram");
  if (p.topology.sockets() > 1 || p.topology.nodes() > 1)
    p.dram_remote_ns = need("dram_remote");
  else
    p.dram_remote_ns = lat.value("dram_remote", p.dram_ns);
  p.atomic_ns = lat.value("atomic", 0.0);
  p.store_miss_ns = lat.value("store_miss", -1.0);
  p.stream_line_ns = lat.value("stream_line", -1.0);

  if (j.contains("transfer_matrix_ns")) {
    const json& m = j.at("transfer_matrix_ns");
    const int n = p.topology.cpus();
    if (!m.is_array() || static_cast<int>(m.size()) != n)
      throw sim::ScenarioError(file, "$.transfer_matrix_ns", "expected " + std::to_string(n) + " rows (one per CPU)");
    for (int a = 0; a < n; ++a) {
      const std::string row = "$.transfer_matrix_ns[" + std::to_string(a) + "]";
      if (!m[a].is_array() || static_cast<int>(m[a].size()) != n)
        throw sim::ScenarioError(file, row, "expected " + std::to_string(n) + " values (ns)");
      std::vector<double> r;
      for (int b = 0; b < n; ++b) {
        // null: not measured (falls back to the class value)
        if (m[a][b].is_null()) {
          r.push_back(std::numeric_limits<double>::quiet_NaN());
          continue;
        }
        r.push_back(nonneg(m[a][b], file, row + "[" + std::to_string(b) + "]"));
      }
      p.transfer_matrix_ns.push_back(r);
    }
  }
  if (j.contains("ddio")) {
    const json& d = j.at("ddio");
    if (!d.is_object()) throw sim::ScenarioError(file, "$.ddio", "expected {\"enabled\": bool, \"nic_domain\": int}");
    for (auto it = d.begin(); it != d.end(); ++it) {
      if (it.key() == "enabled") {
        if (!it.value().is_boolean()) throw sim::ScenarioError(file, "$.ddio.enabled", "expected true or false, got " + sim::json_brief(it.value()));
        p.ddio = it.value().get<bool>();
      } else if (it.key() == "nic_domain") {
        // Range-checked before the narrowing: 2^32 must not turn into domain 0.
        if (!it.value().is_number_integer() || it.value().get<std::int64_t>() < 0 ||
            it.value().get<std::int64_t>() >= kMaxCpus)
          throw sim::ScenarioError(file, "$.ddio.nic_domain",
                                   "expected an integer from 0 to " + std::to_string(kMaxCpus - 1) + ", got " + sim::json_brief(it.value()));
        p.nic_domain = it.value().get<int>();
      } else {
        throw sim::ScenarioError(file, "$.ddio." + it.key(), "unknown key \"" + it.key() + "\" (expected enabled, nic_domain)");
      }
    }
    if (p.topology.first_cpu_of_domain(p.nic_domain) < 0)
      throw sim::ScenarioError(file, "$.ddio.nic_domain", "expected a cache domain of the topology (0.." +
                                                             std::to_string(p.topology.domains() - 1) + "), got " +
                                                             std::to_string(p.nic_domain));
  }
  if (j.contains("base_ns")) {
    const json& b = j.at("base_ns");
    if (!b.is_object()) throw sim::ScenarioError(file, "$.base_ns", "expected an object of base costs in ns");
    for (auto it = b.begin(); it != b.end(); ++it) {
      if (std::find_if(std::begin(kBaseKeys), std::end(kBaseKeys), [&](const char* k) { return it.key() == k; }) ==
          std::end(kBaseKeys))
        throw sim::ScenarioError(file, "$.base_ns." + it.key(),
                                 "unknown key \"" + it.key() +
                                     "\" (expected alloc_fast, recycle_direct, refill_per_page, recycle_ring, release, "
                                     "slow_per_page, queue_enqueue, queue_dequeue, page_ref_read)");
      p.base_ns[it.key()] = nonneg(it.value(), file, "$.base_ns." + it.key());
    }
  }
  if (j.contains("sources")) {
    if (!j.at("sources").is_object()) throw sim::ScenarioError(file, "$.sources", "expected an object {figure: source}");
    p.sources = j.at("sources");
  }
  if (j.contains("measurements")) p.extra = j.at("measurements");
  return p;
}

MachineProfile MachineProfile::load(const std::string& path) { return from_json(sim::load_json_file(path), path); }

json MachineProfile::to_json() const {
  json lat = json::object();
  for (int d = 1; d < kDistances; ++d)
    if (!std::isnan(transfer_ns[d])) lat[kTransferKeys[d]] = transfer_ns[d];
  lat["llc_hit"] = llc_hit_ns;
  lat["dram"] = dram_ns;
  lat["dram_remote"] = dram_remote_ns;
  lat["atomic"] = atomic_ns;
  if (store_miss_ns >= 0) lat["store_miss"] = store_miss_ns;
  if (stream_line_ns >= 0) lat["stream_line"] = stream_line_ns;
  json out = {{"name", name}, {"description", description}, {"topology", topology.to_json()}, {"latency_ns", lat},
              {"ddio", {{"enabled", ddio}, {"nic_domain", nic_domain}}},
              {"sources", sources}};
  if (!transfer_matrix_ns.empty()) {
    json m = json::array();
    for (const auto& r : transfer_matrix_ns) {
      json row = json::array();
      for (double v : r) row.push_back(std::isnan(v) ? json(nullptr) : json(v));
      m.push_back(row);
    }
    out["transfer_matrix_ns"] = m;
  }
  if (!base_ns.empty()) out["base_ns"] = base_ns;
  if (!extra.empty()) out["measurements"] = extra;
  return out;
}

double MachineProfile::transfer(int from, int to) const {
  if (from == to) return 0;
  if (!transfer_matrix_ns.empty()) {
    const double v = transfer_matrix_ns.at(from).at(to);
    if (!std::isnan(v)) return v;
  }
  const double v = transfer_ns[static_cast<int>(topology.distance(from, to))];
  return std::isnan(v) ? 0.0 : v;
}

// ---------------------------------------------------------------------------------------------
// Model

CoherenceModel::CoherenceModel(MachineProfile profile)
    : p_(std::move(profile)),
      cpu_ns_(p_.topology.cpus(), 0.0),
      last_(static_cast<std::size_t>(p_.topology.cpus()) * kLineTypes, UINT64_MAX - 1),
      last_fill_(last_.size(), 0),
      drain_(p_.topology.cpus()) {}

void CoherenceModel::reset_stats() {
  by_type_ = {};
  std::fill(cpu_ns_.begin(), cpu_ns_.end(), 0.0);
  std::fill(drain_.begin(), drain_.end(), Drain{});
}

LineStats CoherenceModel::total() const {
  LineStats t;
  for (const auto& s : by_type_) t.add(s);
  return t;
}

double CoherenceModel::fill_from_memory(int cpu, const Line& l, LineStats& s) const {
  const CpuPlace& me = p_.topology.place(cpu);
  if (l.llc_domain >= 0) {
    if (l.llc_domain == me.domain) {
      ++s.llc_fills;
      return p_.llc_hit_ns;
    }
    // In another domain's LLC: fetched from there like a line from a CPU of that domain.
    const int src = p_.topology.first_cpu_of_domain(l.llc_domain);
    ++s.transfers[static_cast<int>(p_.topology.distance(src, cpu))];
    return std::max(p_.llc_hit_ns, p_.transfer(src, cpu));
  }
  ++s.dram_fills;
  // Home memory is node 0 (where the NIC's buffers and the pool's structures are assumed to live).
  return me.node == 0 ? p_.dram_ns : p_.dram_remote_ns;
}

double CoherenceModel::access(int cpu, LineType type, std::uint64_t index, Access a) {
  p_.topology.place(cpu);  // range check
  LineStats& s = by_type_[static_cast<int>(type)];
  Line& l = lines_[key(type, index)];
  std::uint64_t& last = last_[static_cast<std::size_t>(cpu) * kLineTypes + static_cast<int>(type)];
  const bool sequential = index == last + 1;
  std::uint8_t& last_fill = last_fill_[static_cast<std::size_t>(cpu) * kLineTypes + static_cast<int>(type)];
  const bool migratory = index == last && last_fill && l.last_cpu == cpu;
  l.last_cpu = static_cast<std::int16_t>(cpu);
  last = index;
  last_fill = 0;
  ++s.accesses;
  if (a == Access::kAtomic) ++s.atomics;
  double ns = 0;
  bool hit = false;
  if (a == Access::kRead) {
    if ((l.st == St::kM || l.st == St::kE) && l.owner == cpu) {
      hit = true;
    } else if (l.st == St::kS && l.sharers.test(cpu)) {
      hit = true;
    } else if (l.st == St::kM || l.st == St::kE) {
      const int o = l.owner;
      ns = p_.transfer(o, cpu);
      ++s.transfers[static_cast<int>(p_.topology.distance(o, cpu))];
      last_fill = 1;
      l.st = St::kS;
      l.sharers.reset();
      l.sharers.set(o);
      l.sharers.set(cpu);
      l.owner = -1;
    } else if (l.st == St::kS) {
      // Clean copy: from the nearest sharer, or the shared LLC when a sharer is in this domain.
      int best = -1;
      double best_ns = 0;
      for (int c = 0; c < p_.topology.cpus(); ++c) {
        if (!l.sharers.test(c)) continue;
        const double t = p_.transfer(c, cpu);
        if (best < 0 || t < best_ns) {
          best = c;
          best_ns = t;
        }
      }
      if (p_.topology.place(best).domain == p_.topology.place(cpu).domain) best_ns = std::min(best_ns, p_.llc_hit_ns);
      ns = best_ns;
      ++s.transfers[static_cast<int>(p_.topology.distance(best, cpu))];
      l.sharers.set(cpu);
    } else {
      ns = fill_from_memory(cpu, l, s);
      l.st = St::kE;
      l.owner = static_cast<std::int16_t>(cpu);
      l.sharers.reset();
    }
    if (sequential && p_.stream_line_ns >= 0) ns = std::min(ns, p_.stream_line_ns);
  } else {
    if ((l.st == St::kM || l.st == St::kE) && l.owner == cpu) {
      hit = true;
    } else if (l.st == St::kM || l.st == St::kE) {
      const int o = l.owner;
      ns = p_.transfer(o, cpu);
      ++s.transfers[static_cast<int>(p_.topology.distance(o, cpu))];
      ++s.invalidations;
      l.sharers.reset();
    } else if (l.st == St::kS) {
      const bool have = l.sharers.test(cpu);
      double far = 0, near = -1;
      int far_c = -1, near_c = -1, others = 0;
      for (int c = 0; c < p_.topology.cpus(); ++c) {
        if (!l.sharers.test(c) || c == cpu) continue;
        ++others;
        const double t = p_.transfer(c, cpu);
        if (far_c < 0 || t > far) far = t, far_c = c;
        if (near_c < 0 || t < near) near = t, near_c = c;
      }
      if (others == 0) {
        hit = true;  // sole sharer: silent upgrade
      } else if (have && migratory) {
        s.invalidations += others;  // handed over with write permission by the read just before
      } else {
        s.invalidations += others;
        // Upgrade: wait for the farthest invalidation ack. Miss: data comes from the nearest copy
        // while the others are invalidated; the farthest ack still bounds the wait.
        ns = far;
        if (!have) ++s.transfers[static_cast<int>(p_.topology.distance(near_c, cpu))];
      }
      l.sharers.reset();
    } else {
      ns = fill_from_memory(cpu, l, s);
    }
    l.st = St::kM;
    l.owner = static_cast<std::int16_t>(cpu);
    l.llc_domain = -1;
    Drain& d = drain_[cpu];
    if (a == Access::kWrite && ns > 0 && p_.store_miss_ns >= 0) {
      if (ns > d.ns) d = Drain{ns, static_cast<int>(type)};
      ns = std::min(ns, p_.store_miss_ns);
    } else if (a == Access::kAtomic && d.ns > 0) {
      // The locked instruction waits for the store buffer to drain: the outstanding store miss
      // is paid now, on the line type that caused it.
      by_type_[d.type].ns += d.ns;
      cpu_ns_[cpu] += d.ns;
      const double drained = d.ns;
      d = Drain{};
      if (hit) ++s.hits;
      s.ns += ns;
      cpu_ns_[cpu] += ns;
      return ns + drained;
    }
  }
  if (hit) ++s.hits;
  s.ns += ns;
  cpu_ns_[cpu] += ns;
  return ns;
}

void CoherenceModel::device_write(LineType type, std::uint64_t index) {
  LineStats& s = by_type_[static_cast<int>(type)];
  Line& l = lines_[key(type, index)];
  ++s.device_writes;
  if (l.st == St::kM || l.st == St::kE) s.dma_invalidations += 1;
  if (l.st == St::kS) s.dma_invalidations += l.sharers.count();
  l.st = St::kI;
  l.owner = -1;
  l.sharers.reset();
  l.llc_domain = p_.ddio ? static_cast<std::int16_t>(p_.nic_domain) : -1;
  l.last_cpu = -1;
}

char CoherenceModel::state_of(LineType type, std::uint64_t index) const {
  auto it = lines_.find(key(type, index));
  if (it == lines_.end()) return 'I';
  switch (it->second.st) {
    case St::kM: return 'M';
    case St::kE: return 'E';
    case St::kS: return 'S';
    case St::kI: return 'I';
  }
  return '?';
}

int CoherenceModel::owner_of(LineType type, std::uint64_t index) const {
  auto it = lines_.find(key(type, index));
  return it == lines_.end() ? -1 : it->second.owner;
}

std::vector<int> CoherenceModel::sharers_of(LineType type, std::uint64_t index) const {
  std::vector<int> out;
  auto it = lines_.find(key(type, index));
  if (it == lines_.end()) return out;
  for (int c = 0; c < p_.topology.cpus(); ++c)
    if (it->second.sharers.test(c)) out.push_back(c);
  return out;
}

}  // namespace ppsim::cost
