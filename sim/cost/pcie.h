// PCIe transaction cost model: what a DMA, MMIO or MSI-X transaction puts on each direction of a
// PCIe link (bytes, TLPs, DLLPs), how long it occupies each direction, and its latency; plus the
// steady-state bandwidth of DMA streams and of the NIC models of Neugebauer et al., "Understanding
// PCIe performance for end host networking", SIGCOMM 2018. Pure C++: no SystemC. docs/pcie.md
// gives every formula, default and source.
//
// Contract of PcieLink::cost(op, bytes) — the call a NIC model makes per DMA/MMIO/MSI-X:
//  - `up` is device → root complex, `down` is root complex → device.
//  - tlp_bytes counts whole TLPs: header (3DW/4DW), payload, optional ECRC, sequence number, LCRC
//    and framing tokens. dllps are the ACK and UpdateFC DLLPs the *receiver* of those TLPs sends
//    back, so they appear in the opposite direction; they are amortised over back-to-back traffic
//    (one per spec latency interval of busy link, never more than one per TLP), hence a double.
//  - serialization_ps is how long the direction is occupied (TLPs + DLLPs) at the link's symbol
//    rate after line coding and SKP ordered sets. latency_ps is from issue to completion (reads:
//    data at the requester; posted writes: data visible at the target).
//  - bytes == 0 costs nothing; bytes < 0, bytes above kMaxTransferBytes, or an MSI-X that is not
//    4 bytes, throws.
//  - Cheap: no allocation, a handful of integer divisions; everything else is precomputed.
//
// compat_pcie_bench reproduces the pcie-bench model (github.com/pcie-bench/pcie-model) including
// its inconsistencies; docs/pcie.md lists each difference.
#pragma once
#include <cstdint>
#include <string>

#include "sim/time.h"

namespace ppsim::cost {

enum class PcieOp { kDmaWrite, kDmaRead, kMmioWrite, kMmioRead, kMsix };
// The largest transfer the model accepts (1 TiB): sizes, TLP counts and picoseconds stay exact in
// int64 and double far beyond any DMA.
constexpr std::int64_t kMaxTransferBytes = std::int64_t{1} << 40;
constexpr double kMaxLatencyNs = 1e9;  // read_rtt_ns and write_latency_ns: at most 1 s
enum class CompletionSplit { kMps, kRcb };  // read completions chopped at MPS or at the RCB
enum class NicModel { kSimple, kKernel, kDpdk };
enum class NicDirection { kRx, kTx, kBoth };  // packets from the wire to the host, the reverse, both

struct PcieConfig {
  int gen = 3;                      // 1..6 (2.5, 5, 8, 16, 32, 64 GT/s); Gen6 is FLIT mode, approximate
  int lanes = 8;                    // 1, 2, 4, 8 or 16
  int mps_bytes = 256;              // Max_Payload_Size, power of two in 128..4096
  int mrrs_bytes = 512;             // Max_Read_Request_Size, power of two in 128..4096
  int rcb_bytes = 64;               // read completion boundary, 64 or 128
  CompletionSplit completion_split = CompletionSplit::kMps;
  int addr_bits = 64;               // DMA addresses into host memory: 32 → 3DW, 64 → 4DW headers
  int mmio_addr_bits = 32;          // device registers (non-prefetchable BARs live below 4 GiB)
  bool ecrc = false;                // 4-byte TLP digest on every TLP
  bool latency = true;              // read round trip and the tag limit bound read bandwidth
  double read_rtt_ns = 546.0;       // 64 B DMA read, median (pcie-bench/data, Xeon E5-2630v4)
  double write_latency_ns = 273.0;  // posted write until visible: assumed half the read RTT
  int max_tags = 32;                // outstanding non-posted requests (5-bit Tag field)
  bool compat_pcie_bench = false;   // reproduce the pcie-bench model, inconsistencies included
};

// One direction of one transaction.
struct PcieDirCost {
  std::int64_t payload_bytes = 0;  // data carried in TLP payloads
  std::int64_t tlp_bytes = 0;      // TLPs with header, digest, sequence number, LCRC, framing
  std::int64_t tlps = 0;
  double dllps = 0;                // ACK + UpdateFC DLLPs in this direction (amortised)
  double dllp_bytes = 0;
  sim::Picos serialization_ps = 0;
};

struct PcieCost {
  PcieDirCost up;    // device → root complex
  PcieDirCost down;  // root complex → device
  sim::Picos latency_ps = 0;
};

// Average PCIe traffic per packet of a NIC model (batched operations are divided by the batch).
struct NicPacketCost {
  double up_bytes = 0, down_bytes = 0;  // TLP bytes, DLLPs excluded
  double up_tlps = 0, down_tlps = 0;
  double dma_writes = 0, dma_reads = 0, mmio_writes = 0, mmio_reads = 0, msix = 0;
  double device_read_requests = 0;      // MRd TLPs the device issues (they hold tags)
};

class PcieLink {
 public:
  // Throws std::invalid_argument naming the parameter and what was expected (latencies from 0 to
  // kMaxLatencyNs).
  explicit PcieLink(const PcieConfig& cfg);

