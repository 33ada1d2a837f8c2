#include "sim/topology.h"

#include <boost/graph/breadth_first_search.hpp>
#include <boost/graph/filtered_graph.hpp>
#include <algorithm>

namespace ppsim::sim {

const char* node_kind_name(NodeKind k) {
  switch (k) {
    case NodeKind::kSocket: return "socket";
    case NodeKind::kNumaNode: return "numa_node";
    case NodeKind::kCpu: return "cpu";
    case NodeKind::kNicQueue: return "nic_queue";
    case NodeKind::kPagePool: return "page_pool";
    case NodeKind::kRootComplex: return "root_complex";
    case NodeKind::kPcieSwitch: return "pcie_switch";
    case NodeKind::kEndpoint: return "endpoint";
    case NodeKind::kOther: return "other";
  }
  return "?";
}

const char* edge_kind_name(EdgeKind k) {
  switch (k) {
    case EdgeKind::kContains: return "contains";
    case EdgeKind::kRunsOn: return "runs_on";
    case EdgeKind::kAllocatesFrom: return "allocates_from";
    case EdgeKind::kPcieLink: return "pcie_link";
    case EdgeKind::kOther: return "other";
  }
  return "?";
}

Topology::Vertex Topology::add(NodeKind kind, const std::string& name, int index) {
  return boost::add_vertex(TopoNode{kind, name, index}, g_);
}

void Topology::connect(Vertex a, Vertex b, EdgeKind kind, int link_id) {
  boost::add_edge(a, b, TopoEdge{kind, link_id}, g_);
}

std::optional<Topology::Vertex> Topology::find(const std::string& name) const {
  for (auto [it, end] = boost::vertices(g_); it != end; ++it)
    if (g_[*it].name == name) return *it;
  return std::nullopt;
}

std::vector<Topology::Vertex> Topology::neighbours(Vertex v, EdgeKind ek, NodeKind nk) const {
  std::vector<Vertex> out;
  for (auto [it, end] = boost::out_edges(v, g_); it != end; ++it) {
    if (g_[*it].kind != ek) continue;
    Vertex t = boost::target(*it, g_);
    if (g_[t].kind == nk) out.push_back(t);
  }
  return out;
}

namespace {
struct EdgeOfKind {
  const Topology::Graph* g = nullptr;
  EdgeKind kind{};
  bool operator()(const Topology::Graph::edge_descriptor& e) const { return (*g)[e].kind == kind; }
};
}  // namespace

std::vector<Topology::Vertex> Topology::path(Vertex a, Vertex b, EdgeKind ek) const {
  EdgeOfKind pred{&g_, ek};
  boost::filtered_graph<Graph, EdgeOfKind> fg(g_, pred);
  std::vector<Vertex> parent(boost::num_vertices(g_), boost::graph_traits<Graph>::null_vertex());
  parent[a] = a;
  boost::breadth_first_search(
      fg, a,
      boost::visitor(boost::make_bfs_visitor(boost::record_predecessors(parent.data(), boost::on_tree_edge()))));
  if (parent[b] == boost::graph_traits<Graph>::null_vertex()) return {};
  std::vector<Vertex> out;
  for (Vertex v = b; v != a; v = parent[v]) out.push_back(v);
  out.push_back(a);
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<int> Topology::links_on(const std::vector<Vertex>& p) const {
  std::vector<int> out;
  for (std::size_t i = 0; i + 1 < p.size(); ++i) {
    for (auto [it, end] = boost::out_edges(p[i], g_); it != end; ++it) {
      if (boost::target(*it, g_) == p[i + 1] && g_[*it].kind == EdgeKind::kPcieLink) {
        out.push_back(g_[*it].link_id);
        break;
      }
    }
  }
  return out;
}

nlohmann::json Topology::to_json() const {
  nlohmann::json nodes = nlohmann::json::array(), edges = nlohmann::json::array();
  for (auto [it, end] = boost::vertices(g_); it != end; ++it)
    nodes.push_back({{"id", *it}, {"kind", node_kind_name(g_[*it].kind)}, {"name", g_[*it].name}, {"index", g_[*it].index}});
  for (auto [it, end] = boost::edges(g_); it != end; ++it) {
    nlohmann::json e = {{"a", boost::source(*it, g_)}, {"b", boost::target(*it, g_)}, {"kind", edge_kind_name(g_[*it].kind)}};
    if (g_[*it].link_id >= 0) e["link"] = g_[*it].link_id;
    edges.push_back(e);
  }
  return {{"nodes", nodes}, {"edges", edges}};
}

}  // namespace ppsim::sim
