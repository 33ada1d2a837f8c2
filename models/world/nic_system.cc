#include "models/world/nic_system.h"

#include <algorithm>
#include <cmath>

#include "models/nic/bottleneck.h"
#include "models/nic/wire.h"
#include "models/page_pool/costs.h"
#include "sim/error.h"

namespace ppsim::world {

using sim::Picos;

void register_nic_params(sim::ParamRegistry& r) {
  // Receive queues and the driver.
  r.add_int("nic.queues", "queues", 1, "PF receive queues, each with its own NAPI and page_pool (RSS spreads flows over them)", 1, 4096);
  r.add_int("nic.first_cpu", "", 0, "PF queue i's interrupt and NAPI run on CPU (first_cpu + i) mod cpus.count", 0, 4095);
  r.add_int("nic.rx_ring_size_descs", "descriptors", 1024, "RX descriptors per queue (a power of two)", 8, 65536);
  r.add_int("nic.buffer_bytes", "bytes", 2048,
            "RX buffer per descriptor: a page_pool frag when 2*size fits a page, else a whole page", 64, 1 << 20);
  r.add_float("nic.irq_coalesce_us", "us", 8.0, "rx-usecs: interrupt delay after the first completion", 0, 1e9,
              "ppsim assumption (typical adaptive-moderation floor)");
  r.add_int("nic.irq_coalesce_frames", "packets", 0, "rx-frames: interrupt after this many completions (0: off)", 0, 65536);
  r.add_float("nic.irq_latency_us", "us", 1.0, "MSI-X landing to NET_RX softirq start", 0, 1e9, "ppsim assumption");
  r.add_float("nic.irq_move_at_us", "us", 0.0,
              "interrupt affinity change at this time (0: never): every queue moves to CPU + irq_move_cpu_offset", 0, 1e9);
  r.add_int("nic.irq_move_cpu_offset", "cpus", 1, "how far the interrupt affinity change moves each queue", 0, 4095);
  r.add_bool("nic.update_nid", false,
             "the driver calls page_pool_nid_changed(pool, numa_mem_id()) each poll (as mlx5 does)");
  r.add_int("nic.rx_refill_batch_descs", "descriptors", 16,
            "the driver refills and writes the RX tail once this many descriptors are free", 1, 65536,
            "IXGBE_RX_BUFFER_WRITE (drivers/net/ethernet/intel/ixgbe/ixgbe.h)");
  r.add_float("nic.mmio_write_ns", "ns", 50.0, "CPU time of one MMIO write (doorbell, interrupt re-enable)", 0, 1e9,
              "ppsim assumption (an uncached posted store)");
  // The device's view of the rings.
  r.add_int("nic.rx_desc_bytes", "bytes", 16, "RX descriptor size the device fetches (16 legacy/advanced, 32 extended)", 4, 256,
            "ixgbe: 16-byte advanced RX descriptors");
  r.add_int("nic.rx_wb_bytes", "bytes", 16, "bytes written back per completed RX descriptor", 4, 256,
            "ixgbe: the write-back format overwrites the 16-byte descriptor in place");
  r.add_int("nic.rx_fetch_batch_descs", "descriptors", 8, "RX descriptors per fetch read", 1, 4096,
            "ppsim assumption; 1 reproduces pcie-bench's per-packet descriptor read");
  r.add_int("nic.rx_fetch_threshold_descs", "descriptors", 8,
            "prefetch once this many RX descriptors are visible and fit the cache (a doorbell fetches any number)", 1, 4096);
  r.add_int("nic.rx_desc_cache_descs", "descriptors", 64, "fetched-but-unused RX descriptors the device holds per queue", 1, 65536,
            "ppsim assumption");
  r.add_int("nic.rx_wb_batch_descs", "descriptors", 1, "RX completions per write-back write", 1, 4096,
            "pcie-bench kernel/dpdk RX models: one write-back per packet");
  r.add_float("nic.rx_wb_timeout_us", "us", 2.0, "a partial RX write-back batch is written after this long", 0, 1e9,
              "ppsim assumption");
  r.add_int("nic.rx_fifo_kib", "KiB", 512, "RX packet buffer", 1, 1 << 20, "Intel 82599 datasheet: 512 KB RX packet buffer");
  // Transmit.
  r.add_int("nic.tx_ring_size_descs", "descriptors", 1024, "TX descriptors per queue (a power of two)", 8, 65536);
  r.add_int("nic.tx_desc_bytes", "bytes", 16, "TX descriptor size the device fetches", 4, 256, "ixgbe: 16-byte TX descriptors");
  r.add_int("nic.tx_wb_bytes", "bytes", 16, "bytes written back per completed TX descriptor", 4, 256);
  r.add_int("nic.tx_fetch_batch_descs", "descriptors", 40, "TX descriptors per fetch read", 1, 4096,
            "pcie-bench niantic.py (ixgbe on 82599): 40 TX descriptors per read");
  r.add_int("nic.tx_fetch_threshold_descs", "descriptors", 40,
            "prefetch once this many TX descriptors are visible and fit the cache (a doorbell fetches any number)", 1, 4096);
  r.add_int("nic.tx_desc_cache_descs", "descriptors", 128, "fetched-but-unused TX descriptors the device holds per queue", 1, 65536,
            "ppsim assumption (room for a fetch in flight while 40 are used)");
  r.add_int("nic.tx_wb_batch_descs", "descriptors", 8, "TX completions per write-back write", 1, 4096,
            "pcie-bench niantic.py: TX write-back of 8 descriptors");
  r.add_float("nic.tx_wb_timeout_us", "us", 2.0, "a partial TX write-back batch is written after this long", 0, 1e9,
              "ppsim assumption");
  r.add_int("nic.tx_fifo_kib", "KiB", 160, "TX packet buffer", 1, 1 << 20, "Intel 82599 datasheet: 160 KB TX packet buffer");
  r.add_float("nic.tx_irq_coalesce_us", "us", 8.0, "tx-usecs: TX completion interrupt delay", 0, 1e9, "ppsim assumption");
  r.add_int("nic.tx_irq_coalesce_frames", "packets", 0, "tx-frames (0: off)", 0, 65536);
  r.add_int("nic.tx_clean_budget", "descriptors", 256, "TX completions cleaned per poll", 1, 1 << 20,
            "IXGBE_DEFAULT_TX_WORK");
  r.add_float("nic.tx_clean_ns", "ns", 40.0, "driver work per cleaned TX descriptor (unmap, napi_consume_skb)", 0, 1e9,
              "ppsim assumption");

  // RX memory modes (docs/zerocopy.md).
  r.add_enum("nic.rx_mode", "writable", {"writable", "read_only"},
             "how the driver builds skbs: around the buffer (build_skb writes skb_shared_info into the packet page) or "
             "read-only (a separate head gets a copy of the headers; the CPU never writes the page)");
  r.add_bool("nic.header_split", false,
             "the NIC writes the first traffic.header_bytes of each packet into a separate header buffer (one more DMA "
             "write; a read-only head then needs no copy)");
  r.add_int("traffic.header_bytes", "bytes", 66, "packet headers: Ethernet + IPv4 + TCP with timestamps (14 + 20 + 32)",
            14, 1024);
  r.add_float("rxmode.head_alloc_ns", "ns", 25.0,
              "read-only: napi_alloc_skb of the separate head from the per-CPU page_frag cache, skb_shared_info init",
              0, 1e9, "ppsim assumption (a slab object and a page_frag carve: tens of ns)");
  r.add_float("rxmode.head_free_ns", "ns", 15.0, "read-only: freeing the separate head with the skb", 0, 1e9,
              "ppsim assumption");
  r.add_float("rxmode.hdr_copy_ns", "ns", 5.0, "read-only without header split: fixed cost of the header memcpy", 0, 1e9,
              "ppsim assumption");
  r.add_float("rxmode.copy_ns_per_kib", "ns/KiB", 50.0, "read-only: memcpy per KiB of header bytes", 0, 1e9,
              "ppsim assumption (about 20 GB/s, cache-resident)");
  r.add_int("rxmode.head_truesize_bytes", "bytes", 512,
            "read-only: truesize of the separate head: SKB_DATA_ALIGN(headers + NET_SKB_PAD) + skb_shared_info", 0, 1 << 20);
  r.add_int("rxmode.shinfo_bytes", "bytes", 320,
            "SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86_64: what build_skb writes at the buffer's end", 0, 4096);

  r.add_int("napi.budget", "packets", 64, "NAPI poll budget (weight)", 1, 65536);
  r.add_float("napi.per_packet_ns", "ns", 60.0, "driver RX work per packet (descriptor, skb build)", 0, 1e9,
              "ppsim assumption");
  r.add_float("napi.poll_overhead_ns", "ns", 300.0, "work per NAPI poll besides packets", 0, 1e9, "ppsim assumption");
  r.add_float("napi.alloc_retry_us", "us", 100.0, "re-poll delay when the ring could not be refilled", 0.001, 1e9);
  r.add_bool("napi.threaded", false,
             "threaded NAPI (/sys/class/net/<dev>/threaded): the poll runs in a kthread with bottom halves disabled, "
             "in_softirq() but not in_serving_softirq()");
  r.add_int("nic.rx_alloc_bulk_descs", "descriptors", 1,
            "buffers the driver allocates before posting any of them (mlx5 wqe_bulk); a bulk that cannot be completed "
            "gives its buffers back to the pool", 1, 4096);
  r.add_float("nic.pool_swap_at_us", "us", 0.0,
              "restart every PF queue on a new page_pool at this time, keeping its NAPI (the queue API's "
              "netdev_rx_queue_restart, as ethtool -G or a queue binding uses it; 0: never)", 0, 1e9);
  r.add_bool("nic.pool_swap_fail", false,
             "the restart's start step fails: the queue goes back to its old pool and the new one is destroyed");

  // Traffic from the wire.
  r.add_float("traffic.rate_pps", "pps", 1e6, "offered packets per second from the wire (the line caps it)", 0, 1e12);
  r.add_int("traffic.packet_bytes", "bytes", 1500, "frame size, FCS included (64 is the minimum Ethernet frame)", 14, 1 << 20);
  r.add_int("traffic.packets", "packets", 0, "stop after this many packets (0: run for sim.duration_us)", 0, 1ll << 50);
  r.add_enum("traffic.pattern", "constant", {"constant", "poisson"}, "arrival process");
  r.add_float("traffic.start_us", "us", 10.0, "first arrival; also the start of the measurement window", 0, 1e9);
  r.add_int("traffic.flows", "", 64, "flows the packets are drawn from uniformly; RSS hashes each to a queue", 1, 1 << 24);
  r.add_string("traffic.to", "pf", "receiving function: pf or vfK");
  // A transmitting application.
  r.add_float("traffic.tx_rate_pps", "pps", 0.0, "offered packets per second of the sending application (0: none)", 0, 1e12);
  r.add_int("traffic.tx_packet_bytes", "bytes", 1500, "transmitted frame size, FCS included", 60, 1 << 20);
  r.add_int("traffic.tx_packets", "packets", 0, "stop after this many packets (0: run for sim.duration_us)", 0, 1ll << 50);
  r.add_enum("traffic.tx_pattern", "constant", {"constant", "poisson"}, "arrival process of the sender's data");
  r.add_string("traffic.tx_from", "pf", "sending function: pf or vfK");
  r.add_string("traffic.tx_to", "wire", "destination: wire, or pf / vfK through the embedded switch (or the kernel path)");
  r.add_int("traffic.tx_cpu", "", -1, "CPU of the sending application (-1: the sending function's first queue CPU)", -1, 4095);
  r.add_float("traffic.tx_per_packet_ns", "ns", 400.0, "sender CPU per packet: syscall, stack, driver xmit", 0, 1e9,
              "ppsim assumption (batched sendmmsg; a single UDP sendmsg is nearer 1-2 us)");
  r.add_int("traffic.tx_batch", "packets", 32, "packets per send batch: one TX doorbell per batch (xmit_more)", 1, 65536);
  r.add_int("traffic.tx_flows", "flows", 64, "flows of the transmitted packets (RSS at a hairpin destination)", 1, 1 << 24);

  // The wire.
  r.add_float("wire.line_rate_gbps", "Gbps", 25.0, "line rate: 1, 2.5, 5, 10, 25, 40, 50, 100, 200 or 400 Gb/s", 1, 400);
  r.add_int("wire.preamble_bytes", "bytes", 8, "preamble + start-of-frame delimiter per frame", 0, 64, "IEEE 802.3 clause 3.1.1");
  r.add_int("wire.ifg_bytes", "bytes", 12, "inter-frame gap", 0, 64, "IEEE 802.3 clause 4.4.2");

  // PCIe (the cost model's parameters, docs/pcie.md) and the topology.
  r.add_int("pcie.gen", "", 3, "PCIe generation of the NIC's link (1..6)", 1, 6);
  r.add_int("pcie.lanes", "", 8, "link width: 1, 2, 4, 8 or 16", 1, 16);
  r.add_int("pcie.mps_bytes", "bytes", 256, "Max_Payload_Size", 128, 4096);
  r.add_int("pcie.mrrs_bytes", "bytes", 512, "Max_Read_Request_Size", 128, 4096);
  r.add_int("pcie.rcb_bytes", "bytes", 64, "read completion boundary (64 or 128)", 64, 128);
  r.add_enum("pcie.completion_split", "mps", {"mps", "rcb"}, "read completions are split at MPS or at the RCB");
  r.add_int("pcie.addr_bits", "bits", 64, "DMA address width: 64 → 4DW headers, 32 → 3DW", 32, 64);
  r.add_bool("pcie.ecrc", false, "4-byte ECRC digest on every TLP");
  r.add_bool("pcie.latency", true, "reads wait for the round trip and the tag limit (off: serialization only)");
  r.add_float("pcie.read_rtt_ns", "ns", 546.0, "DMA read round trip", 0, 1e9,
              "pcie-bench/data nfp6000 + Xeon E5-2630v4, LAT_DMA_RD 64 B median");
  r.add_float("pcie.write_latency_ns", "ns", 273.0, "posted write until visible", 0, 1e9, "assumption: half the read RTT");
  r.add_int("pcie.max_tags", "tags", 32, "outstanding read requests per function", 1, 768, "5-bit Tag field, Extended Tag off");
  r.add_bool("pcie.switch", false, "a PCIe switch between the NIC and the root complex (its upstream link is pcie.link1)");
  r.add_float("pcie.switch_latency_ns", "ns", 150.0, "latency of the switch, each way", 0, 1e9,
              "ppsim assumption (switch vendors quote 100-150 ns port to port)");
  r.add_int("pcie.switch_up_gen", "", 0, "generation of the switch's upstream link (0: as pcie.gen)", 0, 6);
  r.add_int("pcie.switch_up_lanes", "", 0, "width of the switch's upstream link (0: as pcie.lanes)", 0, 16);

  // SR-IOV and the embedded switch; the kernel path it is compared with.
  r.add_int("sriov.vfs", "", 0, "virtual functions on the NIC, sharing its PCIe link", 0, 256);
  r.add_int("sriov.vf_queues", "queues", 1, "receive queues per VF", 1, 256);
  r.add_int("sriov.vf_first_cpu", "", 0, "VF k's queue i runs on CPU (vf_first_cpu + k * vf_queues + i) mod cpus.count", 0, 4095);
  r.add_float("sriov.eswitch_port_gbps", "Gbps", 0.0,
              "embedded switch bound to a port's speed: VF-to-VF frames are serialised at this rate (0: not bound)",
              0, 400);
  r.add_float("sriov.eswitch_latency_ns", "ns", 300.0, "embedded switch: from TX data read to the RX packet buffer", 0, 1e9,
              "ppsim assumption");
  r.add_enum("sriov.vm_path", "eswitch", {"eswitch", "kernel", "kernel_zerocopy"},
             "function-to-function traffic: through the NIC's embedded switch (VFs), or the host kernel's software switch");
  r.add_float("sriov.kernel_forward_ns", "ns", 300.0, "kernel path: sender-side forwarding per packet (veth/tap + bridge)", 0, 1e9,
              "ppsim assumption");
  r.add_float("sriov.kernel_rx_per_packet_ns", "ns", 100.0, "kernel path: receive NAPI work per packet besides the copy", 0, 1e9,
              "ppsim assumption");
  r.add_float("sriov.kernel_copy_ns_per_kib", "ns/KiB", 100.0, "kernel path: CPU copy into the receiver's buffer per KiB", 0, 1e9,
              "ppsim assumption (about 10 GB/s, as stack.reader_copy_ns_per_kib)");
  r.add_int("sriov.kernel_rx_cpu", "", -1, "kernel path: CPU of the receive NAPI (-1: the sender's CPU, as veth's napi_schedule)", -1, 4095);
  r.add_int("sriov.kernel_ring_size", "packets", 256, "kernel path: receive ring (the sender stops when full)", 1, 1 << 20,
            "VETH_RING_SIZE (drivers/net/veth.c)");
}

namespace {

// "pf" → 0, "vfK" → K + 1; -1 when malformed or out of range.
int function_index(const std::string& s, std::int64_t vfs) {
  if (s == "pf" || s == "pf0") return 0;
  if (s.size() < 3 || s.compare(0, 2, "vf") != 0) return -1;
  std::int64_t k = 0;
  for (std::size_t i = 2; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9' || k > 100000) return -1;
    k = k * 10 + (s[i] - '0');
  }
  return k < vfs ? static_cast<int>(k) + 1 : -1;
}

std::string function_choices(std::int64_t vfs) {
  if (vfs == 0) return "pf (sriov.vfs is 0)";
  return "pf or vf0..vf" + std::to_string(vfs - 1);
}

cost::PcieConfig pcie_config(const sim::Params& p, int gen, int lanes) {
  cost::PcieConfig c;
  c.gen = gen;
  c.lanes = lanes;
  c.mps_bytes = static_cast<int>(p.get_int("pcie.mps_bytes"));
  c.mrrs_bytes = static_cast<int>(p.get_int("pcie.mrrs_bytes"));
  c.rcb_bytes = static_cast<int>(p.get_int("pcie.rcb_bytes"));
  c.completion_split = p.get_string("pcie.completion_split") == "rcb" ? cost::CompletionSplit::kRcb : cost::CompletionSplit::kMps;
  c.addr_bits = static_cast<int>(p.get_int("pcie.addr_bits"));
  c.ecrc = p.get_bool("pcie.ecrc");
  c.latency = p.get_bool("pcie.latency");
  c.read_rtt_ns = p.get_double("pcie.read_rtt_ns");
  c.write_latency_ns = p.get_double("pcie.write_latency_ns");
  c.max_tags = static_cast<int>(p.get_int("pcie.max_tags"));
  return c;
}

nic::RingHwConfig ring_hw(const sim::Params& p, bool rx) {
  const std::string d = rx ? "nic.rx_" : "nic.tx_";
  nic::RingHwConfig h;
  h.desc_bytes = static_cast<std::uint32_t>(p.get_int(d + "desc_bytes"));
  h.wb_bytes = static_cast<std::uint32_t>(p.get_int(d + "wb_bytes"));
  h.fetch_batch = static_cast<std::uint32_t>(p.get_int(d + "fetch_batch_descs"));
  h.fetch_threshold = static_cast<std::uint32_t>(p.get_int(d + "fetch_threshold_descs"));
  h.desc_cache = static_cast<std::uint32_t>(p.get_int(d + "desc_cache_descs"));
  h.wb_batch = static_cast<std::uint32_t>(p.get_int(d + "wb_batch_descs"));
  h.wb_timeout = sim::from_us(p.get_double(d + "wb_timeout_us"));
  h.irq_coalesce = sim::from_us(p.get_double(rx ? "nic.irq_coalesce_us" : "nic.tx_irq_coalesce_us"));
  h.irq_coalesce_frames = static_cast<std::uint32_t>(p.get_int(rx ? "nic.irq_coalesce_frames" : "nic.tx_irq_coalesce_frames"));
  return h;
}

}  // namespace

void validate_nic_params(const sim::Params& p) {
  const std::string& f = p.file();
  auto err = [&](const char* path, const std::string& what) { return sim::ScenarioError(f, sim::json_path(path), what); };
  const double gbps = p.get_double("wire.line_rate_gbps");
  if (!nic::is_standard_line_rate(gbps))
    throw err("wire.line_rate_gbps", "expected an Ethernet line rate (1, 2.5, 5, 10, 25, 40, 50, 100, 200 or 400 Gb/s), got " +
                               std::to_string(gbps));
  const auto lanes = p.get_int("pcie.lanes");
  if (lanes != 1 && lanes != 2 && lanes != 4 && lanes != 8 && lanes != 16)
    throw err("pcie.lanes", "expected one of 1, 2, 4, 8, 16, got " + std::to_string(lanes));
  const auto up_lanes = p.get_int("pcie.switch_up_lanes");
  if (up_lanes != 0 && up_lanes != 1 && up_lanes != 2 && up_lanes != 4 && up_lanes != 8 && up_lanes != 16)
    throw err("pcie.switch_up_lanes", "expected 0 (as pcie.lanes) or one of 1, 2, 4, 8, 16, got " + std::to_string(up_lanes));
  for (const char* k : {"pcie.mps_bytes", "pcie.mrrs_bytes"}) {
    const auto v = p.get_int(k);
    if (v & (v - 1)) throw err(k, "expected a power of two in 128..4096, got " + std::to_string(v));
  }
  if (p.get_int("pcie.rcb_bytes") != 64 && p.get_int("pcie.rcb_bytes") != 128)
    throw err("pcie.rcb_bytes", "expected 64 or 128, got " + std::to_string(p.get_int("pcie.rcb_bytes")));
  if (p.get_int("pcie.addr_bits") != 32 && p.get_int("pcie.addr_bits") != 64)
    throw err("pcie.addr_bits", "expected 32 or 64, got " + std::to_string(p.get_int("pcie.addr_bits")));
  const auto tx_ring = p.get_int("nic.tx_ring_size_descs");
  if (tx_ring & (tx_ring - 1)) throw err("nic.tx_ring_size_descs", "expected a power of two, got " + std::to_string(tx_ring));
  for (const char* d : {"rx", "tx"}) {
    const std::string b = std::string("nic.") + d + "_";
    const auto batch = p.get_int(b + "fetch_batch_descs"), cache = p.get_int(b + "desc_cache_descs");
    if (cache < batch)
      throw sim::ScenarioError(f, sim::json_path(b + "desc_cache_descs"),
                               "expected at least " + b + "fetch_batch_descs (" + std::to_string(batch) + "), got " +
                                   std::to_string(cache));
    if (p.get_int(b + "fetch_threshold_descs") > cache)
      throw sim::ScenarioError(f, sim::json_path(b + "fetch_threshold_descs"),
                               "expected at most " + b + "desc_cache_descs (" + std::to_string(cache) + ")");
  }
  const auto ring = p.get_int("nic.rx_ring_size_descs");
  if (p.get_int("nic.rx_refill_batch_descs") > ring)
    throw err("nic.rx_refill_batch_descs", "expected at most nic.rx_ring_size_descs (" + std::to_string(ring) + ")");
  const auto vfs = p.get_int("sriov.vfs");
  if (function_index(p.get_string("traffic.to"), vfs) < 0)
    throw err("traffic.to", "expected " + function_choices(vfs) + ", got \"" + p.get_string("traffic.to") + "\"");
  if (p.get_double("traffic.tx_rate_pps") > 0) {
    const int from = function_index(p.get_string("traffic.tx_from"), vfs);
    if (from < 0)
      throw err("traffic.tx_from", "expected " + function_choices(vfs) + ", got \"" + p.get_string("traffic.tx_from") + "\"");
    const std::string& to = p.get_string("traffic.tx_to");
    const int dest = to == "wire" ? -1 : function_index(to, vfs);
    if (to != "wire" && dest < 0)
      throw err("traffic.tx_to", "expected wire or " + function_choices(vfs) + ", got \"" + to + "\"");
    if (dest == from) throw err("traffic.tx_to", "expected a function other than the sender (" + p.get_string("traffic.tx_from") + ")");
    if (p.get_string("sriov.vm_path") != "eswitch" && dest < 0)
      throw err("sriov.vm_path", "expected eswitch when traffic.tx_to is wire: the kernel path joins two functions of this host");
  }
  const auto ncpu = p.get_int("cpus.count");
  for (const char* k : {"traffic.tx_cpu", "sriov.kernel_rx_cpu"})
    if (p.get_int(k) >= ncpu) throw err(k, "expected -1 or a CPU below cpus.count (" + std::to_string(ncpu) + ")");
  const bool zc_used = p.get_bool("zerocopy.enabled") || p.get_string("sriov.vm_path") == "kernel_zerocopy";
  if (zc_used && p.get_int("zerocopy.app_cpu") >= ncpu)
    throw err("zerocopy.app_cpu", "expected a CPU below cpus.count (" + std::to_string(ncpu) + ")");
  if (p.get_string("sriov.vm_path") == "kernel_zerocopy") {
    if (p.get_bool("zerocopy.enabled"))
      throw err("zerocopy.enabled", "expected false with sriov.vm_path \"kernel_zerocopy\": there the receiving side is "
                                    "the zero-copy consumer (its costs are the zerocopy.* parameters)");
    const std::int64_t page = std::int64_t{4096} << std::min<std::int64_t>(p.get_int("page_pool.order"), 10);
    if (p.get_int("traffic.tx_packet_bytes") - 4 > page)
      throw err("traffic.tx_packet_bytes", "expected a frame that fits one pool page (" + std::to_string(page) +
                                               " bytes) with zero-copy handoff: one packet per page; raise page_pool.order");
  }
  if (p.get_bool("zerocopy.enabled")) {
    const auto queues = p.get_int("nic.queues");
    if (p.get_int("zerocopy.queue") >= queues)
      throw err("zerocopy.queue", "expected a PF queue below nic.queues (" + std::to_string(queues) + "), got " +
                                      std::to_string(p.get_int("zerocopy.queue")));
    if (p.get_int("zerocopy.app_flows") > p.get_int("traffic.flows"))
      throw err("zerocopy.app_flows", "expected at most traffic.flows (" + std::to_string(p.get_int("traffic.flows")) + ")");
    if (p.get_string("zerocopy.steering") == "dedicated" && queues < 2 && p.get_int("zerocopy.app_flows") < p.get_int("traffic.flows"))
      throw err("zerocopy.steering", "expected nic.queues >= 2 with a dedicated queue when other flows exist "
                                     "(traffic.flows > zerocopy.app_flows): they need a queue of their own");
    const std::int64_t page = std::int64_t{4096} << std::min<std::int64_t>(p.get_int("page_pool.order"), 10);
    const auto in_page = p.get_int("traffic.packet_bytes") - 4 - (p.get_bool("nic.header_split") ? p.get_int("traffic.header_bytes") : 0);
    if (in_page > page)
      throw err("traffic.packet_bytes", "expected a frame whose data fits one pool page (" + std::to_string(page) +
                                            " bytes, FCS and split-off headers excluded) with zero-copy: one packet per "
                                            "page; raise page_pool.order");
    if (p.get_string("zerocopy.mapping") == "persistent") {
      if (p.get_string("zerocopy.steering") != "dedicated")
        throw err("zerocopy.mapping", "expected \"per_page\" unless zerocopy.steering is \"dedicated\": permanently mapped "
                                      "pages must never receive another flow's packet (AF_XDP and io_uring zcrx bind a queue)");
      const auto need = p.get_int("zerocopy.max_user_pages") + 192;
      if (p.get_int("zerocopy.max_user_pages") == 0 || p.get_int("page_pool.pool_size_pages") < need)
        throw err("page_pool.pool_size_pages",
                  "expected at least zerocopy.max_user_pages + 192 (" + std::to_string(need) +
                      ") pages and a non-zero zerocopy.max_user_pages with persistent mapping: registered memory is a fixed "
                      "area, so recycling must never overflow the ring and free a mapped page");
    }
  }
  if (p.get_double("traffic.start_us") >= p.get_double("sim.duration_us"))
    throw err("traffic.start_us", "expected less than sim.duration_us (" + std::to_string(p.get_double("sim.duration_us")) +
                                      " us): the measurement window would be empty");
}

NicSystem::NicSystem(sim::Kernel& kernel, const sim::Params& p, std::vector<sim::Cpu>& cpus, page_pool::PageWorld& pages,
                     nic::PacketSink& sink, sim::Stats& stats, sim::Topology& topo,
                     const std::vector<sim::Topology::Vertex>& cpu_v, const sim::Rng& root,
                     const page_pool::MutantSet& mutants, const std::function<void(page_pool::PagePool*)>& on_pool)
    : kernel_(kernel), p_(p), cpus_(cpus), stats_(stats), pages_(pages), mutants_(mutants),
      window_proc_(kernel, "nic.window", [this] {
        const bool first = kernel_.now() < window_end_;
        auto& v = first ? busy_at_start_ : busy_at_end_;
        auto& sv = first ? softirq_at_start_ : softirq_at_end_;
        v.clear();
        sv.clear();
        for (const auto& c : cpus_) {
          v.push_back(c.softirq_busy() + c.process_busy());
          sv.push_back(c.softirq_busy());
        }
        if (sender_) {
          (first ? sent_at_start_ : sent_at_end_) = sender_->sent();
          (first ? blocked_at_start_ : blocked_at_end_) = sender_->blocked_ps(kernel_.now());
        }
        if (kernel_.now() < window_end_) {
          window_proc_.wake_at(window_end_);
        } else {
          window_closed_ = true;
        }
      }) {
  const int ncpu = static_cast<int>(cpus.size());
  const auto vfs = p.get_int("sriov.vfs");
  window_start_ = sim::from_us(p.get_double("traffic.start_us"));
  window_end_ = sim::from_us(p.get_double("sim.duration_us"));
  fabric_.set_window(window_start_, window_end_);

  // PCIe topology: root complex — [switch —] NIC; the functions are endpoints inside the NIC.
  const int gen = static_cast<int>(p.get_int("pcie.gen")), lanes = static_cast<int>(p.get_int("pcie.lanes"));
  const bool sw = p.get_bool("pcie.switch");
  const Picos sw_lat = sw ? sim::from_ns(p.get_double("pcie.switch_latency_ns")) : 0;
  const int link0 = fabric_.add_link("link0", pcie_config(p, gen, lanes), sw_lat);
  const auto rc = topo.add(sim::NodeKind::kRootComplex, "rc0", 0);
  const auto dev = topo.add(sim::NodeKind::kEndpoint, "nic0", 0);
  if (sw) {
    const int ug = p.get_int("pcie.switch_up_gen") ? static_cast<int>(p.get_int("pcie.switch_up_gen")) : gen;
    const int ul = p.get_int("pcie.switch_up_lanes") ? static_cast<int>(p.get_int("pcie.switch_up_lanes")) : lanes;
    const int link1 = fabric_.add_link("link1", pcie_config(p, ug, ul), 0);
    const auto swv = topo.add(sim::NodeKind::kPcieSwitch, "sw0", 0);
    topo.connect(swv, dev, sim::EdgeKind::kPcieLink, link0);
    topo.connect(rc, swv, sim::EdgeKind::kPcieLink, link1);
  } else {
    topo.connect(rc, dev, sim::EdgeKind::kPcieLink, link0);
  }
  // Every function reaches the root complex over its device's links.
  const std::vector<int> route = topo.links_on(topo.path(dev, rc, sim::EdgeKind::kPcieLink));

  nic::Nic::Config nc;
  nc.wire.gbps = p.get_double("wire.line_rate_gbps");
  nc.wire.preamble_bytes = static_cast<std::uint32_t>(p.get_int("wire.preamble_bytes"));
  nc.wire.ifg_bytes = static_cast<std::uint32_t>(p.get_int("wire.ifg_bytes"));
  nc.rx_fifo_bytes = static_cast<std::uint32_t>(p.get_int("nic.rx_fifo_kib") * 1024);
  nc.tx_fifo_bytes = static_cast<std::uint32_t>(p.get_int("nic.tx_fifo_kib") * 1024);
  nc.eswitch_latency = sim::from_ns(p.get_double("sriov.eswitch_latency_ns"));
  nc.eswitch_port_gbps = p.get_double("sriov.eswitch_port_gbps");
  nc.window_start = window_start_;
  nc.window_end = window_end_;
  nic_ = std::make_unique<nic::Nic>(kernel, nc, fabric_, pages, stats);

  const page_pool::PoolParams base = page_pool::pool_params_from(p);
  const page_pool::PoolCosts costs = page_pool::pool_costs_from(p);
  const bool napi_bound = p.get_bool("page_pool.napi_bound");
  auto make_pool = [&](const std::string& name, nic::Napi& napi, const page_pool::PoolParams& params, bool link = true) {
    page_pool::PoolParams pp = params;
    pp.napi_list_owner = napi_bound && link ? &napi.list_owner : nullptr;
    pp.napi_id = napi.id;
    const int id = static_cast<int>(pool_store_.size());
    pool_store_.push_back(std::make_unique<page_pool::PagePool>(id, pages, pp, costs, ncpu, mutants));
    page_pool::PagePool* pool = pool_store_.back().get();
    pools_.push_back({name, pool});
    if (on_pool) on_pool(pool);
    return pool;
  };

  nic::RxQueue::Config rc_base;
  rc_base.ring_size = static_cast<std::uint32_t>(p.get_int("nic.rx_ring_size_descs"));
  rc_base.buffer_bytes = static_cast<std::uint32_t>(p.get_int("nic.buffer_bytes"));
  rc_base.budget = static_cast<std::uint32_t>(p.get_int("napi.budget"));
  rc_base.refill_batch = static_cast<std::uint32_t>(p.get_int("nic.rx_refill_batch_descs"));
  rc_base.per_packet = sim::from_ns(p.get_double("napi.per_packet_ns"));
  rc_base.poll_overhead = sim::from_ns(p.get_double("napi.poll_overhead_ns"));
  rc_base.mmio_cpu = sim::from_ns(p.get_double("nic.mmio_write_ns"));
  rc_base.irq_latency = sim::from_us(p.get_double("nic.irq_latency_us"));
  rc_base.alloc_retry = sim::from_us(p.get_double("napi.alloc_retry_us"));
  rc_base.update_nid = p.get_bool("nic.update_nid");
  rc_base.mode = p.get_string("nic.rx_mode") == "read_only" ? nic::RxQueue::Config::Mode::kReadOnly
                                                           : nic::RxQueue::Config::Mode::kWritable;
  rc_base.header_split = p.get_bool("nic.header_split");
  rc_base.hdr_bytes = static_cast<std::uint32_t>(p.get_int("traffic.header_bytes"));
  rc_base.shinfo_bytes = static_cast<std::uint32_t>(p.get_int("rxmode.shinfo_bytes"));
  rc_base.head_truesize = static_cast<std::uint32_t>(p.get_int("rxmode.head_truesize_bytes"));
  rc_base.head_alloc = sim::from_ns(p.get_double("rxmode.head_alloc_ns"));
  rc_base.hdr_copy_fixed = sim::from_ns(p.get_double("rxmode.hdr_copy_ns"));
  rc_base.copy_ps_per_byte = p.get_double("rxmode.copy_ns_per_kib") * 1000.0 / 1024.0;
  rc_base.threaded = p.get_bool("napi.threaded");
  rc_base.alloc_bulk = static_cast<std::uint32_t>(p.get_int("nic.rx_alloc_bulk_descs"));
  const double swap_at = p.get_double("nic.pool_swap_at_us");
  const nic::RingHwConfig rx_hw = ring_hw(p, true), tx_hw = ring_hw(p, false);

  // Zero-copy: the application, its queue's pool (read-only, one packet per page, a limit on
  // pages out to it) and the queue's configuration once it runs zero-copy.
  const bool zc_on = p.get_bool("zerocopy.enabled");
  const int zc_queue = zc_on ? static_cast<int>(p.get_int("zerocopy.queue")) : -1;
  page_pool::PoolParams zc_pool = base;
  zc_pool.read_only = true;
  zc_pool.user_limit = static_cast<std::uint32_t>(p.get_int("zerocopy.max_user_pages"));
  if (zc_on) {
    user_flows_ = static_cast<std::uint32_t>(p.get_int("zerocopy.app_flows"));
    ZeroCopyConfig zcc = zerocopy_config_from(p);
    zcc.window_start = window_start_;
    zcc.window_end = window_end_;
    zc_ = std::make_unique<ZeroCopyConsumer>(kernel, zcc, cpus, pages, stats, mutants);
  }

  // Functions and their receive queues.
  std::vector<int> first_cpu_of;  // per function
  std::vector<std::string> prefix_of;
  for (int fn = 0; fn <= vfs; ++fn) {
    const std::string fname = fn == 0 ? "pf0" : "vf" + std::to_string(fn - 1);
    const std::string prefix = fn == 0 ? "nic0." : "nic0." + fname + ".";
    const int req = fabric_.add_requester("nic0." + fname, route);
    const std::uint32_t flows = static_cast<std::uint32_t>(p.get_int("traffic.flows"));
    const int id = nic_->add_function(fname, req, std::max(flows, static_cast<std::uint32_t>(p.get_int("traffic.tx_flows"))));
    const auto fv = topo.add(sim::NodeKind::kEndpoint, "nic0." + fname, fn);
    topo.connect(dev, fv, sim::EdgeKind::kContains);
    const int nq = static_cast<int>(fn == 0 ? p.get_int("nic.queues") : p.get_int("sriov.vf_queues"));
    const int cpu0 = static_cast<int>(fn == 0 ? p.get_int("nic.first_cpu")
                                              : p.get_int("sriov.vf_first_cpu") + (fn - 1) * p.get_int("sriov.vf_queues"));
    first_cpu_of.push_back(cpu0 % ncpu);
    prefix_of.push_back(prefix);
    for (int q = 0; q < nq; ++q) {
      const int cpu = (cpu0 + q) % ncpu;
      const std::string qname = prefix + "rxq" + std::to_string(q);
      auto napi = std::make_unique<nic::Napi>();
      napi->name = qname;
      napi->id = static_cast<int>(napis_.size());
      nic::RxQueue::Config rc = rc_base;
      rc.index = q;
      rc.cpu = cpu;
      rc.name = qname;
      const bool zcq = fn == 0 && q == zc_queue;
      nic::RxQueue::Config zc_rc = rc;
      if (zcq) {
        zc_rc.mode = nic::RxQueue::Config::Mode::kReadOnly;
        if (!mutants.has(page_pool::Mutant::kZcFragPages))
          zc_rc.buffer_bytes = page_pool::kPageSize << base.order;  // one packet per page
        zc_rc.xdp_cost = sim::from_ns(p.get_double("zerocopy.xdp_ns"));
        zc_rc.app_flows = user_flows_;
      }
      const bool switching = zcq && p.get_double("zerocopy.switch_at_us") > 0;
      page_pool::PagePool* pool = make_pool(qname, *napi, zcq && !switching ? zc_pool : base);
      rxqs_.push_back(std::make_unique<nic::RxQueue>(kernel, zcq && !switching ? zc_rc : rc, *napi, *pool, pages, cpus, *nic_,
                                                     id, rx_hw, sink, stats, mutants));
      nic::RxQueue* rxq = rxqs_.back().get();
      rxq_ptrs_.push_back(rxq);
      if (swap_at > 0 && !zcq) {
        // The queue API's mem_alloc: the new pool exists before the restart, not yet handed to the
        // NAPI (created linked before 64fdaa94bfe0).
        page_pool::PagePool* fresh =
            make_pool(qname + ".swap", *napi, base, mutants.has(page_pool::Mutant::kRollbackLosesDirect));
        rxq->schedule_pool_swap(sim::from_us(swap_at), fresh, p.get_bool("nic.pool_swap_fail"));
        rxq->on_pool_destroyed = [this](page_pool::PagePool* old) {
          if (on_pool_destroyed) on_pool_destroyed(old);
        };
        topo.connect(topo.add(sim::NodeKind::kNicQueue, qname + ".after_swap", q),
                     topo.add(sim::NodeKind::kPagePool, qname + ".swap.pp", fresh->id()), sim::EdgeKind::kAllocatesFrom);
      }
      if (zcq) {
        rxq->attach_user(zc_.get());
        if (switching) {
          nic::RxQueue::Switch sw;
          sw.at = sim::from_us(p.get_double("zerocopy.switch_at_us"));
          sw.pool = make_pool(qname + ".ro", *napi, zc_pool);
          sw.after = zc_rc;
          sw.fixed = sim::from_us(p.get_double("zerocopy.switch_fixed_us"));
          rxq->schedule_switch(sw);
          rxq->register_switch_stats(stats);
          rxq->on_pool_destroyed = [this](page_pool::PagePool* old) {
            if (on_pool_destroyed) on_pool_destroyed(old);
          };
          topo.connect(topo.add(sim::NodeKind::kNicQueue, qname + ".after_switch", q),
                       topo.add(sim::NodeKind::kPagePool, qname + ".ro.pp", sw.pool->id()), sim::EdgeKind::kAllocatesFrom);
        }
        nic_->set_steering(0, p.get_string("zerocopy.steering") == "rss" ? 0 : user_flows_, q,
                           p.get_string("zerocopy.steering") == "dedicated");
      }
      napi_cpus_.push_back(cpu);
      const auto qv = topo.add(sim::NodeKind::kNicQueue, qname, q);
      const auto pv = topo.add(sim::NodeKind::kPagePool, qname + ".pp", pool->id());
      topo.connect(fv, qv, sim::EdgeKind::kContains);
      topo.connect(qv, cpu_v[static_cast<std::size_t>(cpu)], sim::EdgeKind::kRunsOn);
      topo.connect(qv, pv, sim::EdgeKind::kAllocatesFrom);
      napis_.push_back(std::move(napi));
    }
  }

  // Wire traffic.
  const nic::Wire wire(nc.wire);
  nic::TrafficSource::Config tc;
  tc.rate_pps = p.get_double("traffic.rate_pps");
  tc.packet_bytes = static_cast<std::uint32_t>(p.get_int("traffic.packet_bytes"));
  tc.packets = static_cast<std::uint64_t>(p.get_int("traffic.packets"));
  tc.start = window_start_;
  tc.stop = window_end_;
  tc.poisson = p.get_string("traffic.pattern") == "poisson";
  tc.min_gap_ps = wire.frame_ps(tc.packet_bytes);
  tc.flows = static_cast<std::uint32_t>(p.get_int("traffic.flows"));
  rx_offered_pps_ = tc.rate_pps;
  wire_src_ = std::make_unique<nic::TrafficSource>(tc, root.stream("traffic.wire"));
  nic_->set_wire_source(wire_src_.get(), function_index(p.get_string("traffic.to"), vfs));

  // The transmitting application.
  if (p.get_double("traffic.tx_rate_pps") > 0) {
    const int from = function_index(p.get_string("traffic.tx_from"), vfs);
    const std::string& to = p.get_string("traffic.tx_to");
    const int dest = to == "wire" ? -1 : function_index(to, vfs);
    nic::TrafficSource::Config xc;
    xc.rate_pps = p.get_double("traffic.tx_rate_pps");
    xc.packet_bytes = static_cast<std::uint32_t>(p.get_int("traffic.tx_packet_bytes"));
    xc.packets = static_cast<std::uint64_t>(p.get_int("traffic.tx_packets"));
    xc.start = window_start_;
    xc.stop = window_end_;
    xc.poisson = p.get_string("traffic.tx_pattern") == "poisson";
    xc.flows = static_cast<std::uint32_t>(p.get_int("traffic.tx_flows"));
    tx_src_ = std::make_unique<nic::TrafficSource>(xc, root.stream("traffic.tx"));
    const int fcpu = first_cpu_of[static_cast<std::size_t>(from)];
    sender_cpu_ = p.get_int("traffic.tx_cpu") >= 0 ? static_cast<int>(p.get_int("traffic.tx_cpu")) : fcpu;
    nic::TxPort* port = nullptr;
    if (p.get_string("sriov.vm_path") != "eswitch") {
      const bool zc = p.get_string("sriov.vm_path") == "kernel_zerocopy";
      nic::KernelPath::Config kc;
      kc.rx_cpu = p.get_int("sriov.kernel_rx_cpu") >= 0 ? static_cast<int>(p.get_int("sriov.kernel_rx_cpu")) : sender_cpu_;
      kc.ring_size = static_cast<std::uint32_t>(p.get_int("sriov.kernel_ring_size"));
      kc.budget = rc_base.budget;
      kc.buffer_bytes = rc_base.buffer_bytes;
      kc.forward_per_packet = sim::from_ns(p.get_double("sriov.kernel_forward_ns"));
      kc.per_packet = sim::from_ns(p.get_double("sriov.kernel_rx_per_packet_ns"));
      kc.copy_ps_per_byte = p.get_double("sriov.kernel_copy_ns_per_kib") * 1000.0 / 1024.0;
      kc.poll_overhead = rc_base.poll_overhead;
      kc.window_start = window_start_;
      kc.window_end = window_end_;
      kc.name = "kpath";
      kc.zero_copy = zc;
      kc.hdr_bytes = rc_base.hdr_bytes;
      kc.head_alloc = rc_base.head_alloc;
      kc.hdr_copy_fixed = rc_base.hdr_copy_fixed;
      if (zc) kc.buffer_bytes = page_pool::kPageSize << base.order;  // one packet per page
      auto napi = std::make_unique<nic::Napi>();
      napi->name = "kpath";
      napi->id = static_cast<int>(napis_.size());
      page_pool::PoolParams kp = zc ? zc_pool : base;
      kp.netdev = false;  // the kernel path's pool belongs to no netdev (like veth's): never listed
      page_pool::PagePool* pool = make_pool("kpath", *napi, kp);
      kpath_ = std::make_unique<nic::KernelPath>(kernel, kc, *napi, *pool, pages, cpus, sink, stats);
      if (zc) {
        // The receiving side maps the pages it is handed (the zerocopy.* costs and CPU).
        ZeroCopyConfig zcc = zerocopy_config_from(p);
        zcc.window_start = window_start_;
        zcc.window_end = window_end_;
        zc_ = std::make_unique<ZeroCopyConsumer>(kernel, zcc, cpus, pages, stats, mutants);
        kpath_->attach_user(zc_.get());
        user_flows_ = UINT32_MAX;  // everything on this path is the receiver's
      }
      napi_cpus_.push_back(kc.rx_cpu);
      const auto kv = topo.add(sim::NodeKind::kOther, "kpath", 0);
      topo.connect(kv, cpu_v[static_cast<std::size_t>(kc.rx_cpu)], sim::EdgeKind::kRunsOn);
      topo.connect(kv, topo.add(sim::NodeKind::kPagePool, "kpath.pp", pool->id()), sim::EdgeKind::kAllocatesFrom);
      napis_.push_back(std::move(napi));
      port = kpath_.get();
    } else {
      nic::TxQueue::Config xq;
      xq.cpu = fcpu;
      xq.ring_size = static_cast<std::uint32_t>(p.get_int("nic.tx_ring_size_descs"));
      xq.clean_budget = static_cast<std::uint32_t>(p.get_int("nic.tx_clean_budget"));
      xq.clean_per_packet = sim::from_ns(p.get_double("nic.tx_clean_ns"));
      xq.poll_overhead = rc_base.poll_overhead;
      xq.mmio_cpu = rc_base.mmio_cpu;
      xq.irq_latency = rc_base.irq_latency;
      xq.name = prefix_of[static_cast<std::size_t>(from)] + "txq0";
      txq_ = std::make_unique<nic::TxQueue>(kernel, xq, cpus, *nic_, from, tx_hw, dest, stats);
      napi_cpus_.push_back(fcpu);
      const auto qv = topo.add(sim::NodeKind::kNicQueue, xq.name, 0);
      topo.connect(*topo.find("nic0." + nic_->function_name(from)), qv, sim::EdgeKind::kContains);
      topo.connect(qv, cpu_v[static_cast<std::size_t>(fcpu)], sim::EdgeKind::kRunsOn);
      port = txq_.get();
    }
    nic::TxSender::Config sc;
    sc.cpu = sender_cpu_;
    sc.per_packet = sim::from_ns(p.get_double("traffic.tx_per_packet_ns"));
    sc.batch = static_cast<std::uint32_t>(p.get_int("traffic.tx_batch"));
    sc.name = "traffic.tx";
    sender_ = std::make_unique<nic::TxSender>(kernel, sc, cpus, *tx_src_, *port, stats);
  }
  if (p.get_string("stack.mode") == "socket") {
    const auto r = p.get_int("stack.reader_cpu");
    reader_cpu_ = r >= 0 ? static_cast<int>(r) : static_cast<int>(p.get_int("nic.first_cpu") % ncpu);
  }
}

NicSystem::~NicSystem() = default;

void NicSystem::open(Picos now) {
  window_proc_.wake_at(window_start_);
  for (auto& q : rxqs_) q->open(now);
  if (txq_) txq_->open(now);
  if (sender_) sender_->start(now);
}

void NicSystem::close(Picos now) {
  // 290f1c033281: the interrupt vectors, NAPIs included, were freed before the queues and pools.
  if (mutants_.has(page_pool::Mutant::kNapiFreedBeforePool)) free_napis(now);
  nic_->advance(now);
  if (zc_) zc_->close(now);
  if (sender_) sender_->stop();
  if (txq_) txq_->close(now);
  if (kpath_) kpath_->close(now);
  for (auto& q : rxqs_) q->close(now);
}

void NicSystem::free_napis(Picos now) {
  if (napis_freed_) return;
  napis_freed_ = true;
  page_pool::ExecCtx ctx;
  ctx.task = "ppsim-teardown";
  pages_.now = now;
  for (const auto& n : napis_) pages_.emit(page_pool::PageEv::kNapiDel, page_pool::kNoPage, -1, 0, n->id, &ctx, nullptr);
}

void NicSystem::register_stats() {
  nic_->register_stats();
  fabric_.register_stats(stats_);
  if (kpath_) {
    const double win_s = sim::to_sec(window_end_ - window_start_);
    nic::KernelPath* k = kpath_.get();
    stats_.formula("kpath.rx_gbps", "Gb/s", "bytes the kernel path handed to the stack inside the measurement window * 8 / window",
                   [k, win_s] { return sim::ratio(static_cast<double>(k->bytes_in_window()) * 8.0, win_s * 1e9); });
    stats_.formula("kpath.rx_mpps", "Mpps", "packets the kernel path handed to the stack inside the measurement window / window / 1e6",
                   [k, win_s] { return sim::ratio(static_cast<double>(k->packets_in_window()), win_s * 1e6); });
  }
}

nlohmann::json NicSystem::results(const sim::Stats& stats) const {
  const double win = static_cast<double>(window_end_ - window_start_);
  // NAPI CPUs count their softirq work. A sender's or reader's CPU counts all its work: softirq
  // preempts process context, so a thread sharing its CPU with NAPI is limited by both.
  auto cpu_util = [&](int cpu, bool softirq_only) {
    if (cpu < 0 || !window_closed_ || busy_at_start_.empty()) return 0.0;
    const auto i = static_cast<std::size_t>(cpu);
    const Picos busy = softirq_only ? softirq_at_end_[i] - softirq_at_start_[i] : busy_at_end_[i] - busy_at_start_[i];
    return std::min(1.0, sim::ratio(static_cast<double>(busy), win));
  };
  nic::BottleneckInput in;
  in.wire_rx = nic_->wire_rx_utilization();
  in.wire_tx = nic_->wire_tx_utilization();
  for (int l = 0; l < fabric_.links(); ++l) {
    in.pcie_up = std::max(in.pcie_up, fabric_.utilization(fabric_.up(l)));
    in.pcie_down = std::max(in.pcie_down, fabric_.utilization(fabric_.down(l)));
  }
  for (int r = 0; r < fabric_.requesters(); ++r) in.pcie_tags = std::max(in.pcie_tags, fabric_.tag_utilization(r));
  in.rx_fetch_stall = nic_->rx_fetch_stall_utilization();
  for (int c : napi_cpus_) in.cpu_softirq = std::max(in.cpu_softirq, cpu_util(c, true));
  in.cpu_sender = cpu_util(sender_cpu_, false);
  in.cpu_reader = cpu_util(reader_cpu_, false);
  if (zc_) {
    in.cpu_app = cpu_util(zc_->config().app_cpu, false);
    in.app_drops = zc_->queue_full_drops();
  }
  for (const auto& e : pools_)
    if (e.pool->alloc_stats().user_limit > 0) in.user_limited = true;
  in.eswitch_port = nic_->eswitch_utilization();
  in.offered = nic_->rx_arrivals() + nic_->hairpin_packets() + (kpath_ ? kpath_->packets() : 0);
  in.fifo_drops = nic_->rx_fifo_drops();
  // Taken into the RX buffer inside the window but not written out inside it: a growing backlog
  // (slack for what is in flight at the window's edges).
  const std::uint64_t admitted = nic_->rx_admitted_in_window(), placed = nic_->rx_packets_in_window();
  in.fifo_backlog = admitted > placed + 128 + admitted / 100 ? admitted - placed : 0;
  in.ring_drops = nic_->rx_missed_total();  // drops during a mode switch are deliberate: reported, not classified
  in.socket_drops = stats.has("stack.rcvbuf_drops") ? static_cast<std::uint64_t>(stats.value("stack.rcvbuf_drops")) : 0;
  const double line_pps = nic_->wire().max_pps(static_cast<std::uint32_t>(p_.get_int("traffic.packet_bytes")));
  in.rx_above_line_rate = rx_offered_pps_ > line_pps;
  in.tx_active = sender_ != nullptr;
  if (sender_) {
    const double sent = static_cast<double>(sent_at_end_ - sent_at_start_);
    const double left = static_cast<double>(kpath_ ? kpath_->packets_in_window() : nic_->tx_packets_in_window());
    in.sender_kept_up = blocked_at_end_ - blocked_at_start_ < 0.01 * win && sent <= 1.02 * left + 64;
  }
  const nic::Bottleneck b = nic::classify(in);
  nlohmann::json u = nlohmann::json::object();
  for (const auto& [k, v] : b.utilization) u[k] = v;
  nlohmann::json links = nlohmann::json::array();
  for (int l = 0; l < fabric_.links(); ++l)
    links.push_back({{"name", fabric_.link_name(l)}, {"describe", cost::describe(fabric_.link_model(l).config())},
                     {"up_utilization", fabric_.utilization(fabric_.up(l))},
                     {"down_utilization", fabric_.utilization(fabric_.down(l))}});
  return {{"nic0",
           {{"bottleneck", b.name},
            {"why", b.why},
            {"utilization", u},
            {"line_rate_gbps", nic_->wire().config().gbps},
            {"rx_line_max_mpps", line_pps / 1e6},
            {"pcie_links", links},
            {"vm_path", p_.get_string("sriov.vm_path")},
            {"switch_drops", nic_->rx_switch_drops_total()}}}};
}

}  // namespace ppsim::world
