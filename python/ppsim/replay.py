"""Replay a kernel capture in the simulator and compare the two.

`scenario_from_meta(meta)` turns a capture's meta.json into a veth scenario: the workload (what
was sent, by whom, on which CPUs, at what rate, into which receive buffer, when the reader ran,
when the veth was deleted) comes from meta.json; the costs come from traces/replay_defaults.json,
one set for every capture. `metrics(trace)` reduces a trace (kernel or simulated: same parser) to
what is compared; `validate(dirs)` does both for every capture and checks the tolerances.
"""
from __future__ import annotations

import json
import re
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ppsim import schedtrace, strict_json
from ppsim.workload import workload_diff
from ppsim._native import REPO
from ppsim.errors import InputError
from ppsim.trace import Marker, NapiPoll, PageHold, TraceParser, capture_trace, phase_label, read_trace, scan_trace

DEFAULTS_FILE = REPO / "traces" / "replay_defaults.json"
MATRIX_FILE = REPO / "traces" / "matrix.json"
# The pids the veth model gives its sender and reader in the traces it writes (kSenderPid,
# kReaderPid: models/world/stack.h).
SIM_SENDER_PID = 3000
SIM_READER_PID = 3001


def split_of_groups(matrix_file: Path = MATRIX_FILE) -> dict[str, str]:
    """The fixed fit/validation split (traces/README.md): within each family of the capture matrix,
    groups sorted by name alternate fit, validation, fit, ... Groups absent from the matrix (a
    user's own captures) are validation: nothing was tuned on them."""
    try:
        groups = json.loads(Path(matrix_file).read_text()).get("groups", [])
    except (OSError, json.JSONDecodeError):
        return {}
    fam: dict[str, list[str]] = {}
    for g in groups:
        if isinstance(g, dict) and isinstance(g.get("name"), str):
            fam.setdefault(str(g.get("family", "")), []).append(g["name"])
    out = {}
    for names in fam.values():
        for i, n in enumerate(sorted(names)):
            out[n] = "fit" if i % 2 == 0 else "validation"
    return out


