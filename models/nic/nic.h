// The NIC device: functions (a PF and SR-IOV VFs) behind one PCIe link, their RX and TX
// descriptor rings as the device sees them, the RX/TX packet buffers, the wire and the embedded
// switch. Drivers (RxQueue, TxQueue) live in host memory and talk to it by MMIO writes; it talks to
// them by DMA and MSI-X, every transaction through PcieFabric.
//
// Lazy device timeline. Nothing here runs per packet as a simulation event. The device keeps an
// agenda of its own (doorbells landing, interrupt timers, TX engine wake-ups, packets crossing
// the embedded switch) and processes it, merged in time order with wire arrivals and the RX
// packet buffer, whenever someone looks: advance(t) is called by the drivers at the current
// simulated time before they read completions, and by the device's own Process only when an
// interrupt is due or an armed vector waits for its first completion. Transactions are therefore
// booked on the PCIe links in time order.
//
// RX descriptor life cycle (u64 ring indices, in host memory):
//   posted by the driver (ntu) --tail doorbell lands--> visible (tail) --DMA read of a batch-->
//   fetched (in the device's descriptor cache) --packet DMA write--> filled (head)
//   --write-back DMA write--> completed (visible to the driver at the write-back's landing time)
// A packet reaches the RX packet buffer from the wire (or the embedded switch), is steered by RSS
// to a queue, and waits for the DMA engine in arrival order. At the head it is dropped if its
// queue has no visible descriptor (rx_missed: drop-enable semantics), waits for a descriptor fetch
// in flight (head-of-line), else is written to host memory. A packet that finds the buffer full
// is dropped (rx_fifo_drops).
//
// TX: the doorbell makes descriptors visible; the device fetches them in batches, reads each
// packet (tag-limited DMA read) into the TX packet buffer when it has room, sends it on the wire
// (or, for a VF/PF destination, hairpins it through the embedded switch into the destination
// function's RX path) and writes completions back in batches.
//
// Interrupt moderation per queue vector: armed by the driver's re-enable write; the first
// completion written back while armed starts a timer of coalesce_us; the vector fires at its end,
// or at the coalesce_frames-th completion if sooner: pending write-backs are flushed, then the
// MSI-X (a posted 4-byte MWr) goes up; the driver's handler runs when it lands.
#pragma once
#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <vector>

#include "models/nic/fifo.h"
#include "models/nic/pcie_fabric.h"
#include "models/nic/rss.h"
#include "models/nic/traffic.h"
#include "models/nic/wire.h"
#include "models/page_pool/page.h"
#include "sim/kernel.h"
#include "sim/stats.h"

namespace ppsim::nic {

class RxQueue;
class TxQueue;

// The device's view of one ring (RX or TX), from the scenario's nic.* parameters.
struct RingHwConfig {
  std::uint32_t desc_bytes = 16;       // descriptor the device fetches
  std::uint32_t wb_bytes = 16;         // written back per completed descriptor (in place)
  std::uint32_t fetch_batch = 8;       // descriptors per fetch read
  std::uint32_t fetch_threshold = 8;   // prefetch once this many are visible and fit the cache
  std::uint32_t desc_cache = 64;       // fetched-but-unused descriptors the device can hold
  std::uint32_t wb_batch = 1;          // completions per write-back write
  sim::Picos wb_timeout = 0;           // a partial write-back batch is flushed after this long
  sim::Picos irq_coalesce = 0;         // rx-usecs / tx-usecs
  std::uint32_t irq_coalesce_frames = 0;  // rx-frames / tx-frames (0: off)
  // RX header split (tcp-data-split): the first hdr_bytes of each packet go to a separate header
  // buffer (one more DMA write), the payload to the page buffer, starting at its offset.
  bool header_split = false;
  std::uint32_t hdr_bytes = 66;
};

class Nic {
 public:
  struct Config {
    std::string name = "nic0";
    WireConfig wire;
    std::uint32_t rx_fifo_bytes = 512 * 1024;
    std::uint32_t tx_fifo_bytes = 160 * 1024;
    sim::Picos eswitch_latency = 0;
    // Embedded switch bound to port speed (some NIC generations loop VF-to-VF traffic through the
    // port's pipeline): hairpinned frames are serialised at this rate (0: not bound).
    double eswitch_port_gbps = 0;
    sim::Picos window_start = 0, window_end = 0;  // measurement window for utilisations
  };