  const PcieConfig& config() const { return cfg_; }
  PcieCost cost(PcieOp op, std::int64_t bytes) const;
  PcieCost dma_write(std::int64_t bytes) const { return cost(PcieOp::kDmaWrite, bytes); }
  PcieCost dma_read(std::int64_t bytes) const { return cost(PcieOp::kDmaRead, bytes); }
  PcieCost mmio_write(std::int64_t bytes) const { return cost(PcieOp::kMmioWrite, bytes); }
  PcieCost mmio_read(std::int64_t bytes) const { return cost(PcieOp::kMmioRead, bytes); }
  PcieCost msix() const { return cost(PcieOp::kMsix, 4); }

  // Gb/s of data per direction a TLP stream can use: the symbol rate after line coding and SKP
  // (compat: their "TLP bandwidth", which also deducts ACK/FC DLLPs).
  double tlp_capacity_gbps() const;
  // ACK and UpdateFC intervals in symbol times from the spec's formulas (0 for Gen6 FLIT mode).
  int ack_interval_symbols() const { return ack_symbols_; }
  int fc_interval_symbols() const { return fc_symbols_; }

  // Steady-state data bandwidth in Gb/s for back-to-back transfers of `size` bytes
  // (1..kMaxTransferBytes; std::invalid_argument otherwise).
  double dma_write_gbps(std::int64_t size) const;
  double dma_read_gbps(std::int64_t size) const;
  double dma_read_write_gbps(std::int64_t size) const;  // concurrent; per direction
  // `size` is the bytes DMA'd per packet (the frame without FCS). kBoth reports per direction.
  double nic_gbps(NicModel model, std::int64_t size, NicDirection dir) const;
  NicPacketCost nic_packet(NicModel model, std::int64_t size, NicDirection dir) const;

 private:
  struct Tally;
  struct Flow {
    PcieOp op;
    std::int64_t bytes;
    double per_unit;  // how many of this operation per unit of work
  };
  void tally(PcieOp op, std::int64_t bytes, Tally& t) const;
  Tally tally_flows(const Flow* flows, int n) const;
  double dllps_for(const Tally& t, int dir, double busy_ps) const;
  double steady_gbps(const Tally& per_unit, double data_bytes) const;
  int nic_flows(NicModel model, std::int64_t size, NicDirection dir, Flow* out) const;
  Tally nic_tally(NicModel model, std::int64_t size, NicDirection dir, NicPacketCost* counts) const;

  PcieConfig cfg_;
  int framing_bytes_ = 8;      // per TLP: STP/END or STP token, sequence number, LCRC
  int dllp_wire_bytes_ = 8;    // per DLLP with its framing
  int mwr_hdr_ = 16, mrd_hdr_ = 16, cpl_hdr_ = 12, mmio_hdr_ = 12, msi_hdr_ = 12;
  int digest_ = 0;
  int mps_shift_ = 8, mrrs_shift_ = 9, mmio_shift_ = 6, cpl_shift_ = 8;  // log2 of split sizes
  int ack_symbols_ = 0, fc_symbols_ = 0;
  double ps_per_byte_ = 0;     // per direction, after coding, SKP (and in compat, DLLPs)
  double per_ack_ps_ = 0, per_fc_ps_ = 0;  // 1 / (Ack, UpdateFC interval in ps); 0: no DLLPs
  double rtt_ps_ = 0, write_lat_ps_ = 0;
};

// "gen3 x8, MPS 256, MRRS 512, …" for table headers and error messages.
std::string describe(const PcieConfig& cfg);
const char* nic_model_name(NicModel m);
const char* nic_direction_name(NicDirection d);

}  // namespace ppsim::cost
