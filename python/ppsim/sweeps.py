"""Design-space sweeps: the cartesian product of a grid of parameter values × seeds, run on local
processes or a Dask cluster, with a content-addressed cache of finished points.

    df = ppsim.sweep("scenarios/default.json", {"traffic.rate_pps": [5e5, 1e6]}, seeds=[1, 2],
                     stats=["page_pool.recycle_ratio"], workers=2, cache="runs/cache")

Every point is one simulation, independent of the others, so where it runs (this process, a
local worker process, a Dask worker, or the cache) does not change its result: the DataFrame is
the same, bit for bit, row order included (grid order × seeds).

The module is named `sweeps` (not `sweep`) so that importing it cannot shadow `ppsim.sweep`.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ppsim import strict_json
from ppsim._native import core
from ppsim.errors import EnvironmentProblem, InputError, one_line
from ppsim.scenario import apply_overrides, check_seed, load_scenario

MAX_WORKERS = 512
MAX_CHUNK = 64           # points per task: big enough to hide the per-task cost, small enough for progress
DASK_CONNECT_TIMEOUT_S = 5
CACHE_FORMAT = 1         # bump when the layout of a cached point changes


@dataclass
class Point:
    index: int
    values: tuple            # the grid values, in grid key order
    seed: int | None
    text: str = ""           # canonical scenario JSON after the overrides
    key: str = ""            # sha256 of (text, seed, version, core digest)


@dataclass
class SweepInfo:
    """What a sweep did, besides its DataFrame (the CLI writes it to sweep.json)."""

    points: int = 0
    computed: int = 0
    cached: int = 0
    workers: int = 1
    dask: str | None = None
    version: str = ""
    chunk: int = 1
    units: dict = field(default_factory=dict)


def canonical(data: Any) -> str:
    """The scenario as JSON text with sorted keys and no spaces: equal scenarios, equal text. The
    C++ reader stores objects sorted anyway, so this text runs exactly as the original would."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=True)


