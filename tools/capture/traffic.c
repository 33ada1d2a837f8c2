// ppsim_traffic: the bounded sender, receiver and softirq "kick" that `ppsim capture` runs
// inside its private network namespaces. Each role pins itself to one CPU, writes phase markers
// into a tracefs trace_marker file descriptor it inherits, and prints its results as one JSON
// line on stdout. Times are CLOCK_MONOTONIC nanoseconds, the clock the capture's tracefs
// instance uses (trace_clock=mono), so they line up with trace timestamps.
//
//   ppsim_traffic send --proto udp|tcp --dst IPV4 --port P --size BYTES --count N
//                      [--rate PPS] [--cpu C] [--marker-fd FD] [--timeout-ms MS]
//       UDP: N datagrams of BYTES payload on a connected socket. TCP: N writes of BYTES,
//       then shutdown. --rate paces sends at absolute deadlines (0 = as fast as possible).
//   ppsim_traffic recv --proto udp|tcp --bind IPV4 --port P [--rcvbuf BYTES]
//                      [--start now|go] [--cpu C] [--marker-fd FD] [--timeout-ms MS]
//                      [--quiet-ms MS]
//       Prints {"ready":...} once bound (listening for TCP). Reads commands on stdin:
//       "go" starts reading (with --start go, nothing is read before it), "stop" (or EOF)
//       says the sender is done: drain what is queued, keep reading until MS of quiet (TCP:
//       or EOF), then exit. "stop" implies "go".
//   ppsim_traffic kick --cpu C [--count N] [--marker-fd FD]
//       Sends N one-byte datagrams to itself over loopback from CPU C, so NET_RX softirq runs
//       on C (and flushes C's deferred skb frees); waits for them to arrive.
//   ppsim_traffic faults --cpu C [--count PAGES]
//       What a user page fault costs on this machine: maps PAGES (default 4096) pages of fresh
//       anonymous memory (no huge pages), writes one byte to each, and unmaps them, three times.
//       The capture's reader faults its buffer in this way on its first reads.
//
// The roles name themselves ppsim_send, ppsim_recv and ppsim_kick (the trace's TASK column).
// Exit codes: 0 done, 2 bad arguments, 3 the system refused (socket, affinity, timeout).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif
#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

enum { kExitOk = 0, kExitUsage = 2, kExitSystem = 3 };
enum Proto { kUdp, kTcp };

static const char* g_role = "ppsim_traffic";

static void die_usage(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "ppsim_traffic %s: ", g_role);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(kExitUsage);
}

static void die_system(const char* what) {
  fprintf(stderr, "ppsim_traffic %s: %s: %s\n", g_role, what, strerror(errno));
  exit(kExitSystem);
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

// ---- options ---------------------------------------------------------------------------

struct Options {
  enum Proto proto;
  int proto_set;
  const char* addr;  // --dst or --bind
  int port;
  long size;
  long count;
  long rate;
  long rcvbuf;
  int cpu;
  int marker_fd;
  long timeout_ms;
  long quiet_ms;
  int start_on_go;
};

static long parse_long(const char* name, const char* v, long lo, long hi) {
  char* end = NULL;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno || !end || *end || end == v || x < lo || x > hi)
    die_usage("%s must be an integer in [%ld, %ld], got '%s'", name, lo, hi, v);
  return x;
}

