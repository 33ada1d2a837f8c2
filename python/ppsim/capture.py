"""Capture real page_pool traces from this machine's kernel (`ppsim capture`).

One capture builds a private world, runs one bounded workload, records it and tears the world
down again, whatever happens (errors, Ctrl-C, SIGTERM):

  setup    two network namespaces (sender, receiver) joined by a veth pair; private addresses
           from 198.18.0.0/15 (RFC 2544 benchmarking), IPv6 disabled, permanent neighbour
           entries, loopback up; a private tracefs instance (its own mount of tracefs when none
           is mounted) with page_pool:*, napi:napi_poll (filtered to the receiving veth) and
           trace_clock=mono, so trace timestamps are CLOCK_MONOTONIC like the helpers' times.
  xdp      a two-instruction XDP program (XDP_PASS or XDP_DROP) attached natively to the
           receiving veth: this enables veth NAPI, which creates one page_pool per RX queue.
  traffic  receiver (ppsim_traffic recv) bound and pinned; sender pinned, bounded by count and
           time, optionally paced; the reader may start late (--reader-delay-ms) or hold its
           queue across the deletion (--reader-hold-ms).
  delete   counters are read, then `ip link del` destroys the veth and its pools: the first
           page_pool_release (cnt=1) fires in that `ip` task.
  flush    every online CPU sends a few loopback datagrams so NET_RX softirq runs there once
           more and frees skbs parked on its defer list; then we wait for the pool's deferred
           destroy retries (a kworker, about 1 s apart) until inflight reaches 0.
  record   trace.txt (the instance's `trace` file) and meta.json in one directory per capture.

Phase markers (`ppsim: ...` trace_marker lines) are written by this module and by the helpers
themselves. The helpers are the C programs in tools/capture, built by CMake into
$PPSIM_BUILD/tools/capture.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import gzip
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ppsim import schedtrace
from ppsim import trace as pptrace
from ppsim._native import REPO, build_dir
from ppsim.errors import EnvironmentProblem, InputError
from ppsim.workload import workload_diff

SENDER_ADDR, RECEIVER_ADDR = "198.18.0.1", "198.18.0.2"
SENDER_MAC, RECEIVER_MAC = "02:70:70:00:00:01", "02:70:70:00:00:02"
PORT = 9000
PAGE_SIZE = 4096
SMP_CACHE_BYTES = 64
SKB_SHARED_INFO_BYTES = 320   # sizeof(struct skb_shared_info) on x86_64, 6.x
XDP_PACKET_HEADROOM = 256     # include/uapi/linux/bpf.h
VETH_RING_SIZE = 256          # drivers/net/veth.c: xdp_ring entries and page_pool pool_size
SKB_STRUCT_BYTES = 256        # SKB_DATA_ALIGN(sizeof(struct sk_buff)) on x86_64, 6.x
# veth_xdp_set: a program without frags support needs the frame in one page after the
# headroom and shared info: 4096 - 256 - 320 - ETH_HLEN.
VETH_MAX_XDP_MTU = PAGE_SIZE - 256 - 320 - 14
ETH_HLEN, IPV4_HLEN, UDP_HLEN = 14, 20, 8
TCP_TS_HLEN = 32  # a TCP header with the timestamps option
NS_PREFIX = "ppsim-cap-"
INSTANCE_PREFIX = "ppsim-capture-"
WORKDIR_PREFIX = "ppsim-capture-"   # + pid + "-" + random: tempfile's private tracefs mount point
LOCK_PATH = "/run/ppsim-capture.lock"
SYSCTLS = [
    "net.core.skb_defer_max", "net.core.rmem_default", "net.core.rmem_max",
    "net.core.wmem_default", "net.core.wmem_max", "net.core.netdev_budget",
    "net.core.netdev_budget_usecs", "net.core.dev_weight", "net.core.netdev_max_backlog",
    "net.core.gro_normal_batch", "net.ipv4.udp_mem", "net.ipv4.udp_rmem_min",
    "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.tcp_moderate_rcvbuf",
]
KCONFIG_KEYS = ["CONFIG_HZ", "CONFIG_PREEMPT_NONE", "CONFIG_PREEMPT_VOLUNTARY", "CONFIG_PREEMPT",
                "CONFIG_PREEMPT_DYNAMIC", "CONFIG_PREEMPT_RT", "CONFIG_PAGE_POOL",
                "CONFIG_PAGE_POOL_STATS", "CONFIG_NR_CPUS", "CONFIG_VETH", "CONFIG_NUMA"]


# ---- parameters ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    name: str
    unit: str
    doc: str


# Every capture parameter with its unit and a one-line doc; the CLI and meta.json use these.
PARAMS: list[Param] = [
    Param("proto", "-", "transport: udp (one datagram per packet) or tcp (a byte stream)"),
    Param("packets", "packets", "UDP datagrams to send, or TCP writes of --size bytes"),
    Param("bytes", "bytes", "payload bytes to send instead of --packets (rounded up to whole --size sends)"),
    Param("size", "bytes", "UDP payload per datagram, or bytes per TCP write"),
    Param("sender_cpu", "cpu", "CPU the sender is pinned to (UDP NAPI runs here, inside sendmsg)"),
    Param("receiver_cpu", "cpu", "CPU the receiving reader is pinned to"),
    Param("rate", "packets/s", "sender pacing; 0 sends as fast as possible"),
    Param("reader_delay_ms", "ms", "the reader starts reading this long after the sender starts"),
    Param("reader_hold_ms", "ms", "if > 0, the reader reads nothing until the veth has been deleted and this long has passed (pages stay inflight over destroy)"),
    Param("rcvbuf", "bytes", "SO_RCVBUF(FORCE) of the receiving socket; 0 keeps the kernel default"),
    Param("xdp", "-", "action of the XDP program on the receiving veth: pass or drop"),
    Param("xdp_mode", "-", "XDP attach mode: native (veth NAPI + page_pool) or generic (no page_pool use)"),
    Param("mtu", "bytes", "MTU of both veth ends"),
    Param("repeat", "captures", "captures with the same parameters (directories NAME-r1..rK)"),
    Param("napi_lines", "-", "napi_poll lines kept in trace.txt: all, or context (see docs/capture.md)"),
    Param("sched", "-", "scheduler events: off; summary (recorded, summarised in meta.json, switch/wakeup lines kept, "
                        "softirq lines dropped from trace.txt); or all (every line kept)"),
    Param("max_load", "load", "wait until the 1-minute load average is below this before each capture (0: no wait)"),
    Param("load_wait_s", "s", "give up waiting for --max-load after this long (the capture still runs; meta.json says so)"),
    Param("destroy_timeout_s", "s", "how long to wait after the flush for the pool's inflight to reach 0"),
    Param("timeout_s", "s", "bound on each traffic phase (sender, receiver)"),
    Param("buffer_kb", "KiB/cpu", "ring buffer size of the private tracefs instance, per CPU"),
]


@dataclass
class CaptureParams:
    proto: str = "udp"
    packets: int | None = None
    bytes: int | None = None
    size: int = 1400
    sender_cpu: int = 0
    receiver_cpu: int = 1
    rate: int = 0
    reader_delay_ms: int = 0
    reader_hold_ms: int = 0
    rcvbuf: int = 0
    xdp: str = "pass"
    xdp_mode: str = "native"
    mtu: int = 1500
    repeat: int = 1
    napi_lines: str = "all"
    sched: str = "summary"
    max_load: float = 0.0
    load_wait_s: float = 300.0
    destroy_timeout_s: float = 10.0
    timeout_s: float = 60.0
    buffer_kb: int = 8192
    out: str = "captures"
    name: str | None = None
    force: bool = False

    def count(self) -> int:
        """Datagrams (UDP) or writes (TCP) the sender makes."""
        if self.packets is not None:
            return self.packets
        return max(1, math.ceil((self.bytes or 0) / self.size))

    def default_name(self) -> str:
        parts = [self.proto, str(self.size),
                 "samecpu" if self.sender_cpu == self.receiver_cpu else "xcpu"]
        if self.rate:
            parts.append(f"rate{self.rate}")
        if self.reader_delay_ms:
            parts.append(f"delay{self.reader_delay_ms}")
        if self.rcvbuf:
            parts.append(f"rcvbuf{self.rcvbuf}")
        if self.xdp != "pass":
            parts.append(f"xdp{self.xdp}")
        if self.xdp_mode != "native":
            parts.append(self.xdp_mode)
        if self.reader_hold_ms:
            parts.append(f"hold{self.reader_hold_ms}")
        if self.mtu != 1500:
            parts.append(f"mtu{self.mtu}")
        return "-".join(parts)

    def validate(self, online_cpus: set[int] | None = None) -> None:
        """Raises InputError naming the first bad parameter and what was expected."""
        def need(ok: bool, name: str, expected: str, got) -> None:
            if not ok:
                raise InputError(f"--{name.replace('_', '-')}: expected {expected}, got {got!r}")

        def is_int(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        need(self.proto in ("udp", "tcp"), "proto", "udp or tcp", self.proto)
        need((self.packets is None) != (self.bytes is None), "packets",
             "exactly one of --packets or --bytes", f"packets={self.packets}, bytes={self.bytes}")
        if self.packets is not None:
            need(is_int(self.packets) and 1 <= self.packets <= 1_000_000, "packets",
                 "an integer in [1, 1000000]", self.packets)
        if self.bytes is not None:
            need(is_int(self.bytes) and 1 <= self.bytes <= 1 << 30, "bytes",
                 "an integer in [1, 1073741824]", self.bytes)
        need(is_int(self.mtu) and 68 <= self.mtu <= VETH_MAX_XDP_MTU, "mtu",
             f"an integer in [68, {VETH_MAX_XDP_MTU}] (veth refuses a non-frags XDP program "
             "above that)", self.mtu)
        max_udp = self.mtu - IPV4_HLEN - UDP_HLEN
        if self.proto == "udp":
            need(is_int(self.size) and 1 <= self.size <= max_udp, "size",
                 f"UDP payload bytes in [1, {max_udp}] (MTU {self.mtu} minus IPv4 and UDP "
                 "headers; larger datagrams would be IP-fragmented)", self.size)
        else:
            need(is_int(self.size) and 1 <= self.size <= 1 << 20, "size",
                 "bytes per TCP write in [1, 1048576]", self.size)
        need(self.count() <= 1_000_000, "bytes", "at most 1000000 sends (--bytes / --size)",
             self.bytes)
        for name in ("sender_cpu", "receiver_cpu"):
            v = getattr(self, name)
            need(is_int(v) and v >= 0, name, "a CPU number >= 0", v)
            if online_cpus is not None:
                need(v in online_cpus, name, f"an online CPU ({_cpu_list(online_cpus)})", v)
        need(is_int(self.rate) and 0 <= self.rate <= 10_000_000, "rate",
             "packets per second in [0, 10000000] (0 = as fast as possible)", self.rate)
        need(is_int(self.reader_delay_ms) and 0 <= self.reader_delay_ms <= 60_000,
             "reader_delay_ms", "milliseconds in [0, 60000]", self.reader_delay_ms)
        need(is_int(self.reader_hold_ms) and 0 <= self.reader_hold_ms <= 60_000,
             "reader_hold_ms", "milliseconds in [0, 60000]", self.reader_hold_ms)
        need(not (self.reader_hold_ms and self.reader_delay_ms), "reader_hold_ms",
             "not both --reader-hold-ms and --reader-delay-ms (a held reader starts after the "
             "delete)", f"hold={self.reader_hold_ms}, delay={self.reader_delay_ms}")
        need(is_int(self.rcvbuf) and (self.rcvbuf == 0 or 1024 <= self.rcvbuf <= 1 << 30),
             "rcvbuf", "0 (kernel default) or bytes in [1024, 1073741824]", self.rcvbuf)
        need(self.xdp in ("pass", "drop"), "xdp", "pass or drop", self.xdp)
        need(self.xdp_mode in ("native", "generic"), "xdp_mode", "native or generic", self.xdp_mode)
        need(is_int(self.repeat) and 1 <= self.repeat <= 50, "repeat", "an integer in [1, 50]",
             self.repeat)
        need(self.napi_lines in ("all", "context"), "napi_lines", "all or context", self.napi_lines)
        need(self.sched in ("off", "summary", "all"), "sched", "off, summary or all", self.sched)
        need(isinstance(self.max_load, (int, float)) and 0 <= self.max_load <= 64, "max_load",
             "a load average in [0, 64] (0 = do not wait)", self.max_load)
        need(isinstance(self.load_wait_s, (int, float)) and 0 <= self.load_wait_s <= 3600,
             "load_wait_s", "seconds in [0, 3600]", self.load_wait_s)
        need(isinstance(self.destroy_timeout_s, (int, float)) and 1 <= self.destroy_timeout_s <= 300,
             "destroy_timeout_s", "seconds in [1, 300]", self.destroy_timeout_s)
        need(isinstance(self.timeout_s, (int, float)) and 1 <= self.timeout_s <= 600,
             "timeout_s", "seconds in [1, 600]", self.timeout_s)
        need(is_int(self.buffer_kb) and 64 <= self.buffer_kb <= 262_144, "buffer_kb",
             "KiB per CPU in [64, 262144]", self.buffer_kb)
        need(isinstance(self.out, str) and self.out != "", "out", "a directory path", self.out)
        if self.name is not None:
            need(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}", self.name) is not None, "name",
                 "letters, digits, '.', '_' or '-' (at most 81 characters)", self.name)

    def to_meta(self) -> dict:
        d = asdict(self)
        d["count"] = self.count()
        return d


# ---- kernel facts the replay needs --------------------------------------------------------

def skb_data_align(n: int) -> int:
    """SKB_DATA_ALIGN: round up to SMP_CACHE_BYTES (64 on x86_64)."""
    return (n + SMP_CACHE_BYTES - 1) // SMP_CACHE_BYTES * SMP_CACHE_BYTES


def veth_frag_layout(frame_len: int) -> dict:
    """How veth's skb_pp_cow_data lays a linear frame of `frame_len` bytes (Ethernet header
    included) into pool pages: the copy gets truesize = SKB_HEAD_ALIGN(len) +
    XDP_PACKET_HEADROOM (net/core/skbuff.c: skb_pp_cow_data), and page_pool_alloc_netmem gives
    a frag of a shared page when 2 * truesize <= PAGE_SIZE, else a whole page
    (include/net/page_pool/helpers.h). Frames stay linear: with a non-frags XDP program veth
    caps the MTU at MAX_XDP_MTU (see VETH_MAX_XDP_MTU), so the head always holds the frame."""
    truesize = skb_data_align(frame_len) + skb_data_align(SKB_SHARED_INFO_BYTES) + XDP_PACKET_HEADROOM
    frag = 2 * truesize <= PAGE_SIZE
    per_page = PAGE_SIZE // truesize if frag else 1
    # The socket is charged skb->truesize: napi_build_skb takes the frag's truesize minus the
    # skb_shared_info, SKB_TRUESIZE adds the aligned sk_buff (256) and the shared info back.
    # The last frag of a page absorbs the page's tail, so per page the charge sums to 4096.
    charge = PAGE_SIZE / per_page + SKB_STRUCT_BYTES
    return {"frame_len": frame_len, "head_truesize": truesize if frag else PAGE_SIZE,
            "head_is_frag": frag, "heads_per_page": per_page,
            "rmem_charge_per_skb_avg": round(charge, 2)}


# ---- small system helpers -----------------------------------------------------------------

def _cpu_list(cpus: set[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def online_cpus() -> set[int]:
    text = Path("/sys/devices/system/cpu/online").read_text().strip()
    cpus: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            cpus.update(range(int(a), int(b) + 1))
        elif part:
            cpus.add(int(part))
    return cpus


def loadavg() -> dict:
    f = Path("/proc/loadavg").read_text().split()
    running, total = f[3].split("/")
    return {"1min": float(f[0]), "5min": float(f[1]), "15min": float(f[2]),
            "runnable": int(running), "tasks": int(total)}


def tool_path(name: str) -> Path:
    return build_dir() / "tools" / "capture" / name


def _run(cmd: list[str], what: str, timeout: float = 30.0, check: bool = True) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise EnvironmentProblem(f"{what}: {cmd[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"{what}: `{' '.join(cmd)}` did not finish in {timeout:.0f} s") from None
    if check and r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise EnvironmentProblem(f"{what} failed: `{' '.join(cmd)}`: "
                                 f"{msg[-1] if msg else 'exit ' + str(r.returncode)}")
    return r.stdout


def _try(cmd: list[str], timeout: float = 30.0) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def _ppsim_version() -> dict:
    version = None
    try:
        m = re.search(r"project\(ppsim\s+VERSION\s+([\w.]+)", (REPO / "CMakeLists.txt").read_text())
        version = m.group(1) if m else None
    except OSError:
        pass
    commit = _try(["git", "-C", str(REPO), "rev-parse", "HEAD"])
    return {"version": version, "git_commit": commit.strip() if commit else None}


def _kconfig() -> dict:
    try:
        text = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
    except OSError:
        return {}
    out = {}
    for key in KCONFIG_KEYS:
        m = re.search(rf"^{key}=(.*)$", text, re.M)
        out[key] = m.group(1) if m else ("n" if f"# {key} is not set" in text else None)
    return out


def _virtualized() -> bool | None:
    """The CPU's `hypervisor` flag: the capture runs in a virtual machine."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return "hypervisor" in line.split(":", 1)[1].split()
    except OSError:
        pass
    return None


