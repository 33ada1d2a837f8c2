// Bindings for the PCIe cost model (sim/cost/pcie.h) as the submodule `_core.pcie`.
// Names (operations, NIC models, directions) cross as strings; std::invalid_argument becomes
// ValueError, which python/ppsim/pcie.py turns into InputError.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "sim/cost/pcie.h"

namespace py = pybind11;
using namespace ppsim::cost;

namespace {

PcieOp op_named(const std::string& s) {
  if (s == "dma_write") return PcieOp::kDmaWrite;
  if (s == "dma_read") return PcieOp::kDmaRead;
  if (s == "mmio_write") return PcieOp::kMmioWrite;
  if (s == "mmio_read") return PcieOp::kMmioRead;
  if (s == "msix") return PcieOp::kMsix;
  throw std::invalid_argument("op: expected dma_write, dma_read, mmio_write, mmio_read or msix, got '" + s + "'");
}

NicModel model_named(const std::string& s) {
  if (s == "simple") return NicModel::kSimple;
  if (s == "kernel") return NicModel::kKernel;
  if (s == "dpdk") return NicModel::kDpdk;
  throw std::invalid_argument("model: expected simple, kernel or dpdk, got '" + s + "'");
}

NicDirection direction_named(const std::string& s) {
  if (s == "rx") return NicDirection::kRx;
  if (s == "tx") return NicDirection::kTx;
  if (s == "both") return NicDirection::kBoth;
  throw std::invalid_argument("direction: expected rx, tx or both, got '" + s + "'");
}

CompletionSplit split_named(const std::string& s) {
  if (s == "mps") return CompletionSplit::kMps;
  if (s == "rcb") return CompletionSplit::kRcb;
  throw std::invalid_argument("completion_split: expected mps or rcb, got '" + s + "'");
}

py::dict dir_dict(const PcieDirCost& d) {
  py::dict r;
  r["payload_bytes"] = d.payload_bytes;
  r["tlp_bytes"] = d.tlp_bytes;
  r["tlps"] = d.tlps;
  r["dllps"] = d.dllps;
  r["dllp_bytes"] = d.dllp_bytes;
  r["serialization_ps"] = d.serialization_ps;
  return r;
}

}  // namespace

void bind_pcie(py::module_& m) {
  py::module_ p = m.def_submodule("pcie", "PCIe transaction cost model (sim/cost/pcie.h)");
  py::class_<PcieLink>(p, "Link")
      .def(py::init([](int gen, int lanes, int mps, int mrrs, int rcb, const std::string& completion_split,
                       int addr_bits, int mmio_addr_bits, bool ecrc, bool latency, double read_rtt_ns,
                       double write_latency_ns, int max_tags, bool compat_pcie_bench) {
             PcieConfig c;
             c.gen = gen;
             c.lanes = lanes;
             c.mps_bytes = mps;
             c.mrrs_bytes = mrrs;
             c.rcb_bytes = rcb;
             c.completion_split = split_named(completion_split);
             c.addr_bits = addr_bits;
             c.mmio_addr_bits = mmio_addr_bits;
             c.ecrc = ecrc;
             c.latency = latency;
             c.read_rtt_ns = read_rtt_ns;
             c.write_latency_ns = write_latency_ns;
             c.max_tags = max_tags;
             c.compat_pcie_bench = compat_pcie_bench;
             return PcieLink(c);
           }),
           py::kw_only(), py::arg("gen"), py::arg("lanes"), py::arg("mps"), py::arg("mrrs"), py::arg("rcb"),
           py::arg("completion_split"), py::arg("addr_bits"), py::arg("mmio_addr_bits"), py::arg("ecrc"),
           py::arg("latency"), py::arg("read_rtt_ns"), py::arg("write_latency_ns"), py::arg("max_tags"),
           py::arg("compat_pcie_bench"))
      .def("describe", [](const PcieLink& l) { return describe(l.config()); })
      .def_property_readonly("tlp_capacity_gbps", &PcieLink::tlp_capacity_gbps)
      .def_property_readonly("ack_interval_symbols", &PcieLink::ack_interval_symbols)
      .def_property_readonly("fc_interval_symbols", &PcieLink::fc_interval_symbols)
      .def("dma_write_gbps", &PcieLink::dma_write_gbps, py::arg("size"))
      .def("dma_read_gbps", &PcieLink::dma_read_gbps, py::arg("size"))
      .def("dma_read_write_gbps", &PcieLink::dma_read_write_gbps, py::arg("size"))
      .def(
          "nic_gbps",
          [](const PcieLink& l, const std::string& model, std::int64_t size, const std::string& dir) {
            return l.nic_gbps(model_named(model), size, direction_named(dir));
          },
          py::arg("model"), py::arg("size"), py::arg("direction"))
      .def(
          "nic_packet",
          [](const PcieLink& l, const std::string& model, std::int64_t size, const std::string& dir) {
            const NicPacketCost c = l.nic_packet(model_named(model), size, direction_named(dir));
            py::dict r;
            r["up_bytes"] = c.up_bytes;
            r["down_bytes"] = c.down_bytes;
            r["up_tlps"] = c.up_tlps;
            r["down_tlps"] = c.down_tlps;
            r["dma_writes"] = c.dma_writes;
            r["dma_reads"] = c.dma_reads;
            r["mmio_writes"] = c.mmio_writes;
            r["mmio_reads"] = c.mmio_reads;
            r["msix"] = c.msix;
            r["device_read_requests"] = c.device_read_requests;
            return r;
          },
          py::arg("model"), py::arg("size"), py::arg("direction"))
      .def(
          "cost",
          [](const PcieLink& l, const std::string& op, std::int64_t bytes) {
            const PcieCost c = l.cost(op_named(op), bytes);
            py::dict r;
            r["up"] = dir_dict(c.up);
            r["down"] = dir_dict(c.down);
            r["latency_ps"] = c.latency_ps;
            return r;
          },
          py::arg("op"), py::arg("bytes"));
}
