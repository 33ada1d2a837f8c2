// The veth receive path of a capture (the workload `ppsim capture` runs on a real kernel), for
// replaying kernel traces: a sender task on one CPU writes UDP datagrams or TCP segments into a
// veth pair; the receiving veth has an XDP program, so its NAPI (run on the sender's CPU, inside
// the send call, as drivers/net/veth.c schedules it) copies each skb into page_pool frags
// (skb_pp_cow_data: head truesize = SKB_DATA_ALIGN(len) + SKB_DATA_ALIGN(320) + 256 of headroom,
// a frag when twice that fits a page), runs XDP, and hands the packet to the stack (a socket
// read by a reader task on the receiving CPU, freeing through skb_attempt_defer_free) or drops
// it. veth's pool: order 0, pool_size 256, no DMA, no NAPI pointer, so it never recycles
// directly: every return goes through the ptr_ring.
// Teardown is the veth deletion: the pool is destroyed with whatever is still inflight.
#pragma once
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/page_pool/mutants.h"
#include "models/page_pool/page_pool.h"
#include "models/world/stack.h"
#include "sim/cpu.h"
#include "sim/kernel.h"
#include "sim/params.h"
#include "sim/rng.h"
#include "sim/stats.h"
#include "sim/topology.h"
#include "sim/tracer.h"

namespace ppsim::world {

void register_veth_params(sim::ParamRegistry& r);
void validate_veth_params(const sim::Params& p);

class VethSystem {
 public:
  struct Pool {
    std::string name;
    page_pool::PagePool* pool;
  };
  // `delete_at(t)` asks the world to tear everything down at t (the veth deletion).
  VethSystem(sim::Kernel& kernel, const sim::Params& p, std::vector<sim::Cpu>& cpus, page_pool::PageWorld& pages,
             Stack& stack, sim::Stats& stats, sim::Topology& topo, const std::vector<sim::Topology::Vertex>& cpu_v,
             const sim::Rng& root, const page_pool::MutantSet& mutants,
             const std::function<void(page_pool::PagePool*)>& on_pool, std::function<void(sim::Picos)> delete_at,
             sim::TraceWriter* trace);
  ~VethSystem();

  void open(sim::Picos now);
  void close(sim::Picos now);
  const std::vector<Pool>& pools() const { return pools_; }
  void register_stats();
  nlohmann::json results() const;
  // Context of the deleting task (`ip link del`).
  page_pool::ExecCtx delete_ctx() const;
  // napi->list_owner of the receiving veth's NAPI (the CPU it runs on while scheduled).
  const int* napi_owner() const { return &napi_list_owner_; }

 private:
  void send_next();
  void write_skb();
  std::uint64_t size_goal() const;
  sim::Picos tcp_copy_cost(std::uint64_t bytes);
  void send_done();
  void transmit(page_pool::Caller& c, std::uint32_t bytes);
  void push(page_pool::Caller& c);
  void on_ack();
  void on_delack();
  page_pool::Caller softirq_caller(int cpu, const char* task, int pid) const;
  bool deliver_one(page_pool::Caller& c, std::uint32_t frame);
  void gro_flush(page_pool::Caller& c);
  void sender_finished();
  void schedule_delete();
  void maybe_finish();
  void segment_lost(std::uint32_t frame);
  void check_reader_done();
  std::uint32_t window_room() const;
  // An ACK the receiver sends: `at_once` when the sender's socket processes it in the same softirq
  // (NAPI context); otherwise it reaches the sender tcp_ack_delay later (veth.tcp_kernel_acks).
  void tcp_advertise(bool at_once = true);
  void schedule_ack();
  std::uint64_t tcp_space() const;
  std::uint64_t tcp_receive_window() const;
  std::uint64_t tcp_select_window();
  void tcp_cleanup_rbuf();
  void tcp_sndbuf_expand();
  std::uint64_t packets_out() const;
  std::uint64_t wmem_queued() const;
  void tcp_ack(std::uint64_t ack);
  struct AckInFlight;
  void sender_rcv_ack(const AckInFlight& a);  // into the backlog while the writer owns the socket
  void apply_ack(const AckInFlight& a);
  void tcp_check_space();
  std::uint64_t send_queue_mem(std::uint64_t bytes) const;
  void tcp_segment_queued(std::uint32_t pay, std::uint32_t truesize);
  void tcp_fin_queued(std::uint32_t truesize);
  void tcp_delay_ack();
  void tcp_deliver(page_pool::Caller& c, const nic::Skb& skb);
  void tcp_read(std::uint32_t pay, std::uint32_t truesize);
  void tcp_rcv_rtt_update(std::uint64_t sample_us, bool win_dep);
  void tcp_rcv_rtt_measure_ts(std::uint32_t pay);
  void tcp_rcv_rtt_measure();
  std::int64_t tcp_clock_ms(sim::Picos t) const { return (t + ts_phase_) / sim::kPicosPerMs; }

