// PCIe transaction cost model. The formulas and the source of every constant are in docs/pcie.md;
// comments here say why a choice was made.
#include "sim/cost/pcie.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace ppsim::cost {
namespace {

constexpr int kUp = 0, kDown = 1;
constexpr int kDllpWireBytes = 8;     // Gen1/2: SDP + 6 + END; Gen3-5: 2-byte SDP token + 6
constexpr int kTlpFramingBytes = 8;   // Gen1/2: STP + seq(2) + LCRC(4) + END; Gen3-5: STP token
                                      // (carries the 12-bit sequence number) + LCRC(4), no END
constexpr int kTlpOverheadSymbols = 28;  // "TLPOverhead" in the spec's Ack/UpdateFC formulas
constexpr std::int64_t kCpuMaxMmioTlpBytes = 64;  // CPU MMIO TLPs: at most one write-combining line
constexpr int kMsiBytes = 4;

// Symbol rate per lane in GT/s, by generation (PCIe base spec, "Data Rate").
constexpr double kGtPerSec[] = {0, 2.5, 5.0, 8.0, 16.0, 32.0, 64.0};

// Sizes are powers of two, so splitting is a shift (this is the hot path of cost()).
std::int64_t ceil_shift(std::int64_t a, int s) { return (a + (std::int64_t{1} << s) - 1) >> s; }
int log2_of(std::int64_t v) { return std::bit_width(static_cast<std::uint64_t>(v)) - 1; }
bool pow2_in(int v, int lo, int hi) { return v >= lo && v <= hi && (v & (v - 1)) == 0; }

[[noreturn]] void bad(const std::string& param, const std::string& expected, const std::string& got) {
  throw std::invalid_argument(param + ": expected " + expected + ", got " + got);
}

// The spec's Ack latency limit and UpdateFC guideline (PCIe Base Spec 5.0 Tables 3-7..3-9 and
// 2-46..2-48, as cited by pcie-bench): (MPS + TLPOverhead) * factor / width + InternalDelay, in
// symbol times, truncated. Both use the same factors; pcie-bench's copies of the tables equal this
// for every x1..x16 entry.
int dllp_interval_symbols(int gen, int lanes, int mps) {
  double factor;
  if (mps <= 256) factor = lanes <= 4 ? 1.4 : lanes == 8 ? 2.5 : 3.0;
  else factor = lanes <= 8 ? 1.0 : 2.0;
  // 16 and 32 GT/s: the spec's 8 GT/s delay is assumed (as pcie-bench does).
  const int internal_delay = gen == 1 ? 19 : gen == 2 ? 70 : 115;
  return static_cast<int>(std::floor((mps + kTlpOverheadSymbols) * factor / lanes + internal_delay));
}

}  // namespace

struct PcieLink::Tally {
  double payload[2] = {0, 0}, tlp_bytes[2] = {0, 0}, tlps[2] = {0, 0};
  // TLPs per flow-control class. Completions need no UpdateFC: endpoints (and root complexes
  // without peer-to-peer) advertise infinite completion credits.
  double posted[2] = {0, 0}, nonposted[2] = {0, 0};
  double dev_reqs = 0, dev_cpl_bytes = 0;            // device-issued MRd and their completions
  void add(const Tally& o, double k) {
    for (int d = 0; d < 2; ++d) {
      payload[d] += k * o.payload[d];
      tlp_bytes[d] += k * o.tlp_bytes[d];
      tlps[d] += k * o.tlps[d];
      posted[d] += k * o.posted[d];
      nonposted[d] += k * o.nonposted[d];
    }
    dev_reqs += k * o.dev_reqs;
    dev_cpl_bytes += k * o.dev_cpl_bytes;
  }
};

