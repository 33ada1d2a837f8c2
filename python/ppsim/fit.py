"""Fit the replay's costs (traces/replay_defaults.json) to the fit set of the captures.

Only groups the fixed split (replay.split_of_groups, traces/README.md) marks "fit" are used;
validation groups are read for nothing. Each figure is a least-squares fit of what the kernel
measured against what the model charges for the same work, so the model's own structure (which
costs a datagram, a read call, a turn on the CPU pays) defines what is fitted:

0. Measured, not fitted: what the first copy into a pool page the run never held costs the
   kernel's sender (schedtrace.fresh_page_cost), the median over the unpaced same-CPU captures:
   veth.fresh_page_ns.
1. The sender's time per UDP datagram: across CPUs, kernel duration / datagrams against the
   model's sender runtime / datagrams; on one CPU, its time per datagram while it runs alone
   (schedtrace.sender_profile), kernel against model, one row per group. The residuals,
   regressed on [1, KiB copied, across CPUs, KiB copied into pages the other CPU read last],
   move the per-datagram costs (veth.send_ns, xmit_ns, poll_ns, cow_ns, xdp_ns,
   stack.deliver_ns, in their current proportions: the split is not observable), the local copy
   per KiB (veth.copy_ns_per_kib), the free of an skb the reader deferred to the sender's CPU
   (stack.free_ns) and the remote copy (cpus.remote_copy_ns_per_kib), each bounded at 0.
2. TCP: the sender's time per write against segments per write (cross-CPU): the write call's
   cost and TCP's transmit and receive per segment.
3. What a same-CPU turn costs, from the shapes of the turns in same-CPU captures with scheduler
   lines (`--sched`), measured the same way on the model's replay of each: the sender's
   one-datagram turn, the reader's short read (one datagram, or one write just sent) and its
   read of a backlog, per packet (schedtrace.read_shapes). Each is a known count of context
   switches, reader wake-ups, read calls, skbs and KiB copied, so the residuals give
   cpus.context_switch_ns, stack.reader_wake_ns, stack.reader_call_ns,
   stack.reader_per_skb_ns and stack.reader_copy_ns_per_kib by least squares, each bounded at
   0, without the rows more than three median absolute deviations off a first fit.
4. The reader's lag when the traffic starts: in the captures the reader has run its setup and
   sleeps in poll() when the first datagram wakes it, and in most same-CPU captures it preempts
   the sender within 70-200 us. The value from a grid under which the fit set's same-CPU groups
   validate best over LAG_SEEDS (stack.reader_initial_lag_us).

Steps 1 and 3 take three passes each: the model is nearly, not exactly, linear in these costs.
One run of the fit is one step: each cost is fitted with the others at the values the defaults
file holds when it starts.

`./ppsim fit traces/*/` prints the fit and the residual per group; `--write` updates
traces/replay_defaults.json (recording the groups used).
"""
from __future__ import annotations

import copy
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from ppsim.capture import ETH_HLEN, IPV4_HLEN, TCP_TS_HLEN, UDP_HLEN
from ppsim.errors import InputError
from ppsim.replay import DEFAULTS_FILE, connect_gap_us, group_captures, measured_start_us, scenario_from_meta, split_of_groups
from ppsim.replay import (READER_BUFFER_BYTES as READ_BYTES, SIM_READER_PID, SIM_SENDER_PID, _get, _kernel_profiles,
                          frames_per_page, kernel_fresh_page_costs)
from ppsim.replay import segments_per_write as _segments
from ppsim import schedtrace
from ppsim.trace import capture_trace, scan_trace

SENDER_COSTS = [("veth", "send_ns"), ("veth", "xmit_ns"), ("veth", "poll_ns"), ("veth", "cow_ns"), ("veth", "xdp_ns"),
                ("stack", "deliver_ns")]