static void parse_options(int argc, char** argv, struct Options* o) {
  memset(o, 0, sizeof *o);
  o->cpu = -1;
  o->marker_fd = -1;
  o->timeout_ms = 60000;
  o->quiet_ms = 200;
  o->count = -1;
  for (int i = 2; i < argc; i++) {
    const char* a = argv[i];
    if (i + 1 >= argc) die_usage("missing value after %s", a);
    const char* v = argv[++i];
    if (!strcmp(a, "--proto")) {
      if (!strcmp(v, "udp")) o->proto = kUdp;
      else if (!strcmp(v, "tcp")) o->proto = kTcp;
      else die_usage("--proto must be udp or tcp, got '%s'", v);
      o->proto_set = 1;
    } else if (!strcmp(a, "--dst") || !strcmp(a, "--bind")) {
      o->addr = v;
    } else if (!strcmp(a, "--port")) {
      o->port = (int)parse_long(a, v, 1, 65535);
    } else if (!strcmp(a, "--size")) {
      o->size = parse_long(a, v, 1, 1 << 20);
    } else if (!strcmp(a, "--count")) {
      o->count = parse_long(a, v, 1, 100000000);
    } else if (!strcmp(a, "--rate")) {
      o->rate = parse_long(a, v, 0, 100000000);
    } else if (!strcmp(a, "--rcvbuf")) {
      o->rcvbuf = parse_long(a, v, 0, 1L << 30);
    } else if (!strcmp(a, "--cpu")) {
      o->cpu = (int)parse_long(a, v, 0, CPU_SETSIZE - 1);
    } else if (!strcmp(a, "--marker-fd")) {
      o->marker_fd = (int)parse_long(a, v, 0, 1 << 20);
    } else if (!strcmp(a, "--timeout-ms")) {
      o->timeout_ms = parse_long(a, v, 1, 3600 * 1000);
    } else if (!strcmp(a, "--quiet-ms")) {
      o->quiet_ms = parse_long(a, v, 1, 60000);
    } else if (!strcmp(a, "--start")) {
      if (!strcmp(v, "now")) o->start_on_go = 0;
      else if (!strcmp(v, "go")) o->start_on_go = 1;
      else die_usage("--start must be now or go, got '%s'", v);
    } else {
      die_usage("unknown option %s", a);
    }
  }
}

static void pin_cpu(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) < 0) {
    if (errno == EINVAL) die_usage("--cpu %d is not an online CPU", cpu);
    die_system("sched_setaffinity");
  }
}