PcieLink::PcieLink(const PcieConfig& cfg) : cfg_(cfg) {
  if (cfg.gen < 1 || cfg.gen > 6) bad("gen", "a PCIe generation 1..6", std::to_string(cfg.gen));
  if (cfg.lanes != 1 && cfg.lanes != 2 && cfg.lanes != 4 && cfg.lanes != 8 && cfg.lanes != 16)
    bad("lanes", "one of 1, 2, 4, 8, 16", std::to_string(cfg.lanes));
  if (!pow2_in(cfg.mps_bytes, 128, 4096))
    bad("mps_bytes", "a power of two in 128..4096", std::to_string(cfg.mps_bytes));
  if (!pow2_in(cfg.mrrs_bytes, 128, 4096))
    bad("mrrs_bytes", "a power of two in 128..4096", std::to_string(cfg.mrrs_bytes));
  if (cfg.rcb_bytes != 64 && cfg.rcb_bytes != 128)
    bad("rcb_bytes", "64 or 128", std::to_string(cfg.rcb_bytes));
  if (cfg.addr_bits != 32 && cfg.addr_bits != 64) bad("addr_bits", "32 or 64", std::to_string(cfg.addr_bits));
  if (cfg.mmio_addr_bits != 32 && cfg.mmio_addr_bits != 64)
    bad("mmio_addr_bits", "32 or 64", std::to_string(cfg.mmio_addr_bits));
  // Bounded, not just finite: 1e300 ns would make latency_ps an out-of-range cast (undefined).
  if (!(cfg.read_rtt_ns >= 0 && cfg.read_rtt_ns <= kMaxLatencyNs))
    bad("read_rtt_ns", "a time from 0 to 1e9 ns", std::to_string(cfg.read_rtt_ns));
  if (!(cfg.write_latency_ns >= 0 && cfg.write_latency_ns <= kMaxLatencyNs))
    bad("write_latency_ns", "a time from 0 to 1e9 ns", std::to_string(cfg.write_latency_ns));
  if (cfg.max_tags < 1 || cfg.max_tags > 768)
    bad("max_tags", "1..768 outstanding requests (10-bit tags allow 768)", std::to_string(cfg.max_tags));

  const bool compat = cfg.compat_pcie_bench;
  const bool flit = cfg.gen == 6 && !compat;  // Gen6 FLIT mode: no per-TLP framing, DLLPs in flits
  const int addr_hdr = cfg.addr_bits == 64 ? 16 : 12;
  framing_bytes_ = flit ? 0 : kTlpFramingBytes;
  dllp_wire_bytes_ = kDllpWireBytes;
  mwr_hdr_ = mrd_hdr_ = addr_hdr;
  cpl_hdr_ = 12;
  digest_ = cfg.ecrc ? 4 : 0;
  // pcie-bench uses the DMA address format for doorbells and MSI-X too. A register BAR sits in the
  // bridge's 32-bit non-prefetchable window and the x86 MSI address is 0xFEEx_xxxx, both below
  // 4 GiB, and the spec requires the 3DW format there.
  mmio_hdr_ = compat ? addr_hdr : (cfg.mmio_addr_bits == 64 ? 16 : 12);
  msi_hdr_ = compat ? addr_hdr : 12;
  mps_shift_ = log2_of(cfg.mps_bytes);
  mrrs_shift_ = log2_of(cfg.mrrs_bytes);
  mmio_shift_ = log2_of(compat ? cfg.mps_bytes : std::min<std::int64_t>(cfg.mps_bytes, kCpuMaxMmioTlpBytes));
  cpl_shift_ = log2_of(cfg.completion_split == CompletionSplit::kRcb ? cfg.rcb_bytes : cfg.mps_bytes);

  const double gt = kGtPerSec[cfg.gen];
  ack_symbols_ = fc_symbols_ = flit ? 0 : dllp_interval_symbols(cfg.gen, cfg.lanes, cfg.mps_bytes);
  if (compat) {
    // Their TLP bandwidth: line-coded rate minus 8 B per Ack/FC "interval" read as bytes of the
    // whole link, minus SKP at the Gen1 rate for every generation.
    const double coding = cfg.gen <= 2 ? 0.8 : cfg.gen <= 5 ? 128.0 / 130.0 : 242.0 / 256.0;
    const double raw_gbps = gt * coding * cfg.lanes;
    const double overhead = 8.0 / ack_symbols_ + 8.0 / fc_symbols_ + 4.0 / 1538.0;
    ps_per_byte_ = 8000.0 / (raw_gbps * (1.0 - overhead));
  } else {
    double coding, skp;
    if (cfg.gen <= 2) {
      coding = 0.8;
      skp = 4.0 / 1538.0;  // 4-symbol SKP OS at the longest allowed interval, 1538 symbol times
    } else {
      // 128b/130b; Gen6 carries 236 TLP bytes per 256-byte flit (PAM4 symbols, no line code).
      coding = cfg.gen <= 5 ? 128.0 / 130.0 : 236.0 / 256.0;
      // One SKP block per 375 data blocks, plus the 4-byte EDS token that precedes it.
      skp = (1.0 + 4.0 / (16.0 * cfg.lanes)) / 376.0;
    }
    ps_per_byte_ = 8000.0 / (gt * coding * cfg.lanes * (1.0 - skp));
    const double symbol_ps = (cfg.gen <= 2 ? 10.0 : 8.0) * 1000.0 / gt;
    if (!flit) {
      per_ack_ps_ = 1.0 / (ack_symbols_ * symbol_ps);
      per_fc_ps_ = 1.0 / (fc_symbols_ * symbol_ps);
    }
  }
  rtt_ps_ = cfg.read_rtt_ns * 1000.0;
  write_lat_ps_ = cfg.write_latency_ns * 1000.0;
}

