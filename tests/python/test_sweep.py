"""ppsim.sweep and `ppsim sweep`: the same DataFrame, bit for bit, whether the points run here, on
worker processes, on a Dask cluster or come from the cache; resume; bad input as one line."""
import contextlib
import io
import itertools
import json
import logging
import warnings

import pytest

import ppsim
import ppsim.sweeps
from ppsim import InputError
from ppsim.sweeps import SweepInfo

GRID = {"traffic.rate_pps": [400000, 800000], "page_pool.pool_size_pages": [64, 256]}
SEEDS = [1, 2]
STATS = ["page_pool.recycle_ratio", "page_pool.pages_state_hold_cnt", "page_pool.recycle_ring_full"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """scenarios/default.json cut to 150 us of traffic: a few ms per point."""
    from conftest import REPO

    data = json.loads((REPO / "scenarios" / "default.json").read_text())
    data["sim"].update({"duration_us": 150, "drain_us": 100})
    p = tmp_path_factory.mktemp("base") / "base.json"
    p.write_text(json.dumps(data))
    return p


@pytest.fixture(scope="module")
def reference(base):
    return ppsim.sweep(base, GRID, seeds=SEEDS, stats=STATS)


def csv_bytes(df) -> bytes:
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue().encode()


def same(a, b) -> None:
    assert a.equals(b)
    assert list(a.columns) == list(b.columns)
    assert list(a.dtypes) == list(b.dtypes)
    assert csv_bytes(a) == csv_bytes(b)
    assert a.attrs == b.attrs


def test_rows_in_grid_order_with_units(reference):
    df = reference
    assert list(df.columns) == list(GRID) + ["seed", "ok"] + STATS
    expected = [(r, p, s) for r, p in itertools.product(*GRID.values()) for s in SEEDS]
    assert list(df[list(GRID) + ["seed"]].itertuples(index=False, name=None)) == expected
    assert df["ok"].all()
    units = df.attrs["units"]
    assert units["page_pool.pages_state_hold_cnt"] == "pages"
    assert units["traffic.rate_pps"] == "pps"
    assert set(units) == set(df.columns)
    # the points differ: the sweep really applied the overrides
    assert df["page_pool.recycle_ring_full"].nunique() > 1


def test_matches_single_runs(base, reference):
    r = ppsim.run(base, seed=2, overrides={"traffic.rate_pps": 800000, "page_pool.pool_size_pages": 64})
    row = reference[(reference["traffic.rate_pps"] == 800000) & (reference["page_pool.pool_size_pages"] == 64)
                    & (reference["seed"] == 2)].iloc[0]
    for s in STATS:
        assert row[s] == r.stats[s]


def test_two_workers_equal_one(base, reference):
    info = SweepInfo()
    df = ppsim.sweep(base, GRID, seeds=SEEDS, stats=STATS, workers=2, info=info)
    same(df, reference)
    assert info.computed == 8 and info.cached == 0 and info.workers == 2


def test_every_stat_when_none_asked(base):
    df = ppsim.sweep(base, {"page_pool.pool_size_pages": [64]}, seeds=[1])
    r = ppsim.run(base, seed=1, overrides={"page_pool.pool_size_pages": 64})
    assert list(df.columns[3:]) == sorted(r.stats)
    assert df.iloc[0]["page_pool.recycle_ring"] == r.stats["page_pool.recycle_ring"]


def test_cache_resumes_and_equals(base, reference, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    # A first, partial sweep fills the cache with half the points (as an interrupted one would).
    part = ppsim.sweep(base, {"traffic.rate_pps": [400000], "page_pool.pool_size_pages": [64, 256]}, seeds=SEEDS,
                       stats=STATS, cache=cache)
    entries = sorted(cache.glob("*/*.json"))
    assert len(entries) == 4
    assert not list(cache.rglob("*.tmp"))
    assert json.loads(entries[0].read_text())["result"]["stats"]  # whole JSON, every stat kept
    assert part.equals(reference.iloc[:4].reset_index(drop=True))

    calls = []
    real = ppsim.sweeps.run_point
    monkeypatch.setattr(ppsim.sweeps, "run_point", lambda *a: calls.append(a) or real(*a))
    info = SweepInfo()
    df = ppsim.sweep(base, GRID, seeds=SEEDS, stats=STATS, cache=cache, info=info)
    assert len(calls) == 4 and (info.computed, info.cached) == (4, 4)
    same(df, reference)

    calls.clear()
    info = SweepInfo()
    df = ppsim.sweep(base, GRID, seeds=SEEDS, stats=STATS[:1], cache=cache, info=info)  # other stats: still cached
    assert calls == [] and info.cached == 8
    sub = reference[list(GRID) + ["seed", "ok"] + STATS[:1]]
    assert df.equals(sub) and csv_bytes(df) == csv_bytes(sub)


def test_interrupted_sweep_resumes(base, reference, tmp_path, monkeypatch):
    """Ctrl-C after 5 of 8 points: those 5 are in the cache, whole; the re-run computes 3."""
    cache = tmp_path / "cache"
    real = ppsim.sweeps.run_point
    calls = []

    def interrupt_after_5(*a):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(a)
        return real(*a)

    monkeypatch.setattr(ppsim.sweeps, "run_point", interrupt_after_5)
    with pytest.raises(KeyboardInterrupt):
        ppsim.sweep(base, GRID, seeds=SEEDS, stats=STATS, cache=cache)
    assert len(list(cache.glob("*/*.json"))) == 5 and not list(cache.rglob("*.tmp"))
    monkeypatch.setattr(ppsim.sweeps, "run_point", real)
    info = SweepInfo()
    df = ppsim.sweep(base, GRID, seeds=SEEDS, stats=STATS, cache=cache, info=info)
    assert (info.computed, info.cached) == (3, 5)
    same(df, reference)


def test_cache_ignores_a_damaged_entry(base, reference, tmp_path):
    cache = tmp_path / "cache"
    ppsim.sweep(base, GRID, seeds=SEEDS, stats=STATS, cache=cache, workers=2)
    victim = sorted(cache.glob("*/*.json"))[3]
    victim.write_text('{"key": "trunc')
    info = SweepInfo()
    df = ppsim.sweep(base, GRID, seeds=SEEDS, stats=STATS, cache=cache, info=info)
    assert (info.computed, info.cached) == (1, 7)
    same(df, reference)


def test_cache_key_changes_with_the_scenario(base, tmp_path):
    cache = tmp_path / "c"
    ppsim.sweep(base, {"page_pool.pool_size_pages": [64]}, seeds=[1], stats=STATS, cache=cache)
    info = SweepInfo()
    ppsim.sweep(base, {"page_pool.pool_size_pages": [64]}, seeds=[3], stats=STATS, cache=cache, info=info)
    assert info.computed == 1
    data = json.loads(base.read_text())
    data["traffic"]["packet_bytes"] = 1000
    info = SweepInfo()
    ppsim.sweep(data, {"page_pool.pool_size_pages": [64]}, seeds=[1], stats=STATS, cache=cache, info=info)
    assert info.computed == 1
    assert len(list(cache.glob("*/*.json"))) == 3


def test_progress_bar_on_stderr(base, capsys):
    ppsim.sweep(base, {"page_pool.pool_size_pages": [64, 128]}, seeds=[1], stats=STATS, progress=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "pt/s" in err


@pytest.mark.parametrize("kwargs, message", [
    ({"grid": {"page_pool.pool_size_page": [1]}}, "grid page_pool.pool_size_page: unknown parameter (did you mean 'page_pool.pool_size_pages'?)"),
    ({"grid": {"page_pool.pool_size_pages": 64}}, "grid page_pool.pool_size_pages: expected a list of values"),
    ({"grid": {"page_pool.pool_size_pages": []}}, "expected at least one value"),
    ({"grid": {"page_pool.pool_size_pages": [64, 64]}}, "value 64 given twice"),
    ({"grid": {"page_pool.pool_size_pages": [64, 20000]}}, "grid page_pool.pool_size_pages=20000: "),
    ({"grid": {"page_pool.pool_size_pages": ["many"]}}, "expected an integer in pages"),
    ({"grid": {}}, "grid: expected at least one parameter"),
    ({"workers": 0}, "workers: expected an integer from 1 to 512, got 0"),
    ({"workers": "2"}, "workers: expected an integer from 1 to 512, got '2'"),
    ({"workers": 1.5}, "workers: expected an integer"),
    ({"seeds": [1, 1]}, "seeds: 1 given twice"),
    ({"seeds": [-1]}, "seeds: expected an integer from 0"),
    ({"seeds": []}, "seeds: expected at least one seed"),
    ({"stats": ["page_pool.recycle_ratoi"]}, "stats: 'page_pool.recycle_ratoi' is not a stat of this scenario's runs (did you mean 'page_pool.recycle_ratio'?)"),
    ({"stats": "page_pool.recycle_ratio"}, "stats: expected a list of stat names"),
    ({"dask": 3}, "dask: expected a scheduler address"),
])
def test_bad_input_is_one_clear_line(base, kwargs, message):
    args = {"grid": {"page_pool.pool_size_pages": [64]}, "seeds": [1], "stats": STATS[:1]}
    args.update(kwargs)
    grid = args.pop("grid")
    with pytest.raises(InputError) as e:
        ppsim.sweep(base, grid, **args)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_unwritable_cache(base, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match=r"^cache .*file: not a directory$"):
        ppsim.sweep(base, {"page_pool.pool_size_pages": [64]}, cache=f)
    with pytest.raises(InputError, match=r"^cache .*file/sub: cannot create directory"):
        ppsim.sweep(base, {"page_pool.pool_size_pages": [64]}, cache=f / "sub")


@contextlib.contextmanager
def dask_warnings_ignored():
    """Debian 12's distributed 2022.12 on tornado 6.2 calls IOLoop.make_current, which tornado
    deprecates: ignore exactly that; every other warning stays an error."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="make_current is deprecated", category=DeprecationWarning)
        yield


def test_dask_equals_local(base, reference):
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (Debian: python3-distributed)")
    with dask_warnings_ignored():
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      silence_logs=logging.ERROR) as cluster:
            info = SweepInfo()
            df = ppsim.sweep(base, GRID, seeds=SEEDS, stats=STATS, dask=cluster.scheduler_address, info=info)
            assert info.dask == cluster.scheduler_address and info.computed == 8
            same(df, reference)


@pytest.mark.slow  # the connection timeout: 5 s
def test_dask_unreachable_scheduler(base):
    pytest.importorskip("distributed", reason="dask.distributed is not installed (Debian: python3-distributed)")
    with dask_warnings_ignored():
        with pytest.raises(InputError, match=r"^dask tcp://127.0.0.1:9: cannot connect to the Dask scheduler"):
            ppsim.sweep(base, {"page_pool.pool_size_pages": [64]}, seeds=[1], dask="tcp://127.0.0.1:9")


# --- the command line ---------------------------------------------------------------------------

def test_cli_sweep_writes_table_meta_plots_report(cli, base, reference, tmp_path):
    out = tmp_path / "out"
    p = cli("sweep", base, "--grid", "traffic.rate_pps=400000,800000", "--grid", "page_pool.pool_size_pages=64,256",
            "--seeds", "1,2", "--stats", ",".join(STATS), "--workers", "2", "--cache", tmp_path / "cache",
            "--out", out, "--format", "csv")
    assert p.returncode == 0, p.stderr
    assert "8 points (8 run, 0 from the cache)" in p.stdout
    assert (out / "sweep.csv").read_bytes() == csv_bytes(reference)
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["grid"] == GRID and meta["seeds"] == SEEDS and meta["stats"] == STATS
    assert meta["units"]["page_pool.pages_state_hold_cnt"] == "pages"
    assert meta["versions"]["ppsim"] == ppsim.__version__ and meta["wall_s"] > 0
    assert sorted(f.name for f in out.glob("heatmap_*.png")) == sorted(f"heatmap_{s}.png" for s in STATS)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "<table>" in html
    # again: every point from the cache, same bytes
    p2 = cli("sweep", base, "--grid", "traffic.rate_pps=400000,800000", "--grid", "page_pool.pool_size_pages=64,256",
             "--seeds", "1,2", "--stats", ",".join(STATS), "--cache", tmp_path / "cache", "--out", tmp_path / "o2")
    assert p2.returncode == 0 and "(0 run, 8 from the cache)" in p2.stdout
    assert (tmp_path / "o2" / "sweep.csv").read_bytes() == (out / "sweep.csv").read_bytes()


def _sweep_meta(cli, base, out, *grids) -> dict:
    """`ppsim sweep` over `grids` (each a --grid argument) with one stat; its sweep.json."""
    args = [a for g in grids for a in ("--grid", g)]
    p = cli("sweep", base, *args, "--stats", STATS[0], "--out", out)
    assert p.returncode == 0, p.stderr
    return json.loads((out / "sweep.json").read_text())


def test_cli_values_parse_as_json_or_strings(cli, base, tmp_path):
    meta = _sweep_meta(cli, base, tmp_path / "o", "stack.mode=socket,napi_free", "stack.defer_free=true,false")
    assert meta["grid"] == {"stack.mode": ["socket", "napi_free"], "stack.defer_free": [True, False]}
    assert meta["seeds"] == [None]


def test_cli_json_array_values(cli, base, tmp_path):
    # The array form carries values a comma list cannot (a comma inside a string).
    meta = _sweep_meta(cli, base, tmp_path / "o", 'stack.mode=["socket", "napi_free"]',
                       "page_pool.pool_size_pages=[64, 128]")
    assert meta["grid"] == {"stack.mode": ["socket", "napi_free"], "page_pool.pool_size_pages": [64, 128]}
    meta = _sweep_meta(cli, base, tmp_path / "o2", 'name=["a,b", "c"]')
    assert meta["grid"] == {"name": ["a,b", "c"]}


def test_cli_parquet_falls_back_to_csv_without_pyarrow(cli, base, tmp_path):
    try:
        import pyarrow  # noqa: F401
        pytest.skip("pyarrow is installed: Parquet is written")
    except ImportError:
        pass
    out = tmp_path / "o"
    p = cli("sweep", base, "--grid", "page_pool.pool_size_pages=64,128", "--stats", STATS[0], "--out", out,
            "--format", "parquet")
    assert p.returncode == 0, p.stderr
    assert "pyarrow is not installed" in p.stderr and "writing CSV instead of Parquet" in p.stderr
    assert (out / "sweep.csv").is_file() and not (out / "sweep.parquet").exists()
    assert json.loads((out / "sweep.json").read_text())["format"] == "csv"


@pytest.mark.parametrize("args, message", [
    (["--grid", "page_pool.pool_size_page=1,2"], "ppsim sweep: grid page_pool.pool_size_page: unknown parameter"),
    (["--grid", "page_pool.pool_size_pages=64,x"], "ppsim sweep: grid page_pool.pool_size_pages=\"x\": "),
    (["--grid", "page_pool.pool_size_pages"], "ppsim sweep: --grid page_pool.pool_size_pages: expected PATH=V1,V2,..."),
    (["--grid", "page_pool.pool_size_pages=64,,128"], "--grid page_pool.pool_size_pages: expected comma-separated values"),
    (["--grid", "page_pool.pool_size_pages=[64, 128"], "ppsim sweep: --grid page_pool.pool_size_pages: expected a JSON array"),
    (["--grid", "page_pool.pool_size_pages=[]"], "--grid page_pool.pool_size_pages: expected a non-empty JSON array"),
    (["--grid", "page_pool.pool_size_pages=[[64]]"], "--grid page_pool.pool_size_pages: expected numbers, strings or true/false"),
    (["--grid", "page_pool.pool_size_pages=64", "--workers", "0"], "argument --workers: expected an integer from 1 to 512, got '0'"),
    (["--grid", "page_pool.pool_size_pages=64", "--seeds", "1,x"], "ppsim sweep: --seeds: expected an integer from 0"),
    (["--grid", "page_pool.pool_size_pages=64", "--stats", "nope"], "ppsim sweep: stats: 'nope' is not a stat"),
    (["--grid", "page_pool.pool_size_pages=64", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
    pytest.param(["--grid", "page_pool.pool_size_pages=64", "--dask", "tcp://127.0.0.1:9"],
                 "ppsim sweep: dask tcp://127.0.0.1:9: cannot connect to the Dask scheduler within 5 s",
                 marks=pytest.mark.slow),
])
def test_cli_bad_input_exit_2(cli, base, tmp_path, args, message):
    if "--dask" in args:
        pytest.importorskip("distributed", reason="dask.distributed is not installed (Debian: python3-distributed)")
    p = cli("sweep", base, *args, "--out", tmp_path / "o")
    assert p.returncode == 2, p.stderr
    assert message in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_cli_unwritable_out(cli, base, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    for out, msg in ((f, "not a directory"), (f / "sub", "cannot create directory")):
        p = cli("sweep", base, "--grid", "page_pool.pool_size_pages=64", "--out", out)
        assert p.returncode == 2
        assert p.stderr.startswith(f"ppsim sweep: --out {out}: {msg}") and len(p.stderr.splitlines()) == 1
    p = cli("sweep", base, "--grid", "page_pool.pool_size_pages=64", "--out", tmp_path / "o", "--cache", f)
    assert p.returncode == 2 and p.stderr.startswith(f"ppsim sweep: cache {f}: not a directory")


def test_cli_set_changes_the_base(cli, base, tmp_path):
    p = cli("sweep", base, "--grid", "page_pool.pool_size_pages=64", "--set", "traffic.rate_pps=800000",
            "--seeds", "1", "--stats", ",".join(STATS), "--out", tmp_path / "o")
    assert p.returncode == 0, p.stderr
    df = ppsim.sweep(base, {"page_pool.pool_size_pages": [64], "traffic.rate_pps": [800000]}, seeds=[1], stats=STATS)
    got = (tmp_path / "o" / "sweep.csv").read_text().splitlines()
    assert got[1].split(",")[3:] == csv_bytes(df).decode().splitlines()[1].split(",")[4:]


def _descendants(pid: int) -> list[int]:
    """Processes below `pid`, read from /proc (children before grandchildren)."""
    import os

    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        kids = sorted(c for c, pp in parent.items() if pp == p)
        out += kids
        todo += kids
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _parents(pid: int, top: int) -> list[int]:
    """`pid`'s ancestors below `top`."""
    out = []
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return out
        if pid in (top, 0, 1):
            return out
        out.append(pid)


@pytest.mark.slow
def test_cli_dead_worker_is_exit_3(base, tmp_path):
    # A worker killed mid-sweep (the OOM killer, say) ends the sweep with one line and exit 3, not a
    # traceback or a hang; what finished is in the cache.
    import os
    import signal
    import subprocess
    import time

    from conftest import REPO

    data = json.loads(base.read_text())
    data["sim"].update({"duration_us": 5000000, "drain_us": 100})  # seconds per point
    slow = tmp_path / "slow.json"
    slow.write_text(json.dumps(data))
    p = subprocess.Popen([str(REPO / "ppsim"), "sweep", str(slow), "--grid", "page_pool.pool_size_pages=64,128,256,512",
                          "--workers", "2", "--stats", STATS[0], "--out", str(tmp_path / "o"), "--cache",
                          str(tmp_path / "cache")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        # Workers are the forkserver's (or, with spawn, the sweep's) children that run points.
        deadline = time.monotonic() + 60
        victim = None
        while victim is None and time.monotonic() < deadline and p.poll() is None:
            for q in _descendants(p.pid):
                cmd = _cmdline(q)
                if "spawn_main" in cmd or any("forkserver" in _cmdline(k) for k in _parents(q, p.pid)):
                    victim = q
            time.sleep(0.5)  # let it start its chunk
        assert victim is not None, "no worker process appeared"
        os.kill(victim, signal.SIGKILL)
        out, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 3, err
    assert "ppsim: sweep: a worker process died" in err
    assert "Traceback" not in err