def _page_reporting() -> dict | None:
    """Free page reporting's settings (a guest returning free memory to its host), if the kernel
    has it: memory it reported costs the host a fault when it is touched again."""
    d = Path("/sys/module/page_reporting/parameters")
    try:
        files = sorted(d.iterdir()) if d.is_dir() else None
    except OSError:
        return None
    if files is None:
        return None
    out = {}
    for f in files:
        try:
            out[f.name] = f.read_text().strip()
        except OSError:
            continue
    return out


def _page_fault_cost(cpu: int) -> dict:
    """What a user page fault costs here (`ppsim_traffic faults`): the capture's reader takes one
    per page of its buffer on its first reads (stack.reader_first_touch_ns in the model). A
    measurement that fails is recorded as {"error": ...}: the capture itself is still good."""
    try:
        out = _run([str(tool_path("ppsim_traffic")), "faults", "--cpu", str(cpu)], "measure page faults")
        r = json.loads(out.strip().splitlines()[-1])
        runs = [float(x) for x in r["us_per_page"]]
        return {"cpu": int(r["cpu"]), "pages": int(r["pages"]), "us_per_page": runs,
                "median_us": sorted(runs)[len(runs) // 2]}
    except (EnvironmentProblem, OSError, ValueError, KeyError, IndexError, TypeError) as e:
        return {"error": str(e) or type(e).__name__}


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def parse_snmp(text: str) -> dict:
    """/proc/net/snmp or /proc/net/netstat: pairs of `Proto: names` / `Proto: values` lines."""
    out: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        proto, _, keys = names.partition(":")
        _, _, vals = values.partition(":")
        try:
            out[proto] = dict(zip(keys.split(), (int(v) for v in vals.split())))
        except ValueError:
            continue
    return out


def snmp_delta(before: dict, after: dict) -> dict:
    out = {}
    for proto, vals in after.items():
        d = {k: v - before.get(proto, {}).get(k, 0) for k, v in vals.items()}
        d = {k: v for k, v in d.items() if v}
        if d:
            out[proto] = d
    return out


def parse_ethtool_features(text: str) -> dict:
    out = {}
    for line in text.splitlines()[1:]:
        m = re.match(r"^\s*([\w-]+):\s+(on|off)(\s+\[fixed\])?", line)
        if m:
            out[m.group(1)] = m.group(2) + (" [fixed]" if m.group(3) else "")
    return out


def parse_ethtool_stats(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\s*([\w\[\]-]+):\s+(-?\d+)\s*$", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


# ---- cleanup stack and signals ------------------------------------------------------------

class _Cleanup:
    """Undo actions run in reverse order; each one's failure is recorded, not raised, so that
    one failed step does not leave the later ones undone."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], None]]] = []
        self.failures: list[str] = []

    def push(self, what: str, fn: Callable[[], None]) -> None:
        self._steps.append((what, fn))

    def run(self) -> None:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup short
        try:
            while self._steps:
                what, fn = self._steps.pop()
                try:
                    fn()
                except Exception as e:  # noqa: BLE001 - recorded and reported below
                    self.failures.append(f"{what}: {e}")
        finally:
            signal.signal(signal.SIGINT, old)


class _Terminated(KeyboardInterrupt):
    pass


@contextlib.contextmanager
def _signals_raise():
    """SIGTERM and SIGHUP interrupt a capture like Ctrl-C, so its cleanup runs."""
    def handler(signum, frame):
        raise _Terminated(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def _capture_lock(wait_s: float = 60.0):
    """One capture at a time on this machine (they share tracefs and CPUs); waits up to
    `wait_s` for another capture (a few seconds each) to finish."""
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    other = os.pread(fd, 32, 0).decode(errors="replace").strip()
                    raise EnvironmentProblem(f"another `ppsim capture` is running (pid "
                                             f"{other or '?'}, lock {LOCK_PATH})") from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---- tracefs --------------------------------------------------------------------------------

def _tracefs_mounts() -> list[Path]:
    out = []
    for line in Path("/proc/mounts").read_text().splitlines():
        f = line.split()
        if len(f) >= 3 and f[2] == "tracefs":
            out.append(Path(f[1].replace("\\040", " ")))
    return out


class TraceInstance:
    """A private tracefs instance: created, configured, read and removed by us."""

    def __init__(self, cleanup: _Cleanup, workdir: Path, name: str) -> None:
        self.mount: Path | None = None
        self.mounted_by_us = False
        mp = workdir / "tracefs"
        mp.mkdir()
        # A mount of our own, so the tool never touches (or depends on) /sys/kernel/tracing.
        r = subprocess.run(["mount", "-t", "tracefs", "nodev", str(mp)], capture_output=True, text=True)
        if r.returncode == 0:
            self.mount, self.mounted_by_us = mp, True
            cleanup.push("unmount tracefs", lambda: _run(["umount", str(mp)], "umount tracefs"))
        else:
            found = [m for m in _tracefs_mounts() if (m / "instances").is_dir()]
            if not found:
                raise EnvironmentProblem(f"tracefs is not available: mount -t tracefs failed "
                                         f"({r.stderr.strip()}) and none is mounted")
            self.mount = found[0]
        self.path = self.mount / "instances" / name
        try:
            self.path.mkdir()
        except OSError as e:
            raise EnvironmentProblem(f"cannot create tracefs instance {self.path}: {e.strerror}") from None
        cleanup.push("remove tracefs instance", self.remove)
        self.marker_fd = -1

    def write(self, rel: str, value: str) -> None:
        p = self.path / rel
        try:
            p.write_text(value)
        except OSError as e:
            raise EnvironmentProblem(f"cannot write {value.strip()!r} to {p}: {e.strerror}") from None

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def configure(self, napi_dev: str, buffer_kb: int, sched: bool = False) -> list[str]:
        """Enables the events; returns their names (with filters) for meta.json."""
        if not (self.path / "events" / "page_pool").is_dir():
            raise EnvironmentProblem("this kernel has no page_pool trace events "
                                     f"({self.path / 'events' / 'page_pool'} is missing)")
        self.write("tracing_on", "0")
        self.write("trace_clock", "mono")
        self.write("buffer_size_kb", str(buffer_kb))
        self.write("events/napi/napi_poll/filter", f'dev_name == "{napi_dev}"')
        self.write("events/page_pool/enable", "1")
        self.write("events/napi/napi_poll/enable", "1")
        events = ["page_pool:*", f'napi:napi_poll if dev_name == "{napi_dev}"', "ftrace:print (trace_marker)"]
        if sched:
            # What ran on the CPUs: our helpers and ksoftirqd (filtered by name), NET_RX softirq, and
            # TCP's receive-buffer autotuning.
            ours = 'prev_comm ~ "ppsim_*" || next_comm ~ "ppsim_*" || prev_comm ~ "ksoftirqd*" || next_comm ~ "ksoftirqd*"'
            woken = 'comm ~ "ppsim_*" || comm ~ "ksoftirqd*"'
            for rel, flt in (("sched/sched_switch", ours), ("sched/sched_wakeup", woken),
                             ("irq/softirq_entry", "vec == 3"), ("irq/softirq_exit", "vec == 3"),
                             ("irq/softirq_raise", "vec == 3"), ("tcp/tcp_rcvbuf_grow", None)):
                if not (self.path / "events" / rel).is_dir():
                    continue
                if flt:
                    self.write(f"events/{rel}/filter", flt)
                self.write(f"events/{rel}/enable", "1")
                events.append(rel.replace("/", ":") + (f" if {flt}" if flt else ""))
        self.marker_fd = os.open(self.path / "trace_marker", os.O_WRONLY | os.O_CLOEXEC)
        return events

    def mark(self, text: str) -> None:
        if self.marker_fd >= 0:
            os.write(self.marker_fd, f"ppsim: {text}".encode())

    def on(self, enabled: bool) -> None:
        self.write("tracing_on", "1" if enabled else "0")

    def buffer_stats(self) -> dict:
        out = {}
        for d in sorted((self.path / "per_cpu").glob("cpu*")):
            stats = {}
            for line in (d / "stats").read_text().splitlines():
                k, _, v = line.partition(":")
                v = v.strip().split()[0] if v.strip() else ""
                if k in ("entries", "overrun", "dropped events", "read events"):
                    stats[k.replace(" ", "_")] = int(v)
            out[d.name] = stats
        return out

    def remove(self) -> None:
        if self.marker_fd >= 0:
            os.close(self.marker_fd)
            self.marker_fd = -1
        if not self.path.exists():
            return
        for rel in ("tracing_on", "events/enable"):
            with contextlib.suppress(OSError):
                (self.path / rel).write_text("0")
        for rel in ("napi/napi_poll", "sched/sched_switch", "sched/sched_wakeup", "irq/softirq_entry",
                    "irq/softirq_exit", "irq/softirq_raise"):
            with contextlib.suppress(OSError):
                (self.path / f"events/{rel}/filter").write_text("0")
        for attempt in range(50):  # a helper that still holds trace_marker open keeps it busy
            try:
                self.path.rmdir()
                return
            except OSError as e:
                if e.errno != errno.EBUSY or attempt == 49:
                    raise
                time.sleep(0.1)


# ---- the world: namespaces, veth, XDP --------------------------------------------------------

@dataclass
class World:
    tag: str
    ns_s: str
    ns_r: str
    dev_s: str
    dev_r: str


def _make_world(cleanup: _Cleanup, p: CaptureParams) -> World:
    tag = str(os.getpid())
    w = World(tag, f"{NS_PREFIX}{tag}-s", f"{NS_PREFIX}{tag}-r", f"ppc{tag}s", f"ppc{tag}r")
    for ns in (w.ns_s, w.ns_r):
        _run(["ip", "netns", "add", ns], "create network namespace")
        cleanup.push(f"delete namespace {ns}", lambda ns=ns: _run(["ip", "netns", "del", ns],
                                                                  "delete namespace"))
        # IPv6 off before any device exists, so no ND/MLD packet ever reaches the pool.
        _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
              "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
             "disable IPv6 in the namespace")
        _run(["ip", "-n", ns, "link", "set", "lo", "up"], "bring loopback up")
    _run(["ip", "link", "add", w.dev_s, "netns", w.ns_s, "address", SENDER_MAC, "mtu", str(p.mtu),
          "type", "veth", "peer", "name", w.dev_r, "netns", w.ns_r, "address", RECEIVER_MAC,
          "mtu", str(p.mtu)], "create veth pair")
    _run(["ip", "-n", w.ns_s, "addr", "add", f"{SENDER_ADDR}/30", "dev", w.dev_s], "address sender")
    _run(["ip", "-n", w.ns_r, "addr", "add", f"{RECEIVER_ADDR}/30", "dev", w.dev_r], "address receiver")
    _run(["ip", "-n", w.ns_s, "neigh", "replace", RECEIVER_ADDR, "lladdr", RECEIVER_MAC, "dev", w.dev_s,
          "nud", "permanent"], "add permanent neighbour")
    _run(["ip", "-n", w.ns_r, "neigh", "replace", SENDER_ADDR, "lladdr", SENDER_MAC, "dev", w.dev_r,
          "nud", "permanent"], "add permanent neighbour")
    _run(["ip", "-n", w.ns_s, "link", "set", w.dev_s, "up"], "bring veth up")
    _run(["ip", "-n", w.ns_r, "link", "set", w.dev_r, "up"], "bring veth up")
    return w


def _in_ns(ns: str, *cmd: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *cmd]


def _host_sysctls() -> dict:
    """net.core.* knobs that exist only in the initial namespace (skb_defer_max, rmem_max...)."""
    out = {}
    for key in SYSCTLS:
        path = Path("/proc/sys") / key.replace(".", "/")
        with contextlib.suppress(OSError):
            v = " ".join(path.read_text().split())
            out[key] = int(v) if re.fullmatch(r"-?\d+", v) else v
    return out


def _sysctls(ns: str) -> dict:
    script = ('for k in "$@"; do f=/proc/sys/$(echo "$k" | tr . /); '
              'if [ -r "$f" ]; then printf "%s=%s\\n" "$k" "$(tr "\\t" " " < "$f")"; fi; done')
    out = _try(_in_ns(ns, "sh", "-c", script, "sh", *SYSCTLS)) or ""
    res = {}
    for line in out.splitlines():
        k, _, v = line.partition("=")
        v = v.strip()
        res[k] = int(v) if re.fullmatch(r"-?\d+", v) else v
    return res


def _queues(ns: str, dev: str) -> dict:
    out = _try(_in_ns(ns, "ls", f"/sys/class/net/{dev}/queues")) or ""
    names = out.split()
    return {"rx": sum(n.startswith("rx-") for n in names), "tx": sum(n.startswith("tx-") for n in names)}


def _link_json(ns: str, dev: str) -> dict:
    out = _try(["ip", "-n", ns, "-s", "-d", "-j", "link", "show", "dev", dev])
    try:
        return json.loads(out)[0] if out else {}
    except (ValueError, IndexError):
        return {}


def _device_state(ns: str, dev: str) -> dict:
    link = _link_json(ns, dev)
    feats = _try(_in_ns(ns, "ethtool", "-k", dev))
    return {
        "mtu": link.get("mtu"),
        "queues": _queues(ns, dev),
        "num_rx_queues": link.get("num_rx_queues"),
        "num_tx_queues": link.get("num_tx_queues"),
        "xdp": link.get("xdp"),
        "offloads": parse_ethtool_features(feats) if feats else "unavailable (ethtool -k failed)",
    }


def _counters(w: World) -> dict:
    out = {}
    for role, ns, dev in (("sender", w.ns_s, w.dev_s), ("receiver", w.ns_r, w.dev_r)):
        link = _link_json(ns, dev)
        stats = _try(_in_ns(ns, "ethtool", "-S", dev))
        out[role] = {
            "link_stats": link.get("stats64"),
            "ethtool_stats": parse_ethtool_stats(stats) if stats else None,
            "snmp": parse_snmp(_try(_in_ns(ns, "cat", "/proc/net/snmp")) or ""),
            "netstat": parse_snmp(_try(_in_ns(ns, "cat", "/proc/net/netstat")) or ""),
        }
    return out


# ---- helper processes -------------------------------------------------------------------------

class _Proc:
    """A helper we started (inside a namespace); killed by its own pid at cleanup if alive."""

    def __init__(self, cleanup: _Cleanup, role: str, cmd: list[str], marker_fd: int,
                 stdin: bool = False) -> None:
        self.role = role
        try:
            self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      pass_fds=(marker_fd,) if marker_fd >= 0 else ())
        except OSError as e:
            raise EnvironmentProblem(f"cannot start the {role}: {e}") from None
        cleanup.push(f"stop the {role}", self.kill)
        self.pid = self.p.pid
        self.result: dict | None = None
        self.stderr = ""

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(timeout=5)

    def readline(self, timeout: float) -> str:
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not r:
            raise EnvironmentProblem(f"the {self.role} did not report within {timeout:.0f} s")
        line = self.p.stdout.readline()
        if not line:
            self.p.wait(timeout=5)
            err = self.p.stderr.read().strip()
            raise EnvironmentProblem(f"the {self.role} exited early: {err or 'exit ' + str(self.p.returncode)}")
        return line

    def send(self, text: str) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.p.stdin.write(text)
            self.p.stdin.flush()

    def finish(self, timeout: float) -> dict:
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise EnvironmentProblem(f"the {self.role} did not finish within {timeout:.0f} s") from None
        self.stderr = err.strip()
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if self.p.returncode != 0 or not lines:
            raise EnvironmentProblem(f"the {self.role} failed (exit {self.p.returncode}): "
                                     f"{self.stderr or 'no output'}")
        self.result = json.loads(lines[-1])
        return self.result


# ---- one capture ------------------------------------------------------------------------------

def check_environment() -> None:
    """Refuses (EnvironmentProblem) unless this process can capture."""
    if os.geteuid() != 0:
        raise EnvironmentProblem("ppsim capture needs root (network namespaces, XDP, tracefs)")
    if "tracefs" not in Path("/proc/filesystems").read_text():
        raise EnvironmentProblem("this kernel has no tracefs")
    if not Path("/proc/self/ns/net").exists():
        raise EnvironmentProblem("this kernel has no network namespaces")
    if shutil.which("ip") is None:
        raise EnvironmentProblem("`ip` (iproute2) is not installed")
    for name in ("ppsim_xdp_attach", "ppsim_traffic"):
        if not os.access(tool_path(name), os.X_OK):
            raise EnvironmentProblem(
                f"capture helper {tool_path(name)} is missing: build it with `cmake --build "
                f"{build_dir()} --target ppsim_xdp_attach ppsim_traffic` (PPSIM_BUILD={build_dir()})")


def _remove_stale() -> list[str]:
    """Namespaces and instances left by a capture that was killed (SIGKILL): our names, with
    the pid of a process that no longer exists. Returns what was removed."""
    removed = []
    for line in (_try(["ip", "netns", "list"]) or "").splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(rf"{NS_PREFIX}(\d+)-[sr]", name)
        if m and not _pid_alive(int(m.group(1))):
            if _try(["ip", "netns", "del", name]) is not None:
                removed.append(f"namespace {name}")
    for mount in _tracefs_mounts():
        for inst in (mount / "instances").glob(f"{INSTANCE_PREFIX}*"):
            m = re.fullmatch(rf"{INSTANCE_PREFIX}(\d+)", inst.name)
            if m and not _pid_alive(int(m.group(1))):
                with contextlib.suppress(OSError):
                    (inst / "tracing_on").write_text("0")
                    (inst / "events/enable").write_text("0")
                    inst.rmdir()
                    removed.append(f"tracefs instance {inst}")
    for mount in _tracefs_mounts():   # private mounts of a killed capture: <tmp>/ppsim-capture-PID-*/tracefs
        m = re.fullmatch(rf"{WORKDIR_PREFIX}(\d+)-[^/]+", mount.parent.name)
        if m and mount.name == "tracefs" and not _pid_alive(int(m.group(1))):
            if _try(["umount", str(mount)]) is not None:
                shutil.rmtree(mount.parent, ignore_errors=True)
                removed.append(f"tracefs mount {mount}")
    return removed


def _wait_for_quiet(p: CaptureParams, log: Callable[[str], None]) -> dict:
    start = time.monotonic()
    first = loadavg()
    if p.max_load <= 0:
        return {"waited_s": 0.0, "max_load": None, "met": None, "before_wait": first}
    la = first
    while la["1min"] >= p.max_load and time.monotonic() - start < p.load_wait_s:
        if time.monotonic() - start < 1:
            log(f"waiting for 1-minute load {la['1min']:.2f} < {p.max_load} "
                f"(up to {p.load_wait_s:.0f} s)")
        time.sleep(5)
        la = loadavg()
    return {"waited_s": round(time.monotonic() - start, 1), "max_load": p.max_load,
            "met": la["1min"] < p.max_load, "before_wait": first}


def _our_pools(trace_text: str, delete_pid: int) -> dict[int, list[pptrace.PoolRelease]]:
    """page_pool_release events of the pools our `ip link del` destroyed (cnt=1 in its task)."""
    lines = [ln for ln in trace_text.splitlines() if "page_pool_release:" in ln]
    rel = [e for e in pptrace.parse_lines(lines, "<instance trace>")
           if isinstance(e, pptrace.PoolRelease)]
    ours = {e.pool for e in rel if e.cnt == 1 and e.pid == delete_pid}
    return {pool: [e for e in rel if e.pool == pool] for pool in ours}


def trim_napi_lines(text: str, keep_near: int = 2, keep_head: int = 100,
                    keep_tail: int = 20) -> tuple[str, dict]:
    """The `context` trimming of napi_poll lines: keep a napi_poll line if it is among the
    first `keep_head` or last `keep_tail` napi_poll lines, or within `keep_near` lines of a
    line that is not a napi_poll event; drop the others. Every other line is kept verbatim."""
    lines = text.splitlines(keepends=True)
    is_napi = [": napi_poll: " in ln for ln in lines]
    napi_idx = [i for i, n in enumerate(is_napi) if n]
    keep = [not n for n in is_napi]
    for i in napi_idx[:keep_head] + napi_idx[-keep_tail:] if napi_idx else []:
        keep[i] = True
    events = [i for i, n in enumerate(is_napi) if not n and not lines[i].startswith("#")]
    for i in events:
        for j in range(max(0, i - keep_near), min(len(lines), i + keep_near + 1)):
            keep[j] = True
    out = "".join(ln for ln, k in zip(lines, keep) if k)
    kept = sum(1 for i in napi_idx if keep[i])
    return out, {"mode": "context", "napi_poll_lines": len(napi_idx), "napi_poll_lines_kept": kept,
                 "napi_poll_lines_removed": len(napi_idx) - kept,
                 "rule": f"napi_poll lines kept: first {keep_head}, last {keep_tail}, and those "
                         f"within {keep_near} lines of any other event; all other lines verbatim"}


def pool_facts(summary: pptrace.TraceSummary) -> list[dict]:
    """Per-pool summaries without line numbers (which trimming shifts), for comparison."""
    out = []
    for pool in summary.pools.values():
        d = pool.to_dict()
        d["bursts"] = [{k: v for k, v in b.items() if k != "line"} for b in d["bursts"]]
        out.append(d)
    return out


def run_capture(p: CaptureParams, out_dir: Path, group: str, index: int,
                log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict:
    """Runs one capture into `out_dir` (created; must not exist or be empty). Returns meta."""
    check_environment()
    p.validate(online_cpus())
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise InputError(f"--out: {out_dir} is not empty (use --force to replace captures)")
    t_wall = _dt.datetime.now(_dt.timezone.utc)
    meta: dict = {
        "format": "ppsim-capture/1",
        "group": group,
        "name": out_dir.name,
        "repeat_index": index,
        "capture_time_utc": t_wall.isoformat(timespec="seconds"),
        "ppsim": _ppsim_version(),
        "kernel": {"release": platform.release(), "version": platform.version(),
                   "config": _kconfig()},
        "machine": {"arch": platform.machine(), "cpu_model": _cpu_model(),
                    "online_cpus": sorted(online_cpus())},
        "params": p.to_meta(),
        "param_docs": {x.name: {"unit": x.unit, "doc": x.doc} for x in PARAMS},
    }
    cleanup = _Cleanup()
    error: BaseException | None = None
    waited = _wait_for_quiet(p, log)   # before taking the lock, so waiting blocks no one
    with _capture_lock(), _signals_raise():
        stale = _remove_stale()
        if stale:
            log("removed leftovers of a killed capture: " + ", ".join(stale))
        meta["load"] = {"wait": waited, "at_start": loadavg()}
        # the pid in the name lets a later capture tell a killed capture's mount from a live one's
        workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
        cleanup.push("remove work directory", lambda: shutil.rmtree(workdir, ignore_errors=True))
        world = None
        inst = None
        try:
            world = _make_world(cleanup, p)
            meta["world"] = {"namespaces": [world.ns_s, world.ns_r],
                             "devices": {"sender": world.dev_s, "receiver": world.dev_r},
                             "addresses": {"sender": SENDER_ADDR, "receiver": RECEIVER_ADDR},
                             "port": PORT}
            inst = TraceInstance(cleanup, workdir, f"{INSTANCE_PREFIX}{world.tag}")
            events = inst.configure(world.dev_r, p.buffer_kb, sched=p.sched != "off")
            meta["tracefs"] = {"instance": inst.path.name, "private_mount": inst.mounted_by_us,
                               "trace_clock": "mono", "buffer_size_kb_per_cpu": p.buffer_kb,
                               "events": events,
                               "napi_poll_filter": f'dev_name == "{world.dev_r}"'}
            meta["sysctl"] = _host_sysctls()
            meta["sysctl_receiver_ns"] = _sysctls(world.ns_r)
            snmp_before = _counters(world)
            inst.on(True)
            _capture_phases(p, world, inst, cleanup, meta, log)
            for role, before in snmp_before.items():   # protocol counters: what this capture changed
                after = meta["counters"][role]
                for key in ("snmp", "netstat"):
                    after[f"{key}_delta"] = snmp_delta(before[key], after.pop(key))
            inst.mark("end")
            inst.on(False)
            meta["tracefs"]["buffer_stats"] = inst.buffer_stats()
            raw = inst.read("trace")
        except BaseException as e:  # noqa: BLE001 - cleanup first, then re-raise
            error = e
        finally:
            meta["load"]["at_end"] = loadavg()
            cleanup.run()
        leftovers = _leftovers(world, inst)
        meta["cleanup"] = {"failures": cleanup.failures, "leftovers": leftovers,
                           "ok": not cleanup.failures and not leftovers}
    if error is not None:
        if isinstance(error, (EnvironmentProblem, InputError, KeyboardInterrupt)):
            raise error
        raise EnvironmentProblem(f"capture failed: {type(error).__name__}: {error}") from error
    if not meta["cleanup"]["ok"]:
        raise EnvironmentProblem("capture cleanup incomplete: "
                                 + "; ".join(cleanup.failures + leftovers))
    _finish(p, out_dir, raw, meta)
    return meta


def _leftovers(world: World | None, inst: TraceInstance | None) -> list[str]:
    left = []
    if world is not None:
        names = (_try(["ip", "netns", "list"]) or "").split()
        left += [f"namespace {ns}" for ns in (world.ns_s, world.ns_r) if ns in names]
        links = _try(["ip", "-o", "link", "show"]) or ""
        left += [f"device {d}" for d in (world.dev_s, world.dev_r) if re.search(rf"\b{d}\b", links)]
    if inst is not None:
        if inst.path.exists() and inst.mount in _tracefs_mounts():
            left.append(f"tracefs instance {inst.path}")
        if inst.mounted_by_us and inst.mount in _tracefs_mounts():
            left.append(f"tracefs mount {inst.mount}")
    return left


def _capture_phases(p: CaptureParams, w: World, inst: TraceInstance, cleanup: _Cleanup,
                    meta: dict, log: Callable[[str], None]) -> None:
    traffic = str(tool_path("ppsim_traffic"))
    fd = inst.marker_fd
    timeout_ms = str(int(p.timeout_s * 1000))

    inst.mark(f"xdp attach action={p.xdp} mode={p.xdp_mode}")
    out = _run(_in_ns(w.ns_r, str(tool_path("ppsim_xdp_attach")), "--dev", w.dev_r,
                      "--action", p.xdp, "--mode", p.xdp_mode), "attach XDP")
    meta["xdp"] = json.loads(out.strip().splitlines()[-1])
    meta["devices"] = {"sender": _device_state(w.ns_s, w.dev_s),
                       "receiver": _device_state(w.ns_r, w.dev_r)}

    held = p.reader_hold_ms > 0
    start_on_go = held or p.reader_delay_ms > 0
    recv = _Proc(cleanup, "receiver", _in_ns(
        w.ns_r, traffic, "recv", "--proto", p.proto, "--bind", RECEIVER_ADDR, "--port", str(PORT),
        "--rcvbuf", str(p.rcvbuf), "--start", "go" if start_on_go else "now",
        "--cpu", str(p.receiver_cpu), "--marker-fd", str(fd),
        "--timeout-ms", str(int(p.timeout_s * 1000 + p.reader_hold_ms + 30_000))),
        fd, stdin=True)
    ready = json.loads(recv.readline(10.0))
    meta["receiver_ready"] = ready

    inst.mark(f"traffic start proto={p.proto} size={p.size} count={p.count()}")
    t_send = time.monotonic()
    send = _Proc(cleanup, "sender", _in_ns(
        w.ns_s, traffic, "send", "--proto", p.proto, "--dst", RECEIVER_ADDR, "--port", str(PORT),
        "--size", str(p.size), "--count", str(p.count()), "--rate", str(p.rate),
        "--cpu", str(p.sender_cpu), "--marker-fd", str(fd), "--timeout-ms", timeout_ms), fd)
    if p.reader_delay_ms and not held:
        delay = p.reader_delay_ms / 1000 - (time.monotonic() - t_send)
        if delay > 0:
            time.sleep(delay)
        recv.send("go\n")
    try:
        sender = send.finish(p.timeout_s + 10)
    except EnvironmentProblem as e:
        if held and p.proto == "tcp":
            raise EnvironmentProblem(f"{e} (with --reader-hold-ms the TCP stream must fit in the "
                                     "receive window: send fewer --bytes or raise --rcvbuf)") from None
        raise
    meta["sender"] = sender
    meta["process_ids"] = {"sender": send.pid, "receiver": recv.pid}
    if not held:
        recv.send("stop\n")
        meta["receiver"] = recv.finish(p.timeout_s + 10)

    meta["counters"] = _counters(w)
    inst.mark("delete")
    t0 = time.monotonic()
    dele = subprocess.Popen(["ip", "-n", w.ns_r, "link", "del", "dev", w.dev_r],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, err = dele.communicate(timeout=30)
    if dele.returncode != 0:
        raise EnvironmentProblem(f"deleting {w.dev_r} failed: {err.strip()}")
    meta["delete"] = {"pid": dele.pid, "duration_ms": round((time.monotonic() - t0) * 1000, 3)}
    meta["process_ids"]["delete"] = dele.pid

    if held:
        time.sleep(p.reader_hold_ms / 1000)
        inst.mark("reader release")
        recv.send("go\nstop\n")
        meta["receiver"] = recv.finish(p.timeout_s + 10)

    # Flush: NET_RX once more on every CPU frees skbs parked on that CPU's defer list.
    inst.mark("flush")
    kicks = []

    def kick_all() -> None:
        for cpu in sorted(online_cpus()):
            k = _Proc(cleanup, f"flush kick on cpu {cpu}", _in_ns(
                w.ns_r, traffic, "kick", "--cpu", str(cpu), "--marker-fd", str(fd)), fd)
            kicks.append(k.finish(10))

    kick_all()
    t_flush = time.monotonic()
    deadline = t_flush + p.destroy_timeout_s
    last_kick = t_flush
    pools: dict = {}
    while True:
        pools = _our_pools(inst.read("trace"), dele.pid)
        # page_pool_release cnt=1 is traced synchronously inside `ip link del`: no such event
        # means the device had no pool (generic XDP), and there is nothing to wait for.
        if not pools or all(rels[-1].inflight <= 0 for rels in pools.values()):
            break
        now = time.monotonic()
        if now > deadline:
            break
        if now - last_kick > 1.5:   # a free may have landed on a defer list after the first kick
            kick_all()
            last_kick = now
        time.sleep(0.2)
    meta["flush"] = {"kicks": kicks, "kick_rounds": len(kicks) // max(1, len(online_cpus())),
                     "waited_s": round(time.monotonic() - t_flush, 3)}
    meta["destroy"] = {
        "pools": {f"{pool:016x}": [{"ts_ns": r.ts_ns, "task": r.task, "cpu": r.cpu,
                                     "inflight": r.inflight, "hold": r.hold,
                                     "release": r.release, "cnt": r.cnt} for r in rels]
                  for pool, rels in pools.items()},
        # None: the delete destroyed no pool (generic XDP); else did every pool reach inflight 0
        "complete": all(r[-1].inflight <= 0 for r in pools.values()) if pools else None,
    }
    if not pools:
        log("note: the delete destroyed no page_pool (generic XDP does not use veth's pools)")
    elif not meta["destroy"]["complete"]:
        log(f"warning: pool destroy not complete after {p.destroy_timeout_s:.0f} s; "
            "the trace ends with pages inflight")


def _finish(p: CaptureParams, out_dir: Path, raw: str, meta: dict) -> None:
    full = pptrace.parse_text(raw, str(out_dir / "trace.txt"))
    summary = full.summary()
    text, trim = raw, {"mode": "all", "napi_poll_lines": len(full.napi_polls()),
                       "napi_poll_lines_removed": 0}
    if p.napi_lines == "context":
        text, trim = trim_napi_lines(raw)
        # The trimming must not change what the parser says about pools.
        again = pptrace.parse_text(text, "trimmed").summary()
        if pool_facts(again) != pool_facts(summary):
            text, trim = raw, {"mode": "all", "napi_poll_lines": len(full.napi_polls()),
                               "napi_poll_lines_removed": 0,
                               "note": "context trimming would change pool summaries; kept all lines"}
    if p.sched != "off":
        meta["sched"] = _sched_summary(raw, meta, full)
        if p.sched == "summary":
            text, dropped = schedtrace.strip_softirq_lines(text)
            trim["softirq_lines_removed"] = dropped
    meta["trace_trim"] = trim
    ours = set(meta.get("destroy", {}).get("pools", {}))
    meta["our_pools"] = sorted(ours)
    foreign = [f"{k:016x}" for k in summary.pools if f"{k:016x}" not in ours]
    meta["foreign_pools"] = foreign  # pools of other devices active during the capture
    meta["trace_summary"] = summary.to_dict()
    meta["replay"] = _replay_facts(p, meta, summary)
    # After the traffic, so that its 48 MiB of page faults cannot disturb what was captured.
    meta["machine"].update({"virtualized": _virtualized(), "page_reporting": _page_reporting(),
                            "user_page_fault": _page_fault_cost(p.receiver_cpu)})
    if p.sched == "off":
        (out_dir / "trace.txt").write_text(text)
    else:  # scheduler lines make the trace large: stored gzipped (ppsim.trace reads either)
        with gzip.open(out_dir / "trace.txt.gz", "wt", encoding="utf-8", compresslevel=9) as f:
            f.write(text)
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=False) + "\n")


def _sched_summary(raw: str, meta: dict, full: pptrace.Trace) -> dict:
    """What ran between the sender's start and the last of the sender's and reader's ends."""
    pids = meta.get("process_ids", {})
    marks = {pptrace.phase_label(m.text): m.ts_ns for m in full.markers()}
    start = marks.get("sender start")
    ends = [marks[k] for k in ("sender done", "reader done") if k in marks]
    s = schedtrace.summarise(raw, {"sender": pids.get("sender"), "reader": pids.get("receiver")},
                             start, max(ends) if ends else None)
    s["window"] = "from the sender's start to the last of the sender's and the reader's ends"
    return s


def _replay_facts(p: CaptureParams, meta: dict, summary: pptrace.TraceSummary) -> dict:
    """What a simulator needs to replay this workload, gathered in one place."""
    sysctl = meta.get("sysctl", {})
    recv = meta.get("receiver", {})
    send = meta.get("sender", {})
    dev_r = meta.get("devices", {}).get("receiver", {})
    napi = next(iter(summary.napi.values()), None)
    facts = {
        "proto": p.proto,
        "packets_sent": send.get("sent"),
        "packets_received": recv.get("received"),
        "bytes_sent": send.get("bytes"),
        "payload_bytes": p.size,
        "sender_cpu": send.get("cpu_start"),
        "receiver_cpu": recv.get("cpu_start"),
        "rate_pps": p.rate,
        "reader_delay_ms": p.reader_delay_ms,
        "reader_hold_ms": p.reader_hold_ms,
        "rcvbuf_effective": recv.get("rcvbuf_effective"),
        "socket_drops": recv.get("socket_drops"),
        "xdp_action": p.xdp,
        "xdp_mode": (meta.get("xdp") or {}).get("mode"),
        "mtu": p.mtu,
        "rx_queues": dev_r.get("queues", {}).get("rx"),
        "tx_queues_sender": meta.get("devices", {}).get("sender", {}).get("queues", {}).get("tx"),
        "pool_size": VETH_RING_SIZE,
        "veth_xdp_ring": VETH_RING_SIZE,
        "skb_defer_max": sysctl.get("net.core.skb_defer_max"),
        "rmem_default": sysctl.get("net.core.rmem_default"),
        "rmem_max": sysctl.get("net.core.rmem_max"),
        "napi_polls": napi.polls if napi else 0,
        "napi_work": napi.work if napi else 0,
        "napi_budget": max(napi.budgets, key=napi.budgets.get) if napi and napi.budgets else None,
        "napi_contexts": dict(napi.contexts) if napi else {},
        "phases": [{"ts_ns": m.ts_ns, "cpu": m.cpu, "task": m.task,
                    "phase": pptrace.phase_label(m.text), "text": m.text}
                   for m in summary.markers],
    }
    if send.get("start_ns") and send.get("end_ns"):
        dur = (send["end_ns"] - send["start_ns"]) / 1e9
        facts["sender_duration_s"] = round(dur, 6)
        facts["sender_pps"] = round(send.get("sent", 0) / dur) if dur > 0 else None
        for key, ns in (("reader_start_offset_ms", recv.get("go_ns")),
                        ("reader_first_packet_offset_ms", recv.get("first_ns")),
                        ("reader_last_packet_offset_ms", recv.get("last_ns"))):
            facts[key] = round((ns - send["start_ns"]) / 1e6, 3) if ns else None
    for pool, rels in (meta.get("destroy") or {}).get("pools", {}).items():
        facts.setdefault("destroy", []).append({
            "pool": pool, "delete_cpu": rels[0]["cpu"] if rels else None,
            "inflight_at_delete": rels[0]["inflight"] if rels else None,
            "retries": max(0, len(rels) - 1),
            "retry_cpus": sorted({r["cpu"] for r in rels[1:]})})
    if p.proto == "udp":
        facts["frame_layout"] = veth_frag_layout(p.size + UDP_HLEN + IPV4_HLEN + ETH_HLEN)
    else:
        mss = p.mtu - IPV4_HLEN - 32  # TCP header with timestamps
        facts["frame_layout"] = veth_frag_layout(mss + 32 + IPV4_HLEN + ETH_HLEN)
        facts["frame_layout"]["note"] = "full-MSS segment with TCP timestamps; TCP frames vary"
        facts["tcp_segs_out"] = send.get("tcp_segs_out")
        facts["tcp_data_segs_out"] = send.get("tcp_data_segs_out")
    gro = dev_r.get("offloads", {})
    if isinstance(gro, dict):
        facts["receiver_gro"] = gro.get("generic-receive-offload")
        facts["sender_tso"] = meta.get("devices", {}).get("sender", {}).get(
            "offloads", {}).get("tcp-segmentation-offload")
    return facts


def _same_workload(meta_file: Path, p: CaptureParams) -> None:
    """--resume: a repeat already taken must have this run's workload, or the group mixes two."""
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"--resume: {meta_file}: cannot read it ({e}); take that repeat again with --force") from None
    got = meta.get("params") if isinstance(meta, dict) else None
    if not isinstance(got, dict):
        raise InputError(f"--resume: {meta_file}: at $.params: expected the capture's parameters (an object)")
    want = p.to_meta()
    diff = workload_diff(got, want)
    if diff:
        raise InputError(f"--resume: {meta_file}: at $.params.{diff[0]}: the kept repeat has {got.get(diff[0])!r:.60}, "
                         f"this run asks for {want.get(diff[0])!r:.60}; a group's repeats must share the workload")


def check_resume(p: CaptureParams) -> list[Path]:
    """The repeats --resume keeps (those with a meta.json), each checked to have this workload."""
    name = p.name or p.default_name()
    kept = [Path(p.out) / f"{name}-r{k}" for k in range(1, p.repeat + 1)]
    kept = [d for d in kept if (d / "meta.json").exists()]
    for d in kept:
        _same_workload(d / "meta.json", p)
    return kept


def run_captures(p: CaptureParams, log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
                 resume: bool = False) -> list[Path]:
    """All repeats of one parameter set: OUT/NAME-r1 .. OUT/NAME-rK. Returns their paths. With
    `resume`, repeats that already hold a capture (a meta.json) are kept and not taken again."""
    p.validate(online_cpus())
    name = p.name or p.default_name()
    out = Path(p.out)
    dirs = [out / f"{name}-r{k}" for k in range(1, p.repeat + 1)]
    if resume and not p.force:
        kept = check_resume(p)
        dirs = [d for d in dirs if d not in kept]
        if not dirs:
            log(f"{out}: {name}-r1..r{p.repeat} are all there; nothing to take")
            return []
    for d in dirs:
        if d.exists() and any(d.iterdir()):
            if not p.force:
                raise InputError(f"--out: {d} already holds a capture (use --force to replace it)")
            if not (d / "meta.json").exists() and not (d / "trace.txt").exists() and not (d / "trace.txt.gz").exists():
                raise InputError(f"--force: {d} is not a capture directory; refusing to delete it")
    check_environment()
    done = []
    for d in dirs:
        k = int(d.name.rsplit("-r", 1)[1])
        if d.exists() and p.force:
            shutil.rmtree(d)
        meta = run_capture(p, d, name, k, log)
        r = meta["replay"]
        pools = meta["trace_summary"]["pools"]
        ours = [x for x in pools if x["pool"] in meta["our_pools"]]
        log(f"{d}: sent {r['packets_sent']} received {r['packets_received']}, "
            + (", ".join(f"pool {x['pool'][-8:]}: holds {x['holds']} releases {x['releases']} "
                         f"bursts {x['burst_sizes']} inflight@release {x['inflight_at_release']}"
                         for x in ours) or "no page_pool destroyed")
            + f", load {meta['load']['at_start']['1min']:.2f}")
        done.append(d)
    return done
