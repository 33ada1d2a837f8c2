"""What ran on the CPUs during a capture: a summary of sched_switch, sched_wakeup and NET_RX
softirq events (recorded by `ppsim capture --sched`), for the sender, the reader and ksoftirqd.

    s = schedtrace.summarise(text, {"sender": 1667, "reader": 1666}, start_ns, end_ns)
    s["tasks"]["reader"]["slices"]["median_us"]

Per task: time on CPU, the turns it got (number, median/p90/max length), why each turn ended
(`S` blocked, `R` switched out at a schedule point, `R+` preempted in the kernel), how often it was
woken and how long it then waited for the CPU; per context: the NET_RX softirq time spent in the
sender's, the reader's, ksoftirqd's or another task's context. The replay model reports the same
figures (ppsim.replay) so the scheduler model is checked against what really ran.
"""
from __future__ import annotations

import re
import statistics
from collections import defaultdict


# A tracefs line's task, pid, CPU and timestamp, then one of `events`.
def _line_re(events: str) -> re.Pattern:
    return re.compile(r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+\S+\s+(?P<ts>\d+\.\d+):\s+"
                      rf"(?P<event>{events}):\s+(?P<body>.*)$")


_LINE = _line_re("sched_switch|sched_wakeup|softirq_entry|softirq_exit|tcp_rcvbuf_grow")
_SWITCH = re.compile(r"prev_comm=(?P<pc>.*?) prev_pid=(?P<pp>\d+) prev_prio=\d+ prev_state=(?P<ps>\S+) ==> "
                     r"next_comm=(?P<nc>.*?) next_pid=(?P<np>\d+) next_prio=\d+")
_WAKE = re.compile(r"comm=(?P<c>.*?) pid=(?P<p>\d+) prio=\d+ target_cpu=(?P<t>\d+)")
_KV = re.compile(r"(\w+)=(\d+)")

SCHED_LINE_EVENTS = ("sched_switch", "sched_wakeup", "softirq_entry", "softirq_exit", "softirq_raise", "tcp_rcvbuf_grow")


def _ts(text: str) -> int:
    sec, frac = text.split(".", 1)
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def _quantiles(values: list[float]) -> dict:
    if not values:
        return {"count": 0, "median_us": None, "p90_us": None, "max_us": None, "total_ms": 0.0}
    v = sorted(values)
    q = lambda f: v[min(len(v) - 1, int(f * (len(v) - 1) + 0.5))]
    return {"count": len(v), "median_us": round(q(0.5) / 1e3, 3), "p90_us": round(q(0.9) / 1e3, 3),
            "max_us": round(v[-1] / 1e3, 3), "total_ms": round(sum(v) / 1e6, 4)}


