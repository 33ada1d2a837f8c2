// PCIe cost model: TLP accounting against hand-computed examples, the spec's DLLP intervals,
// latency and tag limits, input validation, and the pcie-bench reference table
// (tests/data/pcie_bench/, provenance in its README.md).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "sim/cost/pcie.h"

using namespace ppsim::cost;

namespace {

PcieLink link_with(void (*tweak)(PcieConfig&)) {
  PcieConfig c;
  tweak(c);
  return PcieLink(c);
}

// Gen3 x8: 8 GT/s * 128/130 * 8 lanes, less one SKP block (+4 B EDS) per 376 blocks.
const double kGen3x8PsPerByte = 8000.0 / (64.0 * 128.0 / 130.0 * (1.0 - (1.0 + 4.0 / 128.0) / 376.0));

std::string error_of(void (*tweak)(PcieConfig&)) {
  try {
    link_with(tweak);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(PcieTlp, DmaWriteSplitsAtMpsWith4DwHeaders) {
  PcieLink l{PcieConfig{}};
  PcieCost c = l.dma_write(1500);
  // 1500 B at MPS 256 → 6 MWr, each 16 B header + 8 B framing/seq/LCRC.
  EXPECT_EQ(c.up.tlps, 6);
  EXPECT_EQ(c.up.payload_bytes, 1500);
  EXPECT_EQ(c.up.tlp_bytes, 1500 + 6 * 24);
  EXPECT_EQ(c.down.tlps, 0);
  EXPECT_EQ(c.down.tlp_bytes, 0);
  EXPECT_EQ(c.up.dllps, 0.0);  // nothing flows down to acknowledge
  // 1644 B * 127.302275 ps/B = 209285 ps.
  EXPECT_NEAR(c.up.serialization_ps, 209285, 1);
  // The receiver sends an ACK and an UpdateFC-P per 203 symbol times (203 ns at 8 GT/s).
  EXPECT_NEAR(c.down.dllps, 2 * 209.285 / 203.0, 1e-4);
  EXPECT_NEAR(c.down.dllp_bytes, 8 * c.down.dllps, 1e-9);
  EXPECT_NEAR(c.down.serialization_ps, 2100, 1);
}

TEST(PcieTlp, AddressWidthAndEcrcChangeEveryTlp) {
  EXPECT_EQ(link_with([](PcieConfig& c) { c.addr_bits = 32; }).dma_write(1500).up.tlp_bytes, 1500 + 6 * 20);
  EXPECT_EQ(link_with([](PcieConfig& c) { c.ecrc = true; }).dma_write(1500).up.tlp_bytes, 1500 + 6 * 28);
  // Completions always have a 3DW header; ECRC adds 4 B to requests and completions.
  PcieCost r = link_with([](PcieConfig& c) { c.ecrc = true; }).dma_read(1500);
  EXPECT_EQ(r.up.tlp_bytes, 3 * 28);
  EXPECT_EQ(r.down.tlp_bytes, 1500 + 6 * 24);
}

TEST(PcieTlp, DmaReadSplitsRequestsAtMrrsAndCompletionsPerRequest) {
  PcieLink l{PcieConfig{}};
  PcieCost c = l.dma_read(1500);
  // Requests 512 + 512 + 476; completions at MPS 256: 2 + 2 + 2.
  EXPECT_EQ(c.up.tlps, 3);
  EXPECT_EQ(c.up.tlp_bytes, 3 * 24);
  EXPECT_EQ(c.up.payload_bytes, 0);
  EXPECT_EQ(c.down.tlps, 6);
  EXPECT_EQ(c.down.tlp_bytes, 1500 + 6 * 20);
  EXPECT_EQ(c.down.payload_bytes, 1500);

  // At the RCB (64 B): 8 + 8 + 8 completions (476 B needs 8).
  PcieCost rcb = link_with([](PcieConfig& c) { c.completion_split = CompletionSplit::kRcb; }).dma_read(1500);
  EXPECT_EQ(rcb.down.tlps, 24);
  EXPECT_EQ(rcb.down.tlp_bytes, 1500 + 24 * 20);
  EXPECT_EQ(link_with([](PcieConfig& c) {
              c.completion_split = CompletionSplit::kRcb;
              c.rcb_bytes = 128;
            }).dma_read(1500).down.tlps,
            12);
}

TEST(PcieTlp, CompletionsDoNotMergeAcrossRequests) {
  // MRRS 128 < MPS 256: each 128 B request gets its own completion, 32 in all.
  auto small_mrrs = [](PcieConfig& c) { c.mrrs_bytes = 128; };
  PcieCost ours = link_with(small_mrrs).dma_read(4096);
  EXPECT_EQ(ours.up.tlps, 32);
  EXPECT_EQ(ours.down.tlps, 32);
  // pcie-bench divides the whole transfer by MPS: 16 completions.
  PcieCost theirs = link_with([](PcieConfig& c) {
                      c.mrrs_bytes = 128;
                      c.compat_pcie_bench = true;
                    }).dma_read(4096);
  EXPECT_EQ(theirs.down.tlps, 16);
}

TEST(PcieTlp, MmioAndMsixUse3DwHeadersBelow4GiB) {
  PcieLink l{PcieConfig{}};
  PcieCost doorbell = l.mmio_write(4);
  EXPECT_EQ(doorbell.down.tlp_bytes, 4 + 12 + 8);
  EXPECT_EQ(doorbell.up.tlp_bytes, 0);
  // A CPU emits MMIO writes of at most a 64 B write-combining line.
  PcieCost wc = l.mmio_write(128);
  EXPECT_EQ(wc.down.tlps, 2);
  EXPECT_EQ(wc.down.tlp_bytes, 128 + 2 * 20);
  PcieCost head = l.mmio_read(4);
  EXPECT_EQ(head.down.tlp_bytes, 12 + 8);
  EXPECT_EQ(head.up.tlp_bytes, 4 + 12 + 8);
  PcieCost msi = l.msix();
  EXPECT_EQ(msi.up.tlps, 1);
  EXPECT_EQ(msi.up.tlp_bytes, 4 + 12 + 8);
  // pcie-bench gives doorbells and MSI-X the DMA address format (64-bit: 4DW).
  PcieLink compat = link_with([](PcieConfig& c) { c.compat_pcie_bench = true; });
  EXPECT_EQ(compat.msix().up.tlp_bytes, 28);
  EXPECT_EQ(compat.mmio_write(4).down.tlp_bytes, 28);
  EXPECT_EQ(link_with([](PcieConfig& c) { c.mmio_addr_bits = 64; }).mmio_write(4).down.tlp_bytes, 28);
}

TEST(PcieTlp, FramingPerGeneration) {
  // Gen1 x1, 32-bit: 64 + 12 header + STP + seq(2) + LCRC(4) + END = 84 B at 2.5 GT/s 8b/10b,
  // less 4 SKP symbols per 1538: 4010.43 ps/B.
  PcieCost g1 = link_with([](PcieConfig& c) {
                  c.gen = 1;
                  c.lanes = 1;
                  c.addr_bits = 32;
                }).dma_write(64);
  EXPECT_EQ(g1.up.tlp_bytes, 84);
  EXPECT_NEAR(g1.up.serialization_ps, 336876, 1);
  // Gen6 FLIT mode: no per-TLP framing, DLLPs ride in the flits.
  PcieCost g6 = link_with([](PcieConfig& c) { c.gen = 6; }).dma_write(256);
  EXPECT_EQ(g6.up.tlp_bytes, 256 + 16);
  EXPECT_EQ(g6.down.dllps, 0.0);
}

TEST(PcieTlp, ZeroBytesCostNothing) {
  PcieLink l{PcieConfig{}};
  PcieCost c = l.dma_read(0);
  EXPECT_EQ(c.up.tlp_bytes + c.down.tlp_bytes + c.latency_ps, 0);
}

TEST(PcieDllp, IntervalsFollowTheSpecTables) {
  // PCIe base spec Ack latency limits (symbol times): Gen1 x1 MPS128 237, Gen2 x4 MPS256 169,
  // Gen3 x8 MPS256 203, Gen3 x8 MPS512 182, Gen3 x16 MPS4096 630.
  struct Case { int gen, lanes, mps, want; };
  for (Case k : {Case{1, 1, 128, 237}, Case{2, 4, 256, 169}, Case{3, 8, 256, 203}, Case{3, 8, 512, 182},
                 Case{3, 16, 4096, 630}, Case{1, 16, 256, 72}}) {
    PcieConfig c;
    c.gen = k.gen;
    c.lanes = k.lanes;
    c.mps_bytes = k.mps;
    PcieLink l(c);
    EXPECT_EQ(l.ack_interval_symbols(), k.want) << "gen" << k.gen << " x" << k.lanes << " mps " << k.mps;
    EXPECT_EQ(l.fc_interval_symbols(), k.want);
  }
}

TEST(PcieDllp, IsolatedSmallWriteIsAmortised) {
  PcieLink l{PcieConfig{}};
  PcieCost c = l.dma_write(64);
  // 88 B busy for 11.2026 ns out of a 203 ns interval, ACK + UpdateFC-P.
  EXPECT_NEAR(c.down.dllps, 2 * 88 * kGen3x8PsPerByte / 203000.0, 1e-9);
}

TEST(PcieLatency, ReadRoundTripAndTagWaves) {
  PcieLink l{PcieConfig{}};
  // 546 ns + 84 B of completion.
  EXPECT_NEAR(l.dma_read(64).latency_ps, 546000 + 84 * kGen3x8PsPerByte, 1);
  // 64 KiB: 128 requests, 32 tags → 4 round trips, then 256 completions (65536 + 256*20 B).
  PcieCost big = l.dma_read(65536);
  EXPECT_EQ(big.up.tlps, 128);
  EXPECT_NEAR(big.latency_ps, 4 * 546000 + 70656 * kGen3x8PsPerByte, 1);
  // Posted write: serialization plus the one-way latency.
  EXPECT_NEAR(l.dma_write(64).latency_ps, 88 * kGen3x8PsPerByte + 273000, 1);
  // Latency off: pure serialization, request then completion.
  PcieLink off = link_with([](PcieConfig& c) { c.latency = false; });
  EXPECT_NEAR(off.dma_read(64).latency_ps, 108 * kGen3x8PsPerByte, 1);
}

TEST(PcieBandwidth, WriteIsLinkBound) {
  PcieLink l{PcieConfig{}};
  // 256 B per 280 B of TLP: 256*8 / (280 * 127.302 ps).
  EXPECT_NEAR(l.dma_write_gbps(256), 256 * 8 / (280 * kGen3x8PsPerByte) * 1000, 1e-9);
  EXPECT_NEAR(l.dma_write_gbps(4096), l.dma_write_gbps(256), 1e-9);
}

TEST(PcieBandwidth, SmallReadsAreTagBound) {
  PcieLink l{PcieConfig{}};
  // 32 tags, each held 546 ns + 84 B of completion: 29.43 Gb/s for 64 B reads.
  const double want = 32 * 64 * 8 / (546000 + 84 * kGen3x8PsPerByte) * 1000;
  EXPECT_NEAR(l.dma_read_gbps(64), want, 1e-9);
  EXPECT_NEAR(want, 29.4309, 1e-4);
  // With 256 tags the link, not the tags, limits 64 B reads.
  PcieLink many = link_with([](PcieConfig& c) { c.max_tags = 256; });
  PcieLink off = link_with([](PcieConfig& c) { c.latency = false; });
  EXPECT_NEAR(many.dma_read_gbps(64), off.dma_read_gbps(64), 1e-9);
  EXPECT_GT(off.dma_read_gbps(64), 1.5 * l.dma_read_gbps(64));
}

TEST(PcieBandwidth, ConcurrentReadWriteCostsBoth) {
  PcieLink l = link_with([](PcieConfig& c) { c.latency = false; });
  for (int s : {64, 256, 1500}) {
    EXPECT_LT(l.dma_read_write_gbps(s), l.dma_write_gbps(s)) << s;
    EXPECT_LT(l.dma_read_write_gbps(s), l.dma_read_gbps(s)) << s;
  }
}

TEST(PcieBandwidth, WiderAndFasterLinksScale) {
  auto w = [](int gen, int lanes) {
    PcieConfig c;
    c.gen = gen;
    c.lanes = lanes;
    return PcieLink(c).dma_write_gbps(1024);
  };
  EXPECT_NEAR(w(3, 16) / w(3, 8), 2.0, 0.01);
  EXPECT_NEAR(w(4, 8) / w(3, 8), 2.0, 0.01);
  EXPECT_NEAR(w(2, 8) / w(1, 8), 2.0, 0.01);
  EXPECT_GT(w(6, 8), 1.9 * w(5, 8));
}

TEST(PcieNic, PerPacketCountsOfTheKernelDriverModel) {
  PcieLink l{PcieConfig{}};
  NicPacketCost p = l.nic_packet(NicModel::kKernel, 64, NicDirection::kRx);
  EXPECT_DOUBLE_EQ(p.dma_writes, 2);        // packet + descriptor write-back
  EXPECT_DOUBLE_EQ(p.dma_reads, 1);         // one RX descriptor
  EXPECT_DOUBLE_EQ(p.mmio_writes, 1.0 / 32);
  EXPECT_DOUBLE_EQ(p.mmio_reads, 1.0 / 8);
  EXPECT_DOUBLE_EQ(p.msix, 1.0 / 32);
  // up: 88 (packet) + 40 (write-back) + 24 (descriptor MRd) + 24/32 (MSI-X) + 24/8 (head CplD)
  EXPECT_DOUBLE_EQ(p.up_bytes, 155.75);
  // down: 24/32 (doorbell) + 36 (descriptor CplD) + 20/8 (head MRd)
  EXPECT_DOUBLE_EQ(p.down_bytes, 39.25);
  // Compat loses the descriptor MRd and uses 4DW doorbell/MSI-X headers.
  NicPacketCost q = link_with([](PcieConfig& c) { c.compat_pcie_bench = true; })
                        .nic_packet(NicModel::kKernel, 64, NicDirection::kRx);
  EXPECT_DOUBLE_EQ(q.up_bytes, 88 + 40 + 28.0 / 32 + 3);
  EXPECT_DOUBLE_EQ(q.down_bytes, 28.0 / 32 + 36 + 3);
  NicPacketCost d = l.nic_packet(NicModel::kDpdk, 1500, NicDirection::kTx);
  EXPECT_DOUBLE_EQ(d.msix, 0);
  EXPECT_DOUBLE_EQ(d.mmio_reads, 0);
  EXPECT_DOUBLE_EQ(d.device_read_requests, 2.0 / 40 + 3);  // descriptor fetches + 3 packet MRd
}

TEST(PcieNic, DpdkBeatsKernelBeatsSimple) {
  PcieLink l = link_with([](PcieConfig& c) { c.latency = false; });
  for (NicDirection d : {NicDirection::kRx, NicDirection::kTx, NicDirection::kBoth})
    for (int s : {64, 512, 1500}) {
      EXPECT_GT(l.nic_gbps(NicModel::kDpdk, s, d), l.nic_gbps(NicModel::kKernel, s, d));
      EXPECT_GT(l.nic_gbps(NicModel::kKernel, s, d), l.nic_gbps(NicModel::kSimple, s, d));
    }
}

TEST(PcieErrors, EachBadParameterIsNamed) {
  struct Case { void (*tweak)(PcieConfig&); const char* want; };
  const Case cases[] = {
      {[](PcieConfig& c) { c.gen = 0; }, "gen: expected a PCIe generation 1..6, got 0"},
      {[](PcieConfig& c) { c.gen = 7; }, "gen: expected a PCIe generation 1..6, got 7"},
      {[](PcieConfig& c) { c.lanes = 3; }, "lanes: expected one of 1, 2, 4, 8, 16, got 3"},
      {[](PcieConfig& c) { c.lanes = 32; }, "lanes: expected one of 1, 2, 4, 8, 16, got 32"},
      {[](PcieConfig& c) { c.mps_bytes = 100; }, "mps_bytes: expected a power of two in 128..4096, got 100"},
      {[](PcieConfig& c) { c.mps_bytes = 8192; }, "mps_bytes: expected a power of two in 128..4096, got 8192"},
      {[](PcieConfig& c) { c.mrrs_bytes = 64; }, "mrrs_bytes: expected a power of two in 128..4096, got 64"},
      {[](PcieConfig& c) { c.rcb_bytes = 256; }, "rcb_bytes: expected 64 or 128, got 256"},
      {[](PcieConfig& c) { c.addr_bits = 48; }, "addr_bits: expected 32 or 64, got 48"},
      {[](PcieConfig& c) { c.mmio_addr_bits = 16; }, "mmio_addr_bits: expected 32 or 64, got 16"},
      {[](PcieConfig& c) { c.max_tags = 0; }, "max_tags: expected 1..768"},
      {[](PcieConfig& c) { c.read_rtt_ns = -1; }, "read_rtt_ns: expected a time from 0 to 1e9 ns"},
      {[](PcieConfig& c) { c.read_rtt_ns = 1e300; }, "read_rtt_ns: expected a time from 0 to 1e9 ns"},
      {[](PcieConfig& c) { c.write_latency_ns = NAN; }, "write_latency_ns: expected a time from 0 to 1e9 ns"},
  };
  for (const Case& k : cases) {
    const std::string got = error_of(k.tweak);
    EXPECT_EQ(got.rfind(k.want, 0), 0u) << "got: " << got << "\nwant prefix: " << k.want;
  }
  PcieLink l{PcieConfig{}};
  EXPECT_THROW(l.dma_write(-1), std::invalid_argument);
  EXPECT_THROW(l.cost(PcieOp::kMsix, 8), std::invalid_argument);
  EXPECT_THROW(l.dma_read_gbps(0), std::invalid_argument);
  // Near INT64_MAX the split arithmetic would overflow (undefined): refused, not computed.
  EXPECT_THROW(l.dma_read(INT64_MAX), std::invalid_argument);
  EXPECT_THROW(l.dma_write_gbps(kMaxTransferBytes + 1), std::invalid_argument);
  EXPECT_GT(l.dma_write_gbps(kMaxTransferBytes), 0);
  try {
    l.nic_gbps(NicModel::kSimple, -5, NicDirection::kRx);
    ADD_FAILURE() << "no throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "size: expected a transfer size from 1 byte to 2^40, got -5");
  }
}

// ---- pcie-bench reproduction: Gen3 x8, their configuration, latency and tags off ----

namespace {

struct Reference {
  std::vector<std::string> columns;
  std::vector<std::vector<double>> rows;  // size, then one value per column
};

Reference load_reference() {
  const std::string path = std::string(PPSIM_SOURCE_DIR) + "/tests/data/pcie_bench/reference_gen3_x8.csv";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  Reference r;
  std::string line;
  std::getline(in, line);
  std::stringstream hs(line);
  for (std::string cell; std::getline(hs, cell, ',');) r.columns.push_back(cell);
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<double> row;
    std::stringstream ls(line);
    for (std::string cell; std::getline(ls, cell, ',');) row.push_back(std::stod(cell));
    r.rows.push_back(row);
  }
  return r;
}

double ours(const PcieLink& l, const std::string& col, std::int64_t size) {
  if (col == "dma_write") return l.dma_write_gbps(size);
  if (col == "dma_read") return l.dma_read_gbps(size);
  if (col == "dma_read_write") return l.dma_read_write_gbps(size);
  static const std::map<std::string, NicModel> models = {
      {"simple", NicModel::kSimple}, {"kernel", NicModel::kKernel}, {"dpdk", NicModel::kDpdk}};
  static const std::map<std::string, NicDirection> dirs = {
      {"rx", NicDirection::kRx}, {"tx", NicDirection::kTx}, {"both", NicDirection::kBoth}};
  const auto us = col.find('_');
  return l.nic_gbps(models.at(col.substr(0, us)), size, dirs.at(col.substr(us + 1)));
}

PcieConfig pcie_bench_config() {
  PcieConfig c;  // gen3 x8, MPS 256, MRRS 512, RCB 64, MPS completions, 64-bit: nic_bw.py's setup
  c.compat_pcie_bench = true;
  c.latency = false;
  return c;
}

}  // namespace

TEST(PcieBench, CompatMatchesTheHandDerivedReferenceWithin2Percent) {
  const Reference ref = load_reference();
  ASSERT_EQ(ref.columns.size(), 13u);
  ASSERT_GE(ref.rows.size(), 10u);
  PcieLink l(pcie_bench_config());
  EXPECT_NEAR(l.tlp_capacity_gbps(), 57.884766, 1e-6);
  double worst = 0;
  for (const auto& row : ref.rows) {
    const auto size = static_cast<std::int64_t>(row[0]);
    for (size_t c = 1; c < ref.columns.size(); ++c) {
      const double got = ours(l, ref.columns[c], size), want = row[c];
      const double err = std::fabs(got - want) / want;
      worst = std::max(worst, err);
      EXPECT_LE(err, 0.02) << ref.columns[c] << " at " << size << ": ours " << got << ", theirs " << want;
      // The reference has 6 decimals; compat reproduces their arithmetic, so it is far closer.
      EXPECT_NEAR(got, want, 2e-6) << ref.columns[c] << " at " << size;
    }
  }
  RecordProperty("worst_relative_error", std::to_string(worst));
}

TEST(PcieBench, CorrectedModelDiffersFromTheirsWhereDocumented) {
  PcieLink theirs(pcie_bench_config());
  PcieConfig c = pcie_bench_config();
  c.compat_pcie_bench = false;
  PcieLink fixed(c);
  // Their DLLP overhead is 8x too large on x8: corrected writes gain ~8.6% at large sizes.
  EXPECT_NEAR(fixed.dma_write_gbps(4096) / theirs.dma_write_gbps(4096), 62.84255 / 57.884766, 1e-3);
  // Kernel RX at 64 B, up: + the lost 24 B descriptor MRd, − 4 B of 4DW MSI-X header per 32.
  EXPECT_DOUBLE_EQ(fixed.nic_packet(NicModel::kKernel, 64, NicDirection::kRx).up_bytes -
                       theirs.nic_packet(NicModel::kKernel, 64, NicDirection::kRx).up_bytes,
                   24 - 4.0 / 32);
}