static struct sockaddr_in make_addr(const char* ip, int port, const char* name) {
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  if (!ip || inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
    die_usage("%s must be an IPv4 address, got '%s'", name, ip ? ip : "(none)");
  return sa;
}

// Writes "ppsim: <text>" into the tracefs instance; a marker that cannot be written is not
// fatal (the orchestrator checks the markers it needs in the trace).
static void marker(int fd, const char* fmt, ...) {
  if (fd < 0) return;
  char buf[256];
  int n = snprintf(buf, sizeof buf, "ppsim: ");
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
  va_end(ap);
  if (n > (int)sizeof buf - 1) n = (int)sizeof buf - 1;
  if (write(fd, buf, (size_t)n) < 0) {
    // ignored on purpose, see above
  }
}

static void sleep_until(int64_t deadline_ns) {
  struct timespec ts = {.tv_sec = deadline_ns / 1000000000LL, .tv_nsec = deadline_ns % 1000000000LL};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

// ---- send ------------------------------------------------------------------------------

static int write_all(int fd, const char* buf, size_t len, int64_t deadline) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(fd, buf + off, len - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    off += (size_t)n;
    if (now_ns() > deadline) {
      errno = ETIMEDOUT;
      return -1;
    }
  }
  return 0;
}

static int cmd_send(const struct Options* o) {
  if (!o->proto_set) die_usage("--proto is required");
  if (!o->port) die_usage("--port is required");
  if (o->size <= 0) die_usage("--size is required");
  if (o->count <= 0) die_usage("--count is required");
  if (o->proto == kUdp && o->size > 65507) die_usage("--size must be <= 65507 for UDP, got %ld", o->size);
  struct sockaddr_in dst = make_addr(o->addr, o->port, "--dst");
  pin_cpu(o->cpu);
  int cpu_start = sched_getcpu();

  char* buf = malloc((size_t)o->size);
  if (!buf) die_system("malloc");
  for (long i = 0; i < o->size; i++) buf[i] = (char)('a' + i % 26);

  int fd = socket(AF_INET, (o->proto == kUdp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (fd < 0) die_system("socket");
  int64_t deadline = now_ns() + o->timeout_ms * 1000000LL;
  if (connect(fd, (struct sockaddr*)&dst, sizeof dst) < 0) die_system("connect");

  long sent = 0, errors = 0, enobufs = 0, econnrefused = 0, other_errno = 0;
  long long bytes = 0;
  int timed_out = 0;
  marker(o->marker_fd, "sender start proto=%s size=%ld count=%ld rate=%ld cpu=%d",
         o->proto == kUdp ? "udp" : "tcp", o->size, o->count, o->rate, cpu_start);
  int64_t t0 = now_ns();
  for (long i = 0; i < o->count; i++) {
    if (o->rate > 0) sleep_until(t0 + (int64_t)((double)i * 1e9 / (double)o->rate));
    if (now_ns() > deadline) {
      timed_out = 1;
      break;
    }
    if (o->proto == kUdp) {
      ssize_t n = send(fd, buf, (size_t)o->size, 0);
      if (n < 0) {
        errors++;
        if (errno == ENOBUFS) enobufs++;
        else if (errno == ECONNREFUSED) econnrefused++;
        else other_errno = errno;
        continue;
      }
      bytes += n;
      sent++;
    } else {
      if (write_all(fd, buf, (size_t)o->size, deadline) < 0) {
        if (errno == ETIMEDOUT) timed_out = 1;
        else other_errno = errno;
        errors++;
        break;
      }
      bytes += o->size;
      sent++;
    }
  }
  int64_t t1 = now_ns();
  int cpu_end = sched_getcpu();
  marker(o->marker_fd, "sender done sent=%ld bytes=%lld errors=%ld", sent, bytes, errors);

  long long segs_out = -1, data_segs_out = -1, retrans = -1;
  if (o->proto == kTcp) {
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    shutdown(fd, SHUT_WR);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0) {
      segs_out = ti.tcpi_segs_out;
      data_segs_out = ti.tcpi_data_segs_out;
      retrans = ti.tcpi_total_retrans;
    }
  }
  close(fd);
  printf("{\"role\":\"sender\",\"proto\":\"%s\",\"cpu_requested\":%d,\"cpu_start\":%d,"
         "\"cpu_end\":%d,\"size\":%ld,\"count\":%ld,\"rate_pps\":%ld,\"sent\":%ld,\"bytes\":%lld,"
         "\"errors\":%ld,\"enobufs\":%ld,\"econnrefused\":%ld,\"last_other_errno\":%ld,"
         "\"start_ns\":%lld,\"end_ns\":%lld,\"duration_s\":%.9f,\"timed_out\":%s,"
         "\"tcp_segs_out\":%lld,\"tcp_data_segs_out\":%lld,\"tcp_total_retrans\":%lld}\n",
         o->proto == kUdp ? "udp" : "tcp", o->cpu, cpu_start, cpu_end, o->size, o->count, o->rate,
         sent, bytes, errors, enobufs, econnrefused, other_errno, (long long)t0, (long long)t1,
         (double)(t1 - t0) / 1e9, timed_out ? "true" : "false", segs_out, data_segs_out, retrans);
  free(buf);
  return timed_out ? kExitSystem : kExitOk;
}

// ---- recv ------------------------------------------------------------------------------

struct RecvState {
  long packets;  // datagrams (UDP) or successful reads (TCP)
  long long bytes;
  int64_t first_ns, last_ns, go_ns, stop_ns;
  uint32_t ovfl;  // the socket's drop counter from SO_RXQ_OVFL (UDP)
  int eof;
};

// A SK_MEMINFO value as JSON: null when it was not measured (all bits set).
static const char* json_u32(uint32_t v, char buf[16]) {
  if (v == UINT32_MAX) return "null";
  snprintf(buf, 16, "%u", v);
  return buf;
}

static void meminfo(int fd, uint32_t out[SK_MEMINFO_VARS]) {
  socklen_t len = sizeof(uint32_t) * SK_MEMINFO_VARS;
  memset(out, 0, len);
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, out, &len) < 0) memset(out, 0xff, sizeof(uint32_t) * SK_MEMINFO_VARS);
}

