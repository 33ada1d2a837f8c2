"""The Python API and `ppsim run`: results, determinism, and errors on bad input."""
import json

import pytest

import ppsim

KERNEL_NAMES = ["alloc_fast", "alloc_slow", "alloc_slow_high_order", "alloc_empty", "alloc_refill", "alloc_waive",
                "recycle_cached", "recycle_cache_full", "recycle_ring", "recycle_ring_full", "recycle_released_refcnt"]


def test_default_scenario_recycles_and_reports_kernel_stat_names(repo):
    r = ppsim.run(repo / "scenarios/default.json")
    assert r.ok, r.violations
    for name in KERNEL_NAMES:
        assert f"page_pool.{name}" in r.stats
        assert f"nic0.rxq0.pp.{name}" in r.stats
    s = r.stats
    # 1 Mpps for 2 ms with no drops; every returned page recycled once the pool is warm.
    assert s["nic0.rxq0.rx_packets"] == 1990
    assert s["nic0.rxq0.rx_missed"] == 0
    assert s["page_pool.recycle_ratio"] == 1.0
    # The slow path runs only while the pool fills: 64-page bulks, far fewer than packets.
    assert s["page_pool.pages_state_hold_cnt"] % 64 == 0
    assert s["page_pool.pages_state_hold_cnt"] < s["nic0.rxq0.rx_packets"] / 2
    # Teardown: everything came back and the pool was freed.
    assert s["page_pool.pages_state_hold_cnt"] == s["page_pool.pages_state_release_cnt"]
    assert s["nic0.rxq0.pp.freed"] == 1
    assert r.unit("nic0.rx_gbps") == "Gb/s"


def test_dataframe_and_series(repo):
    r = ppsim.run(repo / "scenarios/default.json")
    df = r.dataframe()
    assert list(df.columns) == ["name", "value", "unit", "doc"]
    assert (df["name"] == "page_pool.recycle_ring").sum() == 1
    t, v = r.series("page_pool.inflight_pages")
    assert len(t) == len(v) > 100
    assert max(v) > 0


def test_overrides_change_the_outcome(repo):
    small = ppsim.run(repo / "scenarios/late_reader.json", overrides={"page_pool.pool_size_pages": 64})
    big = ppsim.run(repo / "scenarios/late_reader.json", overrides={"page_pool.pool_size_pages": 4096})
    assert small.ok and big.ok
    assert small.stats["page_pool.recycle_ring_full"] > big.stats["page_pool.recycle_ring_full"]
    assert big.stats["page_pool.recycle_ring_full"] == 0


def test_sweep_has_one_row_per_run(repo):
    df = ppsim.sweep(repo / "scenarios/xdp_drop.json", {"traffic.rate_pps": [1e6, 2e6]}, seeds=[1, 2],
                     stats=["nic0.rx_mpps"])
    assert len(df) == 4
    assert set(df.columns) >= {"traffic.rate_pps", "seed", "ok", "nic0.rx_mpps"}
    assert df["ok"].all()


def test_same_seed_gives_byte_identical_results(cli, tmp_path, repo):
    for d in ("a", "b"):
        p = cli("run", "scenarios/numa_move.json", "--out", tmp_path / d, "--seed", 7, "--quiet")
        assert p.returncode == 0, p.stderr
    a = (tmp_path / "a/results.json").read_bytes()
    assert a == (tmp_path / "b/results.json").read_bytes()
    p = cli("run", "scenarios/numa_move.json", "--out", tmp_path / "c", "--seed", 8, "--quiet")
    assert (tmp_path / "c/results.json").read_bytes() != a, "a Poisson scenario must depend on its seed"
    res = json.loads(a)
    assert res["seed"] == 7
    assert res["parameters"]["page_pool"]["pool_size_pages"] == 1024
    assert res["ppsim_version"]


def test_run_prints_kernel_named_summary(cli, tmp_path):
    p = cli("run", "scenarios/default.json", "--out", tmp_path)
    assert p.returncode == 0, p.stderr
    assert "recycle_cached" not in p.stdout  # the summary uses the kernel's short names
    for word in ("fast", "slow", "empty", "refill", "waive", "cached", "cache_full", "ring_full", "released_refcnt"):
        assert word in p.stdout
    assert "invariants: ok" in p.stdout


def write(tmp_path, text, name="s.json"):
    f = tmp_path / name
    f.write_text(text)
    return f


