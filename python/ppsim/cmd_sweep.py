"""`ppsim sweep BASE.json --grid PATH=V1,V2 ... --out DIR`: a design-space sweep on local worker
processes or a Dask cluster; writes DIR/sweep.csv (or .parquet), DIR/sweep.json, plots and
DIR/report.html."""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from ppsim import strict_json
from ppsim.errors import InputError


def register(sub) -> None:
    from ppsim.cmd_run import seed_arg

    p = sub.add_parser("sweep", help="run a grid of parameter values x seeds in parallel; table, plots, report.html")
    p.add_argument("scenario", help="base scenario JSON file")
    p.add_argument("--grid", action="append", default=[], metavar="PATH=V1,V2,...", required=True,
                   help="a swept parameter and its values (each JSON when it parses, else a string; PATH=[...] takes a JSON array, for values with commas); repeat for more")
    p.add_argument("--seeds", default=None, metavar="S1,S2,...", help="seeds per grid point (default: the scenario's)")
    p.add_argument("--stats", default=None, metavar="A,B,...", help="stats to keep (default: every stat)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a parameter of the base scenario (as `ppsim run --set`)")
    p.add_argument("--workers", type=_workers_arg, default=1, metavar="N", help="local worker processes (default 1)")
    p.add_argument("--dask", default=None, metavar="ADDRESS", help="run on this Dask scheduler (tcp://host:8786)")
    p.add_argument("--cache", default=None, metavar="DIR", help="reuse and store finished points here")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv",
                   help="table format (parquet needs pyarrow; without it CSV is written and the reason printed)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    p.set_defaults(func=run, _seed_arg=seed_arg)


def _workers_arg(text: str) -> int:
    from ppsim.sweeps import MAX_WORKERS

    try:
        v = int(text.strip(), 10)
    except ValueError:
        v = None
    if v is None or not 1 <= v <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to {MAX_WORKERS}, got {text!r:.40}")
    return v


def parse_value(text: str, label: str):
    """A grid value: JSON when it parses (numbers, true/false, quoted strings), else the string."""
    try:
        return strict_json.loads(text, label)
    except strict_json.MalformedJson:
        return text


def parse_grid(items: list[str]) -> dict:
    grid: dict = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--grid {item[:60]}: expected PATH=V1,V2,...")
        k, vs = item.split("=", 1)
        k = k.strip()
        if not k:
            raise InputError(f"--grid {item[:60]}: expected PATH=V1,V2,... with a parameter path before '='")
        if k in grid:
            raise InputError(f"--grid {k}: given twice")
        if vs.lstrip().startswith("["):
            # A JSON array, for values that contain commas themselves (CPU lists, say).
            try:
                values = strict_json.loads(vs, f"--grid {k}")
            except strict_json.MalformedJson as e:
                raise InputError(f"--grid {k}: expected a JSON array of values after '=': {e}") from None
            if not isinstance(values, list) or not values:
                raise InputError(f"--grid {k}: expected a non-empty JSON array of values, got {vs[:60]!r}")
            if any(isinstance(v, (list, dict)) or v is None for v in values):
                raise InputError(f"--grid {k}: expected numbers, strings or true/false in the array, got {vs[:60]!r}")
            grid[k] = values
            continue
        parts = vs.split(",")
        if any(not v.strip() for v in parts):
            raise InputError(f"--grid {k}: expected comma-separated values, got an empty value in {vs[:60]!r}")
        grid[k] = [parse_value(v.strip(), f"--grid {k}") for v in parts]
    return grid


def parse_seeds(text: str | None, seed_arg) -> list:
    if text is None:
        return [None]
    out = []
    for part in text.split(","):
        try:
            out.append(seed_arg(part))
        except argparse.ArgumentTypeError as e:
            raise InputError(f"--seeds: {e}") from None
    return out


def parse_stats(text: str | None) -> list[str]:
    if text is None:
        return []
    out = [s.strip() for s in text.split(",")]
    if any(not s for s in out):
        raise InputError(f"--stats: expected comma-separated stat names, got {text[:60]!r}")
    return out


def run(args) -> int:
    import ppsim
    from ppsim.cmd_report import load_module
    from ppsim.cmd_run import parse_overrides
    from ppsim.sweeps import SweepInfo, _writable_dir, sweep

    grid = parse_grid(args.grid)
    seeds = parse_seeds(args.seeds, args._seed_arg)
    stats = parse_stats(args.stats)
    data, name = ppsim.load_scenario(args.scenario)
    ppsim.scenario.apply_overrides(data, parse_overrides(args.overrides), "--set")
    out = Path(args.out)
    _writable_dir(out, "--out")
    fmt = args.format
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            print("ppsim sweep: pyarrow is not installed (Debian 12 has no package for it): writing CSV instead "
                  "of Parquet", file=sys.stderr)
            fmt = "csv"
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    info = SweepInfo()
    t0 = time.perf_counter()
    df = sweep(data if args.overrides else args.scenario, grid, seeds=seeds, stats=stats, workers=args.workers,
               cache=args.cache, progress=progress, dask=args.dask, info=info)
    wall = time.perf_counter() - t0
    table = out / f"sweep.{fmt}"
    try:
        if fmt == "parquet":
            df.to_parquet(table, index=False)
        else:
            df.to_csv(table, index=False)
        meta = {
            "scenario": name, "set": args.overrides, "grid": grid, "seeds": seeds, "stats": stats,
            "points": info.points, "computed": info.computed, "cached": info.cached,
            "workers": info.workers, "dask": info.dask, "cache": args.cache, "chunk": info.chunk,
            "table": table.name, "format": fmt, "units": df.attrs["units"], "wall_s": round(wall, 3),
            "versions": _versions(info.version, args.dask is not None),
        }
        (out / "sweep.json").write_text(json.dumps(meta, indent=1) + "\n")
    except OSError as e:
        raise InputError(f"--out {out}: cannot write {table.name} or sweep.json: {e.strerror}") from None
    report = load_module("sweep_report").generate(out)
    n_fail = int((~df["ok"]).sum())
    print(f"{info.points} points ({info.computed} run, {info.cached} from the cache) in {wall:.2f} s"
          f" on {'Dask ' + args.dask if args.dask else str(info.workers) + ' worker(s)'};"
          f" {n_fail} with invariant violations")
    print(f"wrote {table}, {out / 'sweep.json'} and {report}")
    return 0 if n_fail == 0 else 1


def _versions(ppsim_version: str, with_dask: bool) -> dict:
    import numpy
    import pandas

    v = {"ppsim": ppsim_version, "python": platform.python_version(), "pandas": pandas.__version__,
         "numpy": numpy.__version__}
    if with_dask:
        import distributed

        v["distributed"] = distributed.__version__
    return v
