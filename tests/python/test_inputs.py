"""Every input path refuses bad input with one InputError line (exit code 2 on the command line):
trace files, capture directories, results.json for reports, validate's arguments."""
import json
import shutil

import pytest

import ppsim
from ppsim import replay, strict_json, trace
from ppsim.errors import InputError

CAPTURE = "traces/udp-1400-xcpu-r1"


def one_line_exit_2(p, *expect):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    err = p.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for e in expect:
        assert e in err, err
    return err


# ---- strict JSON ----

@pytest.mark.parametrize("text, expect", [
    ('{"a": 1, "a": 2}', 'at $.a: duplicate key "a"'),
    ('{"a": [{"b": {"c": 1, "c": 1}}]}', "at $.a[0].b.c: duplicate key"),
    ('{"a": NaN}', "at $.a: expected a finite number, got NaN (not JSON)"),
    ('{"a": -Infinity}', "at $.a: expected a finite number, got -Infinity"),
    ('{"a": 1e999}', "at $.a: expected a finite number, got 1e999"),
    ('{"a": ' + "9" * 5000 + "}", "at $.a: expected a number, got an integer of 5000 digits"),
    ("[" * 100 + "]" * 100, "nested deeper than 64 levels"),
    ("[" * 100000, "malformed JSON at line 1, column 65: nested deeper than 64 levels"),
    ('{"a": 1,}', "malformed JSON at line 1, column 9"),
    (b"\xff\xfe{}", "not UTF-8 text (byte 0)"),
])
def test_strict_json_names_what_is_not_json(text, expect):
    with pytest.raises(InputError) as e:
        strict_json.loads(text, "f.json")
    assert str(e.value).startswith("f.json: ") and expect in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_strict_json_accepts_json_and_a_byte_order_mark():
    assert strict_json.loads('\ufeff{"a": [1, 2.5, "x", null, true]}', "f") == {"a": [1, 2.5, "x", None, True]}
    assert strict_json.loads("[" * 64 + "]" * 64, "f") is not None


# ---- trace parsers ----

