// ppsim_xdp_attach: load a two-instruction XDP program (r0 = action; exit) with the raw bpf()
// syscall and attach it to a network device with an RTM_SETLINK/IFLA_XDP netlink message, or
// detach whatever program the device has. No libbpf, no clang: `ppsim capture` runs this inside
// the receiving namespace (`ip netns exec`).
//
//   ppsim_xdp_attach --dev IFNAME --action pass|drop [--mode native|generic]
//   ppsim_xdp_attach --dev IFNAME --detach [--mode native|generic]
//
// On success prints one JSON line: {"dev":..,"ifindex":..,"action":..,"mode":..,"prog_id":..}
// and exits 0. Bad arguments exit 2, kernel refusals exit 3, each with a one-line message.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif

enum { kExitOk = 0, kExitUsage = 2, kExitKernel = 3 };

static void usage_error(const char* msg, const char* arg) {
  fprintf(stderr, "ppsim_xdp_attach: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
  fprintf(stderr,
          "usage: ppsim_xdp_attach --dev IFNAME (--action pass|drop | --detach) "
          "[--mode native|generic]\n");
  exit(kExitUsage);
}

static long sys_bpf(int cmd, union bpf_attr* attr) {
  return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

// Loads `r0 = action; exit` as BPF_PROG_TYPE_XDP; returns the program fd or exits.
static int load_program(uint32_t action, const char* name) {
  struct bpf_insn insns[2];
  memset(insns, 0, sizeof insns);
  insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;  // r0 = imm
  insns[0].dst_reg = BPF_REG_0;
  insns[0].imm = (int32_t)action;
  insns[1].code = BPF_JMP | BPF_EXIT;

  static char log[4096];
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_XDP;
  attr.insns = (uint64_t)(uintptr_t)insns;
  attr.insn_cnt = 2;
  attr.license = (uint64_t)(uintptr_t) "GPL";
  attr.log_buf = (uint64_t)(uintptr_t)log;
  attr.log_size = sizeof log;
  attr.log_level = 1;
  strncpy(attr.prog_name, name, sizeof(attr.prog_name) - 1);
  int fd = (int)sys_bpf(BPF_PROG_LOAD, &attr);
  if (fd < 0) {
    int e = errno;
    // Retry without the verifier log: some kernels reject a log for trivial programs.
    attr.log_buf = 0;
    attr.log_size = 0;
    attr.log_level = 0;
    fd = (int)sys_bpf(BPF_PROG_LOAD, &attr);
    if (fd < 0) {
      fprintf(stderr, "ppsim_xdp_attach: BPF_PROG_LOAD failed: %s%s%s\n", strerror(e),
              log[0] ? "; verifier: " : "", log);
      exit(kExitKernel);
    }
  }
  return fd;
}

static uint32_t program_id(int fd) {
  struct bpf_prog_info info;
  memset(&info, 0, sizeof info);
  union bpf_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.info.bpf_fd = (uint32_t)fd;
  attr.info.info_len = sizeof info;
  attr.info.info = (uint64_t)(uintptr_t)&info;
  if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) < 0) return 0;
  return info.id;
}

// Appends an attribute to the message in buf; returns a pointer to it (for nesting).
static struct rtattr* add_attr(struct nlmsghdr* n, size_t cap, unsigned short type, const void* data,
                               size_t len) {
  size_t rta_len = RTA_LENGTH(len);
  if (NLMSG_ALIGN(n->nlmsg_len) + RTA_ALIGN(rta_len) > cap) {
    fprintf(stderr, "ppsim_xdp_attach: netlink message too long\n");
    exit(kExitKernel);
  }
  struct rtattr* rta = (struct rtattr*)((char*)n + NLMSG_ALIGN(n->nlmsg_len));
  rta->rta_type = type;
  rta->rta_len = (unsigned short)rta_len;
  if (len) memcpy(RTA_DATA(rta), data, len);
  n->nlmsg_len = NLMSG_ALIGN(n->nlmsg_len) + RTA_ALIGN(rta_len);
  return rta;
}

// Extracts the extended-ack message string, if the kernel sent one.
static const char* ext_ack_message(struct nlmsghdr* h) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return NULL;
  struct nlmsgerr* err = NLMSG_DATA(h);
  size_t off = sizeof(*err);
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += err->msg.nlmsg_len - sizeof(struct nlmsghdr);
  if (NLMSG_HDRLEN + off > h->nlmsg_len) return NULL;
  struct rtattr* rta = (struct rtattr*)((char*)err + off);
  int rem = (int)(h->nlmsg_len - NLMSG_HDRLEN - off);
  for (; RTA_OK(rta, rem); rta = RTA_NEXT(rta, rem)) {
    if (rta->rta_type == NLMSGERR_ATTR_MSG) return (const char*)RTA_DATA(rta);
  }
  return NULL;
}

