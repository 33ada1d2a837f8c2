#include "models/world/veth_system.h"

#include <algorithm>
#include <cstdio>

#include "models/page_pool/costs.h"
#include "sim/error.h"

namespace ppsim::world {

using page_pool::Caller;
using sim::Picos;

namespace {
constexpr std::uint32_t kHeadroom = 256;         // XDP_PACKET_HEADROOM, the headroom veth asks for
constexpr std::uint32_t kShinfo = 320;           // SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86_64
constexpr std::uint32_t kUdpHeaders = 14 + 20 + 8;
// TCP_ATO_MIN (HZ/25): the shortest delayed-ACK timeout.
constexpr Picos kTcpAtoMin = 40 * sim::kPicosPerMs;
constexpr std::uint32_t kTcpHeaders = 14 + 20 + 32;  // with timestamps
constexpr std::uint32_t kSkbStructBytes = 256;       // SKB_DATA_ALIGN(sizeof(struct sk_buff)): part of truesize
std::uint32_t data_align(std::uint32_t x) { return (x + 63) & ~63u; }  // SKB_DATA_ALIGN
// tcp_sndbuf_expand()'s per_mss: roundup_pow_of_two(mss_clamp 1460 + MAX_TCP_HEADER 256 +
// skb_shared_info 320) + sizeof(struct sk_buff) 256.
constexpr std::uint64_t kTcpPerMssMem = 2048 + 256;
}  // namespace

void register_veth_params(sim::ParamRegistry& r) {
  r.add_enum("workload", "nic", {"nic", "veth"},
             "what receives packets: a NIC (nic.*, pcie.*) or a veth pair with XDP (veth.*), as kernel captures use");
  r.add_enum("veth.proto", "udp", {"udp", "tcp"}, "what the sender writes");
  r.add_int("veth.sends", "writes", 2000, "datagrams (UDP) or writes of payload_bytes (TCP) the sender makes", 1, 1ll << 40);
  r.add_int("veth.payload_bytes", "bytes", 1400, "bytes per datagram or write", 1, 1 << 24);
  r.add_int("veth.mtu_bytes", "bytes", 1500, "MTU of both veth ends (sets the TCP MSS)", 68, 3500);
  r.add_int("veth.sender_cpu", "", 0, "CPU of the sender; UDP's receive NAPI runs there too, inside the send call", 0, 4095);
  r.add_int("veth.receiver_cpu", "", 1, "CPU of the socket reader", 0, 4095);
  r.add_float("veth.rate_pps", "pps", 0.0, "sender pacing in writes per second (0: as fast as it can)", 0, 1e9);
  r.add_float("veth.start_us", "us", 50.0, "the sender starts here (the reader is ready before)", 0, 1e9);
  r.add_float("veth.reader_delay_us", "us", 0.0, "the reader starts reading this long after the sender starts", 0, 1e12);
  r.add_float("veth.reader_hold_us", "us", 0.0,
              "if > 0 the reader reads nothing until the veth has been deleted and this long has passed", 0, 1e12);
  r.add_float("veth.delete_after_sender_us", "us", 300000.0,
              "the veth is deleted this long after the sender finished (and never before the reader is done)", 0, 1e12);
  r.add_enum("veth.xdp", "pass", {"pass", "drop"}, "action of the XDP program on the receiving veth");
  r.add_int("veth.delete_cpu", "", 1, "CPU of the task that deletes the veth (destroys the pool)", 0, 4095);
  r.add_int("veth.napi_budget", "packets", 64, "veth NAPI budget", 1, 65536);
  r.add_int("veth.tcp_rcvbuf_bytes", "bytes", 131072,
            "TCP: the receiving socket's initial sk_rcvbuf (net.ipv4.tcp_rmem[1]), or its SO_RCVBUF", 1, 1ll << 40,
            "net.ipv4.tcp_rmem default (read from the capture's meta.json by the replay)");
  r.add_int("veth.tcp_rcvbuf_max_bytes", "bytes", 33554432, "TCP: the autotuning cap (net.ipv4.tcp_rmem[2])", 1, 1ll << 40,
            "net.ipv4.tcp_rmem on the capture machine");
  r.add_bool("veth.tcp_rcvbuf_locked", false,
             "TCP: SO_RCVBUF was set (SOCK_RCVBUF_LOCK): no receive-buffer autotuning");
  r.add_float("veth.tcp_rcv_rtt_init_us", "us", 1000.0,
              "TCP without veth.tcp_kernel_acks: the receiver's RTT estimate before its first sample (the autotuning "
              "measures once per RTT); with it the estimate starts at 0 and nothing is measured before a sample, as in "
              "the kernel", 0.001, 1e9,
              "ppsim assumption; the captures' first tcp_rcvbuf_grow events report about 1 ms");
  const std::string src = "fit once to the capture VM's cross-CPU UDP sender durations (traces/README.md), same for every replay";
  r.add_float("veth.send_ns", "ns", 1200.0, "UDP send syscall and UDP output, per datagram", 0, 1e9, src);
  r.add_float("veth.xmit_ns", "ns", 800.0, "IP output and veth_xmit, per datagram or TCP segment", 0, 1e9, src);
  r.add_float("veth.tcp_write_ns", "ns", 1200.0, "TCP send syscall: copy into the send queue besides the copy itself",
              0, 1e9, "ppsim assumption (like a UDP send)");
  r.add_float("veth.tcp_xmit_ns", "ns", 600.0,
              "TCP transmit per segment (tcp_write_xmit's clone and IP output, veth_xmit); UDP's is veth.xmit_ns", 0, 1e9,
              "fitted by ppsim fit on the TCP captures");
  r.add_float("veth.tcp_deliver_ns", "ns", 600.0,
              "TCP receive per segment or GRO skb (tcp_v4_rcv, the established fast path, queueing and the ACK it "
              "sends); UDP's is stack.deliver_ns", 0, 1e9, "fitted by ppsim fit on the TCP captures");
  r.add_float("veth.tcp_ack_ns", "ns", 1500.0, "an ACK's NET_RX processing (tcp_ack) before it transmits more", 0, 1e9,
              "ppsim assumption");
  r.add_float("veth.tcp_ack_delay_ns", "ns", 2000.0, "from the reader's read to its ACK's softirq on the reader's CPU",
              0, 1e9, "ppsim assumption");
  r.add_bool("veth.tcp_kernel_acks", true,
             "TCP: the receiver ACKs when __tcp_ack_snd_check and tcp_cleanup_rbuf say (delayed ACKs once the "
             "offered window stops growing), and the sender keeps at most cwnd segments in flight (cwnd grows only "
             "while the flow is cwnd-limited) with unacknowledged data counted in its send buffer. Off: every second "
             "segment is ACKed at once and only unsent data counts. From net/ipv4/tcp_input.c, tcp_output.c and tcp.c "
             "(6.18). With it the receiver's RTT estimate also follows tcp_rcv_rtt_measure (one window's arrival) and "
             "tcp_rcv_rtt_measure_ts (millisecond TCP timestamps, no sample for a delta of 0) under 6.18's "
             "tcp_rcv_rtt_update rules. On by default since 2026-12-02: with veth.tcp_push_per_skb it scores "
             "better than neither on the captures' fit set (docs/replay.md)");
  r.add_float("veth.tcp_frag_first_touch_ns", "ns", 0.0,
              "TCP: the first touch of each 4 KiB page of the memory the sender's writes copy into (the task's "
              "page_frag, skb_page_frag_refill's 32 KiB pages), for the first veth.tcp_frag_cold_bytes of the "
              "connection; the frags after them are warm", 0, 1e9,
              "0: warm memory (the replay's default); a page fault on the capture VM costs 13-44 us (the fit set's "
              "same-CPU TCP readers, docs/replay.md)");
  r.add_float("veth.fresh_page_ns", "ns", 0.0,
              "the first copy into a pool page the run has never held (skb_pp_cow_data, charged to the NAPI "
              "poll): a page the pool takes from the allocator above the most it ever held out. Pages it gave "
              "back come first off the allocator's lists and are warm", 0, 1e9,
              "0: every page warm. On the capture VM (a PVM guest with free page reporting) such a copy can wait "
              "15-17 us for the host to back the page; ppsim validate reports what the captures' senders pay per "
              "page (sender.fresh_page_us), and the replay charges the fit set's median (ppsim fit, "
              "traces/replay_defaults.json, docs/replay.md)");
  r.add_float("veth.tcp_write_return_ns", "ns", 0.0,
              "TCP: the part of veth.tcp_write_ns a write spends after its last segment's softirq (release_sock, the "
              "system call's return). A reader the write woke waits for it; with cpus.sched_clock_skip it is charged "
              "to the reader", 0, 1e9,
              "0: all of the write's own cost comes before its segments; the captures' sched_wakeup → sched_switch "
              "gaps give 4-5 us after a one-segment write (docs/replay.md)");
  r.add_int("veth.tcp_frag_cold_bytes", "bytes", 32768,
            "TCP: how much of what the sender writes first goes into cold memory (veth.tcp_frag_first_touch_ns)",
            0, 1ll << 40,
            "32768: one skb_page_frag_refill page (SKB_FRAG_PAGE_ORDER 3); the fit set's cross-CPU 64 KiB writes "
            "are slow for their first 128 KiB (docs/replay.md)");
  r.add_bool("veth.tcp_frag_cold_high_water", false,
             "TCP, with veth.tcp_kernel_acks: the sender's cold memory is what its socket holds beyond the most it "
             "ever held (written and not yet acknowledged: freed frag pages are reused before fresh ones are "
             "touched), instead of the first veth.tcp_frag_cold_bytes it writes");
  r.add_bool("veth.tcp_ack_backlog", false,
             "TCP, with veth.tcp_kernel_acks and veth.tcp_push_per_skb: ACKs that reach the writer's socket while "
             "it is inside sendmsg wait in its backlog (sk_add_backlog) and act when sk_flush_backlog runs (every 16 "
             "new skbs) or at release_sock, the write's end; the ACK's softirq sends nothing meanwhile. Without it "
             "they act at once");
  r.add_bool("veth.tcp_push_per_skb", true,
             "TCP: a write is copied one skb at a time and each full skb goes out as soon as it is filled "
             "(tcp_sendmsg_locked → tcp_push_one); an skb holds size_goal bytes, half the largest window the "
             "receiver has offered in whole segments, at most the device's GSO size (tcp_xmit_size_goal → "
             "tcp_bound_to_half_wnd), from TCP_INIT_CWND segments at the start; it is taken when the write "
             "starts and again every 16 skbs (sk_flush_backlog's restart). As without it, the send buffer is "
             "checked when a write starts, not before each skb. Off: the whole write is copied, then "
             "transmitted (net/ipv4/tcp.c, tcp_output.c, 6.18)");
  r.add_bool("veth.tcp_coalesce", false,
             "TCP: an in-order segment's payload is appended to the receive queue's tail skb when it can be "
             "(tcp_queue_rcv → tcp_try_coalesce → skb_try_coalesce: up to MAX_SKB_FRAGS frags, same pp_recycle, "
             "the tail not cloned); the reader then pays stack.reader_per_skb_ns per merged skb. Off: one skb per "
             "segment (net/ipv4/tcp_input.c, net/core/skbuff.c, 6.18)");
  r.add_bool("veth.gro", false,
             "generic-receive-offload on the receiving veth: TCP segments of one poll merge into skbs of up to "
             "17 frags / 64 KiB (veth's default is off)");
  r.add_float("veth.gro_ns", "ns", 150.0, "GRO work per TCP segment (merging it into the held skb)", 0, 1e9,
              "ppsim assumption");
  r.add_int("veth.tcp_sndbuf_bytes", "bytes", 16384,
            "TCP: the sending socket's initial sk_sndbuf (net.ipv4.tcp_wmem[1]), or its SO_SNDBUF", 1, 1ll << 40,
            "net.ipv4.tcp_wmem default (read from the capture's meta.json by the replay)");
  r.add_int("veth.tcp_sndbuf_max_bytes", "bytes", 4194304, "TCP: the send buffer's autotuning cap (net.ipv4.tcp_wmem[2])",
            1, 1ll << 40);
  r.add_bool("veth.tcp_sndbuf_locked", false, "TCP: SO_SNDBUF was set: no send-buffer autotuning");
  r.add_float("veth.copy_ns_per_kib", "ns/KiB", 360.0, "each copy of packet data (user to skb at send, skb to pool frags)",
              0, 1e9, src);
  r.add_float("veth.poll_ns", "ns", 500.0, "veth NAPI poll: xdp_ring consume and per-poll work", 0, 1e9, src);
  r.add_float("veth.cow_ns", "ns", 300.0, "skb_pp_cow_data besides the copy: new skb, header copy", 0, 1e9, src);
  r.add_float("veth.xdp_ns", "ns", 100.0, "running the XDP program", 0, 1e9, src);
}

void validate_veth_params(const sim::Params& p) {
  const auto ncpu = p.get_int("cpus.count");
  const std::string& f = p.file();
  if (p.get_bool("veth.tcp_frag_cold_high_water") && !p.get_bool("veth.tcp_kernel_acks"))
    throw sim::ScenarioError(f, sim::json_path("veth.tcp_frag_cold_high_water"),
                             "expected false without veth.tcp_kernel_acks (nothing is acknowledged, so the socket's "
                             "memory would only grow)");
  for (const char* k : {"veth.sender_cpu", "veth.receiver_cpu", "veth.delete_cpu"})
    if (p.get_int(k) >= ncpu)
      throw sim::ScenarioError(f, sim::json_path(k), "expected a CPU below cpus.count (" + std::to_string(ncpu) + "), got " +
                                                         std::to_string(p.get_int(k)));
  if (p.get_string("veth.proto") == "tcp" && p.get_double("veth.reader_hold_us") > 0 &&
      p.get_int("veth.sends") * p.get_int("veth.payload_bytes") > p.get_int("veth.tcp_rcvbuf_bytes") / 2)
    throw sim::ScenarioError(f, sim::json_path("veth.reader_hold_us"),
                             "expected 0 with TCP unless the whole stream (sends x payload_bytes) fits half of "
                             "veth.tcp_rcvbuf_bytes: a reader that waits for the deletion blocks the sender");
  const auto frame = p.get_int("veth.payload_bytes") + kUdpHeaders;
  if (p.get_string("veth.proto") == "udp" && frame > p.get_int("veth.mtu_bytes") + 14)
    throw sim::ScenarioError(f, sim::json_path("veth.payload_bytes"),
                             "expected a UDP payload that fits the MTU without fragmentation (at most " +
                                 std::to_string(p.get_int("veth.mtu_bytes") - 28) + " bytes)");
}

VethSystem::VethSystem(sim::Kernel& kernel, const sim::Params& p, std::vector<sim::Cpu>& cpus,
                       page_pool::PageWorld& pages, Stack& stack, sim::Stats& stats, sim::Topology& topo,
                       const std::vector<sim::Topology::Vertex>& cpu_v, const sim::Rng& root,
                       const page_pool::MutantSet& mutants, const std::function<void(page_pool::PagePool*)>& on_pool,
                       std::function<void(Picos)> delete_at, sim::TraceWriter* trace)
    : kernel_(kernel), p_(p), cpus_(cpus), pages_(pages), stack_(stack), stats_(stats), trace_(trace),
      delete_at_(std::move(delete_at)),
      send_proc_(kernel, "veth.sender", [this] { send_next(); }),
      ack_proc_(kernel, "veth.tcp_ack", [this] { on_ack(); }),
      done_check_proc_(kernel, "veth.reader_done", [this] { check_reader_done(); }),
      delack_proc_(kernel, "veth.tcp_delack", [this] { on_delack(); }) {
  validate_veth_params(p);
  tcp_ = p.get_string("veth.proto") == "tcp";
  xdp_drop_ = p.get_string("veth.xdp") == "drop";
  sender_cpu_ = static_cast<int>(p.get_int("veth.sender_cpu"));
  receiver_cpu_ = static_cast<int>(p.get_int("veth.receiver_cpu"));
  sends_ = static_cast<std::uint64_t>(p.get_int("veth.sends"));
  payload_ = static_cast<std::uint32_t>(p.get_int("veth.payload_bytes"));
  mss_ = static_cast<std::uint32_t>(p.get_int("veth.mtu_bytes")) - 52;
  rate_pps_ = p.get_double("veth.rate_pps");
  start_ = sim::from_us(p.get_double("veth.start_us"));
  send_cost_ = sim::from_ns(p.get_double("veth.send_ns"));
  poll_cost_ = sim::from_ns(p.get_double("veth.poll_ns"));
  cow_cost_ = sim::from_ns(p.get_double("veth.cow_ns"));
  fresh_page_cost_ = sim::from_ns(p.get_double("veth.fresh_page_ns"));
  xdp_cost_ = sim::from_ns(p.get_double("veth.xdp_ns"));
  copy_ps_per_byte_ = p.get_double("veth.copy_ns_per_kib") * 1000.0 / 1024.0;
  remote_copy_ps_per_byte_ = p.get_double("cpus.remote_copy_ns_per_kib") * 1000.0 / 1024.0;
  delete_after_sender_ = sim::from_us(p.get_double("veth.delete_after_sender_us"));
  reader_hold_ = sim::from_us(p.get_double("veth.reader_hold_us"));
  rx_.rcvbuf = static_cast<std::uint64_t>(p.get_int("veth.tcp_rcvbuf_bytes"));
  rx_.rcvbuf_max = static_cast<std::uint64_t>(p.get_int("veth.tcp_rcvbuf_max_bytes"));
  rx_.locked = p.get_bool("veth.tcp_rcvbuf_locked");
  rx_.rtt = sim::from_us(p.get_double("veth.tcp_rcv_rtt_init_us"));
  sndbuf_bytes_ = static_cast<std::uint64_t>(p.get_int("veth.tcp_sndbuf_bytes"));
  sndbuf_max_ = static_cast<std::uint64_t>(p.get_int("veth.tcp_sndbuf_max_bytes"));
  sndbuf_locked_ = p.get_bool("veth.tcp_sndbuf_locked");
  tcp_sndbuf_expand();  // tcp_init_buffer_space()
  send_cost_seg_ = sim::from_ns(p.get_double("veth.xmit_ns"));
  tcp_write_cost_ = sim::from_ns(p.get_double("veth.tcp_write_ns"));
  tcp_write_return_ = std::min(tcp_write_cost_, sim::from_ns(p.get_double("veth.tcp_write_return_ns")));
  frag_ = FirstTouch(sim::from_ns(p.get_double("veth.tcp_frag_first_touch_ns")));
  frag_cold_bytes_ = static_cast<std::uint64_t>(p.get_int("veth.tcp_frag_cold_bytes"));
  frag_high_water_ = p.get_bool("veth.tcp_frag_cold_high_water");
  push_per_skb_ = p.get_bool("veth.tcp_push_per_skb");
  tcp_deliver_cost_ = sim::from_ns(p.get_double("veth.tcp_deliver_ns"));
  tcp_xmit_cost_ = sim::from_ns(p.get_double("veth.tcp_xmit_ns"));
  tcp_ack_cost_ = sim::from_ns(p.get_double("veth.tcp_ack_ns"));
  tcp_ack_delay_ = sim::from_ns(p.get_double("veth.tcp_ack_delay_ns"));
  gro_cost_ = sim::from_ns(p.get_double("veth.gro_ns"));
  gro_on_ = p.get_bool("veth.gro");
  kernel_acks_ = p.get_bool("veth.tcp_kernel_acks");
  // The backlog exists only where the model copies a write skb by skb with the kernel's ACKs.
  ack_backlog_ = tcp_ && push_per_skb_ && kernel_acks_ && p.get_bool("veth.tcp_ack_backlog");
  tcp_coalesce_ = tcp_ && p.get_bool("veth.tcp_coalesce");
  if (tcp_coalesce_) stack_.enable_coalesce(kTcpHeaders);
  // The receiver's millisecond clock (tcp_clock_ms) ticks at a phase the capture leaves to chance.
  ts_phase_ = static_cast<Picos>(root.stream("veth.tcp_ts_clock").uniform() * static_cast<double>(sim::kPicosPerMs));
  // The SYN-ACK's TSval, which the first data segments echo: the connection is established at
  // time 0 (where tcp_init_buffer_space starts the first receive-space measure).
  ts_recent_ = tcp_clock_ms(0);
  budget_ = static_cast<std::uint32_t>(p.get_int("veth.napi_budget"));
  cpus_[static_cast<std::size_t>(sender_cpu_)].name_task(this, "sender");
  cpus_[static_cast<std::size_t>(sender_cpu_)].trace_task(this, kSenderComm, kSenderPid);

  // veth_create_page_pool(): order 0, pool_size 256 (or what the scenario says), no DMA, no NAPI.
  page_pool::PoolParams pp = page_pool::pool_params_from(p);
  pp.napi_list_owner = nullptr;
  pp.netdev = false;  // no .netdev: the pool is invisible to netlink and never on a netdev's list
  pool_ = std::make_unique<page_pool::PagePool>(0, pages, pp, page_pool::pool_costs_from(p),
                                                static_cast<int>(cpus.size()), mutants);
  pools_.push_back({"veth0.rq0", pool_.get()});
  on_pool(pool_.get());
  auto dev = topo.add(sim::NodeKind::kNicQueue, "veth0.rq0", 0);
  auto pv = topo.add(sim::NodeKind::kPagePool, "veth0.rq0.pp", 0);
  topo.connect(dev, cpu_v[sender_cpu_], sim::EdgeKind::kRunsOn);
  topo.connect(dev, pv, sim::EdgeKind::kAllocatesFrom);

  if (tcp_) {
    // TCP does not drop on a full receive buffer here: the window stops the sender first.
    stack_.set_rcvbuf(UINT64_MAX / 2);
    rx_.space = 10 * mss_;                     // tcp_init_buffer_space: TCP_INIT_CWND * advmss
    // tcp_select_initial_window(): half of rcvbuf at the default scaling ratio, 64 KiB at most.
    rx_.window_clamp = rx_.rcvbuf / 2;
    rx_.rcv_ssthresh = std::min<std::uint64_t>(rx_.window_clamp, 65535);
    rx_.edge = rx_.rcv_ssthresh;
    rx_.rcv_wnd = rx_.edge;
    // The sender's tp->max_window starts at the SYN-ACK's window: TCP_INIT_CWND segments, or less
    // if the receive buffer offers less (the captures' first skbs are half of it,
    // tcp_bound_to_half_wnd).
    max_window_ = std::min<std::uint64_t>(10 * mss_, rx_.edge);
    stack_.on_read = [this](const nic::Skb& sk) {
      const std::uint32_t pay = sk.bytes > kTcpHeaders ? sk.bytes - kTcpHeaders : 0;  // GRO skbs count it once
      unread_bytes_ -= std::min<std::uint64_t>(unread_bytes_, pay);
      tcp_read(pay, sk.buf_bytes + kSkbStructBytes);
      if (kernel_acks_) {
        // The FIN (EOF): the reader closes its socket, and the FIN tcp_close sends acknowledges
        // the sender's (the delayed ACK tcp_fin left pending goes with it).
        if (pay == 0 && delack_pending_) tcp_advertise(false);
        return;
      }
      tcp_advertise();  // the window update goes out with the ACK (tcp_ack_delay later)
      if (sndq_ > 0) schedule_ack();
    };
    // tcp_recvmsg → tcp_cleanup_rbuf once the call has copied what it takes; an ACK it sends
    // reaches the sender's socket in NET_RX softirq on the reader's CPU.
    stack_.on_read_call_end = [this] {
      if (kernel_acks_) tcp_cleanup_rbuf();
    };
  }
  const Picos reader_start = reader_hold_ > 0 ? sim::kNever : start_ + sim::from_us(p.get_double("veth.reader_delay_us"));
  stack_.pause_reader_until(reader_start);
}

VethSystem::~VethSystem() = default;

page_pool::ExecCtx VethSystem::delete_ctx() const {
  page_pool::ExecCtx c;
  c.cpu = static_cast<int>(p_.get_int("veth.delete_cpu"));
  c.task = "ip";
  c.pid = 4000;
  c.exclusive = true;  // NAPI is disabled before the pool goes
  return c;
}

void VethSystem::open(Picos) { send_proc_.wake_at(start_); }

// An ACK that reaches the sender's socket tcp_ack_delay from now (unless one is on its way).
void VethSystem::schedule_ack() {
  if (ack_pending_) return;
  ack_pending_ = true;
  ack_proc_.wake_at(kernel_.now() + tcp_ack_delay_);
}

// tcp_space(): the free receive buffer in window units (tp->scaling_ratio).
std::uint64_t VethSystem::tcp_space() const {
  return rx_.rcvbuf > rx_.rmem ? (rx_.rcvbuf - rx_.rmem) * rx_.scaling / 256 : 0;
}

// tcp_receive_window(): what is left of the window the receiver last advertised.
std::uint64_t VethSystem::tcp_receive_window() const {
  return rx_.rcv_wup + rx_.rcv_wnd > rx_.rcv_nxt ? rx_.rcv_wup + rx_.rcv_wnd - rx_.rcv_nxt : 0;
}

// The sender may fill the receive window up to the right edge the receiver last advertised.
std::uint32_t VethSystem::window_room() const {
  return rx_.edge <= rx_.rcv_nxt ? 0 : static_cast<std::uint32_t>(std::min<std::uint64_t>(rx_.edge - rx_.rcv_nxt, UINT32_MAX));
}

// __tcp_select_window(): the free receive space, in window units (tp->scaling_ratio), bounded by
// rcv_ssthresh. Below half the full space it leaves quickack mode (icsk_ack.quick = 0).
std::uint64_t VethSystem::tcp_select_window() {
  const std::uint64_t free_space = tcp_space();
  const std::uint64_t full_space = std::min<std::uint64_t>(rx_.window_clamp, rx_.rcvbuf * rx_.scaling / 256);
  if (free_space < full_space / 2) {
    rx_.quick = 0;
    if (free_space < rx_.rcv_mss) return 0;
  }
  return std::min(free_space, rx_.rcv_ssthresh);
}

// tcp_send_ack() → tcp_select_window(): the offered window never shrinks (the right edge never
// moves back); the ACK counts against quickack mode (tcp_event_ack_sent → tcp_dec_quickack_mode)
// and cancels the delayed-ACK timer.
void VethSystem::tcp_advertise(bool at_once) {
  if (!kernel_acks_) {
    const std::uint64_t win = std::min(tcp_space(), rx_.rcv_ssthresh);
    rx_.edge = std::max(rx_.edge, rx_.rcv_nxt + win);
    max_window_ = std::max(max_window_, win);
    return;
  }
  const std::uint64_t cur = tcp_receive_window();
  const std::uint64_t win = std::max(tcp_select_window(), cur);
  rx_.rcv_wnd = win;
  rx_.rcv_wup = rx_.rcv_nxt;
  if (rx_.quick > 0) --rx_.quick;
  ++rx_.acks;
  if (delack_pending_) {
    delack_pending_ = false;
    delack_proc_.cancel();
  }
  const Picos now = kernel_.now();
  // The ACK's TSval becomes the sender's ts_recent once its socket has processed the ACK.
  const AckInFlight a{now + tcp_ack_delay_, rx_.rcv_nxt, rx_.rcv_nxt + win, tcp_clock_ms(now)};
  if (at_once) {
    sender_rcv_ack(a);
    return;
  }
  acks_in_flight_.push_back(a);
  ack_proc_.wake_at(a.due);
}

// The sender's socket processes an ACK: the window's new right edge, the TS echo, tcp_ack().
void VethSystem::sender_rcv_ack(const AckInFlight& a) {
  if (in_write_) {
    backlog_.push_back(a);
    ++backlogged_;
    return;
  }
  apply_ack(a);
}

void VethSystem::apply_ack(const AckInFlight& a) {
  rx_.edge = std::max(rx_.edge, a.edge);
  if (a.edge > a.ack) max_window_ = std::max(max_window_, a.edge - a.ack);
  ts_recent_ = a.tsval;
  tcp_ack(a.ack);
}

// The writer's socket processes the ACKs its backlog holds (__release_sock / sk_flush_backlog →
// tcp_v4_do_rcv → tcp_rcv_established): tcp_ack for each, then tcp_data_snd_check sends what they
// allow. One tcp_ack cost for the lot, as on_ack charges one for the ACKs due together.
void VethSystem::flush_backlog(Caller& c) {
  if (backlog_.empty()) return;
  ++backlog_flushes_;
  for (const AckInFlight& a : backlog_) apply_ack(a);
  backlog_.clear();
  c.cost += tcp_ack_cost_;
  push(c);
}

// net/ipv4/tcp.c __tcp_cleanup_rbuf(), after a read call: an ACK when more than one MSS arrived
// since the last one, or the read emptied the queue (the short tail segment of a write set
// ICSK_ACK_PUSHED), or the window it can offer now is at least twice the one the sender has.
void VethSystem::tcp_cleanup_rbuf() {
  const bool unacked = rx_.rcv_nxt > rx_.rcv_wup;
  bool time_to_ack = unacked && (rx_.rcv_nxt - rx_.rcv_wup > rx_.rcv_mss || rx_.rmem == 0);
  if (!time_to_ack) {
    const std::uint64_t now_win = tcp_receive_window();
    if (2 * now_win <= rx_.window_clamp) {
      const std::uint64_t w = tcp_select_window();
      time_to_ack = w && w >= 2 * now_win;
    }
  }
  if (time_to_ack) tcp_advertise(false);  // from the reader's context: the sender sees it later
}

// The delayed-ACK timer (tcp_delack_timer, at least TCP_ATO_MIN = HZ/25 after the ACK was held
// back): the ACK goes out from softirq on the receiver's CPU.
void VethSystem::on_delack() {
  delack_pending_ = false;
  if (deleted_ || rx_.rcv_nxt <= rx_.rcv_wup) return;
  tcp_advertise(false);
}

// A segment queued on the receiving socket: the receiver's accounting and its ACK, which the
// sender processes in the same softirq (one per two segments, or as __tcp_ack_snd_check decides
// with veth.tcp_kernel_acks).
void VethSystem::tcp_segment_queued(std::uint32_t pay, std::uint32_t truesize) {
  if (kernel_acks_ && pay == 0) {
    tcp_fin_queued(truesize);
    return;
  }
  if (kernel_acks_) tcp_rcv_rtt_measure_ts(pay);  // tcp_rcv_established, before tcp_queue_rcv
  rx_.rcv_nxt += pay;
  rx_.rmem += truesize;
  // tcp_measure_rcv_mss(): the window-per-byte ratio is re-measured on a segment of at least
  // rcv_mss bytes whose length differs from rcv_mss (in practice: the first full-sized one); the
  // window clamp follows it.
  if (pay >= rx_.rcv_mss && truesize) {
    if (pay != rx_.rcv_mss) {
      rx_.scaling = std::max<std::uint64_t>(1, std::min<std::uint64_t>(255, (std::uint64_t{pay} << 8) / truesize));
      rx_.window_clamp = rx_.rcvbuf * rx_.scaling / 256;
      rx_.rcv_ssthresh = std::min(rx_.rcv_ssthresh, rx_.window_clamp);
      rx_.space = std::min(rx_.space, rx_.window_clamp);
    }
    rx_.rcv_mss = std::min<std::uint32_t>(pay, mss_);
  }
  // tcp_grow_window(): two MSS more per segment whose truesize the window can cover, while there
  // is free space, up to the window clamp.
  const std::uint64_t free_space = tcp_space();
  // tcp_event_data_recv(): the first data segment enters quickack mode (tcp_incr_quickack with
  // TCP_MAX_QUICKACKS 16: rcv_wnd / (2 rcv_mss) ACKs at most, at least 2).
  if (!rx_.data_seen) {
    rx_.data_seen = true;
    std::uint64_t q = rx_.rcv_wnd / (2 * rx_.rcv_mss);
    if (q == 0) q = 2;
    rx_.quick = std::max<std::uint32_t>(rx_.quick, static_cast<std::uint32_t>(std::min<std::uint64_t>(q, 16)));
  }
  if (rx_.rcv_ssthresh < rx_.window_clamp && rx_.rcv_ssthresh < free_space && truesize * rx_.scaling / 256 <= pay) {
    rx_.rcv_ssthresh = std::min(rx_.rcv_ssthresh + 2 * mss_, rx_.window_clamp);
    rx_.quick |= 1;  // tcp_grow_window: a growing window is ACKed at once
  }
  // The receiver's RTT. With kernel ACKs, tcp_rcv_rtt_measure() (below) and the timestamp sample
  // taken above. Without: the time one receive window (to the advertised edge) takes to arrive,
  // keeping the smallest sample; no timestamp samples.
  const Picos now = kernel_.now();
  if (kernel_acks_) {
    tcp_rcv_rtt_measure();
  } else if (rx_.rtt_time < 0) {
    rx_.rtt_time = now;
    rx_.rtt_seq = rx_.rcv_nxt + (rx_.edge > rx_.rcv_nxt ? rx_.edge - rx_.rcv_nxt : 0);
  } else if (rx_.rcv_nxt >= rx_.rtt_seq) {
    const Picos sample = now - rx_.rtt_time;
    if (sample > 0 && (!rx_.rtt_sampled || sample < rx_.rtt)) rx_.rtt = sample;
    rx_.rtt_sampled = true;
    rx_.rtt_time = now;
    rx_.rtt_seq = rx_.rcv_nxt + (rx_.edge > rx_.rcv_nxt ? rx_.edge - rx_.rcv_nxt : 0);
  }
  // __tcp_ack_snd_check(): an ACK at once when more than one MSS is unacknowledged and the window
  // it would offer reaches at least as far past rcv_nxt as the last one did past rcv_wup (the
  // right edge moves on by what arrived), or in quickack mode. Otherwise the ACK is delayed: it
  // goes out when the reader's tcp_cleanup_rbuf sends it, or when the delayed-ACK timer fires.
  // So while the reader does not read and the window has stopped growing, the sender's window
  // stays where the last ACK put it.
  if (!kernel_acks_) {
    if (++unacked_ >= 2) {
      unacked_ = 0;
      tcp_advertise();
    }
    return;
  }
  const bool more_than_one = rx_.rcv_nxt - rx_.rcv_wup > rx_.rcv_mss;
  const bool nothing_unread = rx_.rcv_nxt == rx_.copied;  // rcv_nxt - copied_seq < sk_rcvlowat (1)
  if ((more_than_one && (nothing_unread || tcp_select_window() >= rx_.rcv_wnd)) || rx_.quick > 0) {
    tcp_advertise();
  } else {
    tcp_delay_ack();
  }
}

// tcp_send_delayed_ack(): the ACK waits for the reader's tcp_cleanup_rbuf or the delayed-ACK
// timer (TCP_ATO_MIN), whichever comes first; an armed timer is not pushed back.
void VethSystem::tcp_delay_ack() {
  ++rx_.delayed;
  if (!delack_pending_) {
    delack_pending_ = true;
    delack_proc_.wake_at(kernel_.now() + kTcpAtoMin);
  }
}

// The sender's FIN, without data (tcp_data_queue, 6.18): queued, but a zero-length skb skips
// tcp_event_data_recv (no RTT measure, no quickack entry, no window growth). tcp_fin schedules an
// ACK and enters pingpong mode, so quickack no longer applies: __tcp_ack_snd_check sends it at
// once only when more than one MSS is unacknowledged (the FIN counts one byte, and leaves the
// queue non-empty) and the window moves on; otherwise it arms the delayed-ACK timer, and the ACK
// goes out with the reader's own FIN when it closes the socket after reading EOF (on_read).
void VethSystem::tcp_fin_queued(std::uint32_t truesize) {
  tcp_rcv_rtt_measure_ts(0);  // a new TS echo is remembered; too short for a sample
  rx_.rmem += truesize;
  rx_.pingpong = true;
  if (rx_.rcv_nxt + 1 - rx_.rcv_wup > rx_.rcv_mss && tcp_select_window() >= rx_.rcv_wnd) tcp_advertise();
  else tcp_delay_ack();
}

// tcp_recvmsg → tcp_rcv_space_adjust(): once per receiver RTT, the bytes the reader took in that
// RTT (less what is still queued) size the receive buffer (tcp_rcvbuf_grow, 6.18: twice that,
// plus the growth since the last measure, doubled again for slow start), capped by tcp_rmem[2].
void VethSystem::tcp_read(std::uint32_t pay, std::uint32_t truesize) {
  rx_.copied += pay;
  rx_.rmem -= std::min<std::uint64_t>(rx_.rmem, truesize);
  const Picos now = kernel_.now();
  // With kernel ACKs: no measure before the first RTT sample, then once per rtt_us (whole us).
  const bool due = kernel_acks_ ? rx_.rtt_us8 > 0 && static_cast<std::uint64_t>((now - rx_.space_time) / sim::kPicosPerUs) >=
                                                        (rx_.rtt_us8 >> 3)
                                : now - rx_.space_time >= rx_.rtt;
  if (due) {
    const std::uint64_t inq = rx_.rcv_nxt - rx_.copied;
    const std::uint64_t got = rx_.copied - rx_.space_seq;
    const std::uint64_t newval = got > inq ? got - inq : 0;
    if (newval > rx_.space) {
      if (kernel_acks_ && trace_ && trace_->enabled()) {
        // The tcp_rcvbuf_grow tracepoint (6.18), as the captures record it, before the buffer grows.
        char f[240];
        std::snprintf(f, sizeof f,
                      "time=%llu rtt_us=%llu copied=%llu inq=%llu space=%llu ooo=0 scaling_ratio=%llu rcvbuf=%llu "
                      "rcv_ssthresh=%llu window_clamp=%llu rcv_wnd=%llu",
                      static_cast<unsigned long long>((now - rx_.space_time) / sim::kPicosPerUs),
                      static_cast<unsigned long long>(rx_.rtt_us8 >> 3), static_cast<unsigned long long>(got),
                      static_cast<unsigned long long>(inq), static_cast<unsigned long long>(rx_.space),
                      static_cast<unsigned long long>(rx_.scaling), static_cast<unsigned long long>(rx_.rcvbuf),
                      static_cast<unsigned long long>(rx_.rcv_ssthresh), static_cast<unsigned long long>(rx_.window_clamp),
                      static_cast<unsigned long long>(rx_.rcv_wnd));
        sim::TraceCtx t;
        t.task = kReaderComm;
        t.pid = kReaderPid;
        t.cpu = receiver_cpu_;
        trace_->line(t, now, "tcp_rcvbuf_grow", f);
      }
      const std::uint64_t old = rx_.space;
      rx_.space = newval;
      if (!rx_.locked) {
        std::uint64_t rcvwin = newval << 1;
        rcvwin += (rcvwin * (newval - old) / std::max<std::uint64_t>(old, 1)) << 1;
        const std::uint64_t rcvbuf = std::min<std::uint64_t>(rcvwin * 256 / rx_.scaling, rx_.rcvbuf_max);
        if (rcvbuf > rx_.rcvbuf) {
          rx_.rcvbuf = rcvbuf;
          rx_.window_clamp = rcvbuf * rx_.scaling / 256;
          ++rx_.grows;
        }
      }
    }
    rx_.space_seq = rx_.copied;
    rx_.space_time = now;
  }
}

// tcp_rcv_rtt_update() (6.18): a sample below the estimate, or the first, is taken as it is; a
// larger one is dropped if window-based, and smoothed in (7/8 old + 1/8 new) if timestamp-based
// and the receive queue is empty.
void VethSystem::tcp_rcv_rtt_update(std::uint64_t sample_us, bool win_dep) {
  const std::uint64_t m = sample_us << 3;
  if (rx_.rtt_us8 == 0 || m < rx_.rtt_us8) {
    rx_.rtt_us8 = m;
  } else {
    if (win_dep || rx_.rcv_nxt != rx_.copied) return;
    rx_.rtt_us8 = rx_.rtt_us8 - (rx_.rtt_us8 >> 3) + sample_us;
  }
  rx_.rtt = static_cast<Picos>(rx_.rtt_us8 >> 3) * sim::kPicosPerUs;
}

// tcp_rcv_rtt_measure_ts(): once per new TS echo, on a segment of at least rcv_mss bytes, the
// time since the echoed TSval in whole milliseconds; a delta of 0 gives no sample (6.16+).
void VethSystem::tcp_rcv_rtt_measure_ts(std::uint32_t pay) {
  if (ts_recent_ == rx_.last_tsecr) return;
  rx_.last_tsecr = ts_recent_;
  if (pay < rx_.rcv_mss) return;
  const std::int64_t delta = tcp_clock_ms(kernel_.now()) - ts_recent_;
  if (delta <= 0) return;
  ++rx_.ts_samples;
  tcp_rcv_rtt_update(static_cast<std::uint64_t>(delta) * 1000, false);
}

// tcp_rcv_rtt_measure() (from tcp_event_data_recv, after the segment is queued): the time for
// rcv_nxt to pass what was rcv_nxt + rcv_wnd when the measure began (whole us, at least 1).
void VethSystem::tcp_rcv_rtt_measure() {
  const Picos now = kernel_.now();
  if (rx_.rtt_time >= 0) {
    if (rx_.rcv_nxt < rx_.rtt_seq) return;
    const auto us = static_cast<std::uint64_t>((now - rx_.rtt_time) / sim::kPicosPerUs);
    ++rx_.win_samples;
    tcp_rcv_rtt_update(std::max<std::uint64_t>(us, 1), true);
  }
  rx_.rtt_seq = rx_.rcv_nxt + rx_.rcv_wnd;
  rx_.rtt_time = now;
}

// One write. UDP: the send path runs as the sender task's process work, and the receive NAPI
// it schedules runs when the send call re-enables bottom halves, on the same CPU. TCP: the write
// is copied into the socket's send queue; what the receive window allows is transmitted right
// away (tcp_push, on the sender's CPU); the rest goes out when the reader's ACKs open the window,
// which the ACK's softirq does on the reader's CPU, so the receive NAPI then runs there.
void VethSystem::send_next() {
  if (deleted_ || sending_ || sender_done_) return;
  const Picos now = kernel_.now();
  if (sent_ >= sends_) {
    maybe_finish();
    return;
  }
  if (rate_pps_ > 0) {
    // A pace so slow that the next send lies past the end of time never sends it.
    const Picos due = sim::after(start_, static_cast<double>(sent_) * 1e12 / rate_pps_);
    if (due > now) {
      send_proc_.wake_at(due);
      return;
    }
  }
  const bool sndbuf_full = kernel_acks_ ? (sndq_ > 0 || snd_nxt_ > snd_una_) && wmem_queued() + send_queue_mem(payload_) > sndbuf_bytes_
                                       : sndq_ > 0 && send_queue_mem(sndq_ + payload_) > sndbuf_bytes_;
  if (tcp_ && sndbuf_full) {
    sender_blocked_ = true;  // sk_stream_wait_memory
    nospace_ = true;
    ++blocked_;
    return;
  }
  sending_ = true;
  if (tcp_ && push_per_skb_) {
    write_left_ = payload_;
    write_skbs_ = 0;
    in_write_ = ack_backlog_;  // lock_sock
    cpus_[sender_cpu_].run_work(now, tcp_write_cost_ - tcp_write_return_, this, [this] { write_skb(); },
                                /*schedule_point=*/false);
    return;
  }
  const Picos cost = tcp_ ? tcp_write_cost_ - tcp_write_return_ + tcp_copy_cost(payload_)
                          : send_cost_ + static_cast<Picos>(copy_ps_per_byte_ * payload_);
  cpus_[sender_cpu_].run_work(now, cost, this, [this] {
    Caller c = softirq_caller(sender_cpu_, kSenderComm, kSenderPid);
    ++sent_;
    if (tcp_) {
      sndq_ += payload_;
      push(c);
    } else {
      c.cost += send_cost_seg_;
      transmit(c, payload_);
    }
    // The transmit and receive work is part of the sender's time on its CPU; sendmsg returns at
    // its end (a schedule point).
    cpus_[sender_cpu_].run_work(kernel_.now(), c.cost + (tcp_ ? tcp_write_return_ : 0), this, [this] { send_done(); });
  }, /*schedule_point=*/false);
}

// With veth.tcp_push_per_skb, one skb of the write: the copy into it (and its cold pages), then,
// once it holds size_goal bytes, tcp_push_one: it is transmitted at once if the windows allow
// (otherwise it waits like the rest of the send queue; __tcp_push_pending_frames' forced push
// would send nothing more). The write's last skb is pushed by tcp_push at the end of sendmsg,
// which returns there (a schedule point); until then the sender cannot be switched out.
void VethSystem::write_skb() {
  // tcp_send_mss() at the start of the write (restart:), and again when sk_flush_backlog, every
  // 16 skbs, may have processed ACKs that moved the window.
  Picos flushed = 0;
  if (write_skbs_ > 0 && write_skbs_ % 16 == 0 && !backlog_.empty()) {  // sk_flush_backlog, then restart:
    Caller b = softirq_caller(sender_cpu_, kSenderComm, kSenderPid);
    flush_backlog(b);
    flushed = b.cost;
  }
  if (write_skbs_ % 16 == 0) write_goal_ = size_goal();
  ++write_skbs_;
  const std::uint64_t bytes = std::min<std::uint64_t>(write_left_, write_goal_);
  cpus_[sender_cpu_].run_work(kernel_.now(), flushed + tcp_copy_cost(bytes), this, [this, bytes] {
    Caller c = softirq_caller(sender_cpu_, kSenderComm, kSenderPid);
    write_left_ -= bytes;
    sndq_ += bytes;
    const bool last = write_left_ == 0;
    if (last) ++sent_;
    push(c);
    if (last && in_write_) {  // release_sock: the socket is the stack's again, after the backlog's ACKs
      in_write_ = false;
      flush_backlog(c);
    }
    if (last) cpus_[sender_cpu_].run_work(kernel_.now(), c.cost + tcp_write_return_, this, [this] { send_done(); });
    else cpus_[sender_cpu_].run_work(kernel_.now(), c.cost, this, [this] { write_skb(); }, /*schedule_point=*/false);
  }, /*schedule_point=*/false);
}

// Copying `bytes` of a write into the task's page_frag (tcp_sendmsg_locked → skb_page_frag_refill):
// the first veth.tcp_frag_cold_bytes the connection writes land in memory touched for the first
// time; later frags come from the per-CPU lists, where the freed ones went: warm.
Picos VethSystem::tcp_copy_cost(std::uint64_t bytes) {
  Picos cost = static_cast<Picos>(copy_ps_per_byte_ * static_cast<double>(bytes));
  if (frag_.on() && frag_high_water_) {
    // The frags of unacknowledged data are still held (the retransmit queue); what was freed
    // before is warm and reused first, so only a new high-water mark touches fresh pages.
    cost += frag_.touch(sndq_ + (snd_nxt_ - snd_una_) + bytes);
  } else if (frag_.on()) {
    written_ = std::min(written_ + bytes, frag_cold_bytes_);
    cost += frag_.touch(written_);
  }
  return cost;
}

// tcp_xmit_size_goal(): tcp_bound_to_half_wnd(sk_gso_max_size) in whole segments, at least one.
// veth's GSO size is GSO_LEGACY_MAX_SIZE; sk_setup_caps leaves MAX_TCP_HEADER + 1 of it out.
std::uint64_t VethSystem::size_goal() const {
  constexpr std::uint64_t kGsoMax = 65536 - (320 + 1);
  constexpr std::uint64_t kMssDefault = 536;    // TCP_MSS_DEFAULT
  constexpr std::uint64_t kMinCutoff = 68 - 32;  // 68 - tcp_header_len (timestamps on)
  const std::uint64_t cutoff = max_window_ > kMssDefault ? max_window_ / 2 : max_window_;
  const std::uint64_t goal = cutoff > 0 && kGsoMax > cutoff ? std::max(cutoff, kMinCutoff) : kGsoMax;
  return std::max<std::uint64_t>(goal / mss_ * mss_, mss_);
}

Caller VethSystem::softirq_caller(int cpu, const char* task, int pid) const {
  Caller c;
  c.ctx.cpu = cpu;
  c.ctx.softirq = true;
  c.ctx.task = task;
  c.ctx.pid = pid;
  pages_.now = kernel_.now();
  return c;
}

// tcp_write_xmit: as much of the send queue as the receive window and the congestion window
// allow, in MSS segments (tcp_snd_wnd_test, tcp_cwnd_test). Segments lost on the way (XDP drop)
// give their window back at once, so the loop goes on. An ACK the receiver sends at once (in this
// softirq) reaches the sender's socket before the write returns, so the loop sees it; with
// veth.tcp_ack_backlog it waits in the backlog until sk_flush_backlog or release_sock instead.
void VethSystem::push(Caller& c) {
  bool sent = false;
  while (sndq_ > 0 && !deleted_) {
    const std::uint64_t in_flight = packets_out();
    const std::uint64_t cwnd_room = !kernel_acks_ ? UINT64_MAX : in_flight < cwnd_ ? (cwnd_ - in_flight) * mss_ : 0;
    std::uint64_t bytes = std::min<std::uint64_t>({sndq_, std::uint64_t{window_room()}, cwnd_room});
    if (!kernel_acks_ && bytes == sndq_) {
      // Without ACK clocking: what the receive window did not hold back is acknowledged at once;
      // in slow start each segment grows cwnd, and the send buffer follows it.
      cwnd_ += (bytes + mss_ - 1) / mss_;
      tcp_sndbuf_expand();
    }
    // Whole segments unless it is the tail, or nothing is in flight (a window below one MSS).
    if (bytes < sndq_ && unread_bytes_ > 0) bytes = bytes / mss_ * mss_;
    if (bytes == 0) break;
    const auto segments = (bytes + mss_ - 1) / mss_;
    // tcp_cwnd_validate(): the segments in flight once these are out (their ACKs come later).
    const std::uint64_t out = in_flight + segments;
    const bool limited = out >= cwnd_;
    if (snd_una_ >= cwnd_usage_seq_ || limited || (!cwnd_limited_ && out > max_packets_out_)) {
      cwnd_limited_ = limited;
      max_packets_out_ = out;
      cwnd_usage_seq_ = snd_nxt_ + bytes;
    }
    sndq_ -= bytes;
    unread_bytes_ += bytes;
    snd_nxt_ += bytes;
    c.cost += static_cast<Picos>(segments) * tcp_xmit_cost_;
    transmit(c, static_cast<std::uint32_t>(bytes));
    sent = true;
  }
  if (!kernel_acks_) {
    if (!sent) return;
    if (sender_blocked_ && (sndq_ == 0 || send_queue_mem(sndq_ + payload_) <= sndbuf_bytes_)) {
      sender_blocked_ = false;
      send_proc_.wake_at(kernel_.now());
    }
    if (!sending_) maybe_finish();
    return;
  }
  tcp_check_space();
  if (sent && !sending_) maybe_finish();
}

// Segments sent and not yet acknowledged (tp->packets_out).
std::uint64_t VethSystem::packets_out() const { return (snd_nxt_ - snd_una_ + mss_ - 1) / mss_; }

// sk_wmem_queued: the write queue and the retransmit queue (sent, not yet acknowledged).
std::uint64_t VethSystem::wmem_queued() const { return send_queue_mem(sndq_) + send_queue_mem(snd_nxt_ - snd_una_); }

// tcp_ack() on the sender's socket: the acknowledged segments leave the retransmit queue; in slow
// start (no loss on a veth) each one grows cwnd, but only while the flow is cwnd-limited
// (tcp_is_cwnd_limited: cwnd below twice the most segments it had in flight). A writer that ran
// out of send buffer gets a larger one (tcp_new_space → tcp_sndbuf_expand, when not cwnd-limited).
void VethSystem::tcp_ack(std::uint64_t ack) {
  if (!tcp_ || !kernel_acks_ || ack <= snd_una_) return;
  const std::uint64_t acked = (ack - snd_una_ + mss_ - 1) / mss_;
  snd_una_ = std::min(ack, snd_nxt_);
  if (cwnd_limited_ || cwnd_ < 2 * max_packets_out_) cwnd_ += acked;
  if (nospace_ && packets_out() < cwnd_) tcp_sndbuf_expand();
}

// tcp_check_space → sk_stream_write_space: a writer waiting for send buffer is woken once a
// third of it is free again (sk_stream_wspace >= sk_stream_min_wspace).
void VethSystem::tcp_check_space() {
  if (!sender_blocked_ || deleted_) return;
  const std::uint64_t queued = wmem_queued();
  if (sndbuf_bytes_ >= queued + queued / 2) {
    sender_blocked_ = false;
    nospace_ = false;
    send_proc_.wake_at(kernel_.now());
  }
}

// tcp_sndbuf_expand(): room for two congestion windows of worst-case segments (one skb each,
// its head a power-of-two kmalloc), never less than the initial buffer, at most tcp_wmem[2].
void VethSystem::tcp_sndbuf_expand() {
  if (!tcp_ || sndbuf_locked_) return;
  const std::uint64_t want = 2 * std::max<std::uint64_t>(10, cwnd_) * kTcpPerMssMem;
  sndbuf_bytes_ = std::max(sndbuf_bytes_, std::min(want, sndbuf_max_));
}

// What `bytes` of unsent data take from the send buffer: one segment-sized skb per MSS.
std::uint64_t VethSystem::send_queue_mem(std::uint64_t bytes) const { return (bytes + mss_ - 1) / mss_ * kTcpPerMssMem; }

// The reader consumed data: its ACK (window update) reaches the sender's socket in NET_RX
// softirq on the reader's CPU, which transmits more of the send queue from there.
void VethSystem::on_ack() {
  ack_pending_ = false;
  if (deleted_ || (!kernel_acks_ && sndq_ == 0)) return;
  const Picos now = kernel_.now();
  sim::Cpu& cpu = cpus_[receiver_cpu_];
  const Picos start = cpu.softirq_start(now);
  if (start > now) {
    ack_pending_ = !kernel_acks_;  // the kernel-ACK path keeps its ACKs in acks_in_flight_ instead
    ack_proc_.wake_at(start);
    return;
  }
  if (kernel_acks_) {
    // With veth.tcp_kernel_acks: the ACKs due by now reach the sender's socket, which processes
    // them in order (tcp_ack), then transmits what they allow and wakes a writer waiting for send
    // buffer (tcp_data_snd_check).
    while (!acks_in_flight_.empty() && acks_in_flight_.front().due <= now) {
      sender_rcv_ack(acks_in_flight_.front());
      acks_in_flight_.pop_front();
    }
    if (!acks_in_flight_.empty()) ack_proc_.wake_at(acks_in_flight_.front().due);
    if (in_write_) return;  // they wait in the writer's backlog
    if (sndq_ == 0 && !sender_blocked_) return;
  }
  Caller c = softirq_caller(receiver_cpu_, kReaderComm, kReaderPid);
  c.cost += tcp_ack_cost_;
  push(c);
  cpu.run_softirq(now, c.cost, "tcp ack");
}

// veth_xmit → the receiving veth's NAPI on `c.ctx.cpu`: skb_pp_cow_data, XDP, GRO, the stack.
void VethSystem::transmit(Caller& c, std::uint32_t bytes) {
  if (deleted_) return;  // the device is gone
  const Picos now = kernel_.now();
  const int cpu = c.ctx.cpu;
  napi_list_owner_ = cpu;  // ____napi_schedule from veth_xmit on this CPU
  // UDP: one datagram; TCP: MSS segments, the last one shorter.
  std::uint32_t left_bytes = bytes;
  int left = tcp_ ? std::max(1, static_cast<int>((bytes + mss_ - 1) / mss_)) : 1;  // bytes 0: a FIN
  while (left > 0) {
    const int work = std::min<int>(left, static_cast<int>(budget_));
    stack_.net_rx_action(c);  // skb_defer_free_flush at the top of net_rx_action
    c.cost += poll_cost_;
    for (int i = 0; i < work; ++i) {
      pages_.now = now + c.cost;
      const std::uint32_t pay = tcp_ ? std::min(left_bytes, mss_) : left_bytes;
      left_bytes -= pay;
      deliver_one(c, pay + (tcp_ ? kTcpHeaders : kUdpHeaders));
    }
    gro_flush(c);  // napi_complete_done flushes GRO
    ++polls_;
    segments_ += work;
    left -= work;
    stack_.net_rx_action(c);  // and once more after the last poll
    if (trace_ && trace_->enabled()) {
      char f[160];
      std::snprintf(f, sizeof f, "napi poll on napi struct 00000000b0c00000 for device veth0 work %d budget %u", work, budget_);
      sim::TraceCtx t;
      t.task = c.ctx.task;
      t.pid = c.ctx.pid;
      t.cpu = cpu;
      t.softirq = true;
      trace_->line(t, now + c.cost, "napi_poll", f);  // the tracepoint fires when the poll returns
    }
  }
  napi_list_owner_ = -1;  // napi_complete_done
}

// skb_pp_cow_data() and XDP for one frame; the skb goes to GRO (TCP) or straight to the stack.
bool VethSystem::deliver_one(Caller& c, std::uint32_t frame) {
  // The head goes into one pool allocation of truesize bytes (frames up to the MTU always fit:
  // max_head_size is 3520), a frag when twice that fits a page.
  std::uint32_t truesize = data_align(frame) + kShinfo + kHeadroom;
  std::uint32_t offset = 0;
  c.cost += cow_cost_ + static_cast<Picos>(copy_ps_per_byte_ * frame);
  const page_pool::PageId page = pool_->alloc_netmem(c, &offset, &truesize);
  if (page == page_pool::kNoPage) {  // -ENOMEM: veth drops the packet
    segment_lost(frame);
    return false;
  }
  page_pool::Page& pg = pages_.page(page);
  // The frame's lines were last read by the CPU that copied the page's previous data out: from
  // another CPU's cache they come over line by line (an invalidation each).
  if (pg.data_reader_cpu >= 0 && pg.data_reader_cpu != c.ctx.cpu) {
    ++remote_copies_;
    c.cost += static_cast<Picos>(remote_copy_ps_per_byte_ * frame);
  }
  pg.data_writer_cpu = static_cast<std::int16_t>(c.ctx.cpu);
  if (!pg.touched) {  // the first frame copied into a page the allocator never handed out before
    pg.touched = true;
    ++fresh_pages_;
    c.cost += fresh_page_cost_;
  }
  c.cost += xdp_cost_;
  if (xdp_drop_) {
    ++xdp_drops_;
    pool_->put(c, page, -1, false, offset);  // kfree_skb → napi_pp_put_page(allow_direct=false)
    segment_lost(frame);
    return true;
  }
  if (tcp_ && gro_on_) {
    // napi_gro_receive: a segment of the flow being merged becomes a frag of the held skb
    // (its head page is stolen), up to MAX_SKB_FRAGS frags or 64 KiB.
    c.cost += gro_cost_;
    if (gro_.page != page_pool::kNoPage && gro_.nfrags < nic::Skb::kMaxFrags &&
        gro_.bytes + frame - kTcpHeaders <= 65536) {
      gro_.frag_page[gro_.nfrags] = page;
      gro_.frag_off[gro_.nfrags] = offset;
      ++gro_.nfrags;
      gro_.bytes += frame - kTcpHeaders;
      gro_.buf_bytes += truesize;
      return true;
    }
    gro_flush(c);
  }
  nic::Skb skb;
  skb.page = page;
  skb.offset = offset;
  skb.bytes = frame;
  skb.buf_bytes = truesize;  // skb->truesize = this + SKB_DATA_ALIGN(sizeof(struct sk_buff))
  if (tcp_ && !(tcp_ && gro_on_)) tcp_segment_queued(frame > kTcpHeaders ? frame - kTcpHeaders : 0, truesize + kSkbStructBytes);
  skb.alloc_cpu = c.ctx.cpu;  // the CPU whose NAPI built the skb
  skb.pool = pool_.get();
  skb.rx_time = pages_.now;
  skb.id = skb.data = pages_.new_holder();
  skb.pp_recycle = true;  // skb_pp_cow_data marks the copy for recycling
  if (tcp_ && gro_on_) {
    gro_ = skb;
    return true;
  }
  pages_.now = kernel_.now() + c.cost;  // the poll's clock when the skb goes up the stack
  if (tcp_)
    tcp_deliver(c, skb);
  else
    stack_.deliver(c, skb);
  return true;
}

// tcp_queue_rcv: a segment coalesced into the tail skb is charged its truesize less the sk_buff
// that kfree_skb_partial frees (skb_try_coalesce's delta when it steals the head).
void VethSystem::tcp_deliver(Caller& c, const nic::Skb& skb) {
  const std::uint64_t before = stack_.coalesced();
  stack_.deliver_costing(c, skb, tcp_deliver_cost_);
  if (stack_.coalesced() != before) rx_.rmem -= std::min<std::uint64_t>(rx_.rmem, kSkbStructBytes);
}

// The held GRO skb goes up the stack (napi_gro_flush / the end of the poll).
void VethSystem::gro_flush(Caller& c) {
  if (gro_.page == page_pool::kNoPage) return;
  nic::Skb skb = gro_;
  gro_ = nic::Skb{};
  if (tcp_) tcp_segment_queued(skb.bytes > kTcpHeaders ? skb.bytes - kTcpHeaders : 0, skb.buf_bytes + kSkbStructBytes);
  pages_.now = kernel_.now() + c.cost;
  tcp_deliver(c, skb);
}

// A TCP segment that never reaches the socket no longer occupies the window (the model has no
// retransmission: the data is counted as delivered and lost).
void VethSystem::segment_lost(std::uint32_t frame) {
  if (!tcp_) return;
  const std::uint32_t pay = frame > kTcpHeaders ? frame - kTcpHeaders : 0;
  unread_bytes_ -= std::min<std::uint64_t>(unread_bytes_, pay);
  // Its sequence space counts as received and read: the window moves past it.
  rx_.rcv_nxt += pay;
  rx_.copied += pay;
  rx_.space_seq += pay;
  tcp_advertise();
}

void VethSystem::send_done() {
  sending_ = false;
  if (sent_ >= sends_) {
    maybe_finish();
    return;
  }
  send_next();
}

// Every write made and, for TCP, every byte transmitted.
void VethSystem::maybe_finish() {
  if (sent_ >= sends_ && (!tcp_ || sndq_ == 0)) sender_finished();
}

void VethSystem::sender_finished() {
  if (sender_done_) return;
  sender_done_ = true;
  sender_done_at_ = kernel_.now();
  if (tcp_) {
    // close(): the FIN goes through the veth like data, so its NAPI poll on the sender's CPU
    // also flushes that CPU's defer list; the FIN's skb is the reader's last. The deletion
    // is scheduled once the FIN is out.
    cpus_[sender_cpu_].run_work(sender_done_at_, tcp_write_cost_, this, [this] {
      Caller c = softirq_caller(sender_cpu_, kSenderComm, kSenderPid);
      c.cost += tcp_xmit_cost_;
      transmit(c, 0);
      cpus_[sender_cpu_].run_work(kernel_.now(), c.cost, this, [this] { schedule_delete(); });
    }, /*schedule_point=*/false);
    return;
  }
  schedule_delete();
}

void VethSystem::schedule_delete() {
  if (reader_hold_ > 0) {
    // The reader waits for the deletion: delete now (after the gap), then let it read.
    const Picos del = sender_done_at_ + delete_after_sender_;
    stack_.pause_reader_until(del + reader_hold_);
    delete_at_(del);
    return;
  }
  check_reader_done();
}

void VethSystem::check_reader_done() {
  const Picos now = kernel_.now();
  if (!stack_.reader_idle()) {
    done_check_proc_.wake_at(now + 10 * sim::kPicosPerUs);
    return;
  }
  delete_at_(std::max(now, sender_done_at_ + delete_after_sender_));
}

void VethSystem::close(Picos) {
  deleted_ = true;
  send_proc_.cancel();
  ack_proc_.cancel();
  done_check_proc_.cancel();
  delack_proc_.cancel();
}

void VethSystem::register_stats() {
  auto& s = stats_;
  s.reader("veth0.writes", "writes", "datagrams or writes the sender completed", [this] { return sent_; });
  s.reader("veth0.rx_packets", "packets", "packets the receiving veth's NAPI handled", [this] { return segments_; });
  s.reader("veth0.napi_polls", "polls", "receive NAPI polls", [this] { return polls_; });
  s.reader("veth0.xdp_drops", "packets", "packets the XDP program dropped", [this] { return xdp_drops_; });
  s.reader("veth0.sender_blocked", "events", "TCP sends that waited for window", [this] { return blocked_; });
  s.reader("veth0.remote_copies", "frames", "frames copied into pool pages another CPU last read (cpus.remote_copy_ns_per_kib each KiB)",
           [this] { return remote_copies_; });
  s.reader("veth0.fresh_pages", "pages", "pool pages first written in this run (veth.fresh_page_ns each)",
           [this] { return fresh_pages_; });
  if (tcp_) {
    s.reader("veth0.tcp.sndbuf_bytes", "bytes", "the sending socket's sk_sndbuf at the end (autotuning)",
             [this] { return static_cast<std::int64_t>(sndbuf_bytes_); });
    s.reader("veth0.tcp.cwnd", "segments", "the congestion window at the end (slow start, no loss)",
             [this] { return static_cast<std::int64_t>(cwnd_); });
    s.reader("veth0.tcp.rcvbuf_bytes", "bytes", "the receiving socket's sk_rcvbuf at the end (autotuning)",
             [this] { return static_cast<std::int64_t>(rx_.rcvbuf); });
    s.reader("veth0.tcp.rcvbuf_grows", "events", "receive-buffer autotuning steps (tcp_rcvbuf_grow)",
             [this] { return rx_.grows; });
    if (kernel_acks_) s.reader("veth0.tcp.acks", "ACKs", "ACKs the receiver sent (each advertises the window)", [this] { return rx_.acks; });
    if (kernel_acks_) s.reader("veth0.tcp.acks_delayed", "segments", "segments not ACKed at once (__tcp_ack_snd_check held the ACK back)",
             [this] { return rx_.delayed; });
    if (kernel_acks_) s.reader("veth0.tcp.rtt_samples_ts", "samples", "receiver RTT samples from TCP timestamps (whole ms)",
             [this] { return rx_.ts_samples; });
    if (kernel_acks_) s.reader("veth0.tcp.rtt_samples_window", "samples", "receiver RTT samples from one window's arrival",
             [this] { return rx_.win_samples; });
    if (ack_backlog_) {
      s.reader("veth0.tcp.acks_backlogged", "ACKs", "ACKs that reached the writer inside sendmsg and waited in its backlog",
               [this] { return backlogged_; });
      s.reader("veth0.tcp.backlog_flushes", "flushes", "times the writer processed its backlog (sk_flush_backlog, release_sock)",
               [this] { return backlog_flushes_; });
    }
    if (tcp_coalesce_)
      s.reader("veth0.tcp.coalesced", "segments", "segments whose payload joined the receive queue's tail skb",
               [this] { return stack_.coalesced(); });
    if (frag_.on())
      s.reader("veth0.tcp.sndq_faults", "pages", "pages of the send queue's memory faulted in by a write's first touch",
               [this] { return frag_.faults(); });
    s.reader("veth0.tcp.rcv_rtt_us", "us", "the receiver's RTT estimate at the end",
             [this] { return static_cast<std::int64_t>(rx_.rtt / sim::kPicosPerUs); });
  }
}

nlohmann::json VethSystem::results() const {
  return {{"writes", sent_}, {"packets", segments_}, {"napi_polls", polls_}, {"xdp_drops", xdp_drops_},
          {"sender_done_ns", sender_done_at_ / 1000}};
}

}  // namespace ppsim::world