def summarise(text: str, pids: dict[str, int], start_ns: int | None = None, end_ns: int | None = None) -> dict:
    """Summary of the sched events of `text` between `start_ns` and `end_ns` (trace clock).
    `pids` names our tasks ({"sender": pid, "reader": pid}); ksoftirqd is found by name."""
    role_of = {pid: role for role, pid in pids.items() if pid}
    start = start_ns if start_ns is not None else 0
    end = end_ns if end_ns is not None else 1 << 62

    def role(comm: str, pid: int) -> str:
        if pid in role_of:
            return role_of[pid]
        if comm.startswith("ksoftirqd/"):
            return "ksoftirqd"
        return "idle" if pid == 0 else "other"

    current: dict[int, tuple[str, int]] = {}      # cpu -> (role, since)
    woken_at: dict[str, int] = {}
    slices: dict[str, list[int]] = defaultdict(list)
    ends: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    waits: dict[str, list[int]] = defaultdict(list)
    wakeups: dict[str, int] = defaultdict(int)
    cpus_of: dict[str, set] = defaultdict(set)
    softirq_in: dict[int, tuple[str, int]] = {}
    softirq_ns: dict[str, int] = defaultdict(int)
    softirq_n: dict[str, int] = defaultdict(int)
    grows = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        t, cpu, ev, body = _ts(m["ts"]), int(m["cpu"]), m["event"], m["body"]
        inside = start <= t <= end
        if ev == "sched_switch":
            s = _SWITCH.match(body)
            if not s:
                continue
            prev, nxt = role(s["pc"], int(s["pp"])), role(s["nc"], int(s["np"]))
            if cpu in current:
                r, since = current[cpu]
                if inside and r in ("sender", "reader", "ksoftirqd") and since >= start:
                    slices[r].append(t - since)
                    ends[r][s["ps"]] += 1
            current[cpu] = (nxt, t)
            if inside and nxt in ("sender", "reader", "ksoftirqd"):
                cpus_of[nxt].add(cpu)
                if nxt in woken_at:
                    waits[nxt].append(t - woken_at.pop(nxt))
        elif ev == "sched_wakeup":
            w = _WAKE.match(body)
            if not w:
                continue
            r = role(w["c"], int(w["p"]))
            if inside and r in ("sender", "reader", "ksoftirqd"):
                wakeups[r] += 1
                woken_at[r] = t
        elif ev == "softirq_entry":
            softirq_in[cpu] = (current.get(cpu, ("idle", 0))[0], t)
        elif ev == "softirq_exit":
            if cpu in softirq_in:
                r, t0 = softirq_in.pop(cpu)
                if inside:
                    softirq_ns[r] += t - t0
                    softirq_n[r] += 1
        elif ev == "tcp_rcvbuf_grow" and inside:
            kv = {k: int(v) for k, v in _KV.findall(body)}
            grows.append({"t_ms": round((t - start) / 1e6, 3), **{k: kv[k] for k in ("rcvbuf", "copied", "rtt_us") if k in kv}})
    tasks = {}
    for r in ("sender", "reader", "ksoftirqd"):
        tasks[r] = {"slices": _quantiles(slices[r]), "ended": dict(ends[r]), "wakeups": wakeups[r],
                    "wait_after_wakeup": _quantiles(waits[r]), "cpus": sorted(cpus_of[r])}
    out = {"window_ms": round((min(end, 1 << 62) - start) / 1e6, 4) if end_ns is not None and start_ns is not None else None,
           "tasks": tasks,
           "net_rx_softirq": {r: {"count": softirq_n[r], "total_ms": round(softirq_ns[r] / 1e6, 4)} for r in sorted(softirq_ns)}}
    if grows:
        out["tcp_rcvbuf_grow"] = {"count": len(grows), "first": grows[0], "last": grows[-1],
                                  "max_rcvbuf": max(g.get("rcvbuf", 0) for g in grows)}
    return out


_POLL_OR_SWITCH = _line_re("napi_poll|sched_switch")
_WORK = re.compile(r"\bwork (\d+)")


def _scan(lines, sender_pid: int):
    """The sender's gaps between NAPI polls with no switch between (ns per packet of the later
    poll), and every turn on every CPU as (cpu, pid, ns, packets: the sender's, in its turn)."""
    gaps, last, cpu_of_last = [], None, None
    on_cpu: dict[int, tuple[int, int]] = {}  # cpu -> (pid, since) of what a switch put there
    turns = []                                 # (cpu, pid, ns, packets) in order
    packets: dict[int, int] = defaultdict(int)  # cpu -> the sender's, in its turn there
    for line in lines:
        m = _POLL_OR_SWITCH.match(line)
        if not m:
            continue
        cpu = int(m["cpu"])
        t = _ts(m["ts"])
        if m["event"] == "sched_switch":
            if cpu == cpu_of_last:
                last = None
            sw = _SWITCH.search(m["body"])
            if not sw:
                continue
            prev, nxt = int(sw["pp"]), int(sw["np"])
            if cpu in on_cpu and on_cpu[cpu][0] == prev:
                turns.append((cpu, prev, t - on_cpu[cpu][1], packets[cpu] if prev == sender_pid else 0))
            on_cpu[cpu] = (nxt, t)
            if nxt == sender_pid:
                packets[cpu] = 0
            continue
        if int(m["pid"]) != sender_pid:
            continue
        w = _WORK.search(m["body"])
        work = int(w.group(1)) if w else 0
        if work <= 0:
            continue
        packets[cpu] += work
        if last is not None and cpu == cpu_of_last:
            gaps.append((t - last) / work)
        last, cpu_of_last = t, cpu
    return gaps, turns


