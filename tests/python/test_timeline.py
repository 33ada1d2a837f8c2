"""`ppsim run --timeline`: Chrome/Perfetto trace-event JSON of a run."""
from __future__ import annotations

import json
import numbers
from collections import defaultdict
from pathlib import Path

import pytest

import ppsim
from ppsim.cli import main

REPO = Path(__file__).resolve().parents[2]
SCEN = REPO / "scenarios"


def check_trace_event_format(doc: dict) -> list[dict]:
    """Asserts what the trace-event format (the JSON object form) requires of each event and
    what Perfetto needs to draw it: returns the events."""
    assert isinstance(doc, dict) and isinstance(doc.get("traceEvents"), list)
    assert doc.get("displayTimeUnit") in ("ms", "ns")
    names: dict[tuple, str] = {}
    for e in doc["traceEvents"]:
        assert e["ph"] in ("X", "C", "M"), e
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        assert isinstance(e["name"], str) and e["name"]
        if e["ph"] == "M":
            assert e["name"] in ("process_name", "process_sort_index", "thread_name", "thread_sort_index")
            assert isinstance(e["args"], dict) and e["args"]
            if e["name"] == "thread_name":
                names[(e["pid"], e["tid"])] = e["args"]["name"]
            continue
        assert isinstance(e["ts"], numbers.Real) and e["ts"] >= 0
        if e["ph"] == "X":
            assert isinstance(e["dur"], numbers.Real) and e["dur"] > 0
            assert (e["pid"], e["tid"]) in names, f"slice on an unnamed track: {e}"
        else:
            assert isinstance(e["args"], dict) and e["args"]
            assert all(isinstance(v, numbers.Real) for v in e["args"].values())
    # Slices on one track follow each other (the viewer nests overlapping ones, which would lie).
    by_track = defaultdict(list)
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            by_track[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for track, spans in by_track.items():
        spans.sort()
        for (s0, e0), (s1, _) in zip(spans, spans[1:]):
            assert s1 >= e0 - 1e-6, f"{names[track]}: a slice at {s1} starts inside one ending at {e0}"
    return doc["traceEvents"]


def timeline(tmp_path, scenario, *extra):
    out = tmp_path / "tl.json"
    rc = main(["run", str(SCEN / scenario), "--out", str(tmp_path / "run"), "--quiet", "--timeline", str(out), *extra])
    assert rc == 0
    return json.loads(out.read_text()), json.loads((tmp_path / "run" / "results.json").read_text())


def tracks(events):
    return {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] in ("thread_name", "process_name")}


def test_nic_run_timeline_has_cpu_nic_pool_and_pcie_tracks(tmp_path):
    doc, res = timeline(tmp_path, "default.json")
    ev = check_trace_event_format(doc)
    assert {"CPUs", "NIC queues", "page_pool", "PCIe", "cpu0 softirq", "cpu1 tasks", "nic0.rxq0 napi_poll"} <= tracks(ev)
    counters = {e["name"] for e in ev if e["ph"] == "C"}
    assert {"nic0.rxq0 alloc cache (pages)", "nic0.rxq0 ptr_ring (pages)", "nic0.rxq0 inflight (pages)",
            "nic0.rxq0 buffers on ring (buffers)", "link0 upstream utilisation (%)"} <= counters
    assert doc["metadata"]["truncated_at_us"] is None
    # The timeline shows what the stats count: every NAPI poll, and each CPU's softirq time.
    polls = [e for e in ev if e["ph"] == "X" and e["name"] == "napi_poll"]
    assert len(polls) == res["stats"]["nic0.rxq0.napi_polls"]["value"]
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
    for cpu in (0, 1):
        us = sum(e["dur"] for e in ev if e["ph"] == "X" and names[(e["pid"], e["tid"])].startswith(f"cpu{cpu} softirq"))
        assert us * 1000 == pytest.approx(res["stats"][f"cpu{cpu}.softirq_busy_ns"]["value"], abs=1.0)
    # A busy link is drawn busy: utilisation is a percentage and the RX DMA shows upstream.
    up = [e["args"]["value"] for e in ev if e["ph"] == "C" and e["name"] == "link0 upstream utilisation (%)"]
    assert max(up) > 0 and all(0 <= v <= 100 for v in up)


def test_zerocopy_timeline_shows_the_app_and_its_shootdowns(tmp_path):
    doc, _ = timeline(tmp_path, "zerocopy_shared_queue.json")
    ev = check_trace_event_format(doc)
    slices = {e["name"] for e in ev if e["ph"] == "X"}
    assert {"app (zero-copy)", "TLB shootdown IPI", "napi_poll rx", "reader"} <= slices


def test_timeline_leaves_results_alone_and_is_deterministic(tmp_path):
    a, ra = timeline(tmp_path / "a", "vm2vm_vf_hairpin.json")
    b, rb = timeline(tmp_path / "b", "vm2vm_vf_hairpin.json")
    assert (tmp_path / "a" / "tl.json").read_bytes() == (tmp_path / "b" / "tl.json").read_bytes()
    plain = ppsim.run(SCEN / "vm2vm_vf_hairpin.json", source=str(SCEN / "vm2vm_vf_hairpin.json"))
    assert plain.raw == ra
    check_trace_event_format(a)


def test_timeline_stops_at_its_event_budget_and_says_so(tmp_path):
    doc, res = timeline(tmp_path, "default.json", "--timeline-max-events", "100")
    check_trace_event_format(doc)
    assert doc["metadata"]["events"] == 100
    assert doc["metadata"]["truncated_at_us"] is not None
    assert res["invariants"]["ok"]


@pytest.mark.parametrize("args, expected", [
    (["--timeline", "/nonexistent-dir/x.json"], "/nonexistent-dir/x.json: cannot open the timeline file"),
    (["--timeline", "t.json", "--timeline-max-events", "0"], "--timeline-max-events: expected an integer above 0"),
])
def test_bad_timeline_arguments_exit_2(tmp_path, capsys, args, expected):
    try:
        rc = main(["run", str(SCEN / "default.json"), "--out", str(tmp_path / "o"), *args])
    except SystemExit as e:   # argparse's own errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and expected in err and "Traceback" not in err


def test_api_rejects_a_timeline_that_is_not_a_path():
    with pytest.raises(ppsim.InputError, match="timeline: expected a file path"):
        ppsim.run(SCEN / "default.json", timeline=42)