@pytest.mark.parametrize("text, expect", [
    ('{"page_pool": {"pool_size_pages": 256,}}', "malformed JSON at line 1"),
    ('{"page_pool": {"pool_sise_pages": 256}}', 'at $.page_pool.pool_sise_pages: unknown key "pool_sise_pages" (did you mean "pool_size_pages"?)'),
    ('{"traffic": {"packet_bytes": -64}}', "at $.traffic.packet_bytes: expected an integer in bytes from 14 to"),
    ('{"traffic": {"packet_bytes": "1500"}}', "at $.traffic.packet_bytes"),
    ('{"napi": {"per_packet_ns": "3 pages"}}', 'at $.napi.per_packet_ns: wrong unit "pages": expected time'),
    ('{"nic": {"rx_ring_size_descs": 0}}', "at $.nic.rx_ring_size_descs: expected an integer in descriptors from 8"),
    ('{"page_pool": {"pool_size_pages": 20000}}', "at $.page_pool.pool_size_pages: expected at most 16384 pages"),
    ('{"page_pool": {"dma_map": false}}', "at $.page_pool.dma_sync: expected false when dma_map is false"),
    ('{"stack": {"reader_cpu": 5}}', "at $.stack.reader_cpu: expected a CPU below cpus.count (2)"),
    ('{"nic": "fast"}', "at $.nic: expected an object"),
    ('[1, 2]', "at $: expected a JSON object"),
    ('{"traffic": {"packet_bytes": 3000}}', "at $.traffic.packet_bytes: expected at most the RX buffer"),
])
def test_bad_scenarios_get_one_line_errors_and_exit_2(cli, tmp_path, text, expect):
    f = write(tmp_path, text)
    p = cli("run", f, "--out", tmp_path / "out")
    assert p.returncode == 2, (p.stdout, p.stderr)
    err = p.stderr.strip()
    assert "\n" not in err, err
    assert str(f) in err
    assert expect in err
    assert "Traceback" not in p.stderr


def test_wrong_unit_string_is_converted_when_the_dimension_matches(tmp_path):
    r = ppsim.run({"napi": {"per_packet_ns": "0.06 us"}, "sim": {"duration_us": 50}})
    assert r.raw["parameters"]["napi"]["per_packet_ns"] == pytest.approx(60.0)


def test_missing_file_and_bad_override(cli, tmp_path):
    p = cli("run", tmp_path / "nope.json")
    assert p.returncode == 2 and "no such scenario file" in p.stderr
    p = cli("run", "scenarios/default.json", "--set", "page_pool.order=11", "--out", tmp_path)
    assert p.returncode == 2 and "$.page_pool.order" in p.stderr


def test_missing_build_is_reported(cli, tmp_path):
    p = cli("run", "scenarios/default.json", "--out", tmp_path, env_extra={"PPSIM_BUILD": str(tmp_path / "nobuild")})
    assert p.returncode == 3
    assert "not built" in p.stderr and "make" in p.stderr


def test_params_lists_units_defaults_and_docs(cli):
    p = cli("params", "page_pool.")
    assert p.returncode == 0
    assert "page_pool.pool_size_pages  (integer pages [1.0..1000000000.0], default 1024)" in p.stdout
    specs = json.loads(cli("params", "--json").stdout)
    paths = {s["path"]: s for s in specs}
    assert paths["page_pool.cost.alloc_fast_ns"]["unit"] == "ns"
    assert paths["page_pool.cost.alloc_fast_ns"]["source"]
    # Every parameter with a unit names it in its path (STYLE: parameters carry their unit).
    for s in specs:
        if s["unit"] and s["unit"] not in ("pages", "packets", "cpus", "nodes", "queues", "skbs", "retries", "descriptors", "writes"):
            token = s["unit"].lower().replace("/", "_per_")
            assert s["path"].endswith("_" + token), s["path"]


def test_mutants_are_all_caught_and_the_correct_model_is_clean(cli):
    p = cli("mutants")
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[-1].startswith("caught ") and lines[-1].split()[1] == lines[-1].split()[3]
    assert int(lines[-1].split()[3]) >= 8
    assert "FALSE ALARM" not in p.stdout and "ESCAPED" not in p.stdout