def sender_profile(lines, sender_pid: int, reader_pid: int | None = None) -> dict:
    """How a sender whose sendmsg runs the veth NAPI poll (its packets are the `work` of the polls
    in its context) used its CPU, from a trace's napi_poll and sched_switch lines:

    - "alone": its time per packet while it runs alone: the gaps between consecutive NAPI polls
      in its context with no context switch on that CPU in between, per packet of the later
      poll; the mean of the middle 80 % of the gaps (a trace's clock prints whole microseconds;
      the tails are softirq deferrals and tick work), or None when fewer than 50 qualify;
    - "turns": its turns, each from a sched_switch to it to the next one away from it on that
      CPU: how many carried one packet (it ping-pongs with a reader it wakes) and their median
      length, and how many carried more ("runs": it ran on while the reader waited),
      the packets those carried and the largest. None when it was never switched in.
      With `reader_pid`, also the EEVDF lag budget of the reader on the sender's CPU: after a
      run alone of L µs the reader is owed L/2 of lag, its first turn (D µs, the backlog) spends
      D/2, and each ping-pong turn (r µs) r/2, so the ping-pong lasts (L - D) / r cycles.
      "read_after_run" is the median D / L, "pingpong_per_lag" the cycles counted over that
      prediction, over the complete phases ("phases").

    `lines`: the trace's lines (an iterable of str)."""
    gaps, turns = _scan(lines, sender_pid)
    alone = None
    if len(gaps) >= 50:
        g = sorted(gaps)
        k = len(g) // 10
        mid = g[k: len(g) - k]
        alone = {"gaps": len(gaps), "us_per_packet": round(sum(mid) / len(mid) / 1e3, 3)}
    mine = [x for x in turns if x[1] == sender_pid]
    if not mine:
        return {"alone": alone, "turns": None}
    single_us = [ns / 1e3 for _, _, ns, n in mine if n == 1]
    runs = [n for _, _, _, n in mine if n > 1]
    out = {"single": len(single_us), "single_median_us": round(statistics.median(single_us), 1) if single_us else None,
           "runs": len(runs), "run_packets": sum(runs), "largest_run": max(runs, default=0)}
    if reader_pid is not None:
        out.update(_lag_budget(turns, sender_pid, reader_pid))
    return {"alone": alone, "turns": out}


def task_times(lines, windows: dict) -> dict:
    """Tasks' time on the CPUs, each between its own start_ns and end_ns (trace clock), from the
    sched_switch lines, in one pass: `windows` maps a name to (pid, start_ns, end_ns); the result
    maps it to the task's turns that overlap its window ("turns") and the part of them inside it
    ("ns"). A capture's scheduler summary covers the helpers' whole lives; this clips each task
    to the phase a model reproduces (the sender's writes, the reader's reads up to its last byte)."""
    by_pid = {pid: name for name, (pid, _, _) in windows.items()}
    out = {name: {"turns": 0, "ns": 0} for name in windows}
    since: dict[tuple[int, int], int] = {}  # (pid, cpu) -> when the task was switched in there

    def close(pid: int, t0: int, t1: int) -> None:
        name = by_pid[pid]
        _, start_ns, end_ns = windows[name]
        lo, hi = max(t0, start_ns), min(t1, end_ns)
        if hi > lo:
            out[name]["turns"] += 1
            out[name]["ns"] += hi - lo

    for line in lines:
        m = _POLL_OR_SWITCH.match(line)
        if not m or m["event"] != "sched_switch":
            continue
        sw = _SWITCH.search(m["body"])
        if not sw:
            continue
        cpu, t = int(m["cpu"]), _ts(m["ts"])
        prev, nxt = int(sw["pp"]), int(sw["np"])
        if prev in by_pid and (prev, cpu) in since:
            close(prev, since.pop((prev, cpu)), t)
        if nxt in by_pid:
            since[(nxt, cpu)] = t
    for (pid, _), t0 in since.items():  # still on a CPU when the trace ends
        close(pid, t0, windows[by_pid[pid]][2])
    return out


def task_time(lines, pid: int, start_ns: int, end_ns: int) -> dict:
    """task_times for one task: {"turns", "ns"} between start_ns and end_ns."""
    return task_times(lines, {"task": (pid, start_ns, end_ns)})["task"]


def _home_sequence(turns, sender_pid: int, reader_pid: int) -> list[tuple[int, float, int]]:
    """The two tasks' turns, as (pid, us, packets), on the CPU the sender ran most turns on."""
    cpus = defaultdict(int)
    for cpu, pid, _, _ in turns:
        if pid == sender_pid:
            cpus[cpu] += 1
    home = max(cpus, key=cpus.get)
    return [(pid, ns / 1e3, n) for cpu, pid, ns, n in turns if cpu == home and pid in (sender_pid, reader_pid)]


