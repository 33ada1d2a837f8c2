"""ppsim.trace: parsing tracefs, trace-cmd and ppsim's own trace text; per-pool summaries.

The snippets below are lines captured on this project's Linux 6.18 VM (`ppsim capture`), from
`trace-cmd report` of such a capture, and in the format sim/tracer.cc writes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ppsim import trace as T
from ppsim.errors import InputError

HEADER = """\
# tracer: nop
#
# entries-in-buffer/entries-written: 344/344   #P:2
#
#                                _-----=> irqs-off/BH-disabled
#                               / _----=> need-resched
#                              | / _---=> hardirq/softirq
#                              || / _--=> preempt-depth
#                              ||| / _-=> migrate-disable
#                              |||| /     delay
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
#              | |         |   |||||     |         |
"""

# A real delete-while-inflight capture, shortened: 3 holds in one softirq, one napi_poll,
# the delete in `ip`, two kworker retries, then the last pages released at the third retry.
TRACEFS = HEADER + """\
         python3-9190    [001] ...1.   891.873130: tracing_mark_write: ppsim: traffic start proto=udp size=100 count=200
   ppsim_traffic-9305    [000] ...1.   891.891906: tracing_mark_write: ppsim: sender start proto=udp size=100 count=200 rate=0 cpu=0
   ppsim_traffic-9305    [000] ..s1.   891.891954: page_pool_state_hold: page_pool=00000000a6cb90fe netmem=000000003f661d0b is_net_iov=0, pfn=0x124e25 hold=1
   ppsim_traffic-9305    [000] ..s1.   891.891955: page_pool_state_hold: page_pool=00000000a6cb90fe netmem=00000000903c2f9c is_net_iov=0, pfn=0x109097 hold=2
   ppsim_traffic-9305    [000] ..s1.   891.891956: page_pool_state_hold: page_pool=00000000a6cb90fe netmem=00000000903c2f9d is_net_iov=0, pfn=0x109098 hold=3
   ppsim_traffic-9305    [000] ..s1.   891.891981: napi_poll: napi poll on napi struct 000000006a21c9fb for device ppc9190r work 1 budget 64
         python3-9190    [001] ...1.   892.030000: tracing_mark_write: ppsim: delete
              ip-9320    [001] .....   892.057800: page_pool_state_release: page_pool=00000000a6cb90fe netmem=000000003f661d0b is_net_iov=0 pfn=0x124e25 release=1
              ip-9320    [001] .....   892.057803: page_pool_release: page_pool=00000000a6cb90fe inflight=2 hold=3 release=1 cnt=1
     kworker/0:1-11      [000] .....   893.068100: page_pool_release: page_pool=00000000a6cb90fe inflight=2 hold=3 release=1 cnt=2
     kworker/0:1-11      [000] .....   894.092068: page_pool_release: page_pool=00000000a6cb90fe inflight=2 hold=3 release=1 cnt=3
         python3-9190    [000] ...1.   894.782168: tracing_mark_write: ppsim: flush
     kworker/0:1-11      [000] .....   895.116099: page_pool_state_release: page_pool=00000000a6cb90fe netmem=000000004cbf02b7 is_net_iov=0 pfn=0x109097 release=2
     kworker/0:1-11      [000] .....   895.116099: page_pool_state_release: page_pool=00000000a6cb90fe netmem=000000001986284b is_net_iov=0 pfn=0x109098 release=3
     kworker/0:1-11      [000] .....   895.116100: page_pool_release: page_pool=00000000a6cb90fe inflight=0 hold=3 release=3 cnt=4
