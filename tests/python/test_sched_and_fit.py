"""What ran on the CPUs (schedtrace), the capture matrix, the fixed fit/validation split, and
`ppsim fit` reading only the fit set."""
import json

import pytest

from ppsim import schedtrace
from ppsim.cmd_capture import load_matrix
from ppsim.errors import InputError
from ppsim.replay import split_of_groups


def _switch(ts, cpu, prev, ppid, state, nxt, npid):
    return (f"  {prev}-{ppid} [{cpu:03d}] d..2. {ts:.6f}: sched_switch: prev_comm={prev} prev_pid={ppid} "
            f"prev_prio=120 prev_state={state} ==> next_comm={nxt} next_pid={npid} next_prio=120")


def _wake(ts, cpu, comm, pid):
    return f"  x-1 [{cpu:03d}] d..2. {ts:.6f}: sched_wakeup: comm={comm} pid={pid} prio=120 target_cpu={cpu:03d}"


def test_schedtrace_counts_turns_how_they_ended_and_waits():
    # Sender (pid 10) and reader (pid 20) share CPU 0: S 9 us, R 5 us, S 9 us, then S runs 3 ms.
    lines = [
        _switch(1.000000, 0, "swapper/0", 0, "R", "send", 10),
        "  send-10 [000] ..s1. 1.000002: softirq_entry: vec=3 [action=NET_RX]",
        "  send-10 [000] ..s1. 1.000006: softirq_exit: vec=3 [action=NET_RX]",
        _wake(1.000008, 0, "recv", 20),
        _switch(1.000009, 0, "send", 10, "R", "recv", 20),
        _switch(1.000014, 0, "recv", 20, "S", "send", 10),
        _wake(1.000020, 0, "recv", 20),
        _switch(1.000023, 0, "send", 10, "R", "recv", 20),
        _switch(1.000028, 0, "recv", 20, "S", "send", 10),
        _wake(1.000030, 0, "recv", 20),
        _switch(1.003028, 0, "send", 10, "R", "recv", 20),
        _switch(1.003100, 0, "recv", 20, "S", "swapper/0", 0),
    ]
    s = schedtrace.summarise("\n".join(lines), {"sender": 10, "reader": 20}, 1_000_000_000, 1_003_100_000)
    snd, rd = s["tasks"]["sender"], s["tasks"]["reader"]
    assert snd["slices"]["count"] == 3 and snd["ended"] == {"R": 3}
    assert snd["slices"]["max_us"] == pytest.approx(3000.0)
    assert rd["slices"]["count"] == 3 and rd["ended"] == {"S": 3}
    assert rd["slices"]["median_us"] == pytest.approx(5.0)
    assert rd["wakeups"] == 3
    assert rd["wait_after_wakeup"]["max_us"] == pytest.approx(2998.0)  # woken, but waited for the tick
    assert s["net_rx_softirq"]["sender"]["count"] == 1


def test_strip_softirq_lines_keeps_everything_else():
    text = "a\n  x-1 [000] ..s1. 1.0: softirq_entry: vec=3\nb\n  x-1 [000] ..s1. 1.1: softirq_exit: vec=3\n"
    kept, dropped = schedtrace.strip_softirq_lines(text)
    assert kept == "a\nb\n" and dropped == 2


def test_the_split_alternates_within_each_family(tmp_path):
    m = tmp_path / "m.json"
    m.write_text(json.dumps({"groups": [{"name": n, "family": f, "args": ""} for n, f in
                                        [("b", "x"), ("a", "x"), ("c", "x"), ("z", "y")]]}))
    assert split_of_groups(m) == {"a": "fit", "b": "validation", "c": "fit", "z": "fit"}


def test_the_bundled_split_has_both_sets_in_every_family_with_two_groups(repo):
    m = json.loads((repo / "traces/matrix.json").read_text())
    split = split_of_groups(repo / "traces/matrix.json")
    fams = {}
    for g in m["groups"]:
        fams.setdefault(g["family"], []).append(split[g["name"]])
    assert len(m["groups"]) >= 40
    for fam, roles in fams.items():
        assert "fit" in roles, fam
        if len(roles) >= 2:
            assert "validation" in roles, fam


