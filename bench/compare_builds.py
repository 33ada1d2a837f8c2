#!/usr/bin/python3
"""Two builds of ppsim_bench in the same run: `make bench-compare BASE=<commit>` runs this.

A shared machine's speed drifts by tens of percent from hour to hour, so a rate is only
comparable with another measured beside it. This runs the base and the head benchmark binaries
alternately, `--runs` times each, and prints for every benchmark the median of each build and
their ratio (head / base). Rates are per CPU second (Google Benchmark's counters are per wall
second; they are scaled by real_time / cpu_time), so time the VM was descheduled does not count.

    /usr/bin/python3 bench/compare_builds.py BASE_BENCH HEAD_BENCH [--runs 5] [--filter NicRx]
        [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys


def run_once(exe: str, filt: str) -> dict[str, float]:
    """Benchmark name -> rate (items per CPU second) of one run of `exe`."""
    proc = subprocess.run([exe, f"--benchmark_filter={filt}", "--benchmark_format=json"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{exe} exited with {proc.returncode}: {proc.stderr.strip()[-300:]}")
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise RuntimeError(f"{exe}: its JSON output does not parse ({e})") from None
    rates = {}
    for b in doc.get("benchmarks", []):
        if b.get("error_occurred"):
            raise RuntimeError(f"{exe}: {b['name']}: {b.get('error_message', 'error')}")
        rate = b.get("pkts_per_s", b.get("items_per_second"))
        if rate is None or not b.get("cpu_time"):
            continue
        rates[b["name"]] = rate * b["real_time"] / b["cpu_time"]
    return rates


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", help="ppsim_bench of the base build")
    ap.add_argument("head", help="ppsim_bench of the build to compare")
    ap.add_argument("--runs", type=int, default=5, help="runs of each build, interleaved (default 5)")
    ap.add_argument("--filter", default="NicRx", help="Google Benchmark filter (default: the RX path)")
    ap.add_argument("--json", help="also write the medians and ratios here")
    a = ap.parse_args()
    for exe in (a.base, a.head):
        if not os.access(exe, os.X_OK):
            ap.error(f"{exe}: not an executable benchmark binary")
    if a.runs < 1:
        ap.error(f"--runs: expected at least 1, got {a.runs}")
    samples: dict[tuple[str, str], list[float]] = {}
    load_before = os.getloadavg()[0]
    try:
        for _ in range(a.runs):
            for tag, exe in (("base", a.base), ("head", a.head)):
                for name, rate in run_once(exe, a.filter).items():
                    samples.setdefault((name, tag), []).append(rate)
    except RuntimeError as e:
        print(f"compare_builds: {e}", file=sys.stderr)
        return 1
    rows = []
    for name in sorted({n for n, _ in samples}):
        if (name, "base") not in samples or (name, "head") not in samples:
            continue  # a benchmark only one build has
        base = statistics.median(samples[(name, "base")])
        head = statistics.median(samples[(name, "head")])
        rows.append({"benchmark": name, "base_per_s": base, "head_per_s": head, "ratio": head / base})
    if not rows:
        print(f"compare_builds: no benchmark matching {a.filter!r} ran in both builds", file=sys.stderr)
        return 1
    print(f"medians of {a.runs} interleaved runs per build, per CPU second; "
          f"load average {load_before:.2f} -> {os.getloadavg()[0]:.2f}")
    for r in rows:
        print(f"  {r['benchmark']:45s} base {r['base_per_s'] / 1e6:8.2f} M/s   "
              f"head {r['head_per_s'] / 1e6:8.2f} M/s   x{r['ratio']:.3f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": a.runs, "filter": a.filter, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
