// The scenario's topology as a Boost.Graph: CPUs and their NUMA nodes, NIC queues, page pools,
// PCIe root complex / switches / endpoints. Models look up relations here (which CPU runs a
// queue's NAPI, which pool a queue allocates from, the PCIe path between two endpoints) instead
// of keeping ad hoc pointers; results.json echoes the graph.
#pragma once
#include <boost/graph/adjacency_list.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace ppsim::sim {

enum class NodeKind { kSocket, kNumaNode, kCpu, kNicQueue, kPagePool, kRootComplex, kPcieSwitch, kEndpoint, kOther };
const char* node_kind_name(NodeKind k);

struct TopoNode {
  NodeKind kind = NodeKind::kOther;
  std::string name;
  int index = 0;  // CPU number, queue number, …
};

enum class EdgeKind { kContains, kRunsOn, kAllocatesFrom, kPcieLink, kOther };
const char* edge_kind_name(EdgeKind k);

struct TopoEdge {
  EdgeKind kind = EdgeKind::kOther;
  int link_id = -1;  // for PCIe links: index into the PCIe model's link table
};

class Topology {
 public:
  using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::undirectedS, TopoNode, TopoEdge>;
  using Vertex = Graph::vertex_descriptor;

  Vertex add(NodeKind kind, const std::string& name, int index = 0);
  void connect(Vertex a, Vertex b, EdgeKind kind, int link_id = -1);
  std::optional<Vertex> find(const std::string& name) const;
  const TopoNode& node(Vertex v) const { return g_[v]; }
  // Neighbours of v over edges of `ek` that are of kind `nk`.
  std::vector<Vertex> neighbours(Vertex v, EdgeKind ek, NodeKind nk) const;
  // Shortest path from a to b using only edges of kind `ek` (empty if none); includes both ends.
  std::vector<Vertex> path(Vertex a, Vertex b, EdgeKind ek) const;
  // Edge link ids along a path (for PCIe routing).
  std::vector<int> links_on(const std::vector<Vertex>& path) const;
  std::size_t size() const { return boost::num_vertices(g_); }
  nlohmann::json to_json() const;
  const Graph& graph() const { return g_; }

 private:
  Graph g_;
};

}  // namespace ppsim::sim