  Nic(sim::Kernel& kernel, const Config& cfg, PcieFabric& fabric, page_pool::PageWorld& world, sim::Stats& stats);
  Nic(const Nic&) = delete;
  Nic& operator=(const Nic&) = delete;

  // Assembly (before the run). A function is one PCIe requester with its RSS over its RX queues.
  int add_function(const std::string& name, int requester, std::uint32_t rss_flows);
  int add_rx_queue(int fn, RxQueue* q, const RingHwConfig& hw);
  // dest_fn < 0: to the wire; else hairpinned into that function's RX queues.
  int add_tx_queue(int fn, TxQueue* q, const RingHwConfig& hw, int dest_fn);
  void set_wire_source(TrafficSource* src, int fn);
  // Flow steering of function `fn` (ethtool ntuple + RSS indirection): flows below ntuple_flows
  // go to its queue `ntuple_queue`; with exclude, RSS spreads the other flows over the remaining
  // queues only.
  void set_steering(int fn, std::uint32_t ntuple_flows, int ntuple_queue, bool exclude);
  void register_stats();

  // The device timeline.
  void advance(sim::Picos t);

  // Driver → device. `t` is when the CPU issues the MMIO write (now or later in the current poll).
  void rx_tail_write(int q, std::uint64_t tail, sim::Picos t);
  void rx_irq_enable(int q, sim::Picos t);
  void rx_enable(int q, bool on);
  // Queue restart (a mode switch): stop taking new packets for the queue (they are dropped and
  // counted) while those already in the RX buffer are still written; flush pending write-backs.
  void rx_stop_accepting(int q, sim::Picos t);
  void rx_start_accepting(int q) { rx_[static_cast<std::size_t>(q)]->accepting = true; }
  // Nothing of the queue is left in the RX buffer and every written packet is written back.
  bool rx_quiesced(int q) const;
  std::uint64_t rx_device_head(int q) const { return rx_[static_cast<std::size_t>(q)]->head; }
  // The queue's ring starts again empty at `index` (a restarted queue: the driver reposts from there).
  void rx_reset_ring(int q, std::uint64_t index);
  void rx_set_header_split(int q, bool on) { rx_[static_cast<std::size_t>(q)]->cfg.header_split = on; }
  std::uint64_t rx_switch_drops_total() const;
  void tx_tail_write(int q, std::uint64_t tail, sim::Picos t);
  void tx_irq_enable(int q, sim::Picos t);
  void tx_enable(int q, bool on);
  // Completions written back and visible in host memory at `now` (call advance(now) first).
  std::uint64_t rx_done(int q, sim::Picos now);
  std::uint64_t tx_done(int q, sim::Picos now);
  // More wire packets will come (drivers use it to stop retrying allocations after the traffic).
  bool rx_traffic_pending() { return wire_src_ && wire_src_->peek() != sim::kNever; }

  const Config& config() const { return cfg_; }
  const Wire& wire() const { return wire_; }
  PcieFabric& fabric() { return fabric_; }
  int functions() const { return static_cast<int>(fns_.size()); }
  const std::string& function_name(int fn) const { return fns_[static_cast<std::size_t>(fn)].name; }
  int function_requester(int fn) const { return fns_[static_cast<std::size_t>(fn)].req; }

  // Measurements for the bottleneck classification (all over the window).
  double wire_rx_utilization() const;
  double wire_tx_utilization() const;
  double rx_fetch_stall_utilization() const;
  double eswitch_utilization() const;
  std::uint64_t rx_fifo_drops() const { return rx_fifo_drops_; }
  std::uint64_t rx_missed_total() const;
  std::uint64_t rx_packets_in_window() const;
  std::uint64_t rx_bytes_in_window() const;
  std::uint64_t tx_packets_in_window() const;
  std::uint64_t tx_bytes_in_window() const;
  double window_ps() const;
  std::uint64_t rx_arrivals() const { return rx_arrivals_; }
  std::uint64_t hairpin_packets() const { return hairpin_packets_; }
  std::uint64_t rx_admitted_in_window() const { return rx_admitted_win_; }
  std::uint64_t tx_queues() const { return tx_.size(); }