def test_trace_files_with_binary_bytes_name_the_line(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(b"# tracer: nop\n\n\xff\xfe\x00binary\n")
    with pytest.raises(InputError, match=r"t\.txt:3: not UTF-8 text \(byte 0 of the line\)"):
        trace.read_trace(f)


@pytest.mark.parametrize("line, expect", [
    ("x-1 [000] ..s1. " + "9" * 5000 + ".5: page_pool_state_hold: a=b", "not a trace event line"),
    ("x-" + "1" * 5000 + " [000] ..s1. 5.5: napi_poll: x", "not a trace event line"),
    ("x-1 [000] ..s1. 5.5: page_pool_state_hold: page_pool=0x1 netmem=0x2 pfn=0x3 hold=" + "7" * 5000,
     "is not a decimal integer of at most 20 digits"),
    (" " * 70000 + "x", "line longer than 65536 characters"),
])
def test_trace_lines_with_huge_numbers_or_lengths_are_input_errors(line, expect):
    with pytest.raises(InputError, match=expect):
        trace.parse_text(line)


def test_trace_api_refuses_wrong_types():
    for call, expect in [(lambda: trace.parse_text(b"x"), "expected trace text"),
                         (lambda: list(trace.parse_lines("one string"))[0], "expected an iterable of text lines"),
                         (lambda: list(trace.parse_lines([b"bytes line"])), "expected a line of text"),
                         (lambda: trace.read_trace(3), "expected a file path"),
                         (lambda: trace.summarise([], burst_gap_us=float("nan")), "burst_gap_us"),
                         (lambda: trace.summarise([], burst_gap_us="5"), "burst_gap_us"),
                         (lambda: trace.summarise(5), "expected a Trace or an iterable")]:
        with pytest.raises(InputError, match=expect):
            call()


# ---- capture directories ----

def capture(tmp_path, repo, edit=None, raw=None):
    d = tmp_path / "cap"
    shutil.copytree(repo / CAPTURE, d)
    if raw is not None:
        (d / "meta.json").write_bytes(raw)
    elif edit:
        meta = json.loads((d / "meta.json").read_text())
        edit(meta)
        (d / "meta.json").write_text(json.dumps(meta))
    return d


@pytest.mark.parametrize("edit, expect", [
    (lambda m: m["replay"].__setitem__("payload_bytes", "1400"), "at $.replay.payload_bytes: expected an integer, got a string"),
    (lambda m: m["machine"].__setitem__("online_cpus", 2), "at $.machine.online_cpus: expected an array, got a number"),
    (lambda m: m["replay"].__setitem__("phases", [5]), "at $.replay.phases[0]: expected an object"),
    (lambda m: m["sysctl"].__setitem__("net.ipv4.tcp_rmem", "4096"), "expected three integers"),
    (lambda m: m["kernel"]["config"].__setitem__("CONFIG_HZ", "fast"), "at $.kernel.config.CONFIG_HZ: expected an integer"),
    (lambda m: m.__setitem__("replay", []), "at $.replay: expected an object, got an array"),
    (lambda m: m.__setitem__("format", 5), "at $.format: expected \"ppsim-capture/1\""),
])
def test_bad_capture_meta_names_file_and_path(tmp_path, repo, edit, expect):
    d = capture(tmp_path, repo, edit)
    with pytest.raises(InputError) as e:
        replay.scenario_from_meta(replay.load_meta(d), str(d / "meta.json"))
    assert str(d / "meta.json") in str(e.value) and expect in str(e.value), str(e.value)


@pytest.mark.parametrize("raw, expect", [
    (b"\x00\x01\xff", "not UTF-8 text"),
    (b'{"format": "ppsim-capture/1", "format": "x"}', 'at $.format: duplicate key "format"'),
    (b"[]", "at $: expected a JSON object"),
])
def test_unreadable_meta_is_one_line_from_validate(tmp_path, repo, cli, raw, expect):
    d = capture(tmp_path, repo, raw=raw)
    one_line_exit_2(cli("validate", d, "--out", tmp_path / "v"), f"{d / 'meta.json'}", expect)


def test_validate_argument_errors_are_one_line(tmp_path, repo, cli):
    one_line_exit_2(cli("validate", tmp_path / "nope"), "not a directory")
    one_line_exit_2(cli("validate", CAPTURE, "--seed", "-4"), "--seed", "2^63-1")
    f = tmp_path / "file"
    f.write_text("x")
    one_line_exit_2(cli("validate", CAPTURE, "--out", f / "sub"), "--out", "cannot create directory")


def test_a_replay_scenario_error_names_the_capture(tmp_path, repo):
    d = capture(tmp_path, repo, lambda m: m["replay"].__setitem__("mtu", 10))
    with pytest.raises(InputError, match=r"meta\.json \(replayed as a veth scenario\): at \$\.veth\.mtu_bytes"):
        replay.simulate(replay.load_meta(d), str(d / "meta.json"), tmp_path / "t.txt")


# ---- report inputs ----

@pytest.fixture(scope="module")
def results(tmp_path_factory):
    r = ppsim.run({"sim": {"duration_us": 30, "drain_us": 10}, "traffic": {"start_us": 1}})
    return json.loads(r.to_json())


@pytest.mark.parametrize("edit, expect", [
    (lambda r: r.__setitem__("stats", []), "at $.stats: expected an object of stats, got an array"),
    (lambda r: r["stats"].pop("sim.end_time_ns"), "missing $.stats['sim.end_time_ns']"),
    (lambda r: r["stats"]["page_pool.recycle_ratio"].__setitem__("value", "x"),
     "at $.stats['page_pool.recycle_ratio'].value: expected a number, got a string"),
    (lambda r: r["series"]["page_pool.ring_pages"]["values"].pop(), "expected as many values"),
    (lambda r: r["invariants"].__setitem__("ok", "yes"), "at $.invariants.ok: expected true or false"),
    (lambda r: r.__setitem__("seed", None), "at $.seed: expected an integer, got null"),
])
def test_bad_results_json_is_one_line_from_report(tmp_path, cli, results, edit, expect):
    res = json.loads(json.dumps(results))
    edit(res)
    f = tmp_path / "results.json"
    f.write_text(json.dumps(res))
    one_line_exit_2(cli("report", tmp_path, "--out", tmp_path / "rep"), str(f), expect)


def test_report_of_binary_or_missing_results(tmp_path, cli):
    f = tmp_path / "results.json"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00")
    one_line_exit_2(cli("report", f, "--out", tmp_path / "rep"), "not UTF-8 text")
    one_line_exit_2(cli("report", tmp_path / "none", "--out", tmp_path / "rep"), "no results.json here")


def test_validate_budgets_stop_a_replay_and_exit_4(tmp_path, repo, cli):
    d = capture(tmp_path, repo, lambda m: m.__setitem__("group", "../../escape"))
    p = cli("validate", d, "--out", tmp_path / "v", "--max-events", 200)
    assert p.returncode == 4, (p.stdout, p.stderr)
    assert "stopped early" in p.stderr and "sim.max_events" in p.stderr and "Traceback" not in p.stderr
    assert "run_limit" in p.stdout
    assert not (tmp_path.parent / "escape.trace.txt").exists()
    assert list((tmp_path / "v" / "sim").glob("*escape.trace.txt")), "the simulated trace stays in --out"


@pytest.mark.parametrize("raw, expect", [
    (b"\xff\xfe\x00", "--from: {f}: not UTF-8 text"),
    (b'{"tool": "ppsim_calibrate", "host": 5}', "--from {f}: not the measurements ppsim_calibrate prints (TypeError"),
    (b'{"tool": "ppsim_calibrate"}', "--from {f}: not the measurements ppsim_calibrate prints (KeyError: missing 'host')"),
    (b'{"tool": "x", "tool": "ppsim_calibrate"}', 'at $.tool: duplicate key "tool"'),
])
def test_calibrate_from_a_bad_measurements_file_is_one_line(tmp_path, cli, raw, expect):
    f = tmp_path / "m.json"
    f.write_bytes(raw)
    one_line_exit_2(cli("calibrate", "--from", f, "--out", tmp_path / "p.json"), expect.format(f=f))


# ---- found by the Python fuzzer ----

def test_a_machine_profile_whose_topology_source_is_not_a_string_is_one_line(tmp_path, repo, cli):
    prof = json.loads((repo / "scenarios/machines/published-xeon-e5-2695v4.json").read_text())
    prof["topology"]["source"] = True
    f = tmp_path / "p.json"
    f.write_text(json.dumps(prof))
    s = tmp_path / "s.json"
    s.write_text(json.dumps({"sim": {"duration_us": 30, "drain_us": 10},
                             "coherence": {"enabled": True, "profile": str(f)}}))
    one_line_exit_2(cli("run", s, "--out", tmp_path / "r"), str(f), "at $.topology.source: expected a string")


@pytest.mark.parametrize("rate", ["1e-7", "5e-324"])
def test_a_rate_so_slow_its_second_packet_lies_past_the_end_of_time_runs_and_ends(tmp_path, cli, rate):
    # 1e12 / rate picoseconds does not fit a 64-bit time: the source offers one packet and stops.
    p = cli("run", "scenarios/default.json", "--set", f"traffic.rate_pps={rate}", "--max-wall-s", "20",
            "--out", tmp_path / "r")
    assert p.returncode == 0, p.stderr
    r = json.loads((tmp_path / "r" / "results.json").read_text())
    assert r["stats"]["nic0.rxq0.rx_packets"]["value"] == 1