def _merge(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if k.startswith("_"):
            continue
        if isinstance(v, dict):
            _merge(dst.setdefault(k, {}), v)
        else:
            dst[k] = v


_MISSING = object()
_KINDS = {"int": (int,), "number": (int, float), "str": (str,), "list": (list,), "dict": (dict,),
          "bool": (bool,)}
_KIND_NAMES = {"int": "an integer", "number": "a number", "str": "a string", "list": "an array",
               "dict": "an object", "bool": "true or false"}


def _get(meta: dict, path: str, src: str, kind: str, default=_MISSING, *, null_ok: bool = False):
    """meta at dotted `path`, which must be of `kind` (or None when null_ok); `default` when any
    part of the path is absent (missing is an InputError when no default is given)."""
    node = meta
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            if default is not _MISSING:
                return default
            raise InputError(f"{src}: missing {path} (expected a ppsim capture meta.json)")
        node = node[part]
    if node is None and null_ok:
        return None
    ok = isinstance(node, _KINDS[kind]) and (kind == "bool" or not isinstance(node, bool))
    if not ok:
        raise InputError(f"{src}: at $.{path}: expected {_KIND_NAMES[kind]}, got {strict_json.type_name(node)}")
    return node


def _need(meta: dict, path: str, src: str, kind: str = "number"):
    return _get(meta, path, src, kind)


def _int_text(meta: dict, path: str, src: str, default: int) -> int:
    """An integer that a capture may record as text (kernel config values): `default` when absent
    or null."""
    raw = _dig(meta, path)
    if raw is None:
        return default
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit() and raw.strip().isascii() and len(raw.strip()) <= 18:
        return int(raw.strip())
    raise InputError(f"{src}: at $.{path}: expected an integer (or its decimal text), got {strict_json.type_name(raw)}")


def _dig(meta, path: str):
    node = meta
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _sysctl_field(meta: dict, name: str, index: int, default: str, src: str) -> int:
    """Field `index` of a whitespace-separated sysctl triple such as net.ipv4.tcp_rmem."""
    sysctl = _get(meta, "sysctl", src, "dict", {})
    text = sysctl.get(name, default)
    fields = text.split() if isinstance(text, str) else []
    if len(fields) != 3 or not all(f.isascii() and f.isdigit() and len(f) <= 18 for f in fields):
        raise InputError(f"{src}: at $.sysctl[{name!r}]: expected three integers such as {default!r}, got {text!r:.60}")
    return int(fields[index])


def load_meta(capture_dir: Path) -> dict:
    f = Path(capture_dir) / "meta.json"
    if not f.exists() and not f.is_symlink():
        raise InputError(f"{capture_dir}: no meta.json (not a capture directory)")
    meta = strict_json.load_file(f, what="capture meta.json")
    if not isinstance(meta, dict):
        raise InputError(f"{f}: at $: expected a JSON object (a ppsim capture meta.json), got {strict_json.type_name(meta)}")
    fmt = meta.get("format")
    if not isinstance(fmt, str) or not fmt.startswith("ppsim-capture/"):
        raise InputError(f"{f}: at $.format: expected \"ppsim-capture/1\", got {fmt!r:.60}")
    return meta


def _phase(meta: dict, name: str, src: str) -> dict | None:
    """The first phase marker called `name` (ts_ns, cpu, task), or None."""
    phases = _get(meta, "replay.phases", src, "list", [])
    for i, ph in enumerate(phases):
        if not isinstance(ph, dict):
            raise InputError(f"{src}: at $.replay.phases[{i}]: expected an object, got {strict_json.type_name(ph)}")
        if ph.get("phase") == name and "ts_ns" in ph:
            for k in ("ts_ns", "cpu"):
                if k in ph and (isinstance(ph[k], bool) or not isinstance(ph[k], int)):
                    raise InputError(f"{src}: at $.replay.phases[{i}].{k}: expected an integer, "
                                     f"got {strict_json.type_name(ph[k])}")
            return ph
    return None


def connect_gap_us(capture_dir: Path) -> float | None:
    """A TCP capture's time from the connection to the sender's first write: from the last napi_poll
    before the "sender start" marker (the handshake's final ACK, after which the receiver's
    tcp_init_buffer_space starts its first receive-space measure) to that marker (written after
    connect() returns, before the first write). None when the trace has no such poll or marker.
    Only the trace's head is read."""
    trace = capture_trace(capture_dir)

    def consume(lines):
        last = None
        for e in TraceParser(str(trace)).parse(lines):
            if isinstance(e, NapiPoll):
                last = e.ts_ns
            elif isinstance(e, Marker) and phase_label(e.text) == "sender start":
                return (e.ts_ns - last) / 1e3 if last is not None and e.ts_ns >= last else None
        return None

    return scan_trace(trace, consume)


def measured_start_us(caps: list[tuple[Path, dict]]) -> float | None:
    """veth.start_us for a TCP group's replay: the median of its captures' connect_gap_us (the
    model's connection is established at time 0 and its sender starts at veth.start_us). None for
    UDP, or when no capture records the handshake."""
    rep = caps[0][1].get("replay") if caps and isinstance(caps[0][1], dict) else None
    if not isinstance(rep, dict) or rep.get("proto") != "tcp":
        return None  # not TCP, or a meta.json the replay itself reports
    gaps = [g for g in (connect_gap_us(d) for d, _ in caps) if g is not None]
    return round(statistics.median(gaps), 1) if gaps else None


SEEDED_RUNS = 3  # model runs per capture group (seeds seed, seed + 1, ...)
READER_BUFFER_BYTES = 1 << 16  # the capture reader's recv buffer (tools/capture/traffic.c)


def scenario_from_meta(meta: dict, src: str = "meta.json") -> dict:
    """The veth scenario that reproduces a capture's workload."""
    if not isinstance(meta, dict):
        raise InputError(f"{src}: at $: expected a JSON object (a ppsim capture meta.json), got {strict_json.type_name(meta)}")
    _need(meta, "replay", src, "dict")
    proto = _need(meta, "replay.proto", src, "str")
    if proto not in ("udp", "tcp"):
        raise InputError(f"{src}: at $.replay.proto: expected \"udp\" or \"tcp\", got {proto!r:.40}")
    cpus = _need(meta, "machine.online_cpus", src, "list")
    if not cpus:
        raise InputError(f"{src}: at $.machine.online_cpus: expected at least one CPU")
    hz = _int_text(meta, "kernel.config.CONFIG_HZ", src, 250) or 250
    if not 1 <= hz <= 100000:
        raise InputError(f"{src}: at $.kernel.config.CONFIG_HZ: expected a tick rate from 1 to 100000 Hz, got {hz}")
    payload = _need(meta, "replay.payload_bytes", src, "int")
    if payload < 1:
        raise InputError(f"{src}: at $.replay.payload_bytes: expected at least 1 byte, got {payload}")
    if proto == "tcp":
        total = _get(meta, "sender.bytes", src, "int", null_ok=True) or 0
        sends = max(1, -(-total // payload))
    else:
        sends = _need(meta, "replay.packets_sent", src, "int")
    sender_done, delete = _phase(meta, "sender done", src), _phase(meta, "delete", src)
    if sender_done is None or delete is None:
        raise InputError(f"{src}: at $.replay.phases: expected \"sender done\" and \"delete\" markers")
    gap_us = (delete["ts_ns"] - sender_done["ts_ns"]) / 1e3
    delete_cpu = delete.get("cpu", 0)
    sender_cpu = _need(meta, "replay.sender_cpu", src, "int")
    receiver_cpu = _need(meta, "replay.receiver_cpu", src, "int")
    tcp_rmem = [_sysctl_field(meta, "net.ipv4.tcp_rmem", i, "4096 131072 6291456", src) for i in range(3)]
    tcp_wmem = [_sysctl_field(meta, "net.ipv4.tcp_wmem", i, "4096 16384 4194304", src) for i in range(3)]
    tcp_rcvbuf_set = (_get(meta, "params.rcvbuf", src, "int", 0, null_ok=True) or 0) > 0

    def opt(key: str, kind: str, default):
        v = _get(meta, f"replay.{key}", src, kind, default, null_ok=True)
        return default if v is None else v

    name = meta.get("name") if isinstance(meta.get("name"), str) else "capture"
    group = meta.get("group") if isinstance(meta.get("group"), str) else None
    gro = _get(meta, "devices.receiver.offloads.generic-receive-offload", src, "str", "off", null_ok=True) or "off"
    sc = {
        "name": name,
        "description": f"replay of capture {name} (group {group})",
        "workload": "veth",
        "sim": {"retry_limit": 30},
        # EEVDF as 6.18 runs it (sim/cpu.h): base slice 0.7 ms x (1 + ilog2(min(ncpus, 8))), the
        # tick from CONFIG_HZ.
        "cpus": {"count": len(cpus), "scheduler": "eevdf",
                 "sched_slice_us": 700.0 * (1 + min(len(cpus), 8).bit_length() - 1), "sched_tick_us": 1e6 / hz},
        "page_pool": {"pool_size_pages": opt("pool_size", "int", 256), "order": 0, "dma_map": False,
                      "dma_sync": False, "napi_bound": False},
        "stack": {"mode": "socket", "reader_cpu": receiver_cpu, "defer_free": True,
                  "defer_max_skbs": opt("skb_defer_max", "int", 64)},
        "veth": {
            "proto": proto,
            "sends": sends,
            "payload_bytes": payload,
            "mtu_bytes": opt("mtu", "int", 1500),
            "sender_cpu": sender_cpu,
            "receiver_cpu": receiver_cpu,
            "rate_pps": float(opt("rate_pps", "number", 0)),
            "reader_delay_us": float(opt("reader_delay_ms", "number", 0)) * 1000.0,
            "reader_hold_us": float(opt("reader_hold_ms", "number", 0)) * 1000.0,
            "delete_after_sender_us": max(0.0, gap_us),
            "xdp": opt("xdp_action", "str", "pass"),
            "delete_cpu": delete_cpu,
            "napi_budget": opt("napi_budget", "int", 64),
            # SO_RCVBUF locks the buffer at what the kernel made of it; otherwise tcp_rmem[1], autotuned
            # up to tcp_rmem[2].
            "tcp_rcvbuf_bytes": (opt("rcvbuf_effective", "int", 0) or tcp_rmem[1]) if tcp_rcvbuf_set else tcp_rmem[1],
            "tcp_rcvbuf_max_bytes": tcp_rmem[2],
            "tcp_rcvbuf_locked": tcp_rcvbuf_set,
            "tcp_sndbuf_bytes": tcp_wmem[1],
            "tcp_sndbuf_max_bytes": tcp_wmem[2],
            "gro": gro.startswith("on"),
        },
    }
    # The capture's reader (tools/capture/traffic.c) drains its socket with MSG_DONTWAIT calls into
    # a 64 KiB buffer: one datagram per recvmsg for UDP, up to 64 KiB of the stream per recv for TCP.
    if proto == "udp":
        sc["stack"]["rcvbuf_bytes"] = _need(meta, "replay.rcvbuf_effective", src, "int")
        sc["stack"]["read_batch_skbs"] = 1
    else:
        sc["stack"]["read_batch_skbs"] = 1 << 20
        sc["stack"]["read_bytes"] = READER_BUFFER_BYTES
    _merge(sc, strict_json.load_file(DEFAULTS_FILE, what="replay defaults file"))
    return sc


@dataclass
class Metrics:
    holds: int
    releases: int
    burst_sizes: list[int]
    releases_at: list[dict]          # each page_pool_release: inflight, hold, release, cnt
    holds_vs_packets: list[tuple[int, int]] = field(default_factory=list)  # (packets before, holds after)
    packets: int = 0
    curve_exact: bool = True  # False when napi_poll lines were thinned before the last hold

    @property
    def first_inflight(self) -> int | None:
        return self.releases_at[0]["inflight"] if self.releases_at else None


def metrics(trace_path: Path, kept_first_polls: int | None = None) -> Metrics:
    """What validation compares, from a tracefs-format trace (kernel or ppsim). `kept_first_polls`:
    the capture thinned its napi_poll lines but kept this many first ones (meta.json trace_trim),
    so the packet count is exact only for holds before that many polls."""
    tr = read_trace(trace_path)
    s = tr.summary()
    if not s.pools:
        raise InputError(f"{trace_path}: no page_pool events in this trace")
    # The capture's pool is the one with the most events (other pools may appear in a busy trace).
    pool = max(s.pools.values(), key=lambda p: p.holds + p.releases + len(p.pool_releases))
    curve, work, holds, polls, exact = [], 0, 0, 0, True
    for e in tr.events:
        if isinstance(e, NapiPoll):
            work += e.work
            polls += 1
        elif isinstance(e, PageHold) and e.pool == pool.pool:
            holds += 1
            if kept_first_polls is not None and polls > kept_first_polls:
                exact = False
            if not curve or curve[-1][0] != work:
                curve.append((work, holds))
            else:
                curve[-1] = (work, holds)
    return Metrics(
        holds=pool.holds, releases=pool.releases, burst_sizes=pool.burst_sizes,
        releases_at=[{"inflight": r.inflight, "hold": r.hold, "release": r.release, "cnt": r.cnt}
                     for r in pool.pool_releases],
        holds_vs_packets=curve, packets=work, curve_exact=exact)


def holds_at(curve: list[tuple[int, int]], packets: int) -> int:
    h = 0
    for p, n in curve:
        if p > packets:
            break
        h = n
    return h


def simulate(meta: dict, src: str, trace_out: Path, seed: int | None = None, overrides: dict | None = None):
    """Runs the capture's replay scenario (`overrides` on top, e.g. run budgets); (scenario, Result)."""
    import ppsim

    sc = scenario_from_meta(meta, src)
    r = ppsim.run(sc, seed=seed, trace=trace_out, overrides=overrides, source=f"{src} (replayed as a veth scenario)")
    return sc, r


def tolerance(kernel_median: float) -> float:
    """holds and releases: within 10% or one 64-page burst, whichever is larger."""
    return max(0.1 * kernel_median, 64.0)


def curve_tolerance(kernel_holds: float) -> float:
    """holds against packets: the largest gap within 15 % of the holds or one 64-page burst."""
    return max(0.15 * kernel_holds, 64.0)


def sched_rows(name: str, metas: list[dict], stats: dict) -> list[dict]:
    """What ran on the CPU, kernel (the captures' sched summaries) against the model (its
    cpuN.task.* stats): reported, not gated."""
    rows = []
    for role in ("reader", "sender"):
        kturns, kmed = [], []
        for meta in metas:
            t = ((meta.get("sched") or {}).get("tasks") or {}).get(role)
            if t and t["slices"]["count"]:
                kturns.append(t["slices"]["count"])
                kmed.append(t["slices"]["median_us"])
        if not kturns:
            continue
        prefix = next((k[: -len(".turns")] for k in stats if k.endswith(f".task.{role}.turns")), None)
        sim_turns = stats.get(f"{prefix}.turns") if prefix else None
        sim_med = stats.get(f"{prefix}.turn_median_us") if prefix else None
        for metric, kv, sv in ((f"sched.{role}.turns", kturns, sim_turns), (f"sched.{role}.turn_median_us", kmed, sim_med)):
            km = statistics.median(kv)
            rows.append({"group": name, "metric": metric, "kernel_median": km, "kernel_range": [min(kv), max(kv)],
                         "ppsim": None if sv is None else round(sv, 1), "error": None if sv is None else round(sv - km, 1),
                         "limit": "info", "ok": True, "gated": False})
    return rows


# The sender's turns on a CPU it shares with the reader (schedtrace.sender_profile): reported rows.
# (row, key, digits)
_TURN_ROWS = (("sender.one_packet_turns", "single", 1), ("sender.one_packet_turn_us", "single_median_us", 1),
              ("sender.runs_alone", "runs", 1), ("sender.largest_run_alone_packets", "largest_run", 1),
              ("sched.read_after_run", "read_after_run", 2), ("sched.pingpong_per_lag", "pingpong_per_lag", 2))


def tcp_mss(meta: dict, src: str = "meta.json") -> int:
    """TCP payload per segment: the capture's MTU (replay.mtu, 1500 when absent) less the IPv4 and
    TCP headers with timestamps (52)."""
    from ppsim.capture import IPV4_HLEN, TCP_TS_HLEN

    mss = (_get(meta, "replay.mtu", src, "int", None, null_ok=True) or 1500) - IPV4_HLEN - TCP_TS_HLEN
    if mss < 1:
        raise InputError(f"{src}: at $.replay.mtu: expected an MTU above 52 bytes")
    return mss


def segments_per_write(meta: dict) -> int:
    """TCP segments per write: the write's size over tcp_mss."""
    return -(-int(meta["params"]["size"]) // tcp_mss(meta))


def frames_per_page(meta: dict, src: str = "meta.json") -> float:
    """Frames one pool page holds in the veth model (skb_pp_cow_data, capture.veth_frag_layout).
    TCP: over one write's segments (size / MSS full ones and the rest), so a short last segment
    that shares a page counts as part of one. From the capture's replay section (replay.proto,
    replay.payload_bytes, replay.mtu)."""
    from ppsim.capture import ETH_HLEN, IPV4_HLEN, TCP_TS_HLEN, UDP_HLEN, veth_frag_layout

    payload = _need(meta, "replay.payload_bytes", src, "int")
    if payload < 1:
        raise InputError(f"{src}: at $.replay.payload_bytes: expected at least 1 byte, got {payload}")
    if _get(meta, "replay.proto", src, "str", "udp") != "tcp":
        return float(veth_frag_layout(payload + UDP_HLEN + IPV4_HLEN + ETH_HLEN)["heads_per_page"])
    mss = tcp_mss(meta, src)
    full, rest = divmod(payload, mss)
    segs = [mss] * full + ([rest] if rest else [])
    headers = ETH_HLEN + IPV4_HLEN + TCP_TS_HLEN
    pages = sum(1.0 / veth_frag_layout(seg + headers)["heads_per_page"] for seg in segs)
    return len(segs) / pages


_WRITE_ROWS = (("sched.one_write_cycles", "cycles", 1), ("sched.one_write_send_us", "send_us", 1),
               ("sched.one_write_read_us", "read_us", 1))


def _info_row(rows: list, name: str, metric: str, kv: list, sv, digits: int) -> None:
    """A reported (not gated) row: the kernel's median and range over its captures, the model's value."""
    if not kv:
        return
    km = statistics.median(kv)
    rows.append({"group": name, "metric": metric, "kernel_median": round(km, digits),
                 "kernel_range": [min(kv), max(kv)], "ppsim": sv,
                 "error": None if sv is None else round(sv - km, digits),
                 "limit": "info", "ok": True, "gated": False})


def _sched_captures(caps: list[tuple[Path, dict]]):
    """(capture dir, meta, its meta.json path, sender pid, reader pid) of each capture with
    scheduler lines. A thinned capture is skipped: its gaps span polls it left out, and its turns
    miss packets."""
    for d, meta in caps:
        src = str(d / "meta.json")
        pid = _get(meta, "process_ids.sender", src, "int", None)
        reader = _get(meta, "process_ids.receiver", src, "int", None)
        if meta.get("sched") and pid is not None and not _thinned(meta, src):
            yield d, meta, src, pid, reader


def _kernel_profiles(caps: list[tuple[Path, dict]], profile) -> list:
    """profile(lines, sender_pid, reader_pid) of each capture with scheduler lines (None results
    left out; _sched_captures)."""
    out = []
    for d, _, _, pid, reader in _sched_captures(caps):
        k = scan_trace(capture_trace(d), lambda lines: profile(lines, pid, reader))
        if k is not None:
            out.append(k)
    return out


def _write_cycle_rows(name: str, caps: list[tuple[Path, dict]], sim_trace: Path) -> list[dict]:
    segments = segments_per_write(caps[0][1])
    kernel = _kernel_profiles(caps, lambda lines, pid, reader: None if reader is None
                              else schedtrace.write_cycles(lines, pid, reader, segments))
    if not kernel:
        return []
    with sim_trace.open() as f:
        model = schedtrace.write_cycles(f, SIM_SENDER_PID, SIM_READER_PID, segments)
    rows: list[dict] = []
    for metric, key, digits in _WRITE_ROWS:
        _info_row(rows, name, metric, [k[key] for k in kernel], model[key] if model else None, digits)
    return rows


def kernel_fresh_page_costs(caps: list[tuple[Path, dict]], fpp: float) -> list[float]:
    """schedtrace.fresh_page_cost's extra us per page for each capture with scheduler lines that
    gives one (its own pools; `fpp` frames a page)."""
    kv = []
    for d, meta, src, pid, _ in _sched_captures(caps):
        pools = _get(meta, "our_pools", src, "list", None, null_ok=True) or None
        for i, x in enumerate(pools or []):
            if not isinstance(x, str):
                raise InputError(f"{src}: at $.our_pools[{i}]: expected a string (a page_pool id), "
                                 f"got {strict_json.type_name(x)}")
        k = scan_trace(capture_trace(d), lambda lines: schedtrace.fresh_page_cost(lines, pid, fpp, pools))
        if k is not None:
            kv.append(k["excess_us_per_page"])
    return kv


def _fresh_page_rows(name: str, caps: list[tuple[Path, dict]], sim_trace: Path) -> list[dict]:
    """The sender's extra time per page its pool never held before (schedtrace.fresh_page_cost),
    each capture with scheduler lines (its own pools) against the model's trace: what the VM
    charges for memory it has not backed, and what the model charges (veth.fresh_page_ns)."""
    fpp = frames_per_page(caps[0][1], str(caps[0][0] / "meta.json"))
    kv = kernel_fresh_page_costs(caps, fpp)
    if not kv:
        return []
    with sim_trace.open() as f:
        model = schedtrace.fresh_page_cost(f, SIM_SENDER_PID, fpp)
    rows: list[dict] = []
    _info_row(rows, name, "sender.fresh_page_us", kv, model["excess_us_per_page"] if model else None, 2)
    return rows


def sender_rows(name: str, caps: list[tuple[Path, dict]], sim_trace: Path) -> list[dict]:
    """Unpaced UDP, kernel (each capture with scheduler lines) against the model's trace, reported
    and not gated: the sender's time per datagram while it runs alone (the kernel's changes from
    one capture session to the next, and the model has one set of costs, so this says how fast the
    machine was when the capture was taken); on one CPU, also how its turns went: one datagram
    each while it ping-pongs with the reader, and the runs in which it sent on while the reader
    waited (each ends at a scheduler tick), which decide how many pages the socket holds.
    TCP on one CPU: the cycles of one write and the read of it (schedtrace.write_cycles), whose
    lengths say whether the reader stays behind the sender in vruntime and keeps preempting it.
    On one CPU and unpaced, UDP or TCP: the sender's extra time per page the pool never held
    before (_fresh_page_rows)."""
    params = caps[0][1].get("params") or {}
    same_cpu = params.get("sender_cpu") == params.get("receiver_cpu")
    fresh = _fresh_page_rows(name, caps, sim_trace) if same_cpu and not params.get("rate") else []
    if params.get("proto", "udp") == "tcp" and same_cpu:
        return _write_cycle_rows(name, caps, sim_trace) + fresh
    if params.get("proto", "udp") != "udp" or params.get("rate"):
        return []
    kernel = _kernel_profiles(caps, schedtrace.sender_profile)
    if not kernel:
        return fresh
    with sim_trace.open() as f:
        model = schedtrace.sender_profile(f, SIM_SENDER_PID, SIM_READER_PID)
    rows: list[dict] = []
    sim_alone = model["alone"]
    _info_row(rows, name, "sender.alone_us_per_datagram",
              [round(k["alone"]["us_per_packet"], 2) for k in kernel if k["alone"]],
              round(sim_alone["us_per_packet"], 2) if sim_alone else None, 2)
    if same_cpu:
        for metric, key, digits in _TURN_ROWS:
            kv = [k["turns"][key] for k in kernel if k["turns"] and k["turns"].get(key) is not None]
            _info_row(rows, name, metric, kv, model["turns"].get(key) if model["turns"] else None, digits)
    return rows + fresh


def compare_group(name: str, kernel: list[Metrics], sim: Metrics, sim_ok: bool,
                  sim_range: dict[str, list[int]] | None = None) -> list[dict]:
    """Rows (metric, kernel, ppsim, error, limit, ok) for one group of repeats. `sim_range`: the
    range over the seeded runs, per metric, when `sim` is the median one."""
    rows = []

    def row(metric, kvals, sval, limit, ok):
        # A gated check with nothing on the kernel side fails: it must compare something.
        kmed = statistics.median(kvals) if kvals else None
        rows.append({"group": name, "metric": metric, "kernel_median": kmed,
                     "kernel_range": [min(kvals), max(kvals)] if kvals else None,
                     "ppsim": sval, "error": None if kmed is None or sval is None else sval - kmed,
                     "limit": limit, "ok": bool(kvals) and bool(ok), "gated": True})

    def within(v, kv, lim):
        # Within the tolerance of the band the kernel's repeats span (a single value when they
        # agree): where a scheduler tick decides how long the sender runs alone, repeats of one
        # group differ by several bursts, and the model's median is judged against that spread.
        return v is not None and bool(kv) and min(kv) - lim <= v <= max(kv) + lim

    for metric in ("holds", "releases"):
        kv = [getattr(m, metric) for m in kernel]
        med = statistics.median(kv)
        lim = tolerance(med)
        row(metric, kv, getattr(sim, metric), lim, within(getattr(sim, metric), kv, lim))
        if sim_range and metric in sim_range:
            rows[-1]["ppsim_range"] = sim_range[metric]
    kb = sorted({b for m in kernel for b in m.burst_sizes})
    sb = sorted(set(sim.burst_sizes))
    # The bulk refill's size (the largest burst) must match, and every simulated size must occur in
    # the kernel. The kernel also shows partial bursts that add up to 64 (26 + 38, 5 + 59) when
    # the page allocator's per-CPU list runs short in the middle of a bulk allocation; the model's
    # allocator has no per-CPU lists.
    rows.append({"group": name, "metric": "hold_burst_sizes", "kernel_median": kb, "kernel_range": None,
                 "ppsim": sb, "error": None, "limit": "bulk size",
                 "ok": bool(kb) and bool(sb) and max(sb) == max(kb) and set(sb) <= set(kb), "gated": True})
    kin = [m.first_inflight for m in kernel if m.first_inflight is not None]
    sin = sim.first_inflight
    row("inflight_at_first_release", kin, sin, 4, within(sin, kin, 4))
    for key in ("hold", "release"):
        kv = [m.releases_at[0][key] for m in kernel if m.releases_at]
        sv = sim.releases_at[0][key] if sim.releases_at else None
        med = statistics.median(kv) if kv else 0
        row(f"first_release.{key}", kv, sv, tolerance(med), within(sv, kv, tolerance(med)))
    kfin = [m.releases_at[-1]["inflight"] for m in kernel if m.releases_at]
    sfin = sim.releases_at[-1]["inflight"] if sim.releases_at else None
    row("final_release.inflight", kfin, sfin, 0, bool(kfin) and sfin == 0 and all(v == 0 for v in kfin))
    # Holds against packets: at every packet count where a curve steps, the simulated curve must
    # be within the holds tolerance of the kernel's median curve (captures whose thinned napi_poll
    # lines do not place every hold are left out of this one check).
    exact = [m for m in kernel if m.curve_exact]
    if not exact:
        rows.append({"group": name, "metric": "holds_vs_packets.max_gap", "kernel_median": None, "kernel_range": None,
                     "ppsim": None, "error": None, "limit": "n/a", "ok": True, "gated": False,
                     "note": "no capture in this group has every napi_poll line before its last hold"})
        rows.append({"group": name, "metric": "invariants", "kernel_median": None, "kernel_range": None,
                     "ppsim": "ok" if sim_ok else "VIOLATED", "error": None, "limit": None, "ok": sim_ok, "gated": True})
        return rows
    # The distance is to the band the kernel's repeats span at that packet count (a single
    # capture's curve is its band): where the repeats disagree, e.g. when a scheduler tick decides
    # when a same-CPU reader runs, any curve inside their spread is as good as one of them.
    points = sorted({p for m in exact for p, _ in m.holds_vs_packets} | {p for p, _ in sim.holds_vs_packets})
    worst, worst_at = 0, 0
    for p in points:
        ks = [holds_at(m.holds_vs_packets, p) for m in exact]
        s = holds_at(sim.holds_vs_packets, p)
        d = max(0, min(ks) - s, s - max(ks))
        if d > worst:
            worst, worst_at = d, p
    # Gated: a model that reaches the right total by the wrong path fails. The largest gap between
    # the curves must stay within max(15 % of the holds, one 64-page burst).
    lim = curve_tolerance(statistics.median([m.holds for m in kernel]))
    rows.append({"group": name, "metric": "holds_vs_packets.max_gap", "kernel_median": 0, "kernel_range": None,
                 "ppsim": worst, "error": worst, "limit": lim, "ok": worst <= lim, "gated": True,
                 "at_packets": worst_at})
    rows.append({"group": name, "metric": "invariants", "kernel_median": None, "kernel_range": None,
                 "ppsim": "ok" if sim_ok else "VIOLATED", "error": None, "limit": None, "ok": sim_ok, "gated": True})
    return rows


def group_captures(dirs: list[Path]) -> dict[str, list[tuple[Path, dict]]]:
    """Captures by `group`; repeats must share every workload parameter."""
    groups: dict[str, list[tuple[Path, dict]]] = {}
    for d in dirs:
        meta = load_meta(d)
        src = str(Path(d) / "meta.json")
        if not capture_trace(d).is_file():
            raise InputError(f"{d}: no trace.txt (or trace.txt.gz)")
        for k in ("group", "name"):
            _get(meta, k, src, "str", None, null_ok=True)
        _get(meta, "params", src, "dict", None, null_ok=True)
        _get(meta, "trace_trim", src, "dict", None, null_ok=True)
        groups.setdefault(meta.get("group") or meta.get("name") or Path(d).name, []).append((Path(d), meta))
    for name, caps in groups.items():
        ref_dir, ref = caps[0]
        want = ref.get("params") or {}
        for d, meta in caps[1:]:
            got = meta.get("params") or {}
            diff = workload_diff(want, got)
            if diff:
                raise InputError(f"{d / 'meta.json'}: at $.params.{diff[0]}: group {name!r} repeats must share "
                                 f"workload parameters, but {ref_dir} has {want.get(diff[0])!r:.60} and this has "
                                 f"{got.get(diff[0])!r:.60}")
    return groups


def _thinned(meta: dict, src: str) -> bool:
    """The capture kept only some of its napi_poll lines (meta.json trace_trim)."""
    trim = meta.get("trace_trim") or {}
    removed = _get(trim, "napi_poll_lines_removed", src, "number", 0, null_ok=True) or 0
    return trim.get("mode") == "context" and removed > 0


def validate(dirs: list[Path], workdir: Path | None = None, seed: int | None = None,
             overrides: dict | None = None) -> dict:
    """Replay every capture group and compare; returns {"rows": [...], "groups": {...}, "ok": bool,
    "limits": [...]}. `overrides` apply to every replay (run budgets: a replay a budget stopped
    is listed in "limits" and fails its group)."""
    groups = group_captures(dirs)
    split = split_of_groups()
    rows, detail, limits = [], {}, []
    tmp = tempfile.TemporaryDirectory() if workdir is None else None
    base = Path(tmp.name) if tmp else Path(workdir)
    base.mkdir(parents=True, exist_ok=True)
    try:
        for name, caps in sorted(groups.items()):
            kernel = []
            for d, meta in caps:
                thinned = _thinned(meta, str(d / "meta.json"))
                kernel.append(metrics(capture_trace(d), kept_first_polls=100 if thinned else None))
            d0, meta0 = caps[0]
            src = str(d0 / "meta.json")
            # Several seeded runs, as the kernel side has several repeats: the seed moves what the
            # capture leaves to chance (the scheduler tick's phase). The run with the median holds
            # stands for the model; the others give its range. The group name comes from meta.json:
            # one safe file name, inside the work directory.
            safe = re.sub(r"[^\w.+-]+", "_", name).lstrip(".")
            runs = []
            first = seed if seed is not None else int(scenario_from_meta(meta0, src).get("sim", {}).get("seed", 1))
            # TCP: the sender starts as long after the connection as the captures' did (the
            # caller's overrides win).
            start_us = measured_start_us(caps)
            group_ov = dict({"veth.start_us": start_us} if start_us is not None else {}, **(overrides or {}))
            for i in range(SEEDED_RUNS):
                sim_trace = base / f"{safe}.seed{i}.trace.txt"
                sc, res = simulate(meta0, src, sim_trace, first + i, group_ov or None)
                try:
                    runs.append((metrics(sim_trace), res, sim_trace))
                except InputError:
                    raise InputError(f"{src} (replayed as a veth scenario): the simulated run produced no page_pool "
                                     "events to compare") from None
            order = sorted(range(len(runs)), key=lambda i: (runs[i][0].holds, i))
            sim, res, mid_trace = runs[order[len(order) // 2]]
            mid_trace.replace(base / f"{safe}.trace.txt")
            for _, _, t in runs:
                t.unlink(missing_ok=True)
            grows = compare_group(name, kernel, sim, all(r.ok for _, r, _ in runs),
                                  sim_range={"holds": [min(m.holds for m, _, _ in runs), max(m.holds for m, _, _ in runs)],
                                             "releases": [min(m.releases for m, _, _ in runs),
                                                          max(m.releases for m, _, _ in runs)]})
            grows += sched_rows(name, [m for _, m in caps], res.stats)
            grows += sender_rows(name, caps, base / f"{safe}.trace.txt")
            for _, r, _ in runs:
                if r.limit:
                    limits.append({"group": name, **r.limit})
                    grows.append({"group": name, "metric": "run_limit", "kernel_median": None, "kernel_range": None,
                                  "ppsim": r.limit["limit"], "error": None, "limit": None, "ok": False, "gated": True,
                                  "note": r.limit["message"]})
                    break
            role = split.get(name, "validation")
            for r in grows:
                r["set"] = role
            rows += grows
            if "veth.start_us" in group_ov:
                sc["veth"]["start_us"] = group_ov["veth.start_us"]  # as replayed
            detail[name] = {"captures": [str(d) for d, _ in caps], "scenario": sc, "set": role,
                            "kernel": [m.__dict__ for m in kernel], "ppsim": sim.__dict__}
    finally:
        if tmp:
            tmp.cleanup()
    # Deviations the project knows and has written down (traces/known_deviations.json): still
    # reported as failing, but they do not fail the run; one that passes again is an error, so
    # the list cannot go stale.
    known = load_known_deviations()
    stale = set(known)
    for r in rows:
        key = (r["group"], r["metric"])
        if key in known:
            stale.discard(key)
            if not r["ok"]:
                r["known"] = known[key]
    for g, m in sorted(stale):
        if g in detail:
            rows.append({"group": g, "metric": m, "kernel_median": None, "kernel_range": None, "ppsim": None,
                         "error": None, "limit": "known", "ok": False, "gated": True, "set": detail[g]["set"],
                         "note": "listed in traces/known_deviations.json but within tolerance now: remove it"})
    ok = all(r["ok"] or "known" in r for r in rows if r["gated"])
    return {"rows": rows, "groups": detail, "ok": ok, "limits": limits}


KNOWN_FILE = REPO / "traces" / "known_deviations.json"


def load_known_deviations(path: Path = KNOWN_FILE) -> dict[tuple[str, str], str]:
    """{(group, metric): why} from traces/known_deviations.json."""
    if not Path(path).exists():
        return {}
    data = strict_json.load_file(path, what="known deviations file")
    items = data.get("deviations") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise InputError(f"{path}: at $.deviations: expected a list")
    out = {}
    for i, d in enumerate(items):
        if not (isinstance(d, dict) and all(isinstance(d.get(k), str) for k in ("group", "metric", "why"))):
            raise InputError(f"{path}: at $.deviations[{i}]: expected an object with string group, metric and why")
        out[(d["group"], d["metric"])] = d["why"]
    return out
