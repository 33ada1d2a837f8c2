#include "sim/cost/cpu_topology.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "sim/error.h"
#include "sim/json_reader.h"

namespace ppsim::cost {
namespace fs = std::filesystem;

const char* distance_name(Distance d) {
  switch (d) {
    case Distance::kLocal: return "local";
    case Distance::kSmt: return "smt";
    case Distance::kDomain: return "domain";
    case Distance::kSocket: return "socket";
    case Distance::kRemote: return "remote";
  }
  return "?";
}

CpuTopology::CpuTopology(const std::vector<CpuPlace>& cpus, std::string source) : source_(std::move(source)) {
  if (cpus.empty()) throw std::invalid_argument("topology: expected at least one CPU");
  if (cpus.size() > static_cast<std::size_t>(kMaxCpus))
    throw std::invalid_argument("topology: expected at most " + std::to_string(kMaxCpus) + " CPUs, got " +
                                std::to_string(cpus.size()));
  places_.resize(cpus.size());
  std::vector<bool> seen(cpus.size(), false);
  for (const auto& c : cpus) {
    if (c.cpu < 0 || c.cpu >= static_cast<int>(cpus.size()) || seen[c.cpu])
      throw std::invalid_argument("topology: CPU numbers must be 0.." + std::to_string(cpus.size() - 1) +
                                  " with no repeats, got " + std::to_string(c.cpu));
    if (c.core < 0 || c.domain < 0 || c.node < 0 || c.socket < 0)
      throw std::invalid_argument("topology: cpu " + std::to_string(c.cpu) + " has a negative id");
    seen[c.cpu] = true;
    places_[c.cpu] = c;
  }
  // Each level must nest in the one above it; keep one vertex per (kind, id).
  std::map<int, int> core_dom, dom_node, node_sock;
  auto nest = [](std::map<int, int>& m, int child, int parent, const char* what, int cpu) {
    auto [it, fresh] = m.emplace(child, parent);
    if (!fresh && it->second != parent)
      throw std::invalid_argument(std::string("topology: cpu ") + std::to_string(cpu) + ": " + what + " " +
                                  std::to_string(child) + " is in two different parents (" +
                                  std::to_string(it->second) + " and " + std::to_string(parent) + ")");
  };
  for (const auto& c : places_) {
    nest(core_dom, c.core, c.domain, "core", c.cpu);
    nest(dom_node, c.domain, c.node, "cache domain", c.cpu);
    nest(node_sock, c.node, c.socket, "node", c.cpu);
  }
  using V = Graph::vertex_descriptor;
  const V root = boost::add_vertex(Vertex{Kind::kMachine, 0}, g_);
  std::map<std::pair<Kind, int>, V> vid;
  auto get = [&](Kind k, int id, V parent) {
    auto it = vid.find({k, id});
    if (it != vid.end()) return it->second;
    const V v = boost::add_vertex(Vertex{k, id}, g_);
    boost::add_edge(parent, v, g_);
    vid[{k, id}] = v;
    return v;
  };
  std::vector<V> cpu_v(places_.size());
  for (const auto& c : places_) {
    const V s = get(Kind::kSocket, c.socket, root);
    const V n = get(Kind::kNode, c.node, s);
    const V d = get(Kind::kDomain, c.domain, n);
    const V k = get(Kind::kCore, c.core, d);
    cpu_v[c.cpu] = get(Kind::kCpu, c.cpu, k);
  }
  std::set<int> socket_set;
  for (const auto& kv : node_sock) socket_set.insert(kv.second);
  sockets_ = static_cast<int>(socket_set.size());
  nodes_ = static_cast<int>(node_sock.size());
  domains_ = static_cast<int>(dom_node.size());

  // Distance = level of the lowest common ancestor, found by walking parents in the graph.
  auto ancestors = [&](V v) {
    std::vector<V> up{v};
    while (boost::in_degree(v, g_) > 0) {
      v = boost::source(*boost::in_edges(v, g_).first, g_);
      up.push_back(v);
    }
    return up;  // cpu, core, domain, node, socket, machine
  };
  const int n = static_cast<int>(places_.size());
  std::vector<std::vector<V>> up(n);
  for (int i = 0; i < n; ++i) up[i] = ancestors(cpu_v[i]);
  dist_.assign(static_cast<std::size_t>(n) * n, 0);
  for (int a = 0; a < n; ++a)
    for (int b = 0; b < n; ++b) {
      Distance d = Distance::kRemote;
      if (up[a][0] == up[b][0]) d = Distance::kLocal;
      else if (up[a][1] == up[b][1]) d = Distance::kSmt;
      else if (up[a][2] == up[b][2]) d = Distance::kDomain;
      else if (up[a][4] == up[b][4]) d = Distance::kSocket;  // same socket (any node of it)
      dist_[static_cast<std::size_t>(a) * n + b] = static_cast<std::uint8_t>(d);
    }
}

const CpuPlace& CpuTopology::place(int cpu) const {
  if (!has_cpu(cpu))
    throw std::out_of_range("cpu " + std::to_string(cpu) + " is outside the topology (0.." +
                            std::to_string(cpus() - 1) + ")");
  return places_[cpu];
}

Distance CpuTopology::distance(int a, int b) const {
  place(a);
  place(b);
  return static_cast<Distance>(dist_[static_cast<std::size_t>(a) * cpus() + b]);
}

bool CpuTopology::has_distance(Distance d) const {
  for (auto x : dist_)
    if (x == static_cast<std::uint8_t>(d)) return true;
  return false;
}

int CpuTopology::first_cpu_of_domain(int domain) const {
  for (const auto& c : places_)
    if (c.domain == domain) return c.cpu;
  return -1;
}

nlohmann::json CpuTopology::to_json() const {
  nlohmann::json cpus = nlohmann::json::array();
  for (const auto& c : places_) {
    nlohmann::json j = {{"cpu", c.cpu}, {"core", c.core}, {"domain", c.domain}, {"node", c.node}, {"socket", c.socket}};
    if (c.os_cpu >= 0) j["os_cpu"] = c.os_cpu;
    cpus.push_back(j);
  }
  nlohmann::json out = {{"cpus", cpus}};
  if (!source_.empty()) out["source"] = source_;
  return out;
}

// ---------------------------------------------------------------------------------------------
// From a profile

namespace {

int get_count(const nlohmann::json& j, const char* key, const std::string& file, const std::string& path, int def) {
  if (!j.contains(key)) return def;
  const auto& v = j.at(key);
  if (!v.is_number_integer() || v.get<long long>() < 1 || v.get<long long>() > kMaxCpus)
    throw sim::ScenarioError(file, path + "." + key, "expected an integer from 1 to " + std::to_string(kMaxCpus) +
                                                         ", got " + sim::json_brief(v));
  return v.get<int>();
}

}  // namespace

CpuTopology CpuTopology::from_json(const nlohmann::json& j, const std::string& file, const std::string& path) {
  if (!j.is_object()) throw sim::ScenarioError(file, path, "expected an object, got " + sim::json_brief(j));
  const std::string source =
      sim::optional_string(j, "source", file, path, "profile", " naming where the topology came from");
  std::vector<CpuPlace> places;
  if (j.contains("cpus")) {
    for (auto it = j.begin(); it != j.end(); ++it)
      if (it.key() != "cpus" && it.key() != "source")
        throw sim::ScenarioError(file, path + "." + it.key(),
                                 "unknown key \"" + it.key() + "\" (an explicit topology has only \"cpus\" and \"source\")");
    const auto& arr = j.at("cpus");
    if (!arr.is_array() || arr.empty())
      throw sim::ScenarioError(file, path + ".cpus", "expected a non-empty array of {cpu, core, domain, node, socket}");
    for (std::size_t i = 0; i < arr.size(); ++i) {
      const std::string p = path + ".cpus[" + std::to_string(i) + "]";
      const auto& e = arr[i];
      if (!e.is_object()) throw sim::ScenarioError(file, p, "expected an object {cpu, core, domain, node, socket}");
      CpuPlace c;
      for (auto it = e.begin(); it != e.end(); ++it) {
        const std::string& k = it.key();
        int* dst = k == "cpu" ? &c.cpu : k == "core" ? &c.core : k == "domain" ? &c.domain : k == "node" ? &c.node
                 : k == "socket" ? &c.socket : k == "os_cpu" ? &c.os_cpu : nullptr;
        if (!dst) throw sim::ScenarioError(file, p + "." + k, "unknown key \"" + k + "\" (expected cpu, core, domain, node, socket, os_cpu)");
        if (!it.value().is_number_integer() || it.value().get<long long>() < (k == "os_cpu" ? -1 : 0) ||
            it.value().get<long long>() > 1000000)
          throw sim::ScenarioError(file, p + "." + k, "expected a non-negative integer, got " + sim::json_brief(it.value()));
        *dst = it.value().get<int>();
      }
      for (const char* k : {"cpu", "core", "domain"})
        if (!e.contains(k)) throw sim::ScenarioError(file, p, std::string("missing \"") + k + "\"");
      places.push_back(c);
    }
    try {
      return CpuTopology(places, source);
    } catch (const std::invalid_argument& e) {
      throw sim::ScenarioError(file, path + ".cpus", e.what());
    }
  }
  static const char* keys[] = {"sockets", "nodes_per_socket", "domains_per_node", "cores_per_domain", "threads_per_core", "source"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find_if(std::begin(keys), std::end(keys), [&](const char* k) { return it.key() == k; }) == std::end(keys))
      throw sim::ScenarioError(file, path + "." + it.key(),
                               "unknown key \"" + it.key() +
                                   "\" (expected sockets, nodes_per_socket, domains_per_node, cores_per_domain, "
                                   "threads_per_core, or an explicit \"cpus\" list)");
  const int sockets = get_count(j, "sockets", file, path, 1);
  const int nps = get_count(j, "nodes_per_socket", file, path, 1);
  const int dpn = get_count(j, "domains_per_node", file, path, 1);
  const int cpd = get_count(j, "cores_per_domain", file, path, 1);
  const int tpc = get_count(j, "threads_per_core", file, path, 1);
  const long long ncores = 1LL * sockets * nps * dpn * cpd;
  if (ncores * tpc > kMaxCpus)
    throw sim::ScenarioError(file, path, "expected at most " + std::to_string(kMaxCpus) + " CPUs in all, got " +
                                             std::to_string(ncores * tpc));
  // Core-major numbering as Linux does on x86: CPU k and k+ncores are SMT siblings.
  for (int t = 0; t < tpc; ++t)
    for (int core = 0; core < ncores; ++core) {
      CpuPlace c;
      c.cpu = static_cast<int>(t * ncores + core);
      c.core = core;
      c.domain = core / cpd;
      c.node = c.domain / dpn;
      c.socket = c.node / nps;
      places.push_back(c);
    }
  return CpuTopology(places, source);
}

// ---------------------------------------------------------------------------------------------
// From the host

namespace {

bool read_text(const fs::path& p, std::string* out) {
  std::ifstream in(p);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  while (!out->empty() && (out->back() == '\n' || out->back() == ' ')) out->pop_back();
  return true;
}

// One sysfs number (core_id, physical_package_id, a cache level), or runtime_error naming the file.
int sysfs_int(const fs::path& p, const std::string& text) {
  std::size_t used = 0;
  int v = -1;
  try {
    v = std::stoi(text, &used, 10);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < 0)
    throw std::runtime_error(p.string() + ": expected a non-negative integer, got \"" + sim::printable(text.substr(0, 40)) + "\"");
  return v;
}

std::vector<int> sysfs_cpu_list(const fs::path& p, const std::string& text) {
  try {
    return parse_cpu_list(text);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(p.string() + ": " + e.what());
  }
}

}  // namespace

std::vector<int> parse_cpu_list(const std::string& s) {
  std::vector<int> out;
  const auto bad = [&](const std::string& why) {
    return std::invalid_argument("expected a CPU list such as 0-3,8 (CPUs 0.." + std::to_string(kMaxCpuNumber) + "), " +
                                 why + ": \"" + sim::printable(s.substr(0, 60)) + "\"");
  };
  // A number of at most 5 digits at s[i]; advances i.
  const auto number = [&](std::size_t& i) {
    const std::size_t start = i;
    long v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (i - start >= 5) throw bad("a number too large");
      v = v * 10 + (s[i++] - '0');
    }
    if (i == start) throw bad("a number missing");
    if (v > kMaxCpuNumber) throw bad("a number too large");
    return static_cast<int>(v);
  };
  std::size_t end = s.size();
  while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == ' ')) --end;
  std::size_t i = 0;
  while (i < end) {
    const int a = number(i);
    int b = a;
    if (i < end && s[i] == '-') {
      ++i;
      b = number(i);
      if (b < a) throw bad("a range that runs backwards");
    }
    for (int c = a; c <= b; ++c) out.push_back(c);
    if (i < end) {
      if (s[i] != ',') throw bad("a stray character");
      if (++i == end) throw bad("a trailing comma");
    }
  }
  return out;
}

