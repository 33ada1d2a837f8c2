// The CPU topology the cacheline model needs: hardware threads, cores, shared cache domains
// (an LLC slice group: a whole Intel socket, an AMD CCX/CCD), NUMA nodes and sockets.
//
// It is a Boost.Graph tree (machine → socket → node → cache domain → core → cpu, edges "contains").
// The distance between two CPUs is the level of their lowest common ancestor:
//   kLocal (same CPU) < kSmt (same core) < kDomain (same cache domain) < kSocket (same socket,
//   other cache domain) < kRemote (other socket).
// Built from a machine profile's "topology" object or read from Linux sysfs.
#pragma once
#include <boost/graph/adjacency_list.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ppsim::cost {

enum class Distance : std::uint8_t { kLocal, kSmt, kDomain, kSocket, kRemote };
constexpr int kDistances = 5;
const char* distance_name(Distance d);  // "local", "smt", "domain", "socket", "remote"

constexpr int kMaxCpus = 256;  // the coherence model keeps sharer sets as 256-bit masks

struct CpuPlace {
  int cpu = 0, core = 0, domain = 0, node = 0, socket = 0;  // machine-wide ids; cpu is 0..n-1
  int os_cpu = -1;  // the kernel's CPU number when read from the host (may be sparse), else -1
};

class CpuTopology {
 public:
  enum class Kind : std::uint8_t { kMachine, kSocket, kNode, kDomain, kCore, kCpu };
  struct Vertex {
    Kind kind = Kind::kMachine;
    int id = 0;
  };
  using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS, Vertex>;

  // One CPU per entry; ids need not be dense but must nest (a core in one domain, a domain in one
  // node, a node in one socket). Throws std::invalid_argument naming the offending CPU.
  explicit CpuTopology(const std::vector<CpuPlace>& cpus, std::string source = "");
  // {"sockets", "nodes_per_socket", "domains_per_node", "cores_per_domain", "threads_per_core"}
  // (CPUs numbered core-major: SMT siblings of core k are k, k+ncores, ...) or {"cpus": [...]}
  // with explicit places. Errors: sim::ScenarioError(file, "$.<json_path>...", expected).
  static CpuTopology from_json(const nlohmann::json& j, const std::string& file, const std::string& json_path);
  // Linux sysfs (root is normally /sys/devices/system). The cache domain is the set sharing the
  // highest-level unified cache (cpuN/cache/index*/shared_cpu_list); without cache information
  // (some VMs) each socket is assumed to be one domain, and source() says so. Throws
  // std::runtime_error naming the file when a sysfs file does not read as the kernel writes it.
  static CpuTopology from_host(const std::string& sysfs_root = "/sys/devices/system");

  int cpus() const { return static_cast<int>(places_.size()); }
  bool has_cpu(int cpu) const { return cpu >= 0 && cpu < cpus(); }
  const CpuPlace& place(int cpu) const;  // throws std::out_of_range naming the CPU
  Distance distance(int a, int b) const;
  bool has_distance(Distance d) const;   // some pair of CPUs is this far apart
  int domains() const { return domains_; }
  int sockets() const { return sockets_; }
  int nodes() const { return nodes_; }
  // A CPU of a cache domain (for device-allocated lines: the first CPU of that domain).
  int first_cpu_of_domain(int domain) const;
  const std::string& source() const { return source_; }
  const Graph& graph() const { return g_; }
  nlohmann::json to_json() const;  // {"cpus": [{cpu, core, domain, node, socket}], "source"}

 private:
  Graph g_;
  std::vector<CpuPlace> places_;  // index = dense CPU number 0..n-1
  std::vector<std::uint8_t> dist_;  // n*n matrix of Distance, from the graph's common ancestors
  int domains_ = 0, sockets_ = 0, nodes_ = 0;
  std::string source_;
};

// A sysfs CPU list ("0-3,8,10-11\n", as cpulist_parse() in the kernel reads it): the CPUs in
// order of appearance. Throws std::invalid_argument for anything else: a number above
// kMaxCpuNumber, a range that runs backwards, stray characters.
constexpr int kMaxCpuNumber = 65535;
std::vector<int> parse_cpu_list(const std::string& text);

}  // namespace ppsim::cost
