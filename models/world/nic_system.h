// The NIC side of a run, assembled from the scenario's nic.* / napi.* / traffic.* / pcie.* /
// sriov.* / wire.* parameters: the PCIe topology (root complex, optional switch, the NIC and its
// functions) in sim::Topology, the PcieFabric routed over it, the Nic device, one RxQueue with its
// NAPI and page_pool per receive queue of every function, the wire traffic, and an optional
// transmitting application whose packets go to the wire, hairpin through the embedded switch
// to another function, or take the host kernel's software path (KernelPath) instead.
//
// Names: the PF is function 0 ("pf0"), VF k is function k + 1 ("vfk"). PF queues keep the short
// stat names nic0.rxqN / nic0.txq0; VF queues are nic0.vfK.rxqN / nic0.vfK.txq0; the kernel path
// is kpath. Every pool is "<queue>.pp".
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/nic/kernel_path.h"
#include "models/nic/nic.h"
#include "models/nic/pcie_fabric.h"
#include "models/nic/rx_queue.h"
#include "models/nic/traffic.h"
#include "models/nic/tx_queue.h"
#include "models/page_pool/mutants.h"
#include "models/page_pool/page_pool.h"
#include "models/world/zerocopy.h"
#include "sim/cpu.h"
#include "sim/kernel.h"
#include "sim/params.h"
#include "sim/rng.h"
#include "sim/stats.h"
#include "sim/topology.h"

namespace ppsim::world {

void register_nic_params(sim::ParamRegistry& r);
// Cross-parameter checks; throws sim::ScenarioError naming the JSON path.
void validate_nic_params(const sim::Params& p);

class NicSystem {
 public:
  struct Pool {
    std::string name;  // stat prefix of the queue that owns it, e.g. "nic0.rxq0"
    page_pool::PagePool* pool;
  };
  // `on_pool` is called for every pool created (the world attaches its observers).
  NicSystem(sim::Kernel& kernel, const sim::Params& p, std::vector<sim::Cpu>& cpus, page_pool::PageWorld& pages,
            nic::PacketSink& sink, sim::Stats& stats, sim::Topology& topo,
            const std::vector<sim::Topology::Vertex>& cpu_v, const sim::Rng& root, const page_pool::MutantSet& mutants,
            const std::function<void(page_pool::PagePool*)>& on_pool);
  ~NicSystem();

  // Called when a pool is destroyed during the run (a mode switch) with pages still inflight.
  std::function<void(page_pool::PagePool*)> on_pool_destroyed;
  // Flows [0, n) whose pages may be mapped into an application (0: none).
  std::uint32_t user_flows() const { return user_flows_; }
  ZeroCopyConsumer* zerocopy() { return zc_.get(); }

  void open(sim::Picos now);
  // Let the device catch up to `now`, then close every queue (ndo_stop).
  void close(sim::Picos now);
  // netif_napi_del of every NAPI instance (after the pools that point at them are destroyed).
  void free_napis(sim::Picos now);
  const std::vector<std::unique_ptr<nic::Napi>>& napis() const { return napis_; }
  const std::vector<Pool>& pools() const { return pools_; }
  const std::vector<nic::RxQueue*>& rx_queues() const { return rxq_ptrs_; }
  const nic::PcieFabric& fabric() const { return fabric_; }
  void register_stats();
  // {"nic0": {"bottleneck", "why", "utilization": {...}, "line_rate_gbps", ...}} for results.json.
  nlohmann::json results(const sim::Stats& stats) const;

 private:
  sim::Kernel& kernel_;
  const sim::Params& p_;
  std::vector<sim::Cpu>& cpus_;
  sim::Stats& stats_;
  nic::PcieFabric fabric_;
  std::unique_ptr<nic::Nic> nic_;
  std::vector<std::unique_ptr<nic::Napi>> napis_;
  page_pool::PageWorld& pages_;
  page_pool::MutantSet mutants_;
  bool napis_freed_ = false;
  std::vector<std::unique_ptr<page_pool::PagePool>> pool_store_;
  std::vector<Pool> pools_;
  std::vector<std::unique_ptr<nic::RxQueue>> rxqs_;
  std::vector<nic::RxQueue*> rxq_ptrs_;
  std::unique_ptr<nic::TrafficSource> wire_src_, tx_src_;
  std::unique_ptr<nic::TxQueue> txq_;
  std::unique_ptr<nic::KernelPath> kpath_;
  std::unique_ptr<ZeroCopyConsumer> zc_;
  std::uint32_t user_flows_ = 0;
  std::unique_ptr<nic::TxSender> sender_;
  std::vector<int> napi_cpus_;  // CPUs that run receive or TX-completion NAPI
  int sender_cpu_ = -1, reader_cpu_ = -1;
  sim::Picos window_start_ = 0, window_end_ = 0;
  // CPU busy time (softirq + process) at the window's start and end: CPU work is booked when it
  // is queued, so these bracket the work started inside the window.
  std::vector<sim::Picos> busy_at_start_, busy_at_end_, softirq_at_start_, softirq_at_end_;
  std::uint64_t sent_at_start_ = 0, sent_at_end_ = 0;
  double blocked_at_start_ = 0, blocked_at_end_ = 0;
  bool window_closed_ = false;
  sim::Process window_proc_;
  double rx_offered_pps_ = 0;
};

}  // namespace ppsim::world