"""

TRACE_CMD = """\
cpus=2
ppsproto:    ppsim_traffic-5394  [001]   651.881182: print:                tracing_mark_write: ppsim: reader start
ppsproto:    ppsim_traffic-5395  [000]   651.889706: page_pool_state_hold: page_pool=0xffff888102a05800 netmem=0xffffea0004c30f00 is_net_iov=0, pfn=0x130c3c hold=1
ppsproto:    ppsim_traffic-5395  [000]   651.889707: page_pool_state_hold: page_pool=0xffff888102a05800 netmem=0xffffea0004c30f40 is_net_iov=0, pfn=0x130c3d hold=2
ppsproto:    ppsim_traffic-5395  [000]   651.889769: napi_poll:            napi poll on napi struct 0xffff888104325000 for device pps1 work 1 budget 64
ppsproto:               ip-5396  [000]   652.102740: page_pool_state_release: page_pool=0xffff888102a05800 netmem=0xffffea0004b5f540 is_net_iov=0 pfn=0x12d7d5 release=1
ppsproto:               ip-5396  [000]   652.102752: page_pool_release:    page_pool=0xffff888102a05800 inflight=1 hold=2 release=1 cnt=1
CPU 1 is empty
"""

TRACE_CMD_L = """\
cpus=2
ppsproto: ppsim_tr-5394    1...1.   651.881182: print:                tracing_mark_write: ppsim: reader start
ppsproto: ppsim_tr-5395    0..s1.   651.889706: page_pool_state_hold: page_pool=0xffff888102a05800 netmem=0xffffea0004c30f00 is_net_iov=0, pfn=0x130c3c hold=1
ppsproto: ppsim_tr-5395    0..s1.   651.889769: napi_poll:            napi poll on napi struct 0xffff888104325000 for device pps1 work 1 budget 64
ppsproto:       ip-5396    0.....   652.102752: page_pool_release:    page_pool=0xffff888102a05800 inflight=1 hold=64 release=63 cnt=1
ppsproto: kworker/-11      0.....   653.136118: page_pool_release:    page_pool=0xffff888102a05800 inflight=0 hold=64 release=64 cnt=2
"""

# sim/tracer.cc: "%22s [%03d] %s %5d.%06d: %s: %s" with the tracefs header above.
SIM = HEADER + """\
               ppsim-0 [003] ..s1.    12.345678: page_pool_state_hold: page_pool=0x1 netmem=0x100 is_net_iov=0, pfn=0x10 hold=5
               ppsim-0 [003] b..1.    12.345679: page_pool_state_release: page_pool=0x1 netmem=0x100 is_net_iov=0 pfn=0x10 release=1