// Reads everything queued without blocking; returns the number of reads that returned data.
static long drain(int fd, enum Proto proto, struct RecvState* st, char* buf, size_t cap) {
  long got = 0;
  for (;;) {
    ssize_t n;
    if (proto == kUdp) {
      char ctrl[CMSG_SPACE(sizeof(uint32_t))];
      struct iovec iov = {.iov_base = buf, .iov_len = cap};
      struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl,
                           .msg_controllen = sizeof ctrl};
      n = recvmsg(fd, &msg, MSG_DONTWAIT);
      if (n >= 0) {
        for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
          if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL)
            memcpy(&st->ovfl, CMSG_DATA(c), sizeof st->ovfl);
      }
    } else {
      n = recv(fd, buf, cap, MSG_DONTWAIT);
      if (n == 0) {
        st->eof = 1;
        return got;
      }
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return got;
      die_system("recv");
    }
    int64_t t = now_ns();
    if (!st->packets) st->first_ns = t;
    st->last_ns = t;
    st->packets++;
    st->bytes += n;
    got++;
  }
}

// Reads the command lines that are ready on stdin. Returns 'g' (go), 's' (stop) or 0; sets
// *eof when stdin is closed, which counts as "stop".
static int read_command(char* line, size_t cap, size_t* used, int* eof) {
  ssize_t n = read(STDIN_FILENO, line + *used, cap - 1 - *used);
  if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
    *eof = 1;
    return 's';
  }
  if (n < 0) return 0;
  *used += (size_t)n;
  line[*used] = 0;
  int cmd = 0;
  char* nl;
  while ((nl = strchr(line, '\n'))) {
    *nl = 0;
    if (!strcmp(line, "go")) cmd = cmd == 's' ? 's' : 'g';
    else if (!strcmp(line, "stop")) cmd = 's';
    else fprintf(stderr, "ppsim_traffic recv: ignoring unknown command '%s'\n", line);
    size_t rest = *used - (size_t)(nl + 1 - line);
    memmove(line, nl + 1, rest + 1);
    *used = rest;
  }
  if (*used >= cap - 1) *used = 0;  // an overlong line is discarded
  return cmd;
}

