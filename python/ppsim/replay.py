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
import re
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ppsim import strict_json
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
    tcp_rmem_default = _sysctl_field(meta, "net.ipv4.tcp_rmem", 1, "4096 131072 6291456", src)
    tcp_wmem_max = _sysctl_field(meta, "net.ipv4.tcp_wmem", 2, "4096 16384 4194304", src)

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
        # EEVDF: base slice 0.7 ms (since 6.15) x (1 + log2(min(ncpus, 8))) (SCHED_TUNABLESCALING_LOG),
        # ended at a tick.
        "cpus": {"count": len(cpus), "sched_slice_us": 700.0 * (1 + min(len(cpus), 8).bit_length() - 1),
                 "sched_tick_us": 1e6 / hz},
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
            "tcp_window_bytes": tcp_rmem_default,
            "tcp_sndbuf_bytes": tcp_wmem_max,
            "gro": gro.startswith("on"),
        },
    }
    if proto == "udp":
        sc["stack"]["rcvbuf_bytes"] = _need(meta, "replay.rcvbuf_effective", src, "int")
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
        src = str(Path(d) / "meta.json")
        if not (Path(d) / "trace.txt").is_file():
            raise InputError(f"{d}: no trace.txt")
        for k in ("group", "name"):
            _get(meta, k, src, "str", None, null_ok=True)
        _get(meta, "params", src, "dict", None, null_ok=True)
        _get(meta, "trace_trim", src, "dict", None, null_ok=True)
        groups.setdefault(meta.get("group") or meta.get("name") or Path(d).name, []).append((Path(d), meta))
    for name, caps in groups.items():
        ref_dir, ref = caps[0]
        want = {k: v for k, v in (ref.get("params") or {}).items() if k not in _PER_CAPTURE}
        for d, meta in caps[1:]:
            got = {k: v for k, v in (meta.get("params") or {}).items() if k not in _PER_CAPTURE}
            diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
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
    rows, detail, limits = [], {}, []
    tmp = tempfile.TemporaryDirectory() if workdir is None else None
    base = Path(tmp.name) if tmp else Path(workdir)
    base.mkdir(parents=True, exist_ok=True)
    try:
        for name, caps in sorted(groups.items()):
            kernel = []
            for d, meta in caps:
                thinned = _thinned(meta, str(d / "meta.json"))
                kernel.append(metrics(d / "trace.txt", kept_first_polls=100 if thinned else None))
            d0, meta0 = caps[0]
            src = str(d0 / "meta.json")
            # The group name comes from meta.json: one safe file name, inside the work directory.
            sim_trace = base / (re.sub(r"[^\w.+-]+", "_", name).lstrip(".") + ".trace.txt")
            sc, res = simulate(meta0, src, sim_trace, seed, overrides)
            try:
                sim = metrics(sim_trace)
            except InputError:
                raise InputError(f"{src} (replayed as a veth scenario): the simulated run produced no page_pool "
                                 "events to compare") from None
            rows += compare_group(name, kernel, sim, res.ok)
            if res.limit:
                limits.append({"group": name, **res.limit})
                rows.append({"group": name, "metric": "run_limit", "kernel_median": None, "kernel_range": None,
                             "ppsim": res.limit["limit"], "error": None, "limit": None, "ok": False, "gated": True,
                             "note": res.limit["message"]})
            detail[name] = {"captures": [str(d) for d, _ in caps], "scenario": sc,
                            "kernel": [m.__dict__ for m in kernel], "ppsim": sim.__dict__}
    finally:
        if tmp:
            tmp.cleanup()
    return {"rows": rows, "groups": detail, "ok": all(r["ok"] for r in rows if r["gated"]), "limits": limits}