  sim::Kernel& kernel_;
  const sim::Params& p_;
  std::vector<sim::Cpu>& cpus_;
  page_pool::PageWorld& pages_;
  Stack& stack_;
  sim::Stats& stats_;
  sim::TraceWriter* trace_;
  std::function<void(sim::Picos)> delete_at_;
  std::unique_ptr<page_pool::PagePool> pool_;
  std::vector<Pool> pools_;
  sim::Process send_proc_, ack_proc_, done_check_proc_, delack_proc_;

  bool tcp_ = false, xdp_drop_ = false;
  int sender_cpu_ = 0, receiver_cpu_ = 1;
  std::uint64_t sends_ = 0;           // writes (UDP datagrams or TCP writes) to do
  std::uint32_t payload_ = 0;
  std::uint32_t mss_ = 1448;
  double rate_pps_ = 0;
  sim::Picos start_ = 0, send_cost_ = 0, poll_cost_ = 0, cow_cost_ = 0, xdp_cost_ = 0, fresh_page_cost_ = 0;
  double copy_ps_per_byte_ = 0;
  sim::Picos delete_after_sender_ = 0, reader_hold_ = 0;
  std::uint64_t sndbuf_bytes_ = 0, sndbuf_max_ = 0, cwnd_ = 10;  // cwnd: TCP_INIT_CWND
  bool sndbuf_locked_ = false;
  // TCP's receive side (net/ipv4/tcp_input.c, 6.18): what the receiver advertises and autotunes.
  struct TcpRx {
    std::uint64_t rcvbuf = 0, rcvbuf_max = 0;
    bool locked = false;
    std::uint64_t scaling = 128;       // tp->scaling_ratio: window per byte of rcvbuf, /256
    std::uint64_t rcv_ssthresh = 0, window_clamp = 0;
    std::uint32_t rcv_mss = 536;       // icsk_ack.rcv_mss: TCP_MSS_DEFAULT until a full segment
    std::uint64_t rmem = 0;            // truesize of the queued skbs (sk_rmem_alloc)
    std::uint64_t rcv_nxt = 0, copied = 0, edge = 0;
    std::uint64_t space = 0, space_seq = 0;  // tp->rcvq_space
    sim::Picos space_time = 0, rtt = 0, rtt_time = -1;
    std::uint64_t rtt_seq = 0;
    bool rtt_sampled = false;
    std::uint64_t rcv_wnd = 0, rcv_wup = 0;  // the window the last ACK advertised, and rcv_nxt then
    std::uint32_t quick = 0;           // icsk_ack.quick: ACKs still sent at once (quickack mode)
    bool data_seen = false;            // icsk_ack.ato set: the first data segment entered quickack mode
    bool pingpong = false;             // tcp_fin: inet_csk_enter_pingpong_mode, no more quick ACKs
    std::uint64_t acks = 0, delayed = 0;
    std::uint64_t grows = 0;
    // With veth.tcp_kernel_acks, the estimate as 6.18 keeps it (tp->rcv_rtt_est): rtt_us << 3, 0
    // until the first sample; the window-based measure's start (time, seq); the last TS echo
    // that gave a timestamp sample (rcv_rtt_last_tsecr).
    std::uint64_t rtt_us8 = 0;
    std::int64_t last_tsecr = -1;
    std::uint64_t ts_samples = 0, win_samples = 0;
  } rx_;
  // TCP timestamps (ms granularity, tcp_time_stamp_ts): the receiver's clock phase against the
  // simulation's, and the TSval of the last ACK the sender processed, which its segments echo.
  sim::Picos ts_phase_ = 0;
  std::int64_t ts_recent_ = 0;
  sim::Picos tcp_deliver_cost_ = 0, tcp_xmit_cost_ = 0;
  FirstTouch frag_;  // the sender's cold page_frag memory (veth.tcp_frag_first_touch_ns)
  sim::Picos tcp_write_return_ = 0;  // veth.tcp_write_return_ns: the write's cost after its segments
  bool frag_high_water_ = false;  // veth.tcp_frag_cold_high_water
  std::uint64_t written_ = 0, frag_cold_bytes_ = 32768;  // bytes the writes copied into cold memory, and its size
  bool push_per_skb_ = false;         // veth.tcp_push_per_skb
  std::uint64_t write_left_ = 0;      // with it: bytes of the current write not yet copied,
  std::uint64_t write_goal_ = 0, write_skbs_ = 0;  // its skbs' size_goal, and skbs copied so far
  std::uint64_t max_window_ = 0;      // the sender's tp->max_window: the largest window offered
  sim::Picos send_cost_seg_ = 0, tcp_write_cost_ = 0, tcp_ack_cost_ = 0, tcp_ack_delay_ = 0;
  std::uint32_t budget_ = 64;

