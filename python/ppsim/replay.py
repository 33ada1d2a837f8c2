"""Replay a kernel capture in the simulator and compare the two.

`scenario_from_meta(meta)` turns a capture's meta.json into a veth scenario: the workload (what
was sent, by whom, on which CPUs, at what rate, into which receive buffer, when the reader ran,
when the veth was deleted) comes from meta.json; the costs come from traces/replay_defaults.json,
one set for every capture. `metrics(trace)` reduces a trace (kernel or simulated: same parser) to
what is compared; `validate(dirs)` does both for every capture and checks the tolerances.
"""
from __future__ import annotations

import copy
import json
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ppsim._native import REPO
from ppsim.errors import InputError
from ppsim.trace import NapiPoll, PageHold, read_trace

DEFAULTS_FILE = REPO / "traces" / "replay_defaults.json"


def _merge(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if k.startswith("_"):
            continue
        if isinstance(v, dict):
            _merge(dst.setdefault(k, {}), v)
        else:
            dst[k] = v


def _need(meta: dict, path: str, src: str):
    node = meta
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise InputError(f"{src}: missing {path} (expected a ppsim capture meta.json)")
        node = node[part]
    return node


def load_meta(capture_dir: Path) -> dict:
    f = Path(capture_dir) / "meta.json"
    try:
        meta = json.loads(f.read_text())
    except FileNotFoundError:
        raise InputError(f"{capture_dir}: no meta.json (not a capture directory)") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{f}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not str(meta.get("format", "")).startswith("ppsim-capture/"):
        raise InputError(f"{f}: at $.format: expected \"ppsim-capture/1\", got {meta.get('format')!r}")
    return meta


def _phase(meta: dict, name: str) -> dict | None:
    """The first phase marker called `name` (ts_ns, cpu, task), or None."""
    for ph in meta.get("replay", {}).get("phases", []):
        if ph.get("phase") == name and "ts_ns" in ph:
            return ph
    return None


def scenario_from_meta(meta: dict, src: str = "meta.json") -> dict:
    """The veth scenario that reproduces a capture's workload."""
    r = _need(meta, "replay", src)
    proto = _need(meta, "replay.proto", src)
    if proto not in ("udp", "tcp"):
        raise InputError(f"{src}: at $.replay.proto: expected \"udp\" or \"tcp\", got {proto!r}")
    cpus = _need(meta, "machine.online_cpus", src)
    hz = int((meta.get("kernel", {}).get("config", {}) or {}).get("CONFIG_HZ") or 250)
    payload = int(_need(meta, "replay.payload_bytes", src))
    if proto == "tcp":
        total = int(_need(meta, "sender.bytes", src) or 0)
        sends = max(1, -(-total // payload))
    else:
        sends = int(_need(meta, "replay.packets_sent", src))
    sender_done, delete = _phase(meta, "sender done"), _phase(meta, "delete")
    if sender_done is None or delete is None:
        raise InputError(f"{src}: at $.replay.phases: expected \"sender done\" and \"delete\" markers")
    gap_us = (int(delete["ts_ns"]) - int(sender_done["ts_ns"])) / 1e3
    delete_cpu = int(delete.get("cpu", 0))
    sender_cpu = int(_need(meta, "replay.sender_cpu", src))
    receiver_cpu = int(_need(meta, "replay.receiver_cpu", src))
    sysctl = meta.get("sysctl", {})
    tcp_rmem_default = int(str(sysctl.get("net.ipv4.tcp_rmem", "4096 131072 6291456")).split()[1])
    tcp_wmem_max = int(str(sysctl.get("net.ipv4.tcp_wmem", "4096 16384 4194304")).split()[2])
    sc = {
        "name": meta.get("name", "capture"),
        "description": f"replay of capture {meta.get('name')} (group {meta.get('group')})",
        "workload": "veth",
        "sim": {"retry_limit": 30},
        # EEVDF: base slice 0.7 ms (since 6.15) x (1 + log2(min(ncpus, 8))) (SCHED_TUNABLESCALING_LOG),
        # ended at a tick.
        "cpus": {"count": len(cpus), "sched_slice_us": 700.0 * (1 + min(len(cpus), 8).bit_length() - 1),
                 "sched_tick_us": 1e6 / hz},
        "page_pool": {"pool_size_pages": int(r.get("pool_size", 256)), "order": 0, "dma_map": False,
                      "dma_sync": False, "napi_bound": False},
        "stack": {"mode": "socket", "reader_cpu": receiver_cpu, "defer_free": True,
                  "defer_max_skbs": int(r.get("skb_defer_max", 64))},
        "veth": {
            "proto": proto,
            "sends": int(sends),
            "payload_bytes": payload,
            "mtu_bytes": int(r.get("mtu", 1500)),
            "sender_cpu": sender_cpu,
            "receiver_cpu": receiver_cpu,
            "rate_pps": float(r.get("rate_pps") or 0),
            "reader_delay_us": float(r.get("reader_delay_ms") or 0) * 1000.0,
            "reader_hold_us": float(r.get("reader_hold_ms") or 0) * 1000.0,
            "delete_after_sender_us": max(0.0, gap_us),
            "xdp": r.get("xdp_action", "pass"),
            "delete_cpu": delete_cpu,
            "napi_budget": int(r.get("napi_budget", 64)),
            "tcp_window_bytes": tcp_rmem_default,
            "tcp_sndbuf_bytes": tcp_wmem_max,
            "gro": str(((meta.get("devices", {}).get("receiver", {}) or {}).get("offloads", {}) or {})
                       .get("generic-receive-offload", "off")).startswith("on"),
        },
    }
    if proto == "udp":
        sc["stack"]["rcvbuf_bytes"] = int(_need(meta, "replay.rcvbuf_effective", src))
    defaults = json.loads(DEFAULTS_FILE.read_text())
    _merge(sc, defaults)
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


def simulate(meta: dict, src: str, trace_out: Path, seed: int | None = None):
    import ppsim

    sc = scenario_from_meta(meta, src)
    r = ppsim.run(sc, seed=seed, trace=trace_out)
    return sc, r


def tolerance(kernel_median: float) -> float:
    """holds and releases: within 10% or one 64-page burst, whichever is larger."""
    return max(0.1 * kernel_median, 64.0)


def compare_group(name: str, kernel: list[Metrics], sim: Metrics, sim_ok: bool) -> list[dict]:
    """Rows (metric, kernel, ppsim, error, limit, ok) for one group of repeats."""
    rows = []

    def row(metric, kvals, sval, limit, ok):
        # A gated check with nothing on the kernel side fails: it must compare something.
        kmed = statistics.median(kvals) if kvals else None
        rows.append({"group": name, "metric": metric, "kernel_median": kmed,
                     "kernel_range": [min(kvals), max(kvals)] if kvals else None,
                     "ppsim": sval, "error": None if kmed is None or sval is None else sval - kmed,
                     "limit": limit, "ok": bool(kvals) and bool(ok), "gated": True})

    for metric in ("holds", "releases"):
        kv = [getattr(m, metric) for m in kernel]
        med = statistics.median(kv)
        lim = tolerance(med)
        row(metric, kv, getattr(sim, metric), lim, abs(getattr(sim, metric) - med) <= lim)
    kb = sorted({b for m in kernel for b in m.burst_sizes})
    sb = sorted(set(sim.burst_sizes))
    rows.append({"group": name, "metric": "hold_burst_sizes", "kernel_median": kb, "kernel_range": None,
                 "ppsim": sb, "error": None, "limit": "exact", "ok": bool(kb) and sb == kb, "gated": True})
    kin = [m.first_inflight for m in kernel if m.first_inflight is not None]
    sin = sim.first_inflight
    row("inflight_at_first_release", kin, sin, 4, kin and sin is not None and abs(sin - statistics.median(kin)) <= 4)
    for key in ("hold", "release"):
        kv = [m.releases_at[0][key] for m in kernel if m.releases_at]
        sv = sim.releases_at[0][key] if sim.releases_at else None
        med = statistics.median(kv) if kv else 0
        row(f"first_release.{key}", kv, sv, tolerance(med), sv is not None and abs(sv - med) <= tolerance(med))
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
    points = sorted({p for m in exact for p, _ in m.holds_vs_packets} | {p for p, _ in sim.holds_vs_packets})
    worst, worst_at = 0, 0
    for p in points:
        kmed = statistics.median([holds_at(m.holds_vs_packets, p) for m in exact])
        d = abs(holds_at(sim.holds_vs_packets, p) - kmed)
        if d > worst:
            worst, worst_at = d, p
    # Reported, not gated: the issue sets tolerances for bursts, holds, releases and inflight, not
    # for the shape of this curve (same-CPU runs differ from each other by more than a burst).
    lim = tolerance(statistics.median([m.holds for m in kernel]))
    rows.append({"group": name, "metric": "holds_vs_packets.max_gap", "kernel_median": 0, "kernel_range": None,
                 "ppsim": worst, "error": worst, "limit": "info", "ok": True, "gated": False,
                 "within_holds_tolerance": worst <= lim, "at_packets": worst_at})
    rows.append({"group": name, "metric": "invariants", "kernel_median": None, "kernel_range": None,
                 "ppsim": "ok" if sim_ok else "VIOLATED", "error": None, "limit": None, "ok": sim_ok, "gated": True})
    return rows


# Capture parameters that may differ between repeats of one group (they do not change the workload).
_PER_CAPTURE = {"repeat", "out", "name", "force", "napi_lines", "max_load", "load_wait_s", "buffer_kb",
                "destroy_timeout_s", "timeout_s"}


def group_captures(dirs: list[Path]) -> dict[str, list[tuple[Path, dict]]]:
    """Captures by `group`; repeats must share every workload parameter."""
    groups: dict[str, list[tuple[Path, dict]]] = {}
    for d in dirs:
        meta = load_meta(d)
        if not (Path(d) / "trace.txt").is_file():
            raise InputError(f"{d}: no trace.txt")
        groups.setdefault(meta.get("group") or meta.get("name") or Path(d).name, []).append((Path(d), meta))
    for name, caps in groups.items():
        ref_dir, ref = caps[0]
        want = {k: v for k, v in (ref.get("params") or {}).items() if k not in _PER_CAPTURE}
        for d, meta in caps[1:]:
            got = {k: v for k, v in (meta.get("params") or {}).items() if k not in _PER_CAPTURE}
            diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
            if diff:
                raise InputError(f"{d / 'meta.json'}: at $.params.{diff[0]}: group {name!r} repeats must share "
                                 f"workload parameters, but {ref_dir} has {want.get(diff[0])!r} and this has "
                                 f"{got.get(diff[0])!r}")
    return groups


def validate(dirs: list[Path], workdir: Path | None = None, seed: int | None = None) -> dict:
    """Replay every capture group and compare; returns {"rows": [...], "groups": {...}, "ok": bool}."""
    groups = group_captures(dirs)
    rows, detail = [], {}
    tmp = tempfile.TemporaryDirectory() if workdir is None else None
    base = Path(tmp.name) if tmp else Path(workdir)
    base.mkdir(parents=True, exist_ok=True)
    try:
        for name, caps in sorted(groups.items()):
            kernel = []
            for d, meta in caps:
                trim = meta.get("trace_trim") or {}
                thinned = trim.get("mode") == "context" and trim.get("napi_poll_lines_removed", 0) > 0
                kernel.append(metrics(d / "trace.txt", kept_first_polls=100 if thinned else None))
            d0, meta0 = caps[0]
            sim_trace = base / f"{name}.trace.txt"
            sc, res = simulate(meta0, str(d0 / "meta.json"), sim_trace, seed)
            sim = metrics(sim_trace)
            rows += compare_group(name, kernel, sim, res.ok)
            detail[name] = {"captures": [str(d) for d, _ in caps], "scenario": sc,
                            "kernel": [m.__dict__ for m in kernel], "ppsim": sim.__dict__}
    finally:
        if tmp:
            tmp.cleanup()
    return {"rows": rows, "groups": detail, "ok": all(r["ok"] for r in rows if r["gated"])}