def test_a_mutant_run_reports_the_violation(cli, tmp_path):
    p = cli("run", "scenarios/extra_refs.json", "--mutant", "recycle_elevated_refcount", "--out", tmp_path)
    assert p.returncode == 1
    assert "recycle_refcount_one" in p.stdout
    assert "last transitions" not in p.stdout or "t=" in p.stdout
    res = json.loads((tmp_path / "results.json").read_text())
    v = res["invariants"]["kept"][0]
    assert v["invariant"] == "recycle_refcount_one" and v["history"] and "page" in v["subject"]
    p = cli("run", "scenarios/default.json", "--mutant", "no_such_bug", "--out", tmp_path)
    assert p.returncode == 2 and "unknown mutant" in p.stderr


def test_stats_lists_what_a_run_reports(cli):
    p = cli("stats", "scenarios/default.json")
    assert p.returncode == 0, p.stderr
    assert "nic0.rxq0.pp.recycle_ring  (value, pages)" in p.stdout
    specs = json.loads(cli("stats", "scenarios/default.json", "--json").stdout)
    assert all(s["unit"] is not None and s["doc"] for s in specs)
    p = cli("stats", "scenarios/nope.json")
    assert p.returncode == 2


def one_line_exit_2(p, *expect):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    err = p.stderr.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for e in expect:
        assert e in err, err
    return err


def test_a_binary_scenario_file_is_one_line_and_exit_2(cli, tmp_path):
    f = tmp_path / "bin.json"
    f.write_bytes(b"\x00\xff\xfe\x80binary\n\x01")
    one_line_exit_2(cli("run", f, "--out", tmp_path / "o"), f"{f}: not UTF-8 text (byte 1)")
    with pytest.raises(ppsim.InputError, match="not UTF-8 text"):
        ppsim.load_scenario(f)


@pytest.mark.parametrize("seed", ["-1", str(2**64), str(2**63), "1.5", "seven"])
def test_seeds_outside_0_to_2_63_minus_1_are_one_line_and_exit_2(cli, tmp_path, seed):
    err = one_line_exit_2(cli("run", "scenarios/xdp_drop.json", "--seed", seed, "--out", tmp_path),
                          "--seed", "expected an integer from 0 to 9223372036854775807 (2^63-1, the range of sim.seed)")
    assert repr(seed) in err


def test_the_largest_seed_runs_and_the_api_refuses_the_others(tmp_path):
    r = ppsim.run({"sim": {"duration_us": 20, "drain_us": 0}, "traffic": {"start_us": 1}}, seed=2**63 - 1)
    assert r.seed == 2**63 - 1
    for bad in (-1, 2**63, 2**64, 1.0, True, "3"):
        with pytest.raises(ppsim.InputError, match=r"seed: expected an integer from 0 to 9223372036854775807"):
            ppsim.run({}, seed=bad)
    with pytest.raises(ppsim.InputError, match=r"at \$\.sim\.seed: expected an integer from 0 to 9223372036854775807 \(2\^63-1\)"):
        ppsim.run({"sim": {"seed": 2**63}})


def test_a_key_given_twice_is_an_error_not_a_silent_choice(cli, tmp_path):
    f = write(tmp_path, '{"sim": {"duration_us": 100, "duration_us": 200}}')
    one_line_exit_2(cli("run", f, "--out", tmp_path / "o"),
                    f'{f}: at $.sim.duration_us: duplicate key "duration_us": given twice in one object')
    # The compiled core refuses it too when handed JSON text directly.
    from ppsim._native import core

    c = core()
    with pytest.raises(c.ScenarioError, match=r"s\.json: at \$\.sim\.duration_us: duplicate key"):
        c.run('{"sim": {"duration_us": 100, "duration_us": 200}}', "s.json")


@pytest.mark.parametrize("args, expect", [
    (["--set", 'sim={"seed": 1, "seed": 2}'], "--set sim: at $.sim.seed: duplicate key"),
    (["--set", "sim.seed=NaN"], "--set sim.seed: at $.sim.seed: expected a finite number, got NaN"),
    (["--set", "sim.seed=1", "--set", "sim.seed=2"], "--set sim.seed: given twice"),
    (["--set", "sim=1"], "--set sim: at $.sim: is a section"),
    (["--set", "sim.duration_us.x=1"], "--set sim.duration_us.x: at $.sim.duration_us: expected a section"),
    (["--set", "sim..seed=1"], "--set sim..seed: expected a dotted parameter path"),
    (["--set", 'sim={"seed": 1}', "--set", "sim.seed=2"], "sets $.sim.seed, which --set sim sets too"),
    (["--seed", "3", "--set", "sim.seed=4"], "--seed and --set sim.seed both set sim.seed"),
    (["--checker", "off", "--set", "sim.checker=stop"], "--checker and --set sim.checker both set"),
    (["--trace", "/nonexistent-dir/t.txt"], "/nonexistent-dir/t.txt: cannot open the trace file for writing"),
    (["--nonsense"], "unrecognized arguments: --nonsense"),
])
def test_argument_errors_are_one_line_and_exit_2(cli, tmp_path, args, expect):
    one_line_exit_2(cli("run", "scenarios/xdp_drop.json", "--out", tmp_path, *args), expect)