UDP_HEADERS = ETH_HLEN + IPV4_HLEN + UDP_HLEN
TCP_HEADERS = ETH_HLEN + IPV4_HLEN + TCP_TS_HLEN  # what a segment's skb holds beyond its payload
SEGMENTS_PER_COALESCED_SKB = 18  # tcp_try_coalesce: the tail's head and up to MAX_SKB_FRAGS (17) frags
LAG_GRID_US = [0, 25, 50, 100, 150, 200, 300, 400, 600]
# The seeds the lag is judged at, as `ppsim validate --seeds 1,11,21,31` reports: one seed picks a
# lag by chance (docs/replay.md).
LAG_SEEDS = (1, 11, 21, 31)


@dataclass
class Obs:
    group: str
    capture: str
    meta: dict


def _lstsq(rows: list[list[float]], ys: list[float]) -> list[float]:
    import numpy as np

    a = np.array(rows, dtype=float)
    sol, *_ = np.linalg.lstsq(a, np.array(ys, dtype=float), rcond=None)
    return [float(x) for x in sol]


def _bounded_lstsq(rows: list[list[float]], ys: list[float], lower: list[float | None]) -> list[float]:
    """Least squares with x[i] >= lower[i] where lower[i] is not None (the change of a cost that
    cannot go below 0), the others free: the best feasible fit over which bounds are active."""
    import itertools

    import numpy as np

    a, y = np.array(rows, dtype=float), np.array(ys, dtype=float)
    n = a.shape[1]
    bounded = [i for i in range(n) if lower[i] is not None]
    best, best_err = None, None
    for k in range(len(bounded) + 1):
        for fixed in itertools.combinations(bounded, k):  # these sit at their bound
            x = np.zeros(n)
            for i in fixed:
                x[i] = lower[i]
            cols = [i for i in range(n) if i not in fixed]
            rest = y - a @ x
            if cols:
                sol, *_ = np.linalg.lstsq(a[:, cols], rest, rcond=None)
                x[cols] = sol
            if any(lower[i] is not None and x[i] < lower[i] - 1e-9 for i in range(n)):
                continue
            err = float(np.sum((a @ x - y) ** 2))
            if best_err is None or err < best_err - 1e-9:
                best, best_err = x, err
    return [float(v) for v in best]


def _robust_rows(rows: list[list[float]], ys: list[float], lower: list[float | None]) -> tuple[list, list]:
    """The rows without those whose residual after a first fit lies more than three median
    absolute deviations from the median (a capture session whose machine ran slow). With fewer
    than twice as many rows as unknowns every row is kept."""
    import numpy as np

    if len(rows) < 2 * len(lower):
        return rows, ys
    x = np.array(_bounded_lstsq(rows, ys, lower))
    r = np.array(ys) - np.array(rows) @ x
    med = float(np.median(r))
    # A floor for a fit that is exact but for rounding: 1e-6 of the residuals' scale.
    mad = max(float(np.median(np.abs(r - med))), 1e-6 * float(np.max(np.abs(ys))), 1e-12)
    keep = [i for i in range(len(ys)) if abs(r[i] - med) <= 3 * mad]
    return [rows[i] for i in keep], [ys[i] for i in keep]


def _solve(rows: list[list[float]], ys: list[float], lower: list[float | None], what: str) -> tuple[list[float], int]:
    """_bounded_lstsq over _robust_rows: (the changes, the rows left out). An InputError when a
    figure is not finite (a capture whose trace gives no sensible time)."""
    import numpy as np

    if not np.all(np.isfinite(np.array(rows, dtype=float))) or not np.all(np.isfinite(np.array(ys, dtype=float))):
        raise InputError(f"ppsim fit: {what}: a kernel or model figure is not finite")
    kept, kys = _robust_rows(rows, ys, lower)
    return _bounded_lstsq(kept, kys, lower), len(rows) - len(kept)