double PcieLink::tlp_capacity_gbps() const { return 8000.0 / ps_per_byte_; }

void PcieLink::tally(PcieOp op, std::int64_t b, Tally& t) const {
  const std::int64_t per_tlp = framing_bytes_ + digest_;
  auto posted_write = [&](int dir, int max_tlp_shift, int hdr) {
    const std::int64_t n = ceil_shift(b, max_tlp_shift);
    t.payload[dir] += b;
    t.tlps[dir] += n;
    t.tlp_bytes[dir] += b + n * (hdr + per_tlp);
    t.posted[dir] += n;
  };
  // A read: requests one way, completions with data the other.
  auto read = [&](int req_dir, int req_shift, int req_hdr) {
    const std::int64_t nreq = ceil_shift(b, req_shift);
    std::int64_t ncpl;
    if (cfg_.compat_pcie_bench) {
      ncpl = ceil_shift(b, cpl_shift_);  // theirs: completions may merge across requests
    } else {
      const std::int64_t full = b >> req_shift, rest = b & ((std::int64_t{1} << req_shift) - 1);
      ncpl = full * ceil_shift(std::int64_t{1} << req_shift, cpl_shift_) + ceil_shift(rest, cpl_shift_);
    }
    const int cpl_dir = 1 - req_dir;
    t.tlps[req_dir] += nreq;
    t.tlp_bytes[req_dir] += nreq * (req_hdr + per_tlp);
    t.nonposted[req_dir] += nreq;
    t.payload[cpl_dir] += b;
    t.tlps[cpl_dir] += ncpl;
    const double cpl_bytes = b + ncpl * (cpl_hdr_ + per_tlp);
    t.tlp_bytes[cpl_dir] += cpl_bytes;
    if (req_dir == kUp) {
      t.dev_reqs += nreq;
      t.dev_cpl_bytes += cpl_bytes;
    }
  };
  switch (op) {
    case PcieOp::kDmaWrite: posted_write(kUp, mps_shift_, mwr_hdr_); break;
    case PcieOp::kDmaRead: read(kUp, mrrs_shift_, mrd_hdr_); break;
    case PcieOp::kMmioWrite: posted_write(kDown, mmio_shift_, mmio_hdr_); break;
    case PcieOp::kMmioRead: read(kDown, cfg_.compat_pcie_bench ? mrrs_shift_ : mmio_shift_, mmio_hdr_); break;
    case PcieOp::kMsix: posted_write(kUp, log2_of(kMsiBytes), msi_hdr_); break;
  }
}