static int cmd_recv(const struct Options* o) {
  if (!o->proto_set) die_usage("--proto is required");
  if (!o->port) die_usage("--port is required");
  struct sockaddr_in local = make_addr(o->addr, o->port, "--bind");
  pin_cpu(o->cpu);
  int cpu_start = sched_getcpu();

  int lfd = socket(AF_INET, (o->proto == kUdp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (lfd < 0) die_system("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (o->proto == kUdp && setsockopt(lfd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one) < 0)
    die_system("setsockopt SO_RXQ_OVFL");
  int rcvbuf_force = 0;
  if (o->rcvbuf > 0) {
    int v = (int)o->rcvbuf;
    // SO_RCVBUF is capped at net.core.rmem_max; as root, SO_RCVBUFFORCE is not.
    if (setsockopt(lfd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) == 0) rcvbuf_force = 1;
    else if (setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) < 0) die_system("setsockopt SO_RCVBUF");
  }
  if (bind(lfd, (struct sockaddr*)&local, sizeof local) < 0) die_system("bind");
  if (o->proto == kTcp && listen(lfd, 4) < 0) die_system("listen");
  int rcvbuf_eff = 0;
  socklen_t len = sizeof rcvbuf_eff;
  getsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_eff, &len);
  printf("{\"ready\":true,\"rcvbuf_effective\":%d}\n", rcvbuf_eff);
  fflush(stdout);

  int fd = o->proto == kUdp ? lfd : -1;
  int reading = !o->start_on_go, stopping = 0;
  struct RecvState st;
  memset(&st, 0, sizeof st);
  uint32_t mem_go[SK_MEMINFO_VARS], mem_stop[SK_MEMINFO_VARS];
  memset(mem_go, 0xff, sizeof mem_go);
  memset(mem_stop, 0xff, sizeof mem_stop);
  size_t cap = 1 << 16;
  char* buf = malloc(cap);
  if (!buf) die_system("malloc");
  char line[256];
  size_t used = 0;
  int stdin_open = 1, timed_out = 0;
  int64_t deadline = now_ns() + o->timeout_ms * 1000000LL;
  int64_t last_data = 0;
  if (reading) {
    st.go_ns = now_ns();
    marker(o->marker_fd, "reader start");
  }

  for (;;) {
    int64_t t = now_ns();
    if (t > deadline) {
      timed_out = 1;
      break;
    }
    if (stopping && reading) {
      if (st.eof) break;
      int64_t since = t - (last_data > st.stop_ns ? last_data : st.stop_ns);
      if (since > o->quiet_ms * 1000000LL) break;
    }
    struct pollfd p[2];
    int np = 0, sock_slot = -1, in_slot = -1;
    if (stdin_open) {
      p[np] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
      in_slot = np++;
    }
    int want_sock = fd < 0 ? 1 : reading;  // TCP accepts even before "go"
    if (want_sock) {
      p[np] = (struct pollfd){.fd = fd < 0 ? lfd : fd, .events = POLLIN};
      sock_slot = np++;
    }
    int wait_ms = 50;
    if (poll(p, (nfds_t)np, wait_ms) < 0) {
      if (errno == EINTR) continue;
      die_system("poll");
    }
    if (in_slot >= 0 && (p[in_slot].revents & (POLLIN | POLLHUP | POLLERR))) {
      int eof = 0;
      int cmd = read_command(line, sizeof line, &used, &eof);
      if (eof) stdin_open = 0;
      if (cmd && !reading) {
        reading = 1;
        st.go_ns = now_ns();
        if (fd >= 0) meminfo(fd, mem_go);
        marker(o->marker_fd, "reader start");
      }
      if (cmd == 's' && !stopping) {
        stopping = 1;
        st.stop_ns = now_ns();
        if (fd >= 0) meminfo(fd, mem_stop);
      }
    }
    if (sock_slot >= 0 && (p[sock_slot].revents & POLLIN)) {
      if (fd < 0) {
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) die_system("accept");
        continue;
      }
      if (drain(fd, o->proto, &st, buf, cap) > 0) last_data = now_ns();
    } else if (sock_slot >= 0 && fd >= 0 && (p[sock_slot].revents & (POLLHUP | POLLERR))) {
      drain(fd, o->proto, &st, buf, cap);
      st.eof = 1;
    }
  }
  int64_t end = now_ns();
  int cpu_end = sched_getcpu();
  // SO_RXQ_OVFL reports the drop count as of the last datagram read; later drops only show
  // in the socket's own counter.
  uint32_t mem_end[SK_MEMINFO_VARS];
  meminfo(fd >= 0 ? fd : lfd, mem_end);
  if (mem_end[SK_MEMINFO_DROPS] != UINT32_MAX && mem_end[SK_MEMINFO_DROPS] > st.ovfl)
    st.ovfl = mem_end[SK_MEMINFO_DROPS];
  long long segs_in = -1, data_segs_in = -1;
  if (o->proto == kTcp && fd >= 0) {
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0) {
      segs_in = ti.tcpi_segs_in;
      data_segs_in = ti.tcpi_data_segs_in;
    }
  }
  marker(o->marker_fd, "reader done received=%ld bytes=%lld drops=%u", st.packets, st.bytes, st.ovfl);
  char b1[16], b2[16], b3[16];
  if (fd >= 0 && fd != lfd) close(fd);
  close(lfd);
  printf("{\"role\":\"receiver\",\"proto\":\"%s\",\"cpu_requested\":%d,\"cpu_start\":%d,"
         "\"cpu_end\":%d,\"received\":%ld,\"bytes\":%lld,\"first_ns\":%lld,\"last_ns\":%lld,"
         "\"go_ns\":%lld,\"stop_ns\":%lld,\"end_ns\":%lld,\"socket_drops\":%u,"
         "\"rcvbuf_requested\":%ld,\"rcvbuf_force\":%s,\"rcvbuf_effective\":%d,"
         "\"rmem_alloc_at_go\":%s,\"rmem_alloc_at_stop\":%s,\"drops_at_go\":%s,"
         "\"eof\":%s,\"timed_out\":%s,\"tcp_segs_in\":%lld,\"tcp_data_segs_in\":%lld}\n",
         o->proto == kUdp ? "udp" : "tcp", o->cpu, cpu_start, cpu_end, st.packets, st.bytes,
         (long long)st.first_ns, (long long)st.last_ns, (long long)st.go_ns,
         (long long)st.stop_ns, (long long)end, st.ovfl, o->rcvbuf,
         rcvbuf_force ? "true" : "false", rcvbuf_eff, json_u32(mem_go[SK_MEMINFO_RMEM_ALLOC], b1),
         json_u32(mem_stop[SK_MEMINFO_RMEM_ALLOC], b2), json_u32(mem_go[SK_MEMINFO_DROPS], b3),
         st.eof ? "true" : "false", timed_out ? "true" : "false", segs_in, data_segs_in);
  free(buf);
  return timed_out ? kExitSystem : kExitOk;
}