def _run(meta: dict, src: str, defaults: dict, overrides: dict | None = None, seed: int = 1, trace: Path | None = None,
         start_us: float | None = None):
    """One replay of a capture: a TCP sender starts `start_us` after the connection (default: this
    capture's own gap, replay.connect_gap_us; `ppsim validate` uses its group's median)."""
    import ppsim

    sc = scenario_from_meta(meta, src)
    # scenario_from_meta merged the file's defaults; lay the candidate values over them.
    for sec, vals in defaults.items():
        if isinstance(vals, dict):
            sc.setdefault(sec, {}).update(vals)
    if start_us is None and meta["replay"]["proto"] == "tcp":
        cap = Path(src)
        start_us = connect_gap_us(cap if cap.is_dir() else cap.parent)
    if start_us is not None:
        sc["veth"]["start_us"] = start_us
    for path, v in (overrides or {}).items():
        sec, key = path.split(".", 1)
        sc.setdefault(sec, {})[key] = v
    return ppsim.run(sc, seed=seed, trace=trace)


def _group_score(caps: list[tuple[Path, dict]], vals: dict, overrides: dict, work: Path) -> tuple[int, float]:
    """How a group validates with these values, summed over LAG_SEEDS as `ppsim validate --seeds`
    judges it at each (the median of SEEDED_RUNS runs from that seed): (failed gated checks, the
    holds curves' gaps)."""
    from ppsim.replay import SEEDED_RUNS, compare_group, metrics

    kernel = [metrics(capture_trace(d)) for d, _ in caps]
    d0, m0 = caps[0]
    start_us = measured_start_us(caps)
    failed, gaps = 0, 0.0
    for seed in LAG_SEEDS:
        runs = []
        for i in range(SEEDED_RUNS):
            t = work / f"s{i}.trace.txt"
            r = _run(m0, str(d0 / "meta.json"), vals, overrides, seed=seed + i, trace=t, start_us=start_us)
            runs.append((metrics(t), r.ok))
        order = sorted(range(len(runs)), key=lambda i: (runs[i][0].holds, i))
        sim = runs[order[len(order) // 2]][0]
        rows = compare_group("g", kernel, sim, all(o for _, o in runs))
        failed += sum(1 for r in rows if r["gated"] and not r["ok"])
        gaps += float(next((r["ppsim"] for r in rows if r["metric"] == "holds_vs_packets.max_gap"
                            and r["ppsim"] is not None), 0))
    return failed, gaps


def _task_stat(stats: dict, role: str, what: str):
    return _stat(stats, f"task.{role}.{what}")


def _stat(stats: dict, suffix: str):
    return next((v for k, v in stats.items() if k.endswith("." + suffix)), None)


def fit_observations(dirs: list[Path]) -> tuple[list[Obs], list[str]]:
    """The fit-set captures among `dirs`, and the names of the groups left out (validation)."""
    split = split_of_groups()
    fit, left = [], []
    for name, caps in sorted(group_captures(dirs).items()):
        if split.get(name) != "fit":
            left.append(name)
            continue
        fit += [Obs(name, str(d), m) for d, m in caps]
    return fit, left


def _whole_page(size: int) -> bool:
    """veth's pool gives the datagram a whole page: twice its truesize does not fit a page
    (models/world/veth_system.cc: headroom 256 + the aligned frame + skb_shared_info 320)."""
    frame = size + UDP_HEADERS
    return 2 * (256 + (frame + 63) // 64 * 64 + 320) > 4096


_PHASES: dict[str, dict] = {}


def _phase(o: Obs, role: str) -> dict | None:
    """The kernel task's turns and CPU time ({"turns", "ns"}) in the phase the model reproduces:
    the sender from its start to its last write's return, the reader from the sender's start to
    its last byte. The scheduler summary in meta.json covers the helpers' whole lives, and after
    its last byte the reader stays on the CPU for milliseconds more (TCP: 3-7 ms, up to the peer's
    FIN, the stop command and its exit), which no cost of the model describes. None without
    scheduler lines. Both roles come from one pass over the capture's trace."""
    if o.capture not in _PHASES:
        m = o.meta
        tasks = (m.get("sched") or {}).get("tasks") or {}
        pids = m.get("process_ids") or {}
        start = (m.get("sender") or {}).get("start_ns")
        ends = {"sender": (m.get("sender") or {}).get("end_ns"), "reader": (m.get("receiver") or {}).get("last_ns")}
        windows = {}
        for r, pid_key in (("sender", "sender"), ("reader", "receiver")):
            t, pid = tasks.get(r), pids.get(pid_key)
            if t and t["slices"]["count"] and pid and start and ends[r]:
                windows[r] = (int(pid), int(start), int(ends[r]))
        _PHASES[o.capture] = scan_trace(capture_trace(Path(o.capture)),
                                        lambda lines: schedtrace.task_times(lines, windows)) if windows else {}
    return _PHASES[o.capture].get(role)


def _sender_ns(o: Obs) -> float:
    """The sender's CPU time while it writes: from the scheduler lines if there are any, else its
    wall time (an upper bound when it waited for the window)."""
    ph = _phase(o, "sender")
    if ph and ph["turns"]:
        return float(ph["ns"])
    return float(o.meta["sender"]["duration_s"]) * 1e9


def _udp_unpaced(m: dict) -> bool:
    p = m.get("params") or {}
    return (p.get("proto") == "udp" and not p.get("rate") and not p.get("reader_delay_ms") and not p.get("reader_hold_ms")
            and p.get("xdp", "pass") == "pass")


def _value(vals: dict, sec: str, key: str) -> float:
    """A cost's current value: the defaults file's, else the parameter registry's default."""
    if key in vals.get(sec, {}):
        return float(vals[sec][key])
    from ppsim.sweeps import param_specs

    return float(param_specs()[f"{sec}.{key}"]["default"])


def _pids(o: Obs) -> tuple[int, int]:
    """The capture's sender and reader pids (an InputError naming the file when not integers)."""
    src = str(Path(o.capture) / "meta.json")
    return (_get(o.meta, "process_ids.sender", src, "int"), _get(o.meta, "process_ids.receiver", src, "int"))


def _kernel_alone_us(o: Obs) -> float | None:
    """The kernel sender's time per datagram while it runs alone on one CPU (sender_profile; a
    capture without scheduler lines, or thinned, gives none)."""
    a = _kernel_profiles([(Path(o.capture), o.meta)], lambda lines, pid, _: schedtrace.sender_profile(lines, pid)["alone"])
    return a[0]["us_per_packet"] if a else None


def _model_alone_us(o: Obs, vals: dict, work: Path) -> float | None:
    """The model's sender time per datagram while it runs alone, from its replay of the capture."""
    t = work / "alone.trace.txt"
    _run(o.meta, o.capture, vals, trace=t)
    with t.open() as f:
        m = schedtrace.sender_profile(f, SIM_SENDER_PID)["alone"]
    return m["us_per_packet"] if m else None


def _turn_shapes(o: Obs, trace: Path, pids: tuple[int, int]) -> dict:
    """{"one": the sender's one-datagram turn (UDP), "short": the reader's read of one datagram
    or one write just sent, "backlog": its read of a backlog per packet}, in us (None where the
    trace has none), from a capture directory's trace or a model's trace file."""
    udp = o.meta["params"]["proto"] == "udp"
    ppw = 1 if udp else _segments(o.meta)

    def shapes(lines):
        lines = list(lines)
        rs = schedtrace.read_shapes(lines, pids[0], pids[1], ppw)
        one = schedtrace.sender_profile(lines, pids[0])["turns"] if udp else None
        return {"one": one["single_median_us"] if one else None, "short": rs["short_read_us"],
                "backlog": rs["backlog_us_per_packet"], "backlog_packets": rs["backlog_packets"]}

    if trace.is_dir():
        return scan_trace(capture_trace(trace), shapes)
    with trace.open() as f:
        return shapes(f)


def _model_turn_shapes(o: Obs, vals: dict, work: Path) -> dict:
    """_turn_shapes of the model's replay of the capture with these values."""
    t = work / "turns.trace.txt"
    _run(o.meta, o.capture, vals, trace=t)
    return _turn_shapes(o, t, (SIM_SENDER_PID, SIM_READER_PID))


def _turn_features(o: Obs, coalesce: bool, backlog_packets: float | None) -> list[tuple[str, list[float]]]:
    """How each turn shape depends on [context switch, reader wake-up, read call, per skb, copy per
    KiB] in the model (models/world/stack.cc reader_take; the switch is charged to the task
    switched in): the counts of each in one such turn, per packet for a backlog read of
    `backlog_packets` (the model's). A read copies each skb's frame, headers included. With
    `coalesce` a segment joins the queue's tail skb, up to SEGMENTS_PER_COALESCED_SKB. A UDP
    backlog counts only where no datagram was dropped (the sender's packets are then the
    reader's)."""
    import math

    size = int(o.meta["params"]["size"])
    n = backlog_packets
    if o.meta["params"]["proto"] == "udp":
        kib = (size + UDP_HEADERS) / 1024.0
        out = [("one", [1.0, 0.0, 0.0, 0.0, 0.0]), ("short", [1.0, 1.0, 1.0, 1.0, kib])]
        if n and int((o.meta.get("receiver") or {}).get("received") or 0) >= int(o.meta["sender"]["sent"]):
            out.append(("backlog", [1.0 / n, 1.0 / n, 1.0, 1.0, kib]))
        return out
    seg = _segments(o.meta)
    per_skb = SEGMENTS_PER_COALESCED_SKB if coalesce else 1
    skbs = math.ceil(seg / per_skb)
    mss = size / seg
    out = [("short", [1.0, 1.0, float(max(1, math.ceil(size / READ_BYTES))), float(skbs),
                      (size + skbs * TCP_HEADERS) / 1024.0])]
    if n:
        out.append(("backlog", [1.0 / n, 1.0 / n, mss / READ_BYTES, 1.0 / per_skb,
                                (mss + TCP_HEADERS / per_skb) / 1024.0]))
    return out


def fit(dirs: list[Path], defaults: dict | None = None) -> dict:
    """{"values": {section: {key: value}}, "rows": [...], "used": [...], "left_out": [...], "notes": [...]}"""
    base = copy.deepcopy(defaults if defaults is not None else json.loads(DEFAULTS_FILE.read_text()))
    obs, left = fit_observations(dirs)
    _PHASES.clear()  # the captures may have changed since an earlier call in this process
    notes, rows = [], []
    used_for: dict[str, list[str]] = {}
    vals = {k: dict(v) for k, v in base.items() if isinstance(v, dict) and not k.startswith("_")}

    # 0. What the first copy into a pool page the run never held costs the kernel's sender, from
    # the fit set's unpaced same-CPU captures (schedtrace.fresh_page_cost): a measurement, not a
    # fit; the sender costs below are fitted with it in place.
    fresh, fresh_groups = [], set()
    for o in obs:
        p = o.meta.get("params") or {}
        if p.get("sender_cpu") != p.get("receiver_cpu") or p.get("rate"):
            continue
        k = kernel_fresh_page_costs([(Path(o.capture), o.meta)],
                                    frames_per_page(o.meta, str(Path(o.capture) / "meta.json")))
        if k:
            fresh += k
            fresh_groups.add(o.group)
    if fresh:
        vals["veth"]["fresh_page_ns"] = round(max(0.0, statistics.median(fresh)) * 1e3, 1)
        used_for["first copy into a page the run never held (measured, the median)"] = sorted(fresh_groups)

    # 1. The sender per UDP datagram: across CPUs (kernel duration / datagrams against the model's
    # sender runtime / datagrams) and on one CPU while it runs alone (schedtrace.sender_profile's
    # "alone", kernel and model alike). Across CPUs the sender also frees what the reader on the
    # other CPU deferred to it (stack.free_ns) and copies into pages whose lines the reader's cache
    # holds (cpus.remote_copy_ns_per_kib); on one CPU, while it runs alone, neither. So the
    # residuals, regressed on [1, KiB copied, across CPUs, KiB copied into pages the other CPU
    # read], move the per-datagram costs (in their proportions: the split is not observable), the
    # local copy per KiB, the free and the remote copy.
    # Datagrams that take a whole page are left out across CPUs: the kernel's sender is 1.7-2.4
    # times slower per datagram at 1472 B than at 1400 B, far more than the bytes explain, and the
    # model has no mechanism for it (docs/replay.md lists it as a known deviation).
    xs = [o for o in obs if _udp_unpaced(o.meta) and (o.meta.get("params") or {}).get("sender_cpu")
          != (o.meta.get("params") or {}).get("receiver_cpu") and not _whole_page(int(o.meta["params"]["size"]))]
    skipped = sorted({o.group for o in obs if _udp_unpaced(o.meta) and _whole_page(int(o.meta["params"]["size"]))
                      and o.meta["params"].get("sender_cpu") != o.meta["params"].get("receiver_cpu")})
    if skipped:
        notes.append("sender fit leaves out whole-page datagrams across CPUs: " + ", ".join(skipped))
    # One row per group on one CPU: the median of its captures (a session that ran slow moves one
    # capture's figure by up to 50 %), against the replay of its first capture.
    by_group: dict[str, list] = {}
    for o in obs:
        if _udp_unpaced(o.meta) and o.meta["params"].get("sender_cpu") == o.meta["params"].get("receiver_cpu"):
            k_us = _kernel_alone_us(o)
            if k_us is not None:
                by_group.setdefault(o.group, []).append((o, k_us))
    alone = [(v[0][0], statistics.median(k for _, k in v)) for _, v in sorted(by_group.items())]
    if len({o.meta["params"]["size"] for o in xs}) >= 2 and len({o.meta["params"]["size"] for o, _ in alone}) >= 2:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            dropped = 0
            for _ in range(3):  # the model is nearly linear in these costs; more passes absorb the rest
                feats, resid = [], []
                for o in xs:
                    s = o.meta["sender"]
                    sent = int(s["sent"])
                    r = _run(o.meta, o.capture, vals)
                    size = int(o.meta["params"]["size"])
                    remote = (_stat(r.stats, "remote_copies") or 0) / sent
                    feats.append([1.0, (size + size + UDP_HEADERS) / 1024.0, 1.0,
                                  remote * (size + UDP_HEADERS) / 1024.0])
                    resid.append(float(s["duration_s"]) * 1e9 / sent - _task_stat(r.stats, "sender", "runtime_ns") / sent)
                for o, k_us in alone:
                    m_us = _model_alone_us(o, vals, Path(tmp))
                    if m_us is not None:
                        size = int(o.meta["params"]["size"])
                        feats.append([1.0, (size + size + UDP_HEADERS) / 1024.0, 0.0, 0.0])
                        resid.append((k_us - m_us) * 1e3)
                copy_kib, free = _value(vals, "veth", "copy_ns_per_kib"), _value(vals, "stack", "free_ns")
                remote_kib = _value(vals, "cpus", "remote_copy_ns_per_kib")
                (d0, dkib, dfree, dremote), dropped = _solve(feats, resid, [None, 1.0 - copy_kib, -free, -remote_kib],
                                                             "the sender per datagram")
                total = sum(vals[sec][key] for sec, key in SENDER_COSTS)
                scale = max(0.05, (total + d0) / total)
                for sec, key in SENDER_COSTS:
                    vals[sec][key] = round(vals[sec][key] * scale, 1)
                vals["veth"]["copy_ns_per_kib"] = round(max(1.0, copy_kib + dkib), 1)
                vals["stack"]["free_ns"] = round(max(0.0, free + dfree), 1)
                vals.setdefault("cpus", {})["remote_copy_ns_per_kib"] = round(max(0.0, remote_kib + dremote), 1)
            used_for["sender costs per datagram, copy per KiB, free and remote copy"] = sorted(
                {o.group for o in xs} | {o.group for o, _ in alone})
            notes.append(f"sender: {dropped} of {len(feats)} rows left out in the last pass, more than three median "
                         "absolute deviations off the first fit")
            for o in xs:
                s = o.meta["sender"]
                r = _run(o.meta, o.capture, vals)
                rows.append({"group": o.group, "capture": Path(o.capture).name, "figure": "sender ns/datagram",
                             "kernel": round(float(s["duration_s"]) * 1e9 / int(s["sent"]), 1),
                             "model": round(_task_stat(r.stats, "sender", "runtime_ns") / int(s["sent"]), 1)})
            for o, k_us in alone:
                m_us = _model_alone_us(o, vals, Path(tmp))
                if m_us is not None:
                    rows.append({"group": o.group, "capture": o.group + " (median)",
                                 "figure": "sender alone us/datagram", "kernel": k_us, "model": m_us})
    else:
        notes.append("sender costs kept: fewer than two datagram sizes among the fit set's unpaced UDP captures "
                     "across CPUs or on one CPU")

    # 2. TCP cross-CPU: the sender's time per write against segments per write gives the cost of
    # a write call and TCP's receive cost per segment.
    tx = [o for o in obs if (o.meta.get("params") or {}).get("proto") == "tcp"
          and o.meta["params"].get("sender_cpu") != o.meta["params"].get("receiver_cpu")]
    if len({_segments(o.meta) for o in tx}) >= 2:
        for _ in range(2):
            feats, resid = [], []
            for o in tx:
                writes = int(o.meta["sender"]["sent"])
                r = _run(o.meta, o.capture, vals)
                feats.append([1.0, float(_segments(o.meta))])
                resid.append(_sender_ns(o) / writes - _task_stat(r.stats, "sender", "runtime_ns") / writes)
            dw, dseg = _lstsq(feats, resid)
            vals["veth"]["tcp_write_ns"] = round(max(100.0, vals["veth"].get("tcp_write_ns", 1200.0) + dw), 1)
            # Transmit and receive per segment share the change equally: only their sum is observed.
            for key in ("tcp_xmit_ns", "tcp_deliver_ns"):
                vals["veth"][key] = round(max(25.0, vals["veth"].get(key, 600.0) + dseg / 2), 1)
        used_for["TCP write call and receive per segment"] = sorted({o.group for o in tx})
        for o in tx:
            writes = int(o.meta["sender"]["sent"])
            r = _run(o.meta, o.capture, vals)
            rows.append({"group": o.group, "capture": Path(o.capture).name, "figure": "sender us/write",
                         "kernel": round(_sender_ns(o) / writes / 1e3, 2),
                         "model": round(_task_stat(r.stats, "sender", "runtime_ns") / writes / 1e3, 2)})
    else:
        notes.append("TCP costs kept: fewer than two write sizes among the fit set's cross-CPU TCP captures")

    # 3. Same-CPU turns, by their shapes (schedtrace.sender_profile, schedtrace.read_shapes), the
    # kernel's and the model's replay of the same capture alike: the sender's one-datagram turn
    # (the switch into it, and one datagram), the reader's short read (the switch, its sleep and
    # wake-up around poll(), a read call, its skbs and their copy) and its read of a backlog (per
    # packet: a call per UDP datagram, the skbs, the copy). Their residuals give the context
    # switch, the reader's wake-up, read call, cost per skb and copy per KiB by least squares.
    # Readers and senders whose turns the capture shaped (a reader held or delayed, a paced
    # sender that sleeps between sends) are left out.
    same = [o for o in obs if o.meta["params"].get("sender_cpu") == o.meta["params"].get("receiver_cpu")
            and not o.meta["params"].get("reader_delay_ms") and not o.meta["params"].get("reader_hold_ms")
            and not o.meta["params"].get("rate") and o.meta.get("sched") and o.meta.get("process_ids")]
    if any(o.meta["params"]["proto"] == "udp" for o in same) and any(o.meta["params"]["proto"] == "tcp" for o in same):
        import tempfile

        keys = [("cpus", "context_switch_ns"), ("stack", "reader_wake_ns"), ("stack", "reader_call_ns"),
                ("stack", "reader_per_skb_ns"), ("stack", "reader_copy_ns_per_kib")]
        kernel = {o.capture: _turn_shapes(o, Path(o.capture), _pids(o)) for o in same}
        coalesce = bool(vals.get("veth", {}).get("tcp_coalesce", False))
        n_rows = outliers = passes = 0
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(3):
                feats, resid = [], []
                for o in same:
                    model = _model_turn_shapes(o, vals, Path(tmp))
                    for name, f in _turn_features(o, coalesce, model.get("backlog_packets")):
                        if kernel[o.capture].get(name) is None or model.get(name) is None:
                            continue
                        feats.append(f)
                        resid.append((kernel[o.capture][name] - model[name]) * 1e3)
                if len(feats) < len(keys):
                    break
                # Each cost may fall to 0 and no further; rows far off the first fit are left out.
                now = [_value(vals, sec, key) for sec, key in keys]
                n_rows = len(feats)
                delta, outliers = _solve(feats, resid, [-v for v in now], "the turns on one CPU")
                for (sec, key), v, d in zip(keys, now, delta):
                    vals.setdefault(sec, {})[key] = round(max(0.0, v + d), 1)
                passes += 1
            if passes:
                used_for["context switch, reader wake-up, read call, per-skb and copy cost (turn shapes)"] = sorted(
                    {o.group for o in same})
                notes.append(f"turn shapes: {outliers} of {n_rows} rows left out in the last pass, more than three "
                             "median absolute deviations off the first fit")
            else:
                notes.append("same-CPU costs kept: too few turn shapes in the fit set's same-CPU captures")
            for o in same:
                model = _model_turn_shapes(o, vals, Path(tmp))
                for name, label in (("one", "sender one-datagram turn us"), ("short", "reader short read us"),
                                    ("backlog", "reader backlog us/packet")):
                    if kernel[o.capture].get(name) is not None:
                        rows.append({"group": o.group, "capture": Path(o.capture).name, "figure": label,
                                     "kernel": kernel[o.capture][name], "model": model.get(name)})
    else:
        notes.append("same-CPU costs kept: the fit set needs unpaced same-CPU captures of UDP and of TCP "
                     "with scheduler lines")
    # 4. The reader's lag when the traffic starts (it ran its setup and sleeps in poll()): the
    # value, from a grid, under which the fit set's same-CPU groups validate best (fewest failed
    # checks, then the smallest holds-curve gap). One value for every capture.
    if same:
        import tempfile

        groups: dict[str, list] = {}
        for o in same:
            groups.setdefault(o.group, []).append((Path(o.capture), o.meta))
        best = None
        with tempfile.TemporaryDirectory() as tmp:
            for lag in LAG_GRID_US:
                score = [0, 0.0]
                for caps in groups.values():
                    f, gap = _group_score(caps, vals, {"stack.reader_initial_lag_us": lag}, Path(tmp))
                    score[0] += f
                    score[1] += gap
                if best is None or (score[0], score[1]) < best[1]:
                    best = (lag, (score[0], score[1]))
        vals["stack"]["reader_initial_lag_us"] = best[0]
        used_for["reader's lag at the start"] = sorted(groups)
        rows.append({"group": "same-CPU fit groups", "capture": f"{len(groups)} groups",
                     "figure": "failed checks at lag", "kernel": 0, "model": best[1][0]})
    return {"values": vals, "rows": rows, "used": sorted({o.group for o in obs}), "used_for": used_for,
            "left_out": left, "notes": notes}


def write_defaults(result: dict, path: Path = DEFAULTS_FILE) -> None:
    old = json.loads(path.read_text())
    out = {"_doc": old.get("_doc", ""), "_fit": {
        "tool": "ppsim fit", "fitted_on": result["used_for"], "notes": result["notes"],
        "rule": "fit set only (traces/README.md); validation groups were not read"}}
    for sec, v in result["values"].items():
        out[sec] = v
    path.write_text(json.dumps(out, indent=2) + "\n")


def check_dirs(dirs: list[Path]) -> None:
    for d in dirs:
        if not Path(d).is_dir():
            raise InputError(f"{d}: not a directory")