def _core_digest() -> str:
    """sha256 of the compiled core, so a rebuilt model never reads an older build's cached points
    (the version string alone changes only at releases)."""
    f = getattr(core(), "__file__", None)
    if not f:
        return ""
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def point_key(text: str, seed: int | None, version: str, digest: str) -> str:
    payload = json.dumps({"scenario": text, "seed": seed, "ppsim_version": version, "core": digest,
                          "format": CACHE_FORMAT}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Checking what the user asked for, before anything runs.

_param_specs: dict | None = None


def param_specs() -> dict:
    global _param_specs
    if _param_specs is None:
        _param_specs = {s["path"]: s for s in json.loads(core().params())}
    return _param_specs


def check_grid(grid: Any) -> tuple[list[str], list[list[Any]]]:
    """(keys, values per key) of a grid {dotted path: [values]}; InputError naming the key."""
    if not isinstance(grid, Mapping):
        raise InputError(f"grid: expected a dict of dotted parameter path -> list of values, got {type(grid).__name__}")
    specs = param_specs()
    sections = {p.rsplit(".", i)[0] for p in specs for i in range(1, p.count(".") + 1)}
    keys, values = [], []
    for k, vs in grid.items():
        if not isinstance(k, str):
            raise InputError(f"grid: expected dotted parameter paths (strings) as keys, got {type(k).__name__}")
        if k not in specs and k not in sections:
            near = difflib.get_close_matches(k, list(specs), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else " (see `ppsim params`)"
            raise InputError(f"grid {k}: unknown parameter{hint}")
        if isinstance(vs, (str, bytes, Mapping)) or not isinstance(vs, Iterable):
            raise InputError(f"grid {k}: expected a list of values, got {strict_json.type_name(vs) if not isinstance(vs, bytes) else 'bytes'}")
        vs = list(vs)
        if not vs:
            raise InputError(f"grid {k}: expected at least one value, got an empty list")
        for i, v in enumerate(vs):
            if hasattr(v, "item") and not isinstance(v, (list, dict)):
                v = vs[i] = v.item()  # numpy scalars (np.linspace) as plain Python numbers
            strict_json.check_data(v, f"grid {k}", f"$.{k}")
        for i, v in enumerate(vs):
            if any(_same(v, w) for w in vs[:i]):
                raise InputError(f"grid {k}: value {json.dumps(v)[:60]} given twice")
        keys.append(k)
        values.append(vs)
    if not keys:
        raise InputError("grid: expected at least one parameter to sweep, got an empty grid")
    return keys, values


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def check_seeds(seeds: Any) -> list[int | None]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise InputError(f"seeds: expected a list of integers, got {type(seeds).__name__}")
    out = list(seeds)
    if not out:
        raise InputError("seeds: expected at least one seed, got an empty list")
    for i, s in enumerate(out):
        if s is not None:
            if hasattr(s, "item") and not isinstance(s, bool):
                s = out[i] = s.item()
            check_seed(s, "seeds")
        if s in out[:i]:
            raise InputError(f"seeds: {s} given twice")
    return out


def check_workers(workers: Any) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        got = repr(workers)[:40] if isinstance(workers, (int, float, str)) else type(workers).__name__
        raise InputError(f"workers: expected an integer from 1 to {MAX_WORKERS}, got {got}")
    return workers


def check_stats(stats: Any) -> list[str]:
    if isinstance(stats, (str, bytes)) or not isinstance(stats, Iterable):
        raise InputError(f"stats: expected a list of stat names, got {type(stats).__name__}")
    out = list(stats)
    for s in out:
        if not isinstance(s, str) or not s:
            raise InputError(f"stats: expected stat names such as page_pool.recycle_ratio, got {s!r:.60}")
    if len(set(out)) != len(out):
        dup = next(s for s in out if out.count(s) > 1)
        raise InputError(f"stats: {dup} given twice")
    return out


def prepare_cache(cache: Any, label: str = "cache") -> Path | None:
    """The cache directory, created and checked writable; None for no cache."""
    if cache is None:
        return None
    if not isinstance(cache, (str, os.PathLike)) or not os.fspath(cache):
        raise InputError(f"{label}: expected a directory path, got {cache!r:.60}")
    d = Path(cache)
    _writable_dir(d, label)
    return d


def _writable_dir(d: Path, label: str) -> None:
    if d.exists() and not d.is_dir():
        raise InputError(f"{label} {d}: not a directory")
    try:
        d.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as e:
        raise InputError(f"{label} {d}: cannot create directory: {getattr(e, 'strerror', None) or e}") from None
    if not d.is_dir():
        raise InputError(f"{label} {d}: not a directory")
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise InputError(f"{label} {d}: not writable: {e.strerror}") from None


# ---------------------------------------------------------------------------------------------
# Running points. These functions run in worker processes (local or Dask) as well as here.

def run_point(text: str, source: str, seed: int | None, wanted: tuple | None) -> dict:
    """One simulation: {"seed", "ok", "stats": {name: value}, "units": {name: unit}}; only the
    `wanted` stats (all when None). InputError for a scenario the core refuses."""
    c = core()
    try:
        out = c.run(text, source, b"", seed, [], "")
    except c.ScenarioError as e:
        raise InputError(str(e)) from None
    raw = json.loads(out)
    st = raw["stats"]
    names = st.keys() if wanted is None else [n for n in wanted if n in st]
    return {"seed": int(raw["seed"]), "ok": bool(raw["invariants"]["ok"]),
            "stats": {n: st[n]["value"] for n in names}, "units": {n: st[n]["unit"] for n in names},
            "limit": (raw.get("run_limit") or {}).get("limit")}


def run_chunk(items: list, source: str, wanted: tuple | None) -> list:
    """[(index, result)] for [(index, scenario text, seed)]."""
    return [(i, run_point(text, source, seed, wanted)) for i, text, seed in items]


# ---------------------------------------------------------------------------------------------
# The cache: one JSON file per point under DIR/<first two hex digits>/<key>.json, written to a
# temporary file in the same directory and renamed, so a point is either whole or absent.

def cache_path(d: Path, key: str) -> Path:
    return d / key[:2] / f"{key}.json"


def cache_read(d: Path, key: str) -> dict | None:
    try:
        data = json.loads(cache_path(d, key).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("result"), dict):
        return None  # not ours, or from another layout: compute the point again
    return data["result"]


def cache_write(d: Path, key: str, result: dict, meta: dict) -> None:
    p = cache_path(d, key)
    try:
        p.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{key[:12]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"key": key, **meta, "result": result}, f, sort_keys=True, separators=(",", ":"))
            os.replace(tmp, p)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as e:
        raise InputError(f"cache {d}: cannot write {p.name}: {e.strerror}") from None


# ---------------------------------------------------------------------------------------------

def sweep(scenario, grid: Mapping[str, Iterable[Any]], *, seeds: Iterable[int] = (None,), stats: Iterable[str] = (),
          workers: int = 1, cache: str | os.PathLike | None = None, progress: bool = False,
          dask: Any = None, info: SweepInfo | None = None):
    """Run the cartesian product of `grid` (dotted path → values) × `seeds` and return a pandas
    DataFrame with one row per run, in grid order × seeds: the swept values, `seed`, `ok`, and the
    requested stats (every stat when `stats` is empty). `df.attrs["units"]` maps columns to units.

    workers: local processes (1 runs here). dask: a scheduler address ("tcp://host:8786") or a
    dask.distributed Client; the points run there instead. cache: a directory; finished points
    are stored there under a hash of (scenario after overrides, seed, ppsim version and build)
    and read back by later sweeps, so an interrupted sweep resumes where it stopped. progress:
    a tqdm bar on stderr. `info` (a SweepInfo) is filled with counts (computed, cached).
    Raises InputError on bad input, naming the argument."""
    import pandas as pd

    base, source = load_scenario(scenario)
    keys, values = check_grid(grid)
    seed_list = check_seeds(seeds)
    wanted = check_stats(stats)
    workers = check_workers(workers)
    cache_dir = prepare_cache(cache)
    if dask is not None and not isinstance(dask, str) and not hasattr(dask, "submit"):
        raise InputError(f"dask: expected a scheduler address such as tcp://127.0.0.1:8786, got {type(dask).__name__}")
    if isinstance(dask, str) and not dask.strip():
        raise InputError("dask: expected a scheduler address such as tcp://127.0.0.1:8786, got an empty string")
    source = one_line(source)
    c = core()
    version = str(c.__version__)

    # Every point's scenario, made and checked here: a bad value fails before anything runs.
    points: list[Point] = []
    for combo in itertools.product(*values):
        data = copy.deepcopy(base)
        apply_overrides(data, dict(zip(keys, combo)), "grid")
        text = canonical(data)
        for s in seed_list:
            points.append(Point(len(points), combo, s, text))
    _check_values(keys, values, base, source)
    if wanted:
        _check_stat_names(wanted, points[0].text, source)
    digest = _core_digest() if cache_dir is not None else ""
    for p in points:
        p.key = point_key(p.text, p.seed, version, digest) if cache_dir is not None else ""

    results: list[dict | None] = [None] * len(points)
    if cache_dir is not None:
        for p in points:
            results[p.index] = cache_read(cache_dir, p.key)
    todo = [p for p in points if results[p.index] is None]
    n_cached = len(points) - len(todo)
    # With a cache, keep every stat of a point so that a later sweep asking for other stats
    # reuses it; without, carry only what the frame needs.
    want = None if (cache_dir is not None or not wanted) else tuple(wanted)
    lanes = workers if dask is None else max(workers, 2)
    # ~16 tasks per lane: the last tasks to finish leave the other lanes idle for at most a small chunk
    chunk = max(1, min(MAX_CHUNK, math.ceil(len(todo) / (lanes * 16)))) if todo else 1
    chunks = [[(p.index, p.text, p.seed) for p in todo[i:i + chunk]] for i in range(0, len(todo), chunk)]
    meta = {"ppsim_version": version}

    bar = _progress(progress, len(points), n_cached)

    def done(batch: list) -> None:
        for i, r in batch:
            results[i] = r
            if cache_dir is not None:
                cache_write(cache_dir, points[i].key, r, {**meta, "seed": points[i].seed})
        bar.update(len(batch))

    try:
        if not chunks:
            pass
        elif dask is not None:
            _run_dask(dask, chunks, source, want, done)
        elif workers == 1:
            for ch in chunks:
                done(run_chunk(ch, source, want))
        else:
            _run_local(workers, chunks, source, want, done)
    finally:
        bar.close()

    frame = _frame(pd, keys, points, results, wanted, source)
    if info is not None:
        info.points, info.computed, info.cached = len(points), len(todo), n_cached
        info.workers, info.dask, info.version, info.chunk = workers, (dask if isinstance(dask, str) else
                                                                      (None if dask is None else "client")), version, chunk
        info.units = dict(frame.attrs["units"])
    return frame


def _check_values(keys: list, values: list, base: dict, source: str) -> None:
    """Each grid value alone on the base scenario, through the core's own reader (no run): a value
    of the wrong type, unit or range is reported naming the grid key before any point runs.
    Combinations the core refuses (dma_sync without dma_map) are reported when their point runs."""
    c = core()
    for k, vs in zip(keys, values):
        for v in vs:
            data = copy.deepcopy(base)
            apply_overrides(data, {k: v}, "grid")
            try:
                c.stats(canonical(data), source)
            except c.ScenarioError as e:
                raise InputError(f"grid {k}={json.dumps(v)[:60]}: {e}") from None


def _check_stat_names(wanted: list, text: str, source: str) -> None:
    c = core()
    try:
        known = {s["path"] for s in json.loads(c.stats(text, source))}
    except c.ScenarioError as e:
        raise InputError(str(e)) from None
    for s in wanted:
        if s not in known:
            near = difflib.get_close_matches(s, sorted(known), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else " (see `ppsim stats SCENARIO`)"
            raise InputError(f"stats: {s!r:.60} is not a stat of this scenario's runs{hint}")


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(on: bool, total: int, initial: int):
    if not on:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        print("ppsim sweep: tqdm is not installed (Debian: python3-tqdm): no progress bar", file=sys.stderr)
        return _NoBar()
    return tqdm(total=total, initial=initial, unit="pt", file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
                desc="sweep")


def _run_local(workers: int, chunks: list, source: str, want, done) -> None:
    """Chunks on `workers` fresh processes (forkserver, or spawn where that is missing: never plain
    fork, since this process may hold SystemC state and threads)."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from concurrent.futures.process import BrokenProcessPool

    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ex = ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=mp.get_context(method))
    try:
        pending = {ex.submit(run_chunk, ch, source, want) for ch in chunks}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                try:
                    batch = f.result()
                except BrokenProcessPool:
                    raise EnvironmentProblem("sweep: a worker process died (killed, out of memory, or a crash in "
                                             "the core); points finished so far are in the cache, if one was given") from None
                done(batch)
    except BaseException:
        ex.shutdown(wait=False, cancel_futures=True)
        raise
    ex.shutdown(wait=True)


def _run_dask(dask: Any, chunks: list, source: str, want, done) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InputError("dask: dask.distributed is not installed (Debian: python3-distributed)") from None
    own = isinstance(dask, str)
    if own:
        try:
            client = Client(dask, timeout=DASK_CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as e:
            raise InputError(f"dask {dask}: cannot connect to the Dask scheduler within "
                             f"{DASK_CONNECT_TIMEOUT_S} s: {one_line(str(e))[:200] or type(e).__name__}") from None
    else:
        client = dask
    try:
        futures = [client.submit(run_chunk, ch, source, want, pure=False) for ch in chunks]
        with client.as_current():  # as_completed finds the client here, not in global state
            for f in as_completed(futures):
                try:
                    batch = f.result()
                except (InputError, KeyboardInterrupt):
                    raise
                except Exception as e:  # the cluster's, not the scenario's: a worker without ppsim, a lost worker
                    raise EnvironmentProblem(f"dask {dask if own else 'client'}: a task failed: "
                                             f"{type(e).__name__}: {one_line(str(e))[:300]}") from None
                done(batch)
    finally:
        if own:
            client.close()


def _frame(pd, keys: list, points: list, results: list, wanted: list, source: str):
    """The DataFrame: rows in point order, columns grid keys, seed, ok, then stats."""
    units: dict[str, str] = {}
    for r in results:
        for n, u in r["units"].items():
            units.setdefault(n, u)
    names = wanted or sorted(units)
    for p, r in zip(points, results):
        missing = [n for n in names if n not in r["stats"]]
        if missing and wanted:
            label = ", ".join(f"{k}={json.dumps(v)[:40]}" for k, v in zip(keys, p.values))
            raise InputError(f"stats: {missing[0]!r:.60} is not a stat of the run at {label} seed {r['seed']}")
    rows = []
    for p, r in zip(points, results):
        row = [json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v for v in p.values]
        row += [r["seed"], r["ok"]]
        st = r["stats"]
        row += [st.get(n, math.nan) for n in names]
        rows.append(row)
    df = pd.DataFrame(rows, columns=keys + ["seed", "ok"] + names)
    specs = param_specs()
    col_units = {k: specs[k]["unit"] if k in specs else "" for k in keys}
    col_units.update({"seed": "", "ok": ""})
    col_units.update({n: units.get(n, "") for n in names})
    df.attrs["units"] = col_units
    return df