def test_matrix_errors_name_the_file_and_path(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text('{"groups": [{"name": "a", "args": "--size 100"}]}')
    with pytest.raises(InputError, match=r"m.json: at \$\.groups\[0\]\.family: expected a string"):
        load_matrix(str(bad))
    bad.write_text('{"groups": [{"name": "a", "family": "f", "args": ""}, {"name": "a", "family": "f", "args": ""}]}')
    with pytest.raises(InputError, match="group names repeat"):
        load_matrix(str(bad))
    bad.write_bytes(b"\xff\xfe{")
    with pytest.raises(InputError, match="malformed JSON"):
        load_matrix(str(bad))


def test_the_bundled_matrix_parses_into_capture_arguments(repo):
    from ppsim.cli import build_parser
    from ppsim.cmd_capture import params_from_args

    parser = build_parser()
    for g in load_matrix(str(repo / "traces/matrix.json")):
        params = params_from_args(parser.parse_args(["capture", *g["argv"], "--out", "/nonexistent"]))
        params.validate()
        assert params.repeat >= 3, g["name"]


def test_fit_reads_only_the_fit_set_and_matches_its_sender_times(cli, repo):
    dirs = sorted(str(d) for d in (repo / "traces").iterdir() if (d / "meta.json").is_file())
    p = cli("fit", *dirs)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    used = out.splitlines()[0]
    split = split_of_groups(repo / "traces/matrix.json")
    for name, role in split.items():
        if role == "validation":
            assert f" {name}," not in used + "," and f"({name}," not in used, name
    rows = [line.split() for line in out.splitlines() if "sender ns/datagram" in line]
    assert len(rows) >= 9
    for r in rows:
        err = float(r[-1].rstrip("%")) / 100
        assert abs(err) < 0.15, r  # the fitted model within 15 % of each fit capture's sender time
    # The turns on one CPU the costs were fitted to: the model's within 15 % of the kernel's at the
    # median capture, the sender alone and its one-datagram turn, the reader's short reads.
    import statistics
    for figure in ("sender alone us/datagram", "sender one-datagram turn us", "reader short read us"):
        errs = [abs(float(line.split()[-1].rstrip("%"))) / 100 for line in out.splitlines()
                if figure in line and line.split()[-1].endswith("%")]
        assert len(errs) >= 5, figure
        assert statistics.median(errs) < 0.15, (figure, errs)


def test_fit_with_no_fit_group_keeps_the_defaults(cli, repo):
    p = cli("fit", repo / "traces/udp-1400-xcpu-xdpdrop-r1")  # a validation group
    assert p.returncode == 0, p.stderr
    assert "fit set: 0 groups" in p.stdout
    assert "sender costs kept" in p.stdout


def test_a_replay_trace_shows_what_ran_as_a_capture_does(tmp_path):
    # The replay writes the kernel's sched_switch/sched_wakeup lines, so the parser that summarises
    # a capture's scheduling reads the model's too, and finds the turns the model counted.
    from pathlib import Path

    from ppsim import replay

    d = Path(__file__).resolve().parents[2] / "traces" / "udp-600-samecpu-r1"
    trace = tmp_path / "sim.txt"
    _, r = replay.simulate(replay.load_meta(d), str(d / "meta.json"), trace, seed=1)
    text = trace.read_text()
    s = schedtrace.summarise(text, {"sender": 3000, "reader": 3001})
    for role in ("sender", "reader"):
        turns = r.stats[f"cpu0.task.{role}.turns"]
        assert turns > 100  # they ping-pong on the one CPU
        got = s["tasks"][role]
        # A turn still running at the end has no sched_switch that ends it.
        assert got["slices"]["count"] in (turns, turns - 1)
        assert got["wakeups"] == r.stats[f"cpu0.task.{role}.wakeups"]
        # Each turn the trace ends is one the model ended, blocked (S) or preempted (R).
        assert got["ended"].get("S", 0) == r.stats[f"cpu0.task.{role}.blocked"]
        assert got["ended"].get("R", 0) == r.stats[f"cpu0.task.{role}.preempted"]


def test_sender_alone_counts_only_polls_with_no_switch_between():
    # The sender (pid 10) polls every 5 us while alone; a switch to the reader and back makes a
    # 30 us gap that is not the sender's time; a poll of work 2 counts 6 us over two packets.
    lines, t = [], 1.0
    for i in range(60):
        t += 5e-6
        lines.append(f"  send-10 [000] ..s1. {t:.6f}: napi_poll: napi poll on napi struct 1 for device r work 1 budget 64")
    lines.append(_switch(t + 1e-6, 0, "send", 10, "R", "recv", 20))
    lines.append(_switch(t + 29e-6, 0, "recv", 20, "S", "send", 10))
    t += 30e-6
    lines.append(f"  send-10 [000] ..s1. {t:.6f}: napi_poll: napi poll on napi struct 1 for device r work 1 budget 64")
    t += 12e-6
    lines.append(f"  send-10 [000] ..s1. {t:.6f}: napi_poll: napi poll on napi struct 1 for device r work 2 budget 64")
    # The reader's own polls (its ACKs, another pid) are not the sender's.
    lines.append(f"  recv-20 [000] ..s1. {t + 1e-6:.6f}: napi_poll: napi poll on napi struct 2 for device s work 1 budget 64")
    a = schedtrace.sender_profile(lines, 10)["alone"]
    assert a["gaps"] == 60  # 59 between the first 60 polls, and the work-2 one
    assert a["us_per_packet"] == pytest.approx(5.0, abs=0.05)
    assert schedtrace.sender_profile(lines[:40], 10)["alone"] is None  # too few gaps to say


def test_validate_reports_the_senders_speed_in_kernel_and_model(tmp_path):
    # Unpaced UDP groups get the figure (info, not gated); the kernel's from every capture with
    # scheduler lines, the model's from its own trace.
    from pathlib import Path

    from ppsim import replay

    root = Path(__file__).resolve().parents[2] / "traces"
    caps = [(root / f"udp-600-samecpu-r{k}", replay.load_meta(root / f"udp-600-samecpu-r{k}")) for k in (1, 2, 3)]
    trace = tmp_path / "sim.txt"
    replay.simulate(caps[0][1], "meta.json", trace, seed=1, overrides={"veth.fresh_page_ns": 0})
    rows = {r["metric"]: r for r in replay.sender_rows("udp-600-samecpu", caps, trace)}
    assert set(rows) == {"sender.alone_us_per_datagram", "sender.one_packet_turns", "sender.one_packet_turn_us",
                         "sender.runs_alone", "sender.largest_run_alone_packets", "sched.read_after_run",
                         "sched.pingpong_per_lag", "sender.fresh_page_us"}
    assert not any(r["gated"] for r in rows.values())
    # Pages the pool never held cost the kernel's sender microseconds each; the model charges
    # nothing for them when veth.fresh_page_ns is 0, and the same estimate on its trace says so.
    fresh = rows["sender.fresh_page_us"]
    assert fresh["kernel_median"] > 3 and abs(fresh["ppsim"]) < 1
    row = rows["sender.alone_us_per_datagram"]
    lo, hi = row["kernel_range"]
    assert 3.5 < lo <= row["kernel_median"] <= hi < 6.5
    assert 3.5 < row["ppsim"] < 6.5
    paced = [(d, {**m, "params": {**m["params"], "rate": 20000}}) for d, m in caps]
    assert replay.sender_rows("x", paced, trace) == []
    # On one CPU both the kernel and the model ping-pong (one datagram a turn) between runs alone.
    for r in (rows["sender.one_packet_turns"], rows["sender.runs_alone"]):
        assert r["kernel_range"][0] > 0 and r["ppsim"] > 0
    assert 5 < rows["sender.one_packet_turn_us"]["ppsim"] < 30
    # The model's EEVDF spends the reader's lag as the kernel's does, within a tenth.
    lag = rows["sched.pingpong_per_lag"]
    assert abs(lag["ppsim"] - lag["kernel_median"]) <= 0.1


def test_sender_profile_splits_turns_into_ping_pong_and_runs_alone():
    # Switched in: one datagram, switched out after 9 us (a ping-pong turn); switched in again:
    # five datagrams (a run alone); the reader's turn between is not the sender's.
    lines = [_switch(1.000000, 0, "recv", 20, "S", "send", 10),
             "  send-10 [000] ..s1. 1.000004: napi_poll: napi poll on napi struct 1 for device r work 1 budget 64",
             _switch(1.000009, 0, "send", 10, "R", "recv", 20),
             "  recv-20 [000] ..s1. 1.000012: napi_poll: napi poll on napi struct 2 for device s work 3 budget 64",
             _switch(1.000019, 0, "recv", 20, "S", "send", 10)]
    t = 1.000019
    for _ in range(5):
        t += 5e-6
        lines.append(f"  send-10 [000] ..s1. {t:.6f}: napi_poll: napi poll on napi struct 1 for device r work 1 budget 64")
    lines.append(_switch(t + 1e-6, 0, "send", 10, "R", "recv", 20))
    turns = schedtrace.sender_profile(lines, 10)["turns"]
    assert turns == {"single": 1, "single_median_us": 9.0, "runs": 1, "run_packets": 5, "largest_run": 5}
    assert schedtrace.sender_profile(lines[:1], 10)["turns"] is None  # switched in, never out


def test_lag_budget_compares_ping_pong_with_the_lag_a_run_alone_leaves():
    # A 100 us run alone (10 datagrams), the reader's backlog turn of 20 us, four ping-pong
    # cycles (sender 5 us with one datagram, reader 10 us), then the next run alone. The reader is
    # owed (100 - 20) / 2 us of lag, which lasts (100 - 20) / 10 = 8 cycles; 4 happened.
    poll = "  send-10 [000] ..s1. {:.6f}: napi_poll: napi poll on napi struct 1 for device r work 1 budget 64"
    lines, t = [_switch(1.0, 0, "recv", 20, "S", "send", 10)], 1.0

    def run(us, datagrams):
        nonlocal t
        for k in range(datagrams):
            lines.append(poll.format(t + (k + 1) * us / datagrams / 2 * 1e-6))
        t += us * 1e-6
        lines.append(_switch(t, 0, "send", 10, "R", "recv", 20))

    def read(us):
        nonlocal t
        t += us * 1e-6
        lines.append(_switch(t, 0, "recv", 20, "S", "send", 10))

    run(100, 10)
    read(20)
    for _ in range(4):
        run(5, 1)
        read(10)
    run(50, 5)
    turns = schedtrace.sender_profile(lines, 10, 20)["turns"]
    assert turns["phases"] == 1
    assert turns["read_after_run"] == 0.2
    assert turns["pingpong_per_lag"] == 0.5
    assert "phases" not in schedtrace.sender_profile(lines, 10)["turns"]  # no reader named


def test_write_cycles_pair_a_one_write_turn_with_the_read_after_it():
    # Three segments a write. Cycle 1: the sender's turn carries one write (3 segments, 20 us),
    # the reader reads for 10 us. Cycle 2: 4 segments (more than a write) is not a one-write
    # turn. Cycle 3: one write (18 us), the reader reads for 14 us.
    poll = "  send-10 [000] ..s1. {:.6f}: napi_poll: napi poll on napi struct 1 for device r work {} budget 64"
    lines, t = [_switch(1.0, 0, "recv", 20, "S", "send", 10)], 1.0
    for send_us, segs, read_us in ((20, 3, 10), (30, 4, 12), (18, 3, 14)):
        lines.append(poll.format(t + 2e-6, segs))
        t += send_us * 1e-6
        lines.append(_switch(t, 0, "send", 10, "R", "recv", 20))
        t += read_us * 1e-6
        lines.append(_switch(t, 0, "recv", 20, "S", "send", 10))
    w = schedtrace.write_cycles(lines, 10, 20, 3)
    assert w == {"cycles": 2, "send_us": 19.0, "read_us": 12.0}
    assert schedtrace.write_cycles(lines, 10, 20, 5) is None  # no turn carried exactly 5
    assert schedtrace.write_cycles(lines[:1], 10, 20, 3) is None  # switched in, never out


def test_validate_reports_one_write_cycles_for_tcp_on_one_cpu(tmp_path):
    # Same-CPU TCP groups get the one-write cycle rows (info, not gated), kernel and model.
    from pathlib import Path

    from ppsim import replay

    root = Path(__file__).resolve().parents[2] / "traces"
    caps = [(root / f"tcp-4096-samecpu-r{k}", replay.load_meta(root / f"tcp-4096-samecpu-r{k}")) for k in (1, 2, 3)]
    assert replay.segments_per_write(caps[0][1]) == 3
    trace = tmp_path / "sim.txt"
    replay.simulate(caps[0][1], "meta.json", trace, seed=1)
    rows = {r["metric"]: r for r in replay.sender_rows("tcp-4096-samecpu", caps, trace)}
    assert set(rows) == {"sched.one_write_cycles", "sched.one_write_send_us", "sched.one_write_read_us",
                         "sender.fresh_page_us"}
    assert not any(r["gated"] for r in rows.values())
    # The kernel alternates write and read hundreds of times; a read of one write takes 10-20 us.
    assert rows["sched.one_write_cycles"]["kernel_range"][0] > 100
    assert 10 <= rows["sched.one_write_read_us"]["kernel_median"] <= 20
    assert rows["sched.one_write_cycles"]["ppsim"] > 100
    xcpu = [(d, {**m, "params": {**m["params"], "receiver_cpu": 1}}) for d, m in caps]
    assert replay.sender_rows("x", xcpu, trace) == []


def test_task_time_clips_a_task_to_the_phase_the_model_reproduces():
    # The reader runs 1.000000-1.000010, 1.000020-1.000050 and 1.000060-1.004000 (its end of run,
    # after the last byte at 1.000070). Between 1.000005 and 1.000070: 5 + 30 + 10 us in 3 turns.
    lines = [_switch(1.000000, 0, "send", 10, "S", "recv", 20), _switch(1.000010, 0, "recv", 20, "S", "send", 10),
             _switch(1.000020, 0, "send", 10, "R", "recv", 20), _switch(1.000050, 0, "recv", 20, "S", "send", 10),
             _switch(1.000060, 0, "send", 10, "S", "recv", 20), _switch(1.004000, 0, "recv", 20, "Z", "send", 10)]
    ns = lambda s: int(round(s * 1e9))  # noqa: E731
    assert schedtrace.task_time(lines, 20, ns(1.000005), ns(1.000070)) == {"turns": 3, "ns": 45_000}
    assert schedtrace.task_time(lines, 20, ns(1.0), ns(2.0)) == {"turns": 3, "ns": 3_980_000}
    # Still on the CPU when the trace ends: counted up to the window's end.
    assert schedtrace.task_time(lines[:5], 20, ns(1.0), ns(1.000100)) == {"turns": 3, "ns": 80_000}
    # Both tasks in one pass, each in its own window: the same as one at a time.
    both = schedtrace.task_times(lines, {"r": (20, ns(1.000005), ns(1.000070)), "s": (10, ns(1.0), ns(1.000030))})
    assert both == {"r": {"turns": 3, "ns": 45_000}, "s": schedtrace.task_time(lines, 10, ns(1.0), ns(1.000030))}
    assert both["s"] == {"turns": 1, "ns": 10_000}  # its turn of 1.000010-1.000020


def test_tcp_write_return_moves_the_end_of_a_write_after_its_segments(tmp_path):
    # veth.tcp_write_return_ns takes part of the write's cost to after its last segment's
    # softirq: on one CPU the reader the write woke waits that much longer for the switch (the
    # kernel's sched_wakeup → sched_switch gap); across CPUs the writer's CPU time is unchanged.
    import statistics
    from pathlib import Path

    from ppsim import replay

    root = Path(__file__).resolve().parents[2] / "traces"

    def run(capture, ret_ns):
        trace = tmp_path / f"{capture}-{ret_ns}.txt"
        _, r = replay.simulate(replay.load_meta(root / capture), "meta.json", trace, seed=1,
                               overrides={"veth.tcp_write_return_ns": ret_ns})
        gaps, woke = [], None
        for line in trace.read_text().splitlines():
            if "sched_wakeup:" in line and "comm=ppsim_recv" in line:
                woke = float(line.split(": sched_wakeup")[0].split()[-1])
            elif "sched_switch:" in line and "prev_comm=ppsim_send" in line and "next_comm=ppsim_recv" in line and woke:
                gaps.append(float(line.split(": sched_switch")[0].split()[-1]) - woke)
                woke = None
        runtime = next(v for k, v in r.stats.items() if k.endswith("task.sender.runtime_ns"))
        return (statistics.median(gaps) * 1e6 if gaps else None), runtime

    tau0, _ = run("tcp-1448-samecpu-r1", 0)
    tau3, _ = run("tcp-1448-samecpu-r1", 3000)
    assert tau3 - tau0 == pytest.approx(3.0, abs=0.6)
    _, rt0 = run("tcp-65536-xcpu-r1", 0)
    _, rt3 = run("tcp-65536-xcpu-r1", 3000)
    assert rt3 == pytest.approx(rt0, rel=0.01)


def test_cold_frag_memory_at_its_high_water_mark():
    # veth.tcp_frag_cold_high_water: the sender's writes fault in fresh pages only when the socket
    # holds more than it ever held (freed frag memory is reused first). The faults then cover that
    # high-water mark, well past the first 32 KiB the fixed rule charges, but never more than the
    # send buffer allows; with no first-touch cost nothing is charged. Without the kernel's ACK
    # path the option has no high-water mark to follow, and the run is refused naming both keys.
    from pathlib import Path

    from ppsim import replay
    from ppsim.errors import InputError

    meta = replay.load_meta(Path(__file__).resolve().parents[2] / "traces" / "tcp-40960-samecpu-r1")

    def run(**ov):
        _, r = replay.simulate(meta, "meta.json", None, seed=1, overrides=ov)
        return r.stats

    fixed = run(**{"veth.tcp_frag_first_touch_ns": 8000})
    hwm = run(**{"veth.tcp_frag_first_touch_ns": 8000, "veth.tcp_frag_cold_high_water": True})
    assert fixed["veth0.tcp.sndq_faults"] == 8  # the first 32 KiB written
    faults = hwm["veth0.tcp.sndq_faults"]
    assert 8 < faults <= hwm["veth0.tcp.sndbuf_bytes"] // 4096 + 40960 // 4096 + 1
    warm = run(**{"veth.tcp_frag_cold_high_water": True})
    assert "veth0.tcp.sndq_faults" not in warm
    with pytest.raises(InputError, match=r"veth\.tcp_frag_cold_high_water.*tcp_kernel_acks"):
        run(**{"veth.tcp_frag_cold_high_water": True, "veth.tcp_kernel_acks": False})


def _poll(t_us: float, pid: int = 100, work: int = 1) -> str:
    return (f"      ppsim_send-{pid}   [000] ..s1.  1000.{int(t_us):06d}: napi_poll: napi poll on napi struct "
            f"00000000b0c00000 for device veth0 work {work} budget 64")


def _pool(t_us: float, what: str, n: int, pool: str = "00000000000000aa") -> list[str]:
    return [f"      ppsim_send-100   [000] ..s1.  1000.{int(t_us):06d}: page_pool_state_{what}: page_pool={pool} "
            f"netmem=0000000000000001 is_net_iov=0, pfn=0x{i + 1:x} {what}={i + 1}" for i in range(n)]


def test_fresh_page_cost_is_the_senders_extra_time_on_pages_never_held_before():
    # 16 pages above the pool's high-water mark: the reader's context polls 4 of their frames (its
    # ACK made the sender transmit), the sender the other 12, each 15 us after the last where the
    # rest take 5: 10 us a page, over the 11 gaps (the first poll has no gap). Giving 16 back and
    # taking them again is not fresh (the allocator hands the same pages back); another pool's
    # holds are not counted; a switch breaks the gap it spans.
    lines = _pool(0, "hold", 16) + [_poll(5, pid=101, work=4)]
    t = 10.0
    lines.append(_poll(t))
    for _ in range(11):
        t += 15
        lines.append(_poll(t))
    for _ in range(60):
        t += 5
        lines.append(_poll(t))
    lines += _pool(t, "release", 16) + _pool(t, "hold", 16) + _pool(t, "hold", 40, pool="00000000000000bb")
    for _ in range(16):
        t += 5
        lines.append(_poll(t))
    lines.append(f"      ppsim_send-100   [000] d..2.  1000.{int(t) + 2:06d}: sched_switch: prev_comm=ppsim_send "
                 f"prev_pid=100 prev_prio=120 prev_state=R ==> next_comm=ppsim_recv next_pid=101 next_prio=120")
    lines.append(_poll(t + 5))
    k = schedtrace.fresh_page_cost(lines, 100, 1, ["00000000000000aa"])
    assert k["fresh_pages"] == 11 and k["fresh_gaps"] == 11 and k["base_gaps"] == 76
    assert k["base_us_per_frame"] == 5.0 and k["excess_us_per_page"] == 10.0
    # Two frames a page: the same 16 pages serve 32 frames, 16 of them in the plain 5 us gaps.
    two = schedtrace.fresh_page_cost(lines, 100, 2, ["00000000000000aa"])
    assert two["fresh_pages"] == 13.5 and two["excess_us_per_page"] == round(110 / 13.5, 3)
    # Counting the other pool's 40 holds makes the last 16 frames fresh too; too few plain gaps: None.
    assert schedtrace.fresh_page_cost(lines, 100, 1)["fresh_pages"] == 27
    assert schedtrace.fresh_page_cost(lines[:60], 100, 1) is None


def test_read_shapes_tells_short_reads_from_backlog_reads():
    # Sender 100, reader 101 on CPU 0. Three cycles of one write of 3 segments, each read in 10 us;
    # then a run of 120 segments read in 240 us (2 us a packet). A read after which the reader
    # polled (its ACK made the sender transmit), one that ends preempted (`R`), and one after a
    # sender turn of 10 segments (neither short nor a backlog) are not counted.
    t = 0.0
    lines = [_switch(1000 + t / 1e6, 0, "swapper/0", 0, "R", "ppsim_send", 100)]

    def turn(sender_work, read_us, reader_state="S", reader_work=0):
        nonlocal t
        t += 5
        lines.append(_poll(t, work=sender_work))
        t += 5
        lines.append(_switch(1000 + t / 1e6, 0, "ppsim_send", 100, "R", "ppsim_recv", 101))
        if reader_work:
            lines.append(_poll(t + 1, pid=101, work=reader_work))
        t += read_us
        lines.append(_switch(1000 + t / 1e6, 0, "ppsim_recv", 101, reader_state, "ppsim_send", 100))

    for _ in range(3):
        turn(3, 10)
    turn(120, 240)
    turn(3, 30, reader_work=5)
    turn(3, 30, reader_state="R")
    turn(10, 50)
    r = schedtrace.read_shapes(lines, 100, 101, packets_per_write=3)
    assert r == {"short_reads": 3, "short_read_us": 10.0, "backlog_reads": 1, "backlog_us_per_packet": 2.0,
                 "backlog_packets": 120}
    # A lost switch line (the end of the first read) leaves what ran before unknown: neither that
    # read nor the next counts.
    first_end = next(i for i, ln in enumerate(lines) if "prev_pid=101" in ln)
    gap = lines[:first_end] + lines[first_end + 1:]
    assert schedtrace.read_shapes(gap, 100, 101, packets_per_write=3)["short_reads"] == 1
    # UDP: one datagram a write; the 3-segment turns are then neither.
    assert schedtrace.read_shapes(lines, 100, 101)["short_reads"] == 0


def test_bounded_least_squares_stops_a_cost_at_zero():
    # y = 2a - 3b fits exactly, but b may fall only by 1 (its cost was 1): it stops there and a
    # takes up what it can.
    from ppsim.fit import _bounded_lstsq, _robust_rows

    rows = [[1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [4.0, 1.0]]
    ys = [2 * x - 3 for x, _ in rows]
    a, b = _bounded_lstsq(rows, ys, [None, None])
    assert a == pytest.approx(2) and b == pytest.approx(-3)
    a, b = _bounded_lstsq(rows, ys, [None, -1.0])
    assert b == pytest.approx(-1.0) and a == pytest.approx(sum(x * (y + 1) for (x, _), y in zip(rows, ys)) / 30)
    # A row far off the others (a session that ran slow) is left out before the fit.
    rows2, ys2 = _robust_rows(rows + [[2.5, 1.0]], ys + [40.0], [None, None])
    assert len(rows2) == 4 and 40.0 not in ys2