 private:
  enum class Ev : std::uint8_t {
    kRxTailWrite, kRxTail, kRxIrqEnableWrite, kRxIrqEnable, kRxIrqFire, kRxWbTimer,
    kTxTailWrite, kTxTail, kTxIrqEnableWrite, kTxIrqEnable, kTxIrqFire, kTxWb, kTxWbTimer, kTxEngine,
    kHairpin,
  };
  struct Item {
    sim::Picos t;
    std::uint64_t seq;
    Ev kind;
    std::uint32_t q;
    std::uint64_t a;
    bool operator>(const Item& o) const { return t != o.t ? t > o.t : seq > o.seq; }
  };
  // A packet in the RX packet buffer.
  struct Packet {
    sim::Picos t;
    std::uint32_t frame;
    std::uint32_t q;  // RX queue id, chosen by steering on arrival
    std::uint32_t flow;
  };
  struct Fetch {
    std::uint64_t end;
    sim::Picos ready;
  };
  struct Landing {
    std::uint64_t end;
    sim::Picos at;
  };
  struct Vector {  // interrupt moderation state of one queue vector
    bool armed = false, timer = false;
    std::uint64_t gen = 0;
    std::uint32_t frames = 0;
    std::uint64_t fired = 0;
  };
  struct RingHw {
    RingHwConfig cfg;
    int fn = 0, req = 0;
    std::uint32_t ring_size = 0;
    std::uint64_t mask = 0;  // ring_size - 1: ring sizes are powers of two, as RxQueue and TxQueue require
    // Position of ring index i in the ring.
    std::uint64_t slot(std::uint64_t i) const { return i & mask; }
    bool open = false;
    std::uint64_t tail = 0, fetched = 0, head = 0, wb_from = 0, done = 0;
    Fifo<Fetch> fetches;
    Fifo<Landing> wbs;
    Vector vec;
    std::uint64_t wb_timer_gen = 0;
    bool wb_timer = false;
    std::uint64_t fetch_reads = 0, fetched_descs = 0, wb_writes = 0, doorbells = 0;
    std::uint64_t win_packets = 0, win_bytes = 0;  // data DMA issued inside the measurement window
  };
  struct RxHw : RingHw {
    RxQueue* q = nullptr;
    bool accepting = true;
    std::uint64_t in_fifo = 0;  // packets of this queue waiting in the RX buffer
    std::uint64_t packets = 0, bytes = 0, missed = 0, switch_drops = 0, hdr_writes = 0;
  };
  struct TxHw : RingHw {
    TxQueue* q = nullptr;
    int dest_fn = -1;
    std::uint64_t wb_sched = 0;  // write-backs scheduled up to here
    sim::Picos last_read_done = 0;
    std::uint64_t engine_gen = 0;
    sim::Picos engine_at = sim::kNever;
    Fifo<std::pair<sim::Picos, std::uint32_t>> fifo;  // (leaves the TX buffer, frame bytes)
    std::uint64_t fifo_bytes = 0;
    std::uint64_t packets = 0, bytes = 0, hairpinned = 0;
  };
  struct Function {
    std::string name;
    int req = 0;
    std::uint32_t rss_flows = 1;
    std::vector<int> rxqs;
    std::unique_ptr<RssMap> rss;
    std::uint32_t ntuple_flows = 0;
    int ntuple_queue = 0;
    bool rss_exclude = false;
    std::vector<int> rss_queues;  // RSS targets (all queues, or all but the excluded one)
    int only_rxq = -1;            // the one RX queue every flow goes to, when there is one
  };

