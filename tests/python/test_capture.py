"""`ppsim capture`: argument validation and refusals (no root needed), the kernel facts the
capture records, and real captures (root, tracefs and network namespaces; skipped otherwise)."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ppsim import capture as C
from ppsim import trace as T
from ppsim.cli import main
from ppsim.errors import EnvironmentProblem

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> int:
    return main(["capture", *args])


@pytest.mark.parametrize("args, message", [
    (["--proto", "sctp"], "--proto: expected udp or tcp, got 'sctp'"),
    (["--size", "0"], "--size: expected UDP payload bytes in [1, 1472]"),
    (["--size", "1473"], "--size: expected UDP payload bytes in [1, 1472]"),
    (["--mtu", "3506", "--size", "3479"], "--size: expected UDP payload bytes in [1, 3478]"),
    (["--mtu", "3507"], "--mtu: expected an integer in [68, 3506]"),
    (["--proto", "tcp", "--size", "2000000"], "--size: expected bytes per TCP write"),
    (["--packets", "0"], "--packets: expected an integer in [1, 1000000], got 0"),
    (["--bytes", "0"], "--bytes: expected an integer in [1, 1073741824], got 0"),
    (["--bytes", "1073741824", "--size", "1"], "--bytes: expected at most 1000000 sends"),
    (["--sender-cpu", "-1"], "--sender-cpu: expected a CPU number >= 0, got -1"),
    (["--receiver-cpu", "4096"], "--receiver-cpu: expected an online CPU"),
    (["--rate", "-5"], "--rate: expected packets per second"),
    (["--reader-delay-ms", "70000"], "--reader-delay-ms: expected milliseconds in [0, 60000]"),
    (["--reader-hold-ms", "100", "--reader-delay-ms", "100"], "--reader-hold-ms: expected not both"),
    (["--rcvbuf", "100"], "--rcvbuf: expected 0 (kernel default) or bytes in [1024, 1073741824], got 100"),
    (["--xdp", "tx"], "--xdp: expected pass or drop, got 'tx'"),
    (["--xdp-mode", "offload"], "--xdp-mode: expected native or generic"),
    (["--repeat", "0"], "--repeat: expected an integer in [1, 50], got 0"),
    (["--napi-lines", "some"], "--napi-lines: expected all or context"),
    (["--max-load", "-1"], "--max-load: expected a load average"),
    (["--destroy-timeout-s", "0"], "--destroy-timeout-s: expected seconds in [1, 300]"),
    (["--timeout-s", "1000"], "--timeout-s: expected seconds in [1, 600]"),
    (["--buffer-kb", "1"], "--buffer-kb: expected KiB per CPU in [64, 262144]"),
    (["--name", "../x"], "--name: expected letters, digits"),
    (["--delete-while-inflight", "--reader-hold-ms", "10"], "--delete-while-inflight: give it or --reader-hold-ms"),
])
def test_bad_parameters_exit_2_with_one_line_naming_the_parameter(args, message, capsys):
    assert run_cli(*args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["--packets", "x"], "argument --packets: expected an integer, got 'x'"),
    (["--packets", "5", "--bytes", "4"], "argument --bytes: not allowed with argument --packets"),
    (["--max-load", "low"], "argument --max-load: expected a number, got 'low'"),
])
def test_unparsable_arguments_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        run_cli(*args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_unknown_option_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        run_cli("--frobnicate")
    assert e.value.code == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err


def test_existing_capture_directory_is_not_overwritten(tmp_path, capsys):
    d = tmp_path / "udp-1400-xcpu-r1"
    d.mkdir()
    (d / "trace.txt").write_text("x")
    assert run_cli("--out", str(tmp_path), "--packets", "10") == 2
    assert "already holds a capture (use --force" in capsys.readouterr().err
    other = tmp_path / "mine-r1"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    assert run_cli("--out", str(tmp_path), "--name", "mine", "--force") == 2
    assert "is not a capture directory; refusing to delete it" in capsys.readouterr().err
    assert (other / "notes.txt").exists()


def test_resume_takes_only_the_missing_repeats(monkeypatch, tmp_path, capsys):
    # A second session of the same group: --repeat 6 --resume after --repeat 3 takes r4..r6 and
    # leaves r1..r3 as they are.
    taken = []

    def fake_capture(p, out_dir, group, index, log):
        taken.append((out_dir.name, group, index))
        out_dir.mkdir()
        (out_dir / "meta.json").write_text(json.dumps({"params": p.to_meta(), "session": len(taken)}))
        return {"replay": {"packets_sent": 1, "packets_received": 1},
                "trace_summary": {"pools": []}, "our_pools": [], "load": {"at_start": {"1min": 0.0}}}

    monkeypatch.setattr(C, "check_environment", lambda: None)
    monkeypatch.setattr(C, "run_capture", fake_capture)
    assert run_cli("--out", str(tmp_path), "--name", "mine", "--packets", "10", "--repeat", "3") == 0
    first = [(tmp_path / f"mine-r{k}" / "meta.json").read_text() for k in (1, 2, 3)]
    taken.clear()
    assert run_cli("--out", str(tmp_path), "--name", "mine", "--packets", "10", "--repeat", "6", "--resume") == 0
    assert [t[0] for t in taken] == ["mine-r4", "mine-r5", "mine-r6"]
    assert [(tmp_path / f"mine-r{k}" / "meta.json").read_text() for k in (1, 2, 3)] == first
    # Nothing missing: nothing taken, and the machine is not even checked.
    taken.clear()
    monkeypatch.setattr(C, "check_environment", lambda: pytest.fail("checked the machine for nothing"))
    assert run_cli("--out", str(tmp_path), "--name", "mine", "--packets", "10", "--repeat", "6", "--resume") == 0
    assert taken == [] and "nothing to take" in capsys.readouterr().err
    # Another workload under the same name would mix two groups: refused, naming the field.
    assert run_cli("--out", str(tmp_path), "--name", "mine", "--packets", "20", "--repeat", "7", "--resume") == 2
    err = capsys.readouterr().err
    assert re.search(r"mine-r1/meta\.json: at \$\.params\.(count|packets): the kept repeat has 10, this run asks for 20", err)
    assert taken == []
    (tmp_path / "mine-r2" / "meta.json").write_text("{")
    assert run_cli("--out", str(tmp_path), "--name", "mine", "--packets", "10", "--repeat", "7", "--resume") == 2
    assert "mine-r2/meta.json: cannot read it" in capsys.readouterr().err
    assert run_cli("--out", str(tmp_path), "--name", "mine", "--resume", "--force") == 2
    assert "--resume: give it or --force, not both" in capsys.readouterr().err


def test_matrix_checks_every_kept_repeat_before_taking_any(monkeypatch, tmp_path, capsys):
    # A matrix session resumes every group; a group whose kept repeat has another workload stops
    # the session before the first capture, not after the groups before it were taken.
    matrix = tmp_path / "m.json"
    matrix.write_text(json.dumps({"defaults": "--repeat 2", "groups": [
        {"name": "a", "family": "f", "args": "--size 100 --packets 10"},
        {"name": "b", "family": "f", "args": "--size 200 --packets 10"}]}))
    (tmp_path / "b-r1").mkdir()
    (tmp_path / "b-r1" / "meta.json").write_text(json.dumps({"params": {"size": 300, "packets": 10}}))
    taken = []
    monkeypatch.setattr(C, "check_environment", lambda: None)
    monkeypatch.setattr(C, "run_capture", lambda *a: taken.append(a) or pytest.fail("took a capture"))
    assert run_cli("--matrix", str(matrix), "--out", str(tmp_path)) == 2
    assert "b-r1/meta.json: at $.params." in capsys.readouterr().err
    assert taken == []


def test_not_root_is_refused_with_exit_3(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert run_cli("--out", str(tmp_path), "--packets", "10") == 3
    assert "needs root" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_missing_helpers_are_refused_with_a_build_hint(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setenv("PPSIM_BUILD", str(tmp_path / "nobuild"))
    with pytest.raises(EnvironmentProblem, match=r"ppsim_xdp_attach is missing: build it with"):
        C.check_environment()
    assert run_cli("--out", str(tmp_path / "out"), "--packets", "10") == 3
    assert "--target ppsim_xdp_attach ppsim_traffic" in capsys.readouterr().err


# Boundaries verified on the 6.18 VM: with the reader holding 300 datagrams across the delete,
# inflight at page_pool_release cnt=1 was exactly ceil(300 / per_page) for each payload here.
@pytest.mark.parametrize("payload, per_page, truesize", [
    (22, 6, 640), (23, 5, 704), (100, 5, 768), (150, 5, 768), (151, 4, 832),
    (406, 4, 1024), (407, 3, 1088), (600, 3, 1280), (726, 3, 1344), (727, 2, 1408),
    (1400, 2, 2048), (1430, 2, 2048), (1431, 1, 4096), (1472, 1, 4096),
])
def test_veth_frag_layout_follows_skb_pp_cow_data(payload, per_page, truesize):
    lay = C.veth_frag_layout(payload + C.UDP_HLEN + C.IPV4_HLEN + C.ETH_HLEN)
    assert lay["heads_per_page"] == per_page and lay["head_truesize"] == truesize
    assert lay["head_is_frag"] == (per_page > 1)
    # measured SK_MEMINFO_RMEM_ALLOC per queued datagram: 4096/k + 256
    assert lay["rmem_charge_per_skb_avg"] == round(4096 / per_page + 256, 2)


def test_default_names_describe_the_parameters():
    p = C.CaptureParams(packets=10)
    assert p.default_name() == "udp-1400-xcpu"
    p = C.CaptureParams(proto="tcp", bytes=10, size=65536, sender_cpu=1, receiver_cpu=1,
                        rate=100, reader_delay_ms=5, rcvbuf=4096, xdp="drop")
    assert p.default_name() == "tcp-65536-samecpu-rate100-delay5-rcvbuf4096-xdpdrop"
    assert p.count() == 1
    assert C.CaptureParams(packets=None, bytes=2801, size=1400).count() == 3


def test_counter_parsers():
    snmp = C.parse_snmp("Udp: InDatagrams RcvbufErrors\nUdp: 849 1151\nTcp: A\nTcp: 1\n")
    assert snmp == {"Udp": {"InDatagrams": 849, "RcvbufErrors": 1151}, "Tcp": {"A": 1}}
    assert C.snmp_delta({"Udp": {"InDatagrams": 800}}, snmp) == {
        "Udp": {"InDatagrams": 49, "RcvbufErrors": 1151}, "Tcp": {"A": 1}}
    feats = C.parse_ethtool_features("Features for v0:\nrx-checksumming: on\n"
                                     "tcp-segmentation-offload: off\n\ttx-tcp-segmentation: off [fixed]\n")
    assert feats == {"rx-checksumming": "on", "tcp-segmentation-offload": "off",
                     "tx-tcp-segmentation": "off [fixed]"}
    assert C.parse_ethtool_stats("NIC statistics:\n     peer_ifindex: 2\n     rx_queue_0_xdp_packets: 2000\n") == {
        "peer_ifindex": 2, "rx_queue_0_xdp_packets": 2000}


def _synthetic_trace(polls: int) -> str:
    lines = ["# tracer: nop"]
    t = 1_000_000
    for i in range(polls):
        t += 5
        if i == polls // 2:
            for h in range(1, 4):
                lines.append(f"  s-1 [000] ..s1. {t // 10**6}.{t % 10**6:06d}: page_pool_state_hold: "
                             f"page_pool=0x1 netmem=0x{h:x} is_net_iov=0, pfn=0x{h:x} hold={h}")
        lines.append(f"  s-1 [000] ..s1. {t // 10**6}.{t % 10**6:06d}: napi_poll: napi poll on napi "
                     "struct 0x2 for device v0 work 1 budget 64")
    lines.append("  ip-2 [001] ..... 9.000000: page_pool_release: page_pool=0x1 inflight=3 hold=3 release=0 cnt=1")
    return "\n".join(lines) + "\n"


def test_context_trimming_keeps_pool_summaries_and_counts_what_it_removed():
    raw = _synthetic_trace(1000)
    text, info = C.trim_napi_lines(raw)
    assert info["napi_poll_lines"] == 1000
    # first 100, last 20, and 2 either side of the block of 3 holds
    assert info["napi_poll_lines_kept"] == 100 + 20 + 4
    assert info["napi_poll_lines_removed"] == 1000 - info["napi_poll_lines_kept"]
    before, after = T.parse_text(raw).summary(), T.parse_text(text).summary()
    assert C.pool_facts(before) == C.pool_facts(after)
    assert before.pools[1].burst_sizes == [3]
    assert set(raw.splitlines()) >= set(text.splitlines())
    assert [ln for ln in raw.splitlines() if "napi_poll" not in ln] == \
           [ln for ln in text.splitlines() if "napi_poll" not in ln]


def test_every_parameter_has_a_unit_and_a_doc():
    fields = set(C.CaptureParams.__dataclass_fields__) - {"out", "name", "force"}
    assert {p.name for p in C.PARAMS} == fields
    assert all(p.unit and p.doc for p in C.PARAMS)


# ---- real captures (root) -----------------------------------------------------------------

def _can_capture() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if "tracefs" not in Path("/proc/filesystems").read_text():
        return "no tracefs in this kernel"
    if not Path("/proc/self/ns/net").exists():
        return "no network namespaces"
    r = subprocess.run(["ip", "netns", "list"], capture_output=True)
    if r.returncode != 0:
        return "ip netns unavailable"
    return None


needs_capture = pytest.mark.skipif(_can_capture() is not None, reason=str(_can_capture()))


def _leftovers(pid: int) -> list[str]:
    left = []
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    left += [n for n in ns.split() if n.startswith(f"{C.NS_PREFIX}{pid}-")]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    left += re.findall(rf"\bppc{pid}[sr]\b", links)
    mounts = Path("/proc/mounts").read_text().splitlines()
    for m in mounts:
        f = m.split()
        if f[2] == "tracefs":
            inst = Path(f[1]) / "instances" / f"{C.INSTANCE_PREFIX}{pid}"
            if inst.exists():
                left.append(str(inst))
            if f"/{C.WORKDIR_PREFIX}{pid}-" in f[1]:   # ours only: another capture may be running
                left.append(f"mount {f[1]}")
    return left


@pytest.mark.root
@pytest.mark.slow
@needs_capture
def test_real_capture_holds_destroy_and_cleanup(tmp_path):
    p = C.CaptureParams(packets=300, size=1400, out=str(tmp_path), name="t", destroy_timeout_s=15)
    (d,) = C.run_captures(p, log=lambda s: None)
    assert d == tmp_path / "t-r1"
    meta = json.loads((d / "meta.json").read_text())
    tr = T.read_trace(T.capture_trace(d))
    assert T.capture_trace(d).name == "trace.txt.gz"  # --sched summary (the default) stores it gzipped
    assert meta["our_pools"], "no page_pool_release from our `ip link del`"
    # What ran: the sender's and the reader's turns on their CPUs.
    assert meta["sched"]["tasks"]["sender"]["slices"]["count"] >= 1
    assert meta["sched"]["tasks"]["reader"]["wakeups"] >= 1
    pools = tr.summary().pools
    for key in meta["our_pools"]:
        pool = pools[int(key, 16)]
        assert pool.holds >= 64 and pool.holds % 64 == 0   # slow path: bulk refills of 64
        assert pool.hold_contexts and all("/softirq/" in k for k in pool.hold_contexts)
        assert pool.pool_releases[0].cnt == 1 and pool.pool_releases[0].task == "ip"
        assert pool.inflight_at_release[-1] == 0 and pool.destroyed
        assert pool.holds == pool.releases
    assert meta["sender"]["sent"] == 300
    # The machine's price of a user page fault, measured on the reader's CPU before the capture.
    fault = meta["machine"]["user_page_fault"]
    assert fault["cpu"] == p.receiver_cpu and fault["pages"] == 4096
    assert len(fault["us_per_page"]) == 3 and 0 < fault["median_us"] < 1000
    assert isinstance(meta["machine"]["virtualized"], bool)
    assert meta["cleanup"] == {"failures": [], "leftovers": [], "ok": True}
    assert meta["replay"]["frame_layout"]["heads_per_page"] == 2
    phases = [x["phase"] for x in meta["replay"]["phases"]]
    for phase in ("traffic start", "sender start", "sender done", "reader done", "delete", "flush", "end"):
        assert phase in phases
    assert _leftovers(os.getpid()) == []


@pytest.mark.root
@pytest.mark.slow
@needs_capture
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_capture_cleans_up(tmp_path, sig):
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    proc = subprocess.Popen([sys.executable, "-m", "ppsim", "capture", "--packets", "100",
                             "--size", "100", "--reader-hold-ms", "20000", "--out", str(tmp_path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        ns = f"{C.NS_PREFIX}{proc.pid}-r"
        while time.monotonic() < deadline and proc.poll() is None:
            out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
            if ns in out.split():
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(1.5)   # well inside the 20 s hold: veth deleted, pages inflight
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert _leftovers(proc.pid) == []


@pytest.mark.root
@needs_capture
def test_stale_private_mount_of_a_killed_capture_is_removed(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()   # its pid now names no process (pids are not reused this quickly)
    work = Path(tempfile.mkdtemp(prefix=f"{C.WORKDIR_PREFIX}{dead.pid}-"))
    live = Path(tempfile.mkdtemp(prefix=f"{C.WORKDIR_PREFIX}{os.getpid()}-"))
    try:
        for w in (work, live):
            (w / "tracefs").mkdir()
            subprocess.run(["mount", "-t", "tracefs", "nodev", str(w / "tracefs")], check=True)
        removed = C._remove_stale()
        assert f"tracefs mount {work / 'tracefs'}" in removed
        assert not work.exists()
        assert str(live / "tracefs") in Path("/proc/mounts").read_text()   # a live pid's is kept
    finally:
        for w in (work, live):
            subprocess.run(["umount", str(w / "tracefs")], capture_output=True)
            shutil.rmtree(w, ignore_errors=True)


def test_a_failed_page_fault_measurement_is_recorded_not_raised(monkeypatch, tmp_path):
    # The measurement is metadata: a missing or broken helper leaves an error in meta.json and the
    # capture stands.
    monkeypatch.setattr(C, "tool_path", lambda name: tmp_path / "no-such-helper")
    got = C._page_fault_cost(0)
    assert "not found" in got["error"]
    bad = tmp_path / "bad-helper"
    bad.write_text("#!/bin/sh\necho not json\n")
    bad.chmod(0o755)
    monkeypatch.setattr(C, "tool_path", lambda name: bad)
    assert "error" in C._page_fault_cost(0)