// Sends RTM_SETLINK with IFLA_XDP {FD, FLAGS}; fd -1 detaches. Exits on failure.
static void set_link_xdp(int ifindex, int prog_fd, uint32_t flags, const char* dev) {
  int sk = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (sk < 0) {
    fprintf(stderr, "ppsim_xdp_attach: netlink socket: %s\n", strerror(errno));
    exit(kExitKernel);
  }
  int one = 1;
  setsockopt(sk, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);

  union {
    struct nlmsghdr h;
    char buf[512];
  } req;
  memset(&req, 0, sizeof req);
  req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  req.h.nlmsg_type = RTM_SETLINK;
  req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  req.h.nlmsg_seq = 1;
  struct ifinfomsg* ifi = NLMSG_DATA(&req.h);
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;

  struct rtattr* nest = add_attr(&req.h, sizeof req.buf, IFLA_XDP | NLA_F_NESTED, NULL, 0);
  int32_t fd32 = prog_fd;
  add_attr(&req.h, sizeof req.buf, IFLA_XDP_FD, &fd32, sizeof fd32);
  add_attr(&req.h, sizeof req.buf, IFLA_XDP_FLAGS, &flags, sizeof flags);
  nest->rta_len = (unsigned short)((char*)&req.h + req.h.nlmsg_len - (char*)nest);

  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  if (sendto(sk, &req, req.h.nlmsg_len, 0, (struct sockaddr*)&kernel, sizeof kernel) < 0) {
    fprintf(stderr, "ppsim_xdp_attach: netlink send: %s\n", strerror(errno));
    exit(kExitKernel);
  }
  char reply[8192];
  ssize_t n = recv(sk, reply, sizeof reply, 0);
  if (n < 0) {
    fprintf(stderr, "ppsim_xdp_attach: netlink recv: %s\n", strerror(errno));
    exit(kExitKernel);
  }
  for (struct nlmsghdr* h = (struct nlmsghdr*)reply; NLMSG_OK(h, (unsigned)n);
       h = NLMSG_NEXT(h, n)) {
    if (h->nlmsg_type != NLMSG_ERROR) continue;
    struct nlmsgerr* err = NLMSG_DATA(h);
    if (err->error == 0) {
      close(sk);
      return;
    }
    const char* msg = ext_ack_message(h);
    if (msg)
      fprintf(stderr, "ppsim_xdp_attach: RTM_SETLINK IFLA_XDP on %s failed: %s (%s)\n", dev,
              strerror(-err->error), msg);
    else
      fprintf(stderr, "ppsim_xdp_attach: RTM_SETLINK IFLA_XDP on %s failed: %s\n", dev,
              strerror(-err->error));
    exit(kExitKernel);
  }
  fprintf(stderr, "ppsim_xdp_attach: no netlink acknowledgement for %s\n", dev);
  exit(kExitKernel);
}

int main(int argc, char** argv) {
  const char* dev = NULL;
  const char* action_name = NULL;
  const char* mode = "native";
  int detach = 0;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (!strcmp(a, "--detach")) {
      detach = 1;
    } else if (!strcmp(a, "--dev") || !strcmp(a, "--action") || !strcmp(a, "--mode")) {
      if (i + 1 >= argc) usage_error("missing value after", a);
      const char* v = argv[++i];
      if (!strcmp(a, "--dev")) dev = v;
      else if (!strcmp(a, "--action")) action_name = v;
      else mode = v;
    } else {
      usage_error("unknown argument", a);
    }
  }
  if (!dev) usage_error("--dev is required", NULL);
  if (detach == !!action_name) usage_error("give exactly one of --action or --detach", NULL);

  uint32_t action = XDP_PASS;
  if (action_name) {
    if (!strcmp(action_name, "pass")) action = XDP_PASS;
    else if (!strcmp(action_name, "drop")) action = XDP_DROP;
    else usage_error("--action must be pass or drop, got", action_name);
  }
  uint32_t flags;
  if (!strcmp(mode, "native")) flags = XDP_FLAGS_DRV_MODE;
  else if (!strcmp(mode, "generic")) flags = XDP_FLAGS_SKB_MODE;
  else usage_error("--mode must be native or generic, got", mode);

  unsigned ifindex = if_nametoindex(dev);
  if (!ifindex) {
    fprintf(stderr, "ppsim_xdp_attach: --dev %s: no such device in this namespace\n", dev);
    return kExitUsage;
  }

  if (detach) {
    set_link_xdp((int)ifindex, -1, flags, dev);
    printf("{\"dev\":\"%s\",\"ifindex\":%u,\"action\":null,\"mode\":\"%s\",\"prog_id\":0}\n", dev,
           ifindex, mode);
    return kExitOk;
  }
  int fd = load_program(action, action == XDP_PASS ? "ppsim_xdp_pass" : "ppsim_xdp_drop");
  set_link_xdp((int)ifindex, fd, flags, dev);
  uint32_t id = program_id(fd);
  close(fd);  // the device now holds the program
  printf("{\"dev\":\"%s\",\"ifindex\":%u,\"action\":\"%s\",\"mode\":\"%s\",\"prog_id\":%u}\n", dev,
         ifindex, action_name, mode, id);
  return kExitOk;
}