// ---- kick ------------------------------------------------------------------------------

static int cmd_kick(const struct Options* o) {
  if (o->cpu < 0) die_usage("--cpu is required");
  long count = o->count > 0 ? o->count : 4;
  pin_cpu(o->cpu);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die_system("socket");
  struct sockaddr_in lo = make_addr("127.0.0.1", 1, "loopback");
  lo.sin_port = 0;
  if (bind(fd, (struct sockaddr*)&lo, sizeof lo) < 0) die_system("bind 127.0.0.1 (is lo up?)");
  socklen_t len = sizeof lo;
  getsockname(fd, (struct sockaddr*)&lo, &len);
  if (connect(fd, (struct sockaddr*)&lo, sizeof lo) < 0) die_system("connect");
  marker(o->marker_fd, "flush cpu=%d", sched_getcpu());
  long sent = 0, got = 0;
  char c = 'k';
  for (long i = 0; i < count; i++)
    if (send(fd, &c, 1, 0) == 1) sent++;
  int64_t deadline = now_ns() + 1000000000LL;
  while (got < sent && now_ns() < deadline) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 100) > 0 && recv(fd, &c, 1, MSG_DONTWAIT) == 1) got++;
  }
  close(fd);
  printf("{\"role\":\"kick\",\"cpu_requested\":%d,\"cpu\":%d,\"sent\":%ld,\"received\":%ld}\n",
         o->cpu, sched_getcpu(), sent, got);
  return got == sent ? kExitOk : kExitSystem;
}

// ---- faults ----------------------------------------------------------------------------

static int cmd_faults(const struct Options* o) {
  if (o->cpu < 0) die_usage("--cpu is required");
  const long pages = o->count > 0 ? o->count : 4096;
  const long page = sysconf(_SC_PAGESIZE);
  const size_t len = (size_t)pages * (size_t)page;
  pin_cpu(o->cpu);
  double us[3];
  for (int r = 0; r < 3; r++) {
    char* m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) die_system("mmap");
    madvise(m, len, MADV_NOHUGEPAGE);  // one fault per base page, as a malloc'd buffer takes them
    const int64_t t0 = now_ns();
    for (size_t i = 0; i < len; i += (size_t)page) ((volatile char*)m)[i] = 1;
    const int64_t t1 = now_ns();
    munmap(m, len);
    us[r] = (double)(t1 - t0) / 1e3 / (double)pages;
  }
  printf("{\"role\":\"faults\",\"cpu\":%d,\"pages\":%ld,\"page_bytes\":%ld,"
         "\"us_per_page\":[%.3f,%.3f,%.3f]}\n",
         sched_getcpu(), pages, page, us[0], us[1], us[2]);
  return kExitOk;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: ppsim_traffic send|recv|kick|faults [options] (see the header of traffic.c)\n");
    return kExitUsage;
  }
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct Options o;
  g_role = argv[1];
  if (strcmp(argv[1], "send") && strcmp(argv[1], "recv") && strcmp(argv[1], "kick") && strcmp(argv[1], "faults")) {
    g_role = "ppsim_traffic";
    die_usage("unknown role '%s': expected send, recv, kick or faults", argv[1]);
  }
  parse_options(argc, argv, &o);
  // Distinct task names, so the trace's TASK column tells the roles apart.
  char comm[16];
  snprintf(comm, sizeof comm, "ppsim_%s", argv[1]);
  prctl(PR_SET_NAME, comm, 0, 0, 0);
  if (!strcmp(argv[1], "send")) return cmd_send(&o);
  if (!strcmp(argv[1], "recv")) return cmd_recv(&o);
  if (!strcmp(argv[1], "faults")) return cmd_faults(&o);
  return cmd_kick(&o);
}