def write_cycles(lines, sender_pid: int, reader_pid: int, segments: int) -> dict | None:
    """TCP on one CPU: the cycles in which the sender's turn carried exactly one write (its
    `segments` segments, the work of the NAPI polls in its context) and the reader's turn came
    next. The sender writes, the reader it woke preempts it when the write returns, and reads
    what it wrote: a read of a few segments just written. How many such cycles, and the median
    length of the sender's and of the reader's turn; None when there is none."""
    _, turns = _scan(lines, sender_pid)
    if not any(pid == sender_pid for _, pid, _, _ in turns):
        return None
    seq = _home_sequence(turns, sender_pid, reader_pid)
    send, read = [], []
    for (p1, us1, n1), (p2, us2, _) in zip(seq, seq[1:]):
        if p1 == sender_pid and n1 == segments and p2 == reader_pid:
            send.append(us1)
            read.append(us2)
    if not send:
        return None
    return {"cycles": len(send), "send_us": round(statistics.median(send), 1),
            "read_us": round(statistics.median(read), 1)}


def read_shapes(lines, sender_pid: int, reader_pid: int, packets_per_write: int = 1) -> dict:
    """What the reader's turns cost against what they read, on one CPU. A reader turn counts when
    it follows a turn of the sender on the same CPU, polled nothing itself (no NAPI poll in its
    context: no ACK that made the sender transmit) and ended with the reader asleep (`S`):

    - "short_read_us": the median length of those after a sender turn of at most
      `packets_per_write` packets: a read of one datagram or one write just sent (the turn
      includes the switch into the reader and its sleep);
    - "backlog_us_per_packet": the median, over those after a sender turn of at least
      max(40, 3 * packets_per_write) packets (the sender ran on while the reader waited), of the
      turn's length per packet the sender turn carried: reading a backlog.

    Counts of each ("short_reads", "backlog_reads"), and the median packets of the sender turns
    before the backlog reads ("backlog_packets"); a figure is None without any."""
    on_cpu: dict[int, tuple[int, int]] = {}     # cpu -> (pid, since)
    polled: dict[int, int] = defaultdict(int)   # cpu -> packets polled in the current turn
    last_turn: dict[int, tuple[int, int]] = {}  # cpu -> (pid, packets) of the turn before
    short, backlog, backlog_n = [], [], []
    big = max(40, 3 * packets_per_write)
    for line in lines:
        m = _POLL_OR_SWITCH.match(line)
        if not m:
            continue
        cpu = int(m["cpu"])
        if m["event"] == "napi_poll":
            w = _WORK.search(m["body"])
            if w and cpu in on_cpu and on_cpu[cpu][0] == int(m["pid"]):
                polled[cpu] += int(w.group(1))
            continue
        sw = _SWITCH.search(m["body"])
        if not sw:
            continue
        t = _ts(m["ts"])
        prev, nxt = int(sw["pp"]), int(sw["np"])
        if cpu in on_cpu and on_cpu[cpu][0] == prev:
            before = last_turn.get(cpu)
            if (prev == reader_pid and sw["ps"] == "S" and polled[cpu] == 0 and before
                    and before[0] == sender_pid and before[1] > 0):
                us = (t - on_cpu[cpu][1]) / 1e3
                if before[1] <= packets_per_write:
                    short.append(us)
                elif before[1] >= big:
                    backlog.append(us / before[1])
                    backlog_n.append(before[1])
            last_turn[cpu] = (prev, polled[cpu])
        else:  # a line is missing: what ran before is unknown
            last_turn.pop(cpu, None)
        on_cpu[cpu] = (nxt, t)
        polled[cpu] = 0
    med = lambda v: round(statistics.median(v), 3) if v else None
    return {"short_reads": len(short), "short_read_us": med(short),
            "backlog_reads": len(backlog), "backlog_us_per_packet": med(backlog), "backlog_packets": med(backlog_n)}


def _lag_budget(turns, sender_pid: int, reader_pid: int) -> dict:
    """sender_profile's phases: a run alone (L), the reader's next turn (D), then ping-pong until
    the next run alone, on the CPU the sender ran most turns on."""
    seq = _home_sequence(turns, sender_pid, reader_pid)
    runs_at = [i for i, (pid, _, n) in enumerate(seq) if pid == sender_pid and n > 1]
    ratios, cycles, predicted = [], 0, 0.0
    for a, b in zip(runs_at, runs_at[1:]):
        L = seq[a][1]
        readers = [us for pid, us, _ in seq[a + 1: b] if pid == reader_pid]
        n = sum(1 for pid, _, k in seq[a + 1: b] if pid == sender_pid and k == 1)
        if len(readers) < 2 or L <= readers[0]:
            continue
        D, r = readers[0], statistics.mean(readers[1:])
        if r <= 0:  # turns shorter than the trace clock's microsecond
            continue
        ratios.append(D / L)
        cycles += n
        predicted += (L - D) / r
    if not ratios:
        return {"phases": 0, "read_after_run": None, "pingpong_per_lag": None}
    return {"phases": len(ratios), "read_after_run": round(statistics.median(ratios), 2),
            "pingpong_per_lag": round(cycles / predicted, 2)}