CpuTopology CpuTopology::from_host(const std::string& root) {
  const fs::path cpu_dir = fs::path(root) / "cpu";
  std::string text;
  std::vector<int> online;
  if (read_text(cpu_dir / "online", &text)) online = sysfs_cpu_list(cpu_dir / "online", text);
  if (online.empty()) throw std::runtime_error("cannot read the online CPUs from " + (cpu_dir / "online").string());
  if (online.size() > static_cast<std::size_t>(kMaxCpus))
    throw std::runtime_error("the host has " + std::to_string(online.size()) + " CPUs; the model handles at most " +
                             std::to_string(kMaxCpus));
  std::map<int, int> node_of;  // os cpu → node
  if (fs::is_directory(fs::path(root) / "node")) {
    for (const auto& e : fs::directory_iterator(fs::path(root) / "node")) {
      const std::string name = e.path().filename().string();
      if (name.rfind("node", 0) != 0 || name.size() <= 4 || !std::isdigit(static_cast<unsigned char>(name[4]))) continue;
      if (read_text(e.path() / "cpulist", &text))
        for (int c : sysfs_cpu_list(e.path() / "cpulist", text)) node_of[c] = sysfs_int(e.path(), name.substr(4));
    }
  }
  bool cache_known = true;
  std::map<std::pair<int, int>, int> core_ids;  // (package, core_id) → dense core
  // (lowest CPU sharing the LLC, node) → dense domain: an LLC that spans NUMA nodes (Intel SNC)
  // is split per node so that the levels nest.
  std::map<std::pair<int, int>, int> domain_ids;
  std::map<int, int> socket_ids, node_ids;
  std::vector<CpuPlace> places;
  for (std::size_t i = 0; i < online.size(); ++i) {
    const int os = online[i];
    const fs::path topo = cpu_dir / ("cpu" + std::to_string(os)) / "topology";
    int pkg = 0, core = os;
    // physical_package_id is -1 on some platforms without package information: one package.
    if (read_text(topo / "physical_package_id", &text)) pkg = text == "-1" ? 0 : sysfs_int(topo / "physical_package_id", text);
    if (read_text(topo / "core_id", &text)) core = sysfs_int(topo / "core_id", text);
    // The highest-level unified cache names the CPUs this one shares its LLC with.
    int best_level = -1, llc_key = -1;
    const fs::path cache = cpu_dir / ("cpu" + std::to_string(os)) / "cache";
    if (fs::is_directory(cache)) {
      for (const auto& e : fs::directory_iterator(cache)) {
        if (e.path().filename().string().rfind("index", 0) != 0) continue;
        std::string level, type, shared;
        if (!read_text(e.path() / "level", &level) || !read_text(e.path() / "type", &type) ||
            !read_text(e.path() / "shared_cpu_list", &shared))
          continue;
        if (type != "Unified") continue;
        const int lv = sysfs_int(e.path() / "level", level);
        const auto list = sysfs_cpu_list(e.path() / "shared_cpu_list", shared);
        if (lv > best_level && !list.empty()) {
          best_level = lv;
          llc_key = *std::min_element(list.begin(), list.end());
        }
      }
    }
    if (llc_key < 0) {
      cache_known = false;
      llc_key = -1 - pkg;  // assumption: one cache domain per package
    }
    const int node = node_of.count(os) ? node_of[os] : 0;
    CpuPlace c;
    c.cpu = static_cast<int>(i);
    c.os_cpu = os;
    c.core = core_ids.emplace(std::make_pair(pkg, core), static_cast<int>(core_ids.size())).first->second;
    c.domain = domain_ids.emplace(std::make_pair(llc_key, node), static_cast<int>(domain_ids.size())).first->second;
    c.socket = socket_ids.emplace(pkg, static_cast<int>(socket_ids.size())).first->second;
    c.node = node_ids.emplace(node, static_cast<int>(node_ids.size())).first->second;
    places.push_back(c);
  }
  std::string src = "host sysfs (" + root + ")";
  if (!cache_known) src += "; no cache information in sysfs: assumed one cache domain per socket";
  return CpuTopology(places, src);
}

}  // namespace ppsim::cost