"""


def parse(text: str, source: str = "t.txt") -> T.Trace:
    return T.parse_text(text, source)


def test_tracefs_events_are_typed_with_header_fields():
    tr = parse(TRACEFS)
    kinds = [type(e).__name__ for e in tr.events]
    assert kinds == ["Marker", "Marker", "PageHold", "PageHold", "PageHold", "NapiPoll", "Marker",
                     "PageRelease", "PoolRelease", "PoolRelease", "PoolRelease", "Marker",
                     "PageRelease", "PageRelease", "PoolRelease"]
    h = tr.holds()[0]
    assert (h.task, h.pid, h.cpu, h.name) == ("ppsim_traffic", 9305, 0, "page_pool_state_hold")
    assert h.ts_ns == 891_891_954_000 and h.timestamp == pytest.approx(891.891954)
    assert (h.pool, h.netmem, h.is_net_iov, h.pfn, h.hold) == (0xa6cb90fe, 0x3f661d0b, 0, 0x124E25, 1)
    assert h.flags.softirq and h.context == "softirq" and h.flags.preempt_depth == 1
    assert h.line == 15
    k = tr.pool_releases()[1]
    assert (k.task, k.pid, k.inflight, k.hold, k.release, k.cnt) == ("kworker/0:1", 11, 2, 3, 1, 2)
    assert k.context == "process"
    n = tr.napi_polls()[0]
    assert (n.dev, n.work, n.budget, n.napi) == ("ppc9190r", 1, 64, 0x6A21C9FB)
    assert tr.markers()[2].text == "ppsim: delete"
    assert tr.formats == {"tracefs"}


def test_summary_holds_releases_bursts_inflight_and_contexts():
    s = parse(TRACEFS).summary()
    (pool,) = s.pools.values()
    assert pool.holds == 3 and pool.releases == 3
    assert pool.burst_sizes == [3]
    assert pool.inflight_at_release == [2, 2, 2, 0]
    assert pool.destroyed
    assert pool.retry_intervals_ms == [1010.297, 1023.968, 1024.032]
    assert pool.hold_contexts == {"cpu0/softirq/ppsim_traffic": 3}
    assert pool.release_contexts == {"cpu1/process/ip": 1, "cpu0/process/kworker/0:1": 2}
    assert pool.holds_by_phase == {"sender start": 3}
    assert pool.releases_by_phase == {"delete": 1, "flush": 2}
    assert pool.pool_release_phases == ["delete", "delete", "delete", "flush"]
    d = pool.to_dict()
    assert d["pool"] == "00000000a6cb90fe" and d["pages_held_not_released"] == 0
    json.dumps(s.to_dict())  # serialisable as is
    napi = s.napi["ppc9190r"]
    assert napi.polls == 1 and napi.work_histogram == {1: 1} and napi.polls_by_phase == {"sender start": 1}


def test_trace_cmd_default_format_with_instance_prefix():
    tr = parse(TRACE_CMD)
    assert [type(e).__name__ for e in tr.events] == [
        "Marker", "PageHold", "PageHold", "NapiPoll", "PageRelease", "PoolRelease"]
    m = tr.markers()[0]
    assert m.text == "ppsim: reader start" and m.flags is None and m.context is None
    h = tr.holds()[1]
    assert h.pool == 0xFFFF888102A05800 and h.netmem == 0xFFFFEA0004C30F40 and h.hold == 2
    assert tr.formats == {"trace-cmd"}
    s = tr.summary()
    assert s.pools[0xFFFF888102A05800].burst_sizes == [2]
    assert s.pools[0xFFFF888102A05800].hold_contexts == {"cpu0/unknown/ppsim_traffic": 2}


def test_trace_cmd_latency_format_glues_cpu_to_flags():
    tr = parse(TRACE_CMD_L)
    h = tr.holds()[0]
    assert (h.task, h.pid, h.cpu, h.context) == ("ppsim_tr", 5395, 0, "softirq")
    r = tr.pool_releases()
    assert [(x.task, x.cpu, x.inflight, x.cnt) for x in r] == [("ip", 0, 1, 1), ("kworker/", 0, 0, 2)]
    assert tr.markers()[0].cpu == 1
    assert tr.formats == {"trace-cmd-l"}


def test_ppsim_simulated_trace_format():
    tr = parse(SIM)
    h, r = tr.events
    assert isinstance(h, T.PageHold) and isinstance(r, T.PageRelease)
    assert (h.task, h.pid, h.cpu, h.pool, h.hold, h.ts_ns) == ("ppsim", 0, 3, 1, 5, 12_345_678_000)
    assert r.context == "process-bh" and r.flags.bh_disabled


def test_unknown_events_are_skipped_and_counted():
    text = TRACEFS.replace(
        "         python3-9190    [001] ...1.   892.030000",
        "   ppsim_traffic-9305    [000] ..s1.   891.891990: kfree_skb: skbaddr=0000000012345678 rx_sk=0000000000000000 protocol=2048 location=udp_queue_rcv_one_skb+0x3b/0x440 reason: SOCKET_RCVBUFF\n"
        "          <idle>-0       [001] d..2.   891.891995: sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=ppsim_recv next_pid=9302 next_prio=120\n"
        "   ppsim_traffic-9305    [000] ..s1.   891.891996: xdp_exception: prog_id=3 action=ABORTED ifindex=4\n"
        "         python3-9190    [001] ...1.   892.030000")
    tr = parse(text)
    assert tr.skipped == {"kfree_skb": 1, "sched_switch": 1, "xdp_exception": 1}
    assert len(tr.events) == len(parse(TRACEFS).events)
    assert tr.summary().pools[0xA6CB90FE].burst_sizes == [3]


@pytest.mark.parametrize("bad, what", [
    # truncated in the middle of the fields
    ("   ppsim_traffic-9305    [000] ..s1.   891.891957: page_pool_state_hold: page_pool=00000000a6cb90fe netmem=00000000903c",
     "missing field(s) pfn, hold"),
    # truncated inside a key=value pair
    ("              ip-9320    [001] .....   892.057804: page_pool_release: page_pool=00000000a6cb90fe inflight=2 hold=3 rel",
     "expected key=value, got 'rel'"),
    # truncated header
    ("   ppsim_traffic-9305    [00", "not a trace event line"),
    # garbage
    ("hello world", "not a trace event line"),
    # a value that is not a number
    ("              ip-9320    [001] .....   892.057804: page_pool_release: page_pool=00000000a6cb90fe inflight=two hold=3 release=1 cnt=1",
     "inflight=two is not a decimal integer"),
    ("   ppsim_traffic-9305    [000] ..s1.   891.891981: napi_poll: napi poll on napi struct 000000006a21c9fb for device ppc9190r work 1",
     "bad napi_poll event"),
    ("   ppsim_traffic-9305    [000] .?s1.   891.891954: page_pool_state_hold: page_pool=1 netmem=2 is_net_iov=0, pfn=0x3 hold=1",
     None),
])
def test_garbled_or_truncated_line_names_file_and_line(bad, what):
    lines = TRACEFS.splitlines()
    lines.insert(16, bad)
    with pytest.raises(InputError) as e:
        parse("\n".join(lines), "capture/trace.txt")
    msg = str(e.value)
    assert msg.startswith("capture/trace.txt:17: ")
    if what:
        assert what in msg
    assert "\n" not in msg


def test_bad_flags_column_is_an_error():
    with pytest.raises(InputError, match=r"t.txt:1: flags 'x.s1.'|t.txt:1: not a trace event"):
        parse("   a-1    [000] x.s1.   1.000001: page_pool_state_hold: page_pool=1 netmem=2 is_net_iov=0, pfn=0x3 hold=1")


def test_lost_events_and_trace_cmd_headers_are_accounted():
    text = TRACEFS + "CPU:1 [LOST 17 EVENTS]\nversion = 7\n"
    tr = parse(text)
    assert tr.lost_events == 17


def test_timestamps_keep_nanoseconds_and_counter_clocks():
    one = "   a-1    [000] ..s1.   {ts}: page_pool_state_hold: page_pool=1 netmem=2 is_net_iov=0, pfn=0x3 hold=1"
    assert parse(one.format(ts="651.889706123")).events[0].ts_ns == 651_889_706_123
    assert parse(one.format(ts="7.5")).events[0].ts_ns == 7_500_000_000
    assert parse(one.format(ts="123456789")).events[0].ts_ns == 123456789


def test_task_names_with_dashes_spaces_and_tgid_column():
    line = ("  kworker/u4:2-ev-77  (   77) [001] d..1.   5.000001: page_pool_release: "
            "page_pool=00000000000000ab inflight=0 hold=1 release=1 cnt=1")
    e = parse(line).events[0]
    assert (e.task, e.pid, e.cpu, e.flags.irqs_off, e.context) == ("kworker/u4:2-ev", 77, 1, True, "process")
    e = parse("     <idle>-0       [000] ..s1.   1.000000: tracing_mark_write: a b=c\n").events[0]
    assert (e.task, e.text) == ("<idle>", "a b=c")


def test_older_kernels_page_field_is_accepted_as_netmem():
    e = parse("  a-1 [000] ..s1. 1.000001: page_pool_state_hold: page_pool=1 page=00000000000000ff pfn=0x3 hold=9").events[0]
    assert (e.netmem, e.is_net_iov, e.hold) == (0xFF, 0, 9)


def _hold(ts_us: int, hold: int, cpu: int = 0, pid: int = 10, flags: str = "..s1.") -> str:
    return (f"  t-{pid} [{cpu:03d}] {flags} {ts_us // 1_000_000}.{ts_us % 1_000_000:06d}: "
            f"page_pool_state_hold: page_pool=0x1 netmem=0x{hold:x} is_net_iov=0, pfn=0x{hold:x} hold={hold}")


def _napi(ts_us: int, cpu: int = 0) -> str:
    return (f"  t-10 [{cpu:03d}] ..s1. {ts_us // 1_000_000}.{ts_us % 1_000_000:06d}: napi_poll: "
            "napi poll on napi struct 0x9 for device v0 work 1 budget 64")


def _bursts(lines: list[str], gap_us: float = T.DEFAULT_BURST_GAP_US) -> list[int]:
    return T.summarise(parse("\n".join(lines)), burst_gap_us=gap_us).pools[1].burst_sizes


def test_burst_rules():
    base = [_hold(100 + i, 1 + i) for i in range(4)]
    assert _bursts(base) == [4]
    # a gap above burst_gap_us splits, one below does not
    assert _bursts(base + [_hold(200, 5)]) == [4, 1]
    assert _bursts(base + [_hold(140, 5)]) == [5]
    assert _bursts(base + [_hold(200, 5)], gap_us=100) == [5]
    # a napi_poll on the same CPU in between ends the burst; on another CPU it does not
    assert _bursts(base[:2] + [_napi(102)] + base[2:]) == [2, 2]
    assert _bursts(base[:2] + [_napi(102, cpu=1)] + base[2:]) == [4]
    # another CPU, another pid, another context, or a skipped counter value each split
    assert _bursts(base[:2] + [_hold(102, 3, cpu=1), _hold(103, 4, cpu=1)]) == [2, 2]
    assert _bursts(base[:2] + [_hold(102, 3, pid=11)]) == [2, 1]
    assert _bursts(base[:2] + [_hold(102, 3, flags="b..1.")]) == [2, 1]
    assert _bursts(base[:2] + [_hold(102, 4)]) == [2, 1]
    s = T.summarise(parse("\n".join(base[:2] + [_hold(102, 4)])))
    assert s.pools[1].hold_counter_gaps == 1


def test_summarise_rejects_negative_gap():
    with pytest.raises(InputError, match="burst_gap_us"):
        T.summarise(parse(TRACEFS), burst_gap_us=-1)


def test_parse_lines_is_lazy_and_counts():
    p = T.TraceParser("x")
    it = p.parse(["garbage\n"])
    with pytest.raises(InputError, match="x:1:"):
        next(it)
    assert list(T.parse_lines(TRACEFS.splitlines())) == parse(TRACEFS).events


def test_read_trace_file_errors(tmp_path: Path):
    with pytest.raises(InputError, match="no such trace file"):
        T.read_trace(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="is a directory"):
        T.read_trace(tmp_path)
    binary = tmp_path / "trace.dat"
    binary.write_bytes(b"\x17\x08\x44tracing\xff\xfe")
    with pytest.raises(InputError, match="not UTF-8"):
        T.read_trace(binary)
    good = tmp_path / "trace.txt"
    good.write_text(TRACEFS)
    tr = T.read_trace(good)
    assert tr.source == str(good) and len(tr.holds()) == 3
    assert tr.pools() == [0xA6CB90FE]


def test_module_main_prints_json(tmp_path: Path, capsys):
    good = tmp_path / "trace.txt"
    good.write_text(TRACEFS)
    assert T.main([str(good)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pools"][0]["burst_sizes"] == [3]
    bad = tmp_path / "bad.txt"
    bad.write_text(TRACEFS + "oops\n")
    assert T.main([str(bad)]) == 2
    assert f"{bad}:{len(TRACEFS.splitlines()) + 1}:" in capsys.readouterr().err


def test_phase_label():
    assert T.phase_label("ppsim: sender done sent=10 bytes=3") == "sender done"
    assert T.phase_label("ppsim: flush cpu=1") == "flush"
    assert T.phase_label("free text") == "free text"


BUNDLED = sorted(T.capture_trace(m.parent) for m in (Path(__file__).resolve().parents[2] / "traces").glob("*/meta.json"))


def test_gzipped_traces_read_like_text_and_a_truncated_one_is_an_input_error(tmp_path):
    import gzip

    src = BUNDLED[0]
    text = src.read_bytes() if src.suffix != ".gz" else gzip.decompress(src.read_bytes())
    gz = tmp_path / "trace.txt.gz"
    gz.write_bytes(gzip.compress(text))
    assert T.capture_trace(tmp_path) == gz
    assert len(T.read_trace(gz).events) == len(T.read_trace(src).events)
    gz.write_bytes(gzip.compress(text)[: len(text) // 20])
    with pytest.raises(InputError, match=r"trace.txt.gz: not a complete gzip file"):
        T.read_trace(gz)


@pytest.mark.parametrize("path", BUNDLED, ids=[p.parent.name for p in BUNDLED])
def test_bundled_traces_parse_and_match_their_meta(path: Path):
    """Each bundled capture parses, and its own pools agree with the summary in meta.json."""
    meta = json.loads((path.parent / "meta.json").read_text())
    tr = T.read_trace(path)
    assert tr.lost_events == 0
    summary = {f"{k:016x}": v for k, v in tr.summary().pools.items()}
    assert meta["our_pools"], "capture without an identified pool"
    recorded = {p["pool"]: p for p in meta["trace_summary"]["pools"]}
    for pool in meta["our_pools"]:
        mine = summary[pool].to_dict()
        for key in ("holds", "releases", "burst_sizes", "inflight_at_release", "hold_contexts",
                    "release_contexts"):
            assert mine[key] == recorded[pool][key], key
        assert summary[pool].destroyed, "pool not destroyed by the end of the capture"
        assert summary[pool].holds == summary[pool].releases
        assert summary[pool].pool_releases[0].cnt == 1