// DLLPs sent in `dir` for the TLPs arriving from the other direction, over `busy_ps` of traffic:
// an ACK per Ack latency limit and an UpdateFC per guideline interval for each credit class that
// is flowing, never more than one per TLP.
double PcieLink::dllps_for(const Tally& t, int dir, double busy_ps) const {
  if (per_ack_ps_ <= 0) return 0;  // compat folds DLLPs into capacity; Gen6 carries them in flits
  const int o = 1 - dir;
  const double fcs = busy_ps * per_fc_ps_;
  double n = std::min(t.tlps[o], busy_ps * per_ack_ps_);
  if (t.posted[o] > 0) n += std::min(t.posted[o], fcs);
  if (t.nonposted[o] > 0) n += std::min(t.nonposted[o], fcs);
  return n;
}

PcieCost PcieLink::cost(PcieOp op, std::int64_t bytes) const {
  // Bounded so that splitting (a + 2^s - 1) cannot overflow and counts convert back exactly.
  if (bytes < 0 || bytes > kMaxTransferBytes) bad("bytes", "a transaction size from 0 to 2^40", std::to_string(bytes));
  if (op == PcieOp::kMsix && bytes != kMsiBytes)
    bad("bytes", "4 for an MSI-X (one DW of message data)", std::to_string(bytes));
  PcieCost c;
  if (bytes == 0) return c;
  Tally t;
  tally(op, bytes, t);
  const double t_up = t.tlp_bytes[kUp] * ps_per_byte_, t_down = t.tlp_bytes[kDown] * ps_per_byte_;
  const double busy = std::max(t_up, t_down);
  PcieDirCost* dirs[2] = {&c.up, &c.down};
  for (int d = 0; d < 2; ++d) {
    PcieDirCost& r = *dirs[d];
    r.payload_bytes = static_cast<std::int64_t>(t.payload[d]);
    r.tlp_bytes = static_cast<std::int64_t>(t.tlp_bytes[d]);
    r.tlps = static_cast<std::int64_t>(t.tlps[d]);
    r.dllps = dllps_for(t, d, busy);
    r.dllp_bytes = r.dllps * dllp_wire_bytes_;
    r.serialization_ps = static_cast<sim::Picos>((t.tlp_bytes[d] + r.dllp_bytes) * ps_per_byte_ + 0.5);
  }
  const bool lat = cfg_.latency;
  double latency = 0;
  switch (op) {
    case PcieOp::kDmaWrite:
    case PcieOp::kMsix: latency = t_up + (lat ? write_lat_ps_ : 0); break;
    case PcieOp::kMmioWrite: latency = t_down + (lat ? write_lat_ps_ : 0); break;
    case PcieOp::kDmaRead: {
      // Requests beyond the tag limit wait for a round trip to free a tag.
      const auto nreq = static_cast<std::int64_t>(t.dev_reqs);
      const auto waves = static_cast<double>((nreq + cfg_.max_tags - 1) / cfg_.max_tags);
      latency = lat ? waves * rtt_ps_ + t_down : t_up + t_down;
      break;
    }
    case PcieOp::kMmioRead: latency = (lat ? rtt_ps_ : t_down) + t_up; break;
  }
  c.latency_ps = static_cast<sim::Picos>(latency + 0.5);
  return c;
}

PcieLink::Tally PcieLink::tally_flows(const Flow* flows, int n) const {
  Tally a;
  for (int i = 0; i < n; ++i) {
    Tally t;
    tally(flows[i].op, flows[i].bytes, t);
    a.add(t, flows[i].per_unit);
  }
  return a;
}