def test_out_that_cannot_be_a_directory_is_one_line(cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    one_line_exit_2(cli("run", "scenarios/xdp_drop.json", "--out", f / "sub"), f"--out {f / 'sub'}: cannot create directory")


def test_dict_scenarios_must_be_json_data():
    for bad, expect in [({"sim": {"duration_us": float("nan")}}, r"at \$\.sim\.duration_us: expected a finite number"),
                        ({"sim": {1: 2}}, r"at \$\.sim: expected string keys"),
                        ({"name": "\ud800"}, r"at \$\.name: string is not valid Unicode"),
                        ({"sim": {"x": object()}}, r"at \$\.sim\.x: expected JSON data"),
                        (5, "scenario: expected a file path or a dict, got int")]:
        with pytest.raises(ppsim.InputError, match=expect):
            ppsim.run(bad)
    deep: dict = {}
    node = deep
    for _ in range(100):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(ppsim.InputError, match="nested deeper than 64 levels"):
        ppsim.run(deep)


def test_an_event_limit_stops_the_run_exit_4_and_the_results_say_so(cli, tmp_path):
    p = cli("run", "scenarios/default.json", "--max-events", 500, "--out", tmp_path)
    assert p.returncode == 4, (p.stdout, p.stderr)
    err = p.stderr.strip()
    assert "\n" not in err and "stopped early" in err and "sim.max_events" in err, err
    assert "STOPPED EARLY by sim.max_events" in p.stdout
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["run_limit"]["limit"] == "sim.max_events" and res["run_limit"]["events"] == 500
    assert res["stats"]["sim.events_dispatched"]["value"] == 500
    assert res["invariants"]["ok"], "a run cut short is not an invariant violation"
    ok = ppsim.run(repo_file("scenarios/default.json"))
    assert ok.limit is None and ok.raw["run_limit"] is None


def repo_file(rel):
    from ppsim._native import REPO

    return REPO / rel


def test_a_wall_clock_limit_stops_a_long_run(cli, tmp_path):
    p = cli("run", "scenarios/late_reader.json", "--set", "sim.duration_us=1e8", "--set", "sim.sample_interval_us=1e6",
            "--max-wall-s", "0.2", "--out", tmp_path)
    assert p.returncode == 4, (p.stdout, p.stderr)
    assert "sim.max_wall_s" in p.stderr
    r = ppsim.run(repo_file("scenarios/late_reader.json"),
                  overrides={"sim.duration_us": 1e8, "sim.sample_interval_us": 1e6, "sim.max_wall_s": 0.2})
    assert r.limit["limit"] == "sim.max_wall_s"


def test_memory_budget_refuses_huge_scenarios_up_front_and_stops_growing_ones(cli, tmp_path):
    p = cli("run", "scenarios/default.json", "--set", "nic.queues=4096", "--set", "cpus.count=4096",
            "--set", "nic.rx_ring_size_descs=65536", "--out", tmp_path)
    one_line_exit_2(p, "at $.nic.rx_ring_size_descs: the scenario needs about",
                    "MiB before its first packet (4096 queues x 65536 RX descriptors with buffers), "
                    "more than sim.max_memory_mib (4096 MiB)")
    # A socket that never reads, in a machine with 2^36 pages: pages pile up until the budget stops it.
    r = ppsim.run(repo_file("scenarios/late_reader.json"),
                  overrides={"sim.duration_us": 1e9, "stack.reader_start_us": 1e9, "memory.capacity_pages": 2**36,
                             "stack.rcvbuf_bytes": 2**40, "sim.max_memory_mib": 64})
    assert r.limit["limit"] == "sim.max_memory_mib", r.limit
    assert "more than the limit of 64 MiB" in r.limit["message"]