  std::uint64_t sent_ = 0, segments_ = 0, polls_ = 0, xdp_drops_ = 0, blocked_ = 0, fresh_pages_ = 0;
  std::uint64_t remote_copies_ = 0;
  double remote_copy_ps_per_byte_ = 0;  // cpus.remote_copy_ns_per_kib
  std::uint64_t unread_bytes_ = 0;    // TCP payload written and not yet read
  std::uint64_t sndq_ = 0;            // TCP: bytes written into the send queue, not yet transmitted
  // TCP's sending side (tcp_output.c, tcp_input.c tcp_ack): payload bytes transmitted and
  // acknowledged; tcp_cwnd_validate's record of how much of cwnd the flow used; SOCK_NOSPACE.
  std::uint64_t snd_nxt_ = 0, snd_una_ = 0, cwnd_usage_seq_ = 0, max_packets_out_ = 0;
  bool cwnd_limited_ = false, nospace_ = false;
  bool kernel_acks_ = false;          // veth.tcp_kernel_acks
  bool tcp_coalesce_ = false;         // veth.tcp_coalesce
  int unacked_ = 0;                   // without it: segments since the last (every-second-segment) ACK
  bool ack_pending_ = false, delack_pending_ = false;
  // With veth.tcp_kernel_acks: ACKs sent from the reader's tcp_cleanup_rbuf or the delayed-ACK
  // timer, on their way to the sender's socket (it processes each at `due`): the new right edge of
  // the window, the cumulative ACK and the TSval the sender's next segments echo.
  struct AckInFlight {
    sim::Picos due;
    std::uint64_t ack, edge;
    std::int64_t tsval;
  };
  std::deque<AckInFlight> acks_in_flight_;
  // veth.tcp_ack_backlog: while the writer is inside sendmsg it owns the socket, and ACKs reaching
  // it wait in the socket's backlog (sk_add_backlog) until sk_flush_backlog (every 16 new skbs)
  // or release_sock at the end of the write.
  bool ack_backlog_ = false, in_write_ = false;
  std::deque<AckInFlight> backlog_;
  std::int64_t backlogged_ = 0, backlog_flushes_ = 0;
  void flush_backlog(page_pool::Caller& c);
  nic::Skb gro_;                      // the TCP skb GRO is merging segments into
  sim::Picos gro_cost_ = 0;
  bool gro_on_ = false;
  int napi_list_owner_ = -1;
  bool sending_ = false, sender_blocked_ = false, sender_done_ = false, deleted_ = false;
  sim::Picos sender_done_at_ = 0;
};

}  // namespace ppsim::world