// Back-to-back units of work (one DMA, or one NIC packet): the period is the busier direction
// (TLPs + the DLLPs answering the other direction) or, with latency on, the tag limit:
// max_tags requests in flight, each holding its tag for a round trip plus its completions.
double PcieLink::steady_gbps(const Tally& a, double data_bytes) const {
  double tag_ps = 0;
  if (cfg_.latency && a.dev_reqs > 0)
    tag_ps = (a.dev_reqs * rtt_ps_ + a.dev_cpl_bytes * ps_per_byte_) / cfg_.max_tags;
  double period = std::max({tag_ps, a.tlp_bytes[kUp] * ps_per_byte_, a.tlp_bytes[kDown] * ps_per_byte_});
  // DLLP bytes grow with the period, far slower than 1:1, so this converges in a few rounds.
  for (int iter = 0; iter < 100; ++iter) {
    double next = tag_ps;
    for (int d = 0; d < 2; ++d)
      next = std::max(next, (a.tlp_bytes[d] + dllp_wire_bytes_ * dllps_for(a, d, period)) * ps_per_byte_);
    const bool done = std::fabs(next - period) <= 1e-12 * period;
    period = next;
    if (done) break;
  }
  return data_bytes * 8.0 / period * 1000.0;
}

namespace {
void check_size(std::int64_t size) {
  if (size < 1 || size > kMaxTransferBytes) bad("size", "a transfer size from 1 byte to 2^40", std::to_string(size));
}
constexpr int kMaxNicFlows = 16;
}  // namespace

double PcieLink::dma_write_gbps(std::int64_t size) const {
  check_size(size);
  const Flow f[] = {{PcieOp::kDmaWrite, size, 1.0}};
  return steady_gbps(tally_flows(f, 1), static_cast<double>(size));
}

double PcieLink::dma_read_gbps(std::int64_t size) const {
  check_size(size);
  const Flow f[] = {{PcieOp::kDmaRead, size, 1.0}};
  return steady_gbps(tally_flows(f, 1), static_cast<double>(size));
}

double PcieLink::dma_read_write_gbps(std::int64_t size) const {
  check_size(size);
  const Flow f[] = {{PcieOp::kDmaWrite, size, 1.0}, {PcieOp::kDmaRead, size, 1.0}};
  return steady_gbps(tally_flows(f, 2), static_cast<double>(size));
}

// Per-packet operations of the pcie-bench NIC models (simple_nic.py, niantic.py). Batched
// operations carry 1/batch. Descriptors are 16 B. Kernel driver (ixgbe on an 82599): the device
// fetches 40 TX descriptors per read and writes back 8 per write; the driver rings the TX doorbell
// per packet, refills RX 32 at a time, reads the RX head every 8 and takes an IRQ every 32 packets.
// DPDK: TX doorbell every 32 packets, no IRQs, no head-pointer reads.
int PcieLink::nic_flows(NicModel model, std::int64_t size, NicDirection dir, Flow* out) const {
  int n = 0;
  auto add = [&](PcieOp op, std::int64_t b, double k) { out[n++] = Flow{op, b, k}; };
  const bool simple = model == NicModel::kSimple, pmd = model == NicModel::kDpdk;
  if (dir != NicDirection::kRx) {  // transmit: the NIC reads descriptors and packets from the host
    add(PcieOp::kMmioWrite, 4, pmd ? 1.0 / 32 : 1.0);
    add(PcieOp::kDmaRead, simple ? 16 : 16 * 40, simple ? 1.0 : 1.0 / 40);
    add(PcieOp::kDmaRead, size, 1.0);
    if (!simple) add(PcieOp::kDmaWrite, 16 * 8, 1.0 / 8);
    if (!pmd) {
      add(PcieOp::kMsix, kMsiBytes, simple ? 1.0 : 1.0 / 32);
      add(PcieOp::kMmioRead, 4, 1.0);
    }
  }
  if (dir != NicDirection::kTx) {  // receive: fetch a free-buffer descriptor, write packet + status
    add(PcieOp::kMmioWrite, 4, simple ? 1.0 : 1.0 / 32);
    add(PcieOp::kDmaRead, 16, 1.0);
    add(PcieOp::kDmaWrite, size, 1.0);
    add(PcieOp::kDmaWrite, 16, 1.0);
    if (!pmd) {
      add(PcieOp::kMsix, kMsiBytes, simple ? 1.0 : 1.0 / 32);
      add(PcieOp::kMmioRead, 4, simple ? 1.0 : 1.0 / 8);
    }
  }
  return n;
}