def strip_softirq_lines(text: str) -> tuple[str, int]:
    """trace.txt without the softirq entry/exit/raise lines (summarised in meta.json instead)."""
    kept, dropped = [], 0
    for line in text.splitlines(keepends=True):
        if ": softirq_entry: " in line or ": softirq_exit: " in line or ": softirq_raise: " in line:
            dropped += 1
            continue
        kept.append(line)
    return "".join(kept), dropped


_POLL_SWITCH_POOL = _line_re("napi_poll|sched_switch|page_pool_state_hold|page_pool_state_release")
_POOL = re.compile(r"page_pool=(\S+)")
FRESH_GAP_CAP_NS = 200_000  # longer gaps are other work (a tick, a softirq deferral), in both sets


def fresh_page_cost(lines, sender_pid: int, frames_per_page: float, pools=None) -> dict | None:
    """What the first use of a page the pool never held before costs the sender whose sendmsg runs
    the veth NAPI poll, from a trace's napi_poll (the receiving veth's, as captures record them),
    sched_switch and page_pool_state_hold/release lines.

    A hold takes a page from the page allocator. While the pool holds more pages than it ever held
    (holds less releases above their high-water mark) the page is one the run has not used: pages
    it gave back come first off the allocator's per-CPU lists. Each such page serves
    `frames_per_page` frames (the model's packing, ppsim.replay.frames_per_page), in whatever
    context the poll runs (a same-CPU TCP reader's ACK has the sender transmit from the reader's
    softirq). The sender's gaps between its own NAPI polls with no switch between (as
    sender_profile's "alone") that carried those frames are compared with its other gaps. On the
    capture VM (a PVM guest with free page reporting) a copy into such a page can wait 15-17 us
    for the host to back it; pages used before do not (docs/replay.md).

    The estimate runs low when a page takes several frames and its first frame follows a switch
    (the page counts, its cost does not): on the model's own trace, 4.3 of 5 us charged at three
    frames a page, 4.8-5.0 at one.

    `pools`: the pool ids (the trace's page_pool= values) to count, None for all. Returns
    {"fresh_pages", "fresh_gaps", "base_gaps", "base_us_per_frame", "excess_us_per_page"}, or
    None when fewer than 50 gaps without fresh frames or fewer than 8 fresh pages qualify."""
    pools = set(pools) if pools else None
    out = high = 0
    fresh_left = 0.0          # frames still to be copied into fresh pages
    last, cpu_of_last = None, None
    fresh, base = [], []      # (gap ns, frames, fresh frames)
    for line in lines:
        m = _POLL_SWITCH_POOL.match(line)
        if not m:
            continue
        ev = m["event"]
        if ev.startswith("page_pool_state_"):
            p = _POOL.search(m["body"])
            if pools is not None and (not p or p.group(1) not in pools):
                continue
            if ev == "page_pool_state_hold":
                out += 1
                if out > high:
                    high = out
                    fresh_left += frames_per_page
            else:
                out -= 1
            continue
        cpu = int(m["cpu"])
        if ev == "sched_switch":
            if cpu == cpu_of_last:
                last = None
            continue
        w = _WORK.search(m["body"])
        work = int(w.group(1)) if w else 0
        if work <= 0:
            continue
        ff = min(float(work), fresh_left)
        fresh_left -= ff
        if int(m["pid"]) != sender_pid:
            continue
        t = _ts(m["ts"])
        if last is not None and cpu == cpu_of_last and t - last <= FRESH_GAP_CAP_NS:
            (fresh if ff else base).append((t - last, work, ff))
        last, cpu_of_last = t, cpu
    fresh_frames = sum(ff for _, _, ff in fresh)
    if len(base) < 50 or fresh_frames < 8 * frames_per_page:
        return None
    per_frame = sum(g for g, _, _ in base) / sum(w for _, w, _ in base)
    excess = sum(g - w * per_frame for g, w, _ in fresh)
    pages = fresh_frames / frames_per_page
    return {"fresh_pages": round(pages, 1), "fresh_gaps": len(fresh), "base_gaps": len(base),
            "base_us_per_frame": round(per_frame / 1e3, 3), "excess_us_per_page": round(excess / pages / 1e3, 3)}