  void push(sim::Picos t, Ev kind, std::uint32_t q, std::uint64_t a = 0);
  void handle(const Item& it);
  void wire_arrival(sim::Picos next_item);
  bool rx_direct(sim::Picos t, std::uint32_t frame, std::uint32_t flow);
  [[gnu::always_inline]] inline int rx_queue_of(int fn, std::uint32_t flow) const;
  [[gnu::always_inline]] inline void rx_admit(sim::Picos t, std::uint32_t frame, int fn, std::uint32_t flow);
  [[gnu::always_inline]] inline sim::Picos rx_head_time();
  void rx_head(sim::Picos t);
  void rx_write(RxHw& h, const Packet& p, sim::Picos t);
  [[gnu::always_inline]] inline void rx_written(RxHw& h, const Packet& p, std::uint32_t bytes, const PcieTiming& w,
                                                sim::Picos t);
  [[gnu::always_inline]] inline void rx_prefetch(RxHw& h, sim::Picos t);
  void fetch(RingHw& h, sim::Picos t, bool any_size);
  sim::Picos fetch_ready(RingHw& h, std::uint64_t index);
  sim::Picos write_back(RingHw& h, bool rx, std::uint32_t q, std::uint64_t upto, sim::Picos t);
  [[gnu::always_inline]] inline void written_back(RingHw& h, bool rx, std::uint32_t q, std::uint64_t upto, std::uint32_t n,
                                                  sim::Picos vis);
  void completed(RingHw& h, bool rx, std::uint32_t q, std::uint32_t n, sim::Picos visible);
  void fire(RingHw& h, bool rx, std::uint32_t q, sim::Picos t);
  void arm(RingHw& h, bool rx, std::uint32_t q, sim::Picos t);
  void disarm(RingHw& h);
  void tx_engine(std::uint32_t q, sim::Picos t);
  void tx_engine_at(std::uint32_t q, sim::Picos t);
  sim::Picos next_event();
  void reschedule();
  void on_wake();
  double in_window(double a, double b) const;
  bool in_window(sim::Picos t) const { return t >= cfg_.window_start && t < cfg_.window_end; }
  // The RX buffer takes a frame arriving at t: the `held` bytes it holds, the packet still leaving
  // it for the link, and the frame fit in rx_fifo_bytes (an admission's check, and a direct
  // write's, which only tries an empty buffer and passes 0).
  bool rx_room(sim::Picos t, std::uint64_t held, std::uint32_t frame) const {
    const std::uint64_t in_flight = sending_until_ > t ? sending_bytes_ : 0;
    return held + in_flight + frame <= cfg_.rx_fifo_bytes;
  }
  // The ring's next descriptor is posted and its fetch issued (fetch_ready says when it lands).
  static bool rx_desc_fetched(const RxHw& h) { return h.open && h.head != h.tail && h.head < h.fetched; }

  sim::Kernel& kernel_;
  Config cfg_;
  Wire wire_;
  PcieFabric& fabric_;
  page_pool::PageWorld& world_;
  sim::Stats& stats_;
  std::vector<Function> fns_;
  std::vector<std::unique_ptr<RxHw>> rx_;
  std::vector<std::unique_ptr<TxHw>> tx_;
  TrafficSource* wire_src_ = nullptr;
  int wire_fn_ = 0;
  double wire_src_fps_ = 0;  // line time of one of its frames

  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> agenda_;
  std::uint64_t seq_ = 0;
  std::priority_queue<sim::Picos, std::vector<sim::Picos>, std::greater<sim::Picos>> wakes_;  // interrupt timers
  sim::Picos now_ = 0;
  bool advancing_ = false;
  int armed_idle_ = 0;  // vectors armed with no completion yet (the device must watch the timeline)
  sim::Process proc_;

  Fifo<Packet> fifo_;            // waiting for the DMA engine
  std::uint64_t fifo_bytes_ = 0;
  // The packet being written leaves the buffer when its last TLP is sent; the engine takes the
  // next one only once it started, so at most this one is in flight.
  sim::Picos sending_until_ = 0;
  std::uint32_t sending_bytes_ = 0;
  sim::Picos engine_free_ = 0;  // when the RX DMA engine took the previous packet
  double rx_stall_ps_ = 0;
  double wire_rx_busy_ps_ = 0, wire_tx_busy_ps_ = 0;
  double wire_tx_free_ = 0;
  double eswitch_free_ = 0;  // port-bound embedded switch: busy until
  double eswitch_busy_ps_ = 0;
  std::uint64_t rx_arrivals_ = 0, rx_fifo_drops_ = 0, rx_discarded_ = 0, wire_rx_bytes_ = 0, wire_tx_packets_ = 0, wire_tx_bytes_ = 0;
  std::uint64_t hairpin_packets_ = 0, wire_rx_win_bytes_ = 0, wire_tx_win_bytes_ = 0, rx_admitted_win_ = 0;
};

}  // namespace ppsim::nic