// pcie-bench's RX path assigns instead of adding after the descriptor read (`rx_tx_data_B = ...`
// in simple_nic.py and niantic.py), so the descriptor's read request never reaches the total.
// Compat mode drops that request the same way.
PcieLink::Tally PcieLink::nic_tally(NicModel model, std::int64_t size, NicDirection dir,
                                    NicPacketCost* counts) const {
  check_size(size);
  Flow f[kMaxNicFlows];
  const int n = nic_flows(model, size, dir, f);
  Tally a = tally_flows(f, n);
  if (cfg_.compat_pcie_bench && dir != NicDirection::kTx) {
    a.tlp_bytes[kUp] -= mrd_hdr_ + framing_bytes_ + digest_;
    a.tlps[kUp] -= 1;
    a.nonposted[kUp] -= 1;
  }
  if (counts) {
    for (int i = 0; i < n; ++i) {
      switch (f[i].op) {
        case PcieOp::kDmaWrite: counts->dma_writes += f[i].per_unit; break;
        case PcieOp::kDmaRead: counts->dma_reads += f[i].per_unit; break;
        case PcieOp::kMmioWrite: counts->mmio_writes += f[i].per_unit; break;
        case PcieOp::kMmioRead: counts->mmio_reads += f[i].per_unit; break;
        case PcieOp::kMsix: counts->msix += f[i].per_unit; break;
      }
    }
    counts->up_bytes = a.tlp_bytes[kUp];
    counts->down_bytes = a.tlp_bytes[kDown];
    counts->up_tlps = a.tlps[kUp];
    counts->down_tlps = a.tlps[kDown];
    counts->device_read_requests = a.dev_reqs;
  }
  return a;
}

double PcieLink::nic_gbps(NicModel model, std::int64_t size, NicDirection dir) const {
  return steady_gbps(nic_tally(model, size, dir, nullptr), static_cast<double>(size));
}

NicPacketCost PcieLink::nic_packet(NicModel model, std::int64_t size, NicDirection dir) const {
  NicPacketCost r;
  nic_tally(model, size, dir, &r);
  return r;
}

std::string describe(const PcieConfig& c) {
  std::ostringstream s;
  s << "gen" << c.gen << " x" << c.lanes << ", MPS " << c.mps_bytes << ", MRRS " << c.mrrs_bytes
    << ", RCB " << c.rcb_bytes << " (completions at "
    << (c.completion_split == CompletionSplit::kRcb ? "RCB" : "MPS") << "), " << c.addr_bits
    << "-bit DMA addresses" << (c.ecrc ? ", ECRC" : "");
  if (c.latency) s << ", read RTT " << c.read_rtt_ns << " ns, " << c.max_tags << " tags";
  else s << ", no latency limits";
  if (c.compat_pcie_bench) s << ", pcie-bench compat";
  return s.str();
}

const char* nic_model_name(NicModel m) {
  switch (m) {
    case NicModel::kSimple: return "simple";
    case NicModel::kKernel: return "kernel";
    case NicModel::kDpdk: return "dpdk";
  }
  return "?";
}

const char* nic_direction_name(NicDirection d) {
  switch (d) {
    case NicDirection::kRx: return "rx";
    case NicDirection::kTx: return "tx";
    case NicDirection::kBoth: return "both";
  }
  return "?";
}

}  // namespace ppsim::cost
