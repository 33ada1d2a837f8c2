"""`ppsim report RESULTS --out DIR`: Markdown and HTML reports with plots from a run's
results.json, or the HTML report of a sweep directory (sweep.json). The generators live in
reports/report.py and reports/sweep_report.py."""
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
    p = sub.add_parser("report", help="write a Markdown and an HTML report with plots for a run (or a sweep)")
    p.add_argument("results", help="results.json, or the directory `ppsim run --out` or `ppsim sweep --out` wrote")
    p.add_argument("--out", required=True, help="directory for report.md, report.html and the plots")
    p.set_defaults(func=run)


def run(args) -> int:
    src = Path(args.results)
    if src.is_dir() and (src / "sweep.json").is_file() and not (src / "results.json").exists():
        path = load_module("sweep_report").generate(src, Path(args.out))
        print(f"wrote {path}")
        return 0
    f = src / "results.json" if src.is_dir() else src
    if not f.is_file():
        raise InputError(f"{f}: no results.json here (run `ppsim run SCENARIO --out DIR` first)")
    path = load_generator().generate(f, Path(args.out))
    print(f"wrote {path} and {path.with_name('report.html')}")
    return 0
