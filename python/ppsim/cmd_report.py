"""`ppsim report RESULTS --out DIR`: Markdown report with plots from a run's results.json.
The generator itself lives in reports/report.py."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from ppsim._native import REPO
from ppsim.errors import InputError


def load_module(name: str):
    """A module of the report generator in reports/ (not a package: loaded by path)."""
    spec = importlib.util.spec_from_file_location(f"ppsim_reports_{name}", REPO / "reports" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_generator():
    return load_module("report")


def register(sub) -> None:
    p = sub.add_parser("report", help="write a Markdown report with plots for a run")
    p.add_argument("results", help="results.json, or the directory `ppsim run --out` wrote")
    p.add_argument("--out", required=True, help="directory for report.md and its plots")
    p.set_defaults(func=run)


def run(args) -> int:
    src = Path(args.results)
    f = src / "results.json" if src.is_dir() else src
    if not f.is_file():
        raise InputError(f"{f}: no results.json here (run `ppsim run SCENARIO --out DIR` first)")
    path = load_generator().generate(f, Path(args.out))
    print(f"wrote {path}")
    return 0
