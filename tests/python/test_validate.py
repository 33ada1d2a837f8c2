"""Replaying kernel captures: the veth workload, scenario_from_meta, and `ppsim validate`."""
import json
import shutil

import pytest

import ppsim
from ppsim.errors import InputError
from ppsim.replay import connect_gap_us, load_meta, measured_start_us, metrics, scenario_from_meta, validate


def test_every_bundled_capture_validates(cli, repo, tmp_path):
    dirs = sorted(str(d) for d in (repo / "traces").iterdir() if (d / "meta.json").is_file())
    assert len(dirs) >= 12
    p = cli("validate", *dirs, "--out", tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr
    last = p.stdout.strip().splitlines()[-1]
    assert last.startswith("all: "), last
    n, _, m = last.split()[1:4]
    k = last.split("tolerance, ")[1].split()[0]
    # Every gated check passes except the deviations written down in traces/known_deviations.json
    # (each with its reason); one that passes again fails the run, so the list cannot go stale.
    from ppsim.replay import load_known_deviations
    assert int(n) + int(k) == int(m), last
    assert int(k) == len(load_known_deviations()), last
    # Both sets are reported: groups tuned on (fit) and groups never tuned on (validation).
    assert any(line.startswith("fit: ") for line in p.stdout.splitlines())
    assert any(line.startswith("validation: ") for line in p.stdout.splitlines())
    res = json.loads((tmp_path / "validation.json").read_text())
    assert res["ok"]
    groups = res["groups"]
    assert {"udp-1400-xcpu", "udp-1400-samecpu", "udp-1400-xcpu-delay300-rcvbuf8000000", "tcp-65536-xcpu"} <= set(groups)
    assert (tmp_path / "holds_vs_packets.png").stat().st_size > 10_000
    metrics_seen = {r["metric"] for r in res["rows"]}
    assert {"holds", "releases", "hold_burst_sizes", "inflight_at_first_release"} <= metrics_seen


def test_frag_packing_matches_the_kernel_rule(repo, tmp_path):
    # 300 datagrams held unread over the veth deletion: inflight at cnt=1 is ceil(300 / per page),
    # with per page from truesize = ALIGN64(payload + 42) + 320 + 256 (a frag when twice fits).
    meta = load_meta(repo / "traces/pack-udp-1400-r1")
    for payload, per_page in ((22, 6), (100, 5), (600, 3), (1400, 2), (1430, 2), (1472, 1)):
        sc = scenario_from_meta(meta)
        sc["veth"]["payload_bytes"] = payload
        r = ppsim.run(sc, trace=tmp_path / f"{payload}.txt")
        assert r.ok, r.violations
        assert r.stats["veth0.rx_packets"] == 300
        assert metrics(tmp_path / f"{payload}.txt").first_inflight == -(-300 // per_page), payload


def test_frames_per_page_follows_the_models_packing(repo):
    # `ppsim validate` divides the kernel's extra time after fresh holds by the pages those frames
    # filled; its packing rule is the model's (the per_page column above). A TCP write's full
    # segments fill a page each, and a short last segment may share one.
    from ppsim.replay import frames_per_page
    for payload, per_page in ((22, 6), (100, 5), (600, 3), (1400, 2), (1430, 2), (1472, 1)):
        assert frames_per_page({"replay": {"proto": "udp", "payload_bytes": payload}}) == per_page, payload
    tcp = lambda size: frames_per_page({"replay": {"proto": "tcp", "payload_bytes": size, "mtu": 1500}})
    assert tcp(600) == 3.0
    assert tcp(4096) == pytest.approx(3 / 2.5)  # 1448, 1448 and 1200 bytes: 1 + 1 + 1/2 pages
    assert tcp(65536) == pytest.approx(46 / 45.25)  # 45 full segments and 376 bytes (4 a page)
    # The model agrees: with the reader held, eight 4096-byte writes fill 20 pages (and the
    # connection's own small frames share one more at most).
    sc = scenario_from_meta(load_meta(repo / "traces/tcp-4096-samecpu-r1"))
    sc["veth"].update({"sends": 8, "reader_hold_us": 1000})
    r = ppsim.run(sc)
    assert r.ok, r.violations
    assert 20 <= r.stats["veth0.fresh_pages"] <= 21
    with pytest.raises(InputError, match=r"m\.json: at \$\.replay\.payload_bytes: expected an integer"):
        frames_per_page({"replay": {"proto": "udp", "payload_bytes": "600"}}, "m.json")
    assert frames_per_page({"replay": {"proto": "tcp", "payload_bytes": 4096, "mtu": None}}) == tcp(4096)


def _replay_stats(repo, name: str, overrides: dict) -> dict:
    """The stats of one replay of a bundled capture with `overrides` ({"section.key": value})."""
    r = ppsim.run(scenario_from_meta(load_meta(repo / "traces" / name)), overrides=overrides)
    assert r.ok, r.violations
    return r.stats


def test_a_page_the_pool_never_held_costs_its_first_copy_once(repo):
    # veth.fresh_page_ns: charged to the NAPI poll that first copies a frame into a page the run
    # never used before. Cross-CPU UDP holds 64 pages and recycles them: 64 fresh pages, and the
    # sender (whose sendmsg runs the poll) pays 64 times the cost. A same-CPU run with a large
    # buffer gives pages back and takes them again: those are warm, so fewer fresh pages than holds.
    def run(name, ns):  # without the remote copy, whose count moves with the timing
        return _replay_stats(repo, name, {"veth.fresh_page_ns": ns, "cpus.remote_copy_ns_per_kib": 0.0})

    warm, cold = run("udp-1400-xcpu-r1", 0), run("udp-1400-xcpu-r1", 5000)
    assert warm["veth0.fresh_pages"] == cold["veth0.fresh_pages"] == 64
    extra = cold["cpu0.task.sender.runtime_ns"] - warm["cpu0.task.sender.runtime_ns"]
    assert extra == pytest.approx(64 * 5000, rel=0.01)
    big = run("udp-1472-samecpu-rcvbuf16000000-r1", 0)
    holds = big["veth0.rq0.pp.pages_state_hold_cnt"]
    assert holds == big["veth0.rq0.pp.pages_state_release_cnt"]
    assert 64 < big["veth0.fresh_pages"] < holds / 2


def test_a_copy_that_meets_another_cpus_lines_pays_the_remote_cost(repo):
    # cpus.remote_copy_ns_per_kib: across CPUs the reader on CPU 1 copies each datagram out of a
    # page CPU 0 wrote, and CPU 0 writes the next frame into a page CPU 1 read last. Every frame
    # but those that land in a page no reader has touched pays per byte on the sender's side, every
    # read on the reader's. On one CPU no copy is remote, and the cost changes nothing.
    def run(name, ns):
        return _replay_stats(repo, name, {"cpus.remote_copy_ns_per_kib": ns})

    local, remote = run("udp-1400-xcpu-r1", 0), run("udp-1400-xcpu-r1", 1000)
    n = remote["veth0.remote_copies"]
    assert n == local["veth0.remote_copies"]
    assert 2000 - 64 * 2 <= n < 2000  # all but the first frames into each of the 64 pages (two frames a page)
    frame = 1400 + 42  # payload, UDP, IP and Ethernet headers: what skb_pp_cow_data copies
    extra = remote["cpu0.task.sender.runtime_ns"] - local["cpu0.task.sender.runtime_ns"]
    assert extra == pytest.approx(n * frame * 1000 / 1024, rel=0.01)
    # The reader copies each frame (headers included) out of a page CPU 0 wrote: every read is
    # remote. Its turns shift a little with the sender's slower writes, so within 10 %.
    extra = remote["cpu1.task.reader.runtime_ns"] - local["cpu1.task.reader.runtime_ns"]
    assert extra == pytest.approx(2000 * frame * 1000 / 1024, rel=0.1)
    one, other = run("udp-600-samecpu-r1", 0), run("udp-600-samecpu-r1", 1000)
    assert one["veth0.remote_copies"] == other["veth0.remote_copies"] == 0
    assert one["cpu0.task.sender.runtime_ns"] == other["cpu0.task.sender.runtime_ns"]
    assert one["cpu0.task.reader.runtime_ns"] == other["cpu0.task.reader.runtime_ns"]


def test_the_fresh_page_estimate_reads_the_models_charge_back_from_its_trace(repo, tmp_path):
    # `ppsim validate` compares the kernel's extra time per fresh page with the same estimate on
    # the model's trace (sender.fresh_page_us). At one frame a page the estimate returns what the
    # model charged; with nothing charged it finds nothing.
    from ppsim import schedtrace
    from ppsim.replay import SIM_SENDER_PID, frames_per_page
    meta = load_meta(repo / "traces/udp-1472-samecpu-rcvbuf16000000-r1")
    assert frames_per_page(meta) == 1
    for ns, lo, hi in ((0, -0.5, 0.5), (5000, 4.5, 5.5)):
        sc = scenario_from_meta(meta)
        sc["veth"]["fresh_page_ns"] = ns
        t = tmp_path / f"{ns}.txt"
        assert ppsim.run(sc, trace=t).ok
        with t.open() as f:
            k = schedtrace.fresh_page_cost(f, SIM_SENDER_PID, 1)
        assert k["fresh_pages"] > 500
        assert lo < k["excess_us_per_page"] < hi, (ns, k)


def test_replay_reproduces_a_cross_cpu_udp_capture(repo, tmp_path):
    meta = load_meta(repo / "traces/udp-1400-xcpu-r1")
    sc = scenario_from_meta(meta)
    assert sc["workload"] == "veth" and sc["page_pool"]["pool_size_pages"] == 256
    r = ppsim.run(sc, trace=tmp_path / "t.txt")
    assert r.ok
    m = metrics(tmp_path / "t.txt")
    k = metrics(repo / "traces/udp-1400-xcpu-r1/trace.txt", kept_first_polls=100)
    assert m.holds == k.holds == 64
    assert m.burst_sizes == [64]
    # The skbs read after the sender's last poll sit on the sender CPU's defer list when the veth
    # goes: one page inflight in the kernel. The model's reader ends a datagram or two further
    # behind (its copy out of pages CPU 0 wrote is remote): the last skbs span one or two pages
    # (two datagrams a page), within validate's tolerance of 4.
    assert k.first_inflight == 1 and m.first_inflight in (1, 2)
    assert m.releases_at[-1]["inflight"] == 0 and m.releases_at[-1]["cnt"] == 2
    # every page returned through the ring or by reuse: veth's pool has no NAPI to recycle into
    assert r.stats["page_pool.recycle_ring"] + r.stats["page_pool.recycle_cached"] > 0
    # same scenario, same bytes
    again = ppsim.run(sc, trace=tmp_path / "t2.txt")
    assert again.to_json() == r.to_json()
    assert (tmp_path / "t.txt").read_bytes() == (tmp_path / "t2.txt").read_bytes()


def test_a_tcp_replay_starts_its_sender_as_long_after_the_connection_as_the_capture(repo, tmp_path, monkeypatch):
    # tcp-1448-samecpu-r1: the handshake's final ACK is polled at 7632.179803, the sender writes
    # its "sender start" marker at 7632.179988: 185 us.
    assert connect_gap_us(repo / "traces/tcp-1448-samecpu-r1") == pytest.approx(185.0)
    caps = [(repo / f"traces/tcp-1448-samecpu-r{i}", load_meta(repo / f"traces/tcp-1448-samecpu-r{i}"))
            for i in (1, 2, 3)]
    gaps = sorted(connect_gap_us(d) for d, _ in caps)
    assert measured_start_us(caps) == pytest.approx(gaps[1], abs=0.05)  # the median, 0.1 us
    # UDP has no handshake: the replay keeps veth.start_us.
    udp = repo / "traces/udp-1400-xcpu-r1"
    assert measured_start_us([(udp, load_meta(udp))]) is None
    # A TCP trace cut before its marker has no gap, and the replay keeps its default.
    d = tmp_path / "cap"
    shutil.copytree(repo / "traces/tcp-1448-xcpu-r1", d)
    text = capture_text(d)
    keep = [l for l in text.splitlines() if "sender start" not in l]
    (d / "trace.txt").write_text("\n".join(keep) + "\n")
    (d / "trace.txt.gz").unlink(missing_ok=True)
    assert connect_gap_us(d) is None
    # validate replays the group with the measured start (what each run got) and reports it.
    real_run, ran = ppsim.run, []

    def spy(sc, **kw):
        ov = kw.get("overrides") or {}
        ran.append(ov.get("veth.start_us", sc["veth"].get("start_us")))
        return real_run(sc, **kw)

    monkeypatch.setattr(ppsim, "run", spy)
    res = validate([d for d, _ in caps], workdir=tmp_path / "v")
    assert ran == [measured_start_us(caps)] * 3
    assert res["groups"]["tcp-1448-samecpu"]["scenario"]["veth"]["start_us"] == measured_start_us(caps)
    # the caller's override wins
    ran.clear()
    res = validate([d for d, _ in caps], workdir=tmp_path / "v2", overrides={"veth.start_us": 77.0})
    assert ran == [77.0] * 3
    assert res["groups"]["tcp-1448-samecpu"]["scenario"]["veth"]["start_us"] == 77.0
    # ppsim fit replays a capture with its own gap, over the candidate values it lays on top.
    from ppsim import fit as fitmod

    seen = []
    monkeypatch.setattr(ppsim, "run", lambda sc, **kw: seen.append(sc["veth"]["start_us"]))
    meta = load_meta(caps[0][0])
    fitmod._run(meta, str(caps[0][0]), {"veth": {"start_us": 50.0}})
    fitmod._run(meta, str(caps[0][0] / "meta.json"), {"veth": {"start_us": 50.0}}, start_us=99.0)
    assert seen == [pytest.approx(185.0), 99.0]


def capture_text(d):
    import gzip
    gz = d / "trace.txt.gz"
    return gzip.open(gz, "rt").read() if gz.exists() else (d / "trace.txt").read_text()


def test_late_reader_overflows_the_ring_through_the_defer_list(repo):
    sc = scenario_from_meta(load_meta(repo / "traces/udp-1400-xcpu-delay300-rcvbuf8000000-r1"))
    r = ppsim.run(sc)
    s = r.stats
    assert s["page_pool.pages_state_hold_cnt"] == 1024  # 1000 pages queued: 16 bursts
    assert s["stack.deferred"] > 1500 and s["stack.defer_ipis"] > 30
    assert s["page_pool.recycle_ring_full"] > 600  # the ring (256) overflows while the reader drains


def test_bad_meta_is_reported_with_the_file_and_path(tmp_path, cli, repo):
    d = tmp_path / "cap"
    shutil.copytree(repo / "traces/udp-1400-xcpu-r1", d)
    meta = json.loads((d / "meta.json").read_text())
    del meta["replay"]
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="missing replay"):
        scenario_from_meta(meta, str(d / "meta.json"))
    p = cli("validate", d, "--out", tmp_path / "v")
    assert p.returncode == 2 and "missing replay" in p.stderr and str(d) in p.stderr
    (d / "meta.json").write_text("{not json")
    p = cli("validate", d, "--out", tmp_path / "v")
    assert p.returncode == 2 and "malformed JSON at line 1" in p.stderr
    p = cli("validate", tmp_path / "nothing-here", "--out", tmp_path / "v")
    assert p.returncode == 2


def test_a_truncated_kernel_trace_names_file_and_line(tmp_path, repo, cli):
    d = tmp_path / "cap"
    shutil.copytree(repo / "traces/udp-100-xcpu-r1", d)
    lines = (d / "trace.txt").read_text().splitlines()
    idx = next(i for i, l in enumerate(lines) if "page_pool_state_hold" in l)
    lines[idx] = lines[idx][: lines[idx].index("hold=") + 2]  # cut mid-field
    (d / "trace.txt").write_text("\n".join(lines) + "\n")
    p = cli("validate", d, "--out", tmp_path / "v")
    assert p.returncode == 2
    assert f"trace.txt:{idx + 1}:" in p.stderr


def test_veth_scenario_errors(tmp_path):
    with pytest.raises(InputError, match=r"\$\.veth\.receiver_cpu: expected a CPU below cpus.count"):
        ppsim.run({"workload": "veth", "veth": {"receiver_cpu": 5}})
    with pytest.raises(InputError, match=r"\$\.veth\.payload_bytes: expected a UDP payload that fits the MTU"):
        ppsim.run({"workload": "veth", "veth": {"payload_bytes": 2000}})


def _tcp(**veth):
    sc = {"workload": "veth", "cpus": {"count": 2, "sched_slice_us": 1400, "sched_tick_us": 4000},
          "page_pool": {"pool_size_pages": 256, "dma_map": False, "dma_sync": False, "napi_bound": False},
          "stack": {"mode": "socket", "reader_cpu": 1},
          "veth": {"proto": "tcp", "sends": 20, "payload_bytes": 65536, "delete_after_sender_us": 1000}}
    sc["veth"].update(veth)
    return sc


@pytest.mark.parametrize("veth", [
    {"tcp_rcvbuf_bytes": 2000, "tcp_rcvbuf_locked": True},  # a window below one MSS: partial segments
    {"xdp": "drop"},                  # dropped segments free their window space
    {"delete_after_sender_us": 0},    # the FIN goes out before the deletion, never after it
    {"tcp_push_per_skb": True, "tcp_rcvbuf_bytes": 2000, "tcp_rcvbuf_locked": True},
    {"tcp_push_per_skb": True, "delete_after_sender_us": 0},
])
def test_tcp_corner_cases_finish_cleanly(veth):
    # Without the kernel's ACKs (the model before veth.tcp_kernel_acks); with them below.
    r = ppsim.run(_tcp(**{"tcp_kernel_acks": False, "tcp_push_per_skb": False, **veth}),
                  overrides={"sim.time_limit_us": 5e6})
    assert not r.raw["time_limit_reached"]
    assert r.ok, r.violations
    assert r.stats["veth0.writes"] == 20
    assert r.stats["veth0.rq0.pp.freed"] == 1


def test_first_touch_faults_count_each_new_page_once():
    # The reader's 64 KiB buffer (read_bytes) faults in 16 pages however often it is refilled; the
    # sender's 64 KiB writes walk the first 32 KiB page_frag (8 pages: the veth.tcp_frag_cold_bytes
    # default), and later frags are warm.
    sc = _tcp(tcp_kernel_acks=True, tcp_frag_first_touch_ns=30000)
    sc["stack"].update({"read_bytes": 65536, "read_batch_skbs": 1 << 20, "reader_first_touch_ns": 30000})
    r = ppsim.run(sc, overrides={"sim.time_limit_us": 5e6})
    assert r.ok, r.violations
    assert r.stats["stack.reader_buffer_faults"] == 16
    assert r.stats["veth0.tcp.sndq_faults"] == 8
    # veth.tcp_frag_cold_bytes widens the sender's cold memory: 128 KiB are 32 pages.
    wide = ppsim.run(_tcp(tcp_kernel_acks=True, tcp_frag_first_touch_ns=30000, tcp_frag_cold_bytes=131072),
                     overrides={"sim.time_limit_us": 5e6})
    assert wide.ok, wide.violations
    assert wide.stats["veth0.tcp.sndq_faults"] == 32
    warm = ppsim.run(_tcp(tcp_kernel_acks=True), overrides={"sim.time_limit_us": 5e6})
    assert "stack.reader_buffer_faults" not in warm.stats and "veth0.tcp.sndq_faults" not in warm.stats


@pytest.mark.parametrize("veth", [
    {},
    {"tcp_rcvbuf_bytes": 2000, "tcp_rcvbuf_locked": True},
    {"xdp": "drop"},
    {"delete_after_sender_us": 0},
    {"payload_bytes": 4096, "sends": 300, "sender_cpu": 1},  # same CPU: delayed ACKs stall the sender
    {"tcp_push_per_skb": True},
    {"tcp_push_per_skb": True, "xdp": "drop"},
    {"tcp_push_per_skb": True, "payload_bytes": 32768, "sends": 100, "sender_cpu": 1},
])
def test_tcp_kernel_acks_finish_cleanly(veth):
    r = ppsim.run(_tcp(tcp_kernel_acks=True, **veth), overrides={"sim.time_limit_us": 5e6})
    assert not r.raw["time_limit_reached"]
    assert r.ok, r.violations
    assert r.stats["veth0.writes"] == veth.get("sends", 20)
    assert r.stats["veth0.rq0.pp.freed"] == 1
    assert 0 < r.stats["veth0.tcp.acks"] <= r.stats["veth0.rx_packets"]


def test_tcp_ack_backlog_holds_acks_until_the_write_releases_the_socket():
    # veth.tcp_ack_backlog: ACKs that reach the writer inside sendmsg wait in the socket's backlog
    # (sk_flush_backlog every 16 skbs, release_sock at the write's end). Every write still
    # completes and every segment is still acknowledged; only when they act moves.
    off = ppsim.run(_tcp(tcp_kernel_acks=True, tcp_push_per_skb=True), seed=1,
                    overrides={"sim.time_limit_us": 5e6})
    on = ppsim.run(_tcp(tcp_kernel_acks=True, tcp_push_per_skb=True, tcp_ack_backlog=True), seed=1,
                   overrides={"sim.time_limit_us": 5e6})
    assert off.ok and on.ok, (off.violations, on.violations)
    assert not on.raw["time_limit_reached"]
    assert on.stats["veth0.writes"] == off.stats["veth0.writes"] == 20
    assert "veth0.tcp.acks_backlogged" not in off.stats
    assert 0 < on.stats["veth0.tcp.acks_backlogged"] <= on.stats["veth0.tcp.acks"]
    # They wait: a flush takes several at once (one right after each arrival would not).
    assert 0 < on.stats["veth0.tcp.backlog_flushes"] < on.stats["veth0.tcp.acks_backlogged"]
    # Without per-skb pushes there is no backlog to model: the option does nothing there.
    whole = ppsim.run(_tcp(tcp_kernel_acks=True, tcp_push_per_skb=False, tcp_ack_backlog=True), seed=1,
                      overrides={"sim.time_limit_us": 5e6})
    assert "veth0.tcp.acks_backlogged" not in whole.stats
    assert on.stats["veth0.rq0.pp.inflight"] == 0 and on.stats["veth0.rx_packets"] == off.stats["veth0.rx_packets"]


def test_tcp_kernel_acks_delay_acks_and_block_the_sender(repo, tmp_path):
    # Same-CPU TCP with 4 KiB writes (tcp-4096-samecpu): with the receiver's delayed ACKs and the
    # sender's cwnd, most segments are not ACKed at once, and the sender blocks in its long runs.
    meta = load_meta(repo / "traces/tcp-4096-samecpu-r1")
    sc = scenario_from_meta(meta)
    off = ppsim.run(sc, seed=1, overrides={"veth.tcp_kernel_acks": False})
    on = ppsim.run(sc, seed=1, overrides={"veth.tcp_kernel_acks": True})
    assert off.ok and on.ok
    assert "veth0.tcp.acks" not in off.stats
    assert on.stats["veth0.sender_blocked"] > off.stats["veth0.sender_blocked"]
    assert on.stats["veth0.tcp.acks_delayed"] > on.stats["veth0.tcp.acks"]


def test_tcp_kernel_acks_sample_the_receivers_rtt_as_the_kernel_does(tmp_path):
    # A first segment 1.5 ms after the handshake echoes the SYN-ACK's TSval from an earlier
    # millisecond: a timestamp sample (tcp_rcv_rtt_measure_ts), whatever the clock's phase. One
    # 50 us after it echoes the same millisecond at most phases: a delta of 0 gives no sample.
    trace = tmp_path / "t.txt"
    for seed in (1, 2, 3):
        late = ppsim.run(_tcp(tcp_kernel_acks=True, start_us=1500, sends=100, payload_bytes=16384), seed=seed)
        assert late.ok, late.violations
        assert late.stats["veth0.tcp.rtt_samples_ts"] >= 1
    r = ppsim.run(_tcp(tcp_kernel_acks=True, start_us=50, sends=100, payload_bytes=16384), seed=1, trace=trace)
    assert r.stats["veth0.tcp.rtt_samples_ts"] == 0 and r.stats["veth0.tcp.rtt_samples_window"] > 0
    # tcp_rcv_space_adjust measures once per RTT: every growth comes at least rtt_us after the last
    # measure, and none before the first sample.
    grows = [ln for ln in trace.read_text().splitlines() if "tcp_rcvbuf_grow:" in ln]
    assert grows
    for ln in grows:
        f = dict(kv.split("=") for kv in ln.split("tcp_rcvbuf_grow: ")[1].split())
        assert 0 < int(f["rtt_us"]) <= int(f["time"])


@pytest.mark.parametrize("acks", [False, True])
def test_tcp_push_per_skb_sends_each_skb_once_it_is_full(tmp_path, acks):
    # tcp_sendmsg_locked → tcp_push_one: each skb goes out once it holds size_goal bytes, half the
    # largest window offered (the SYN-ACK's 10 segments at first: 5-segment skbs, as in the
    # captures' first polls). Without the option a 32 KiB write reaches the receiver as one burst
    # (with kernel ACKs, as much of it as the initial cwnd of 10 allows).
    def polls(**veth):
        trace = tmp_path / "t.txt"
        r = ppsim.run(_tcp(sends=4, payload_bytes=32768, tcp_kernel_acks=acks, **veth), seed=1, trace=trace)
        assert r.ok, r.violations
        assert r.stats["veth0.writes"] == 4
        return [int(ln.split(" work ")[1].split()[0]) for ln in trace.read_text().splitlines() if "napi_poll:" in ln]
    off, on = polls(tcp_push_per_skb=False), polls(tcp_push_per_skb=True)
    assert off[0] == (10 if acks else 23)
    assert on[0] == 5
    assert sum(on) == sum(off) == 4 * 23 + 1  # and the FIN
    # The window grows with the receiver's ACKs, and so do the skbs.
    assert max(on) > 5


def test_tcp_reader_held_over_the_deletion_must_fit_the_window():
    with pytest.raises(InputError, match=r"\$\.veth\.reader_hold_us: expected 0 with TCP unless the whole stream"):
        ppsim.run(_tcp(reader_hold_us=1000))
    r = ppsim.run(_tcp(reader_hold_us=1000, sends=1, payload_bytes=60000))
    assert r.ok and r.stats["veth0.rq0.pp.freed"] == 1


def test_a_sender_sharing_a_sliced_cpu_with_a_busy_reader_keeps_sending(repo):
    base = {"cpus.sched_slice_us": 5, "stack.free_ns": 3000, "stack.reader_cpu": 0, "traffic.tx_rate_pps": 200000,
            "traffic.tx_cpu": 0, "traffic.tx_to": "wire"}
    short = ppsim.run(repo / "scenarios/default.json", overrides={**base, "sim.duration_us": 1000})
    long = ppsim.run(repo / "scenarios/default.json", overrides={**base, "sim.duration_us": 3000})
    assert short.ok and long.ok
    assert long.stats["nic0.wire.tx_packets"] > 2 * short.stats["nic0.wire.tx_packets"] > 100


def test_repeats_of_a_group_must_share_the_workload(tmp_path, repo, cli):
    for r in ("r1", "r2"):
        shutil.copytree(repo / f"traces/udp-1400-xcpu-{r}", tmp_path / r)
    meta = json.loads((tmp_path / "r2/meta.json").read_text())
    meta["params"]["size"] = 600
    (tmp_path / "r2/meta.json").write_text(json.dumps(meta))
    p = cli("validate", tmp_path / "r1", tmp_path / "r2", "--out", tmp_path / "v")
    assert p.returncode == 2 and "$.params.size" in p.stderr and "must share" in p.stderr


def test_a_veth_pace_too_slow_for_64_bit_time_sends_once_and_ends():
    # The second send would be due 1e19 ps after the first: never, not undefined behaviour.
    r = ppsim.run({"workload": "veth", "veth": {"sends": 5, "rate_pps": 1e-7}},
                  overrides={"sim.time_limit_us": 5e6, "sim.max_wall_s": 20})
    assert r.ok, r.violations
    assert r.stats["veth0.writes"] == 1


def test_validate_over_seeds_reports_each_seeds_gated_checks(cli, repo, tmp_path):
    dirs = [repo / f"traces/udp-1100-samecpu-rcvbuf2000000-r{i}" for i in (1, 2, 3)]
    p = cli("validate", *dirs, "--seeds", "1,11", "--out", tmp_path)
    table = json.loads((tmp_path / "seeds.json").read_text())
    assert table["seeds"] == [1, 11]
    g = table["groups"]["udp-1100-samecpu-rcvbuf2000000"]
    unknown = 0
    for i, seed in enumerate((1, 11)):
        gated = [r for r in validate(dirs, seed=seed)["rows"] if r["gated"]]
        assert g["checks"][i] == len(gated) > 0
        assert g["passed"][i] == sum(1 for r in gated if r["ok"])
        assert sorted(g["failing"].get(str(seed), [])) == sorted(r["metric"] for r in gated if not r["ok"])
        unknown += sum(1 for r in gated if not r["ok"] and "known" not in r)
    assert table["sets"]["validation"]["passed"] == g["passed"]
    assert p.returncode == (1 if unknown else 0), p.stderr
    assert f"{sum(g['passed'])} of {sum(g['checks'])} over the 2 seeds" in p.stdout
    assert (tmp_path / "validation.json").is_file()  # the first seed's full result
    for bad, msg in (("1,1", "distinct"), ("1,x", "an integer"), ("", "seeds")):
        p = cli("validate", dirs[0], "--seeds", bad, "--out", tmp_path / "b")
        assert p.returncode == 2 and msg in p.stderr, (bad, p.stderr)
    p = cli("validate", dirs[0], "--seed", "1", "--seeds", "2", "--out", tmp_path / "b")
    assert p.returncode == 2 and "not allowed with" in p.stderr


def test_seed_table_counts_known_deviations_as_failed_but_not_unknown():
    from ppsim.cmd_validate import seed_table

    def row(group, metric, ok, known=False, role="fit"):
        r = {"group": group, "metric": metric, "ok": ok, "gated": True, "set": role}
        if known:
            r["known"] = "why"
        return r

    info = {"group": "a", "metric": "sched.x", "ok": False, "gated": False, "set": "fit"}
    t = seed_table({
        5: {"rows": [row("a", "holds", True), row("a", "releases", False, known=True), info]},
        7: {"rows": [row("a", "holds", False), row("a", "releases", True)]},
    })
    assert t["groups"]["a"] == {"set": "fit", "passed": [1, 1], "checks": [2, 2],
                                "failing": {"5": ["releases"], "7": ["holds"]}}
    assert t["sets"]["fit"] == {"passed": [1, 1], "checks": [2, 2]}
    assert t["unknown_failures"] == 1
