#!/usr/bin/python3
"""Sweep benchmarks (`make bench` runs this after ppsim_bench):

  throughput  points per second with workers=1 and workers=N (N = nproc) on the same points in
              the same run, end to end (worker start-up included), best of 3 alternating runs
              each; target ratio >= 0.85 x N.
  10k         a 10,000-point sweep of ~100k-packet runs (scenarios/xdp_drop.json at 5 Mpps for
              20 ms simulated, checker off, time series sampled every 1 ms instead of 10 us since
              the sweep keeps only two stats), timed end to end on all cores; target < 120 s.
              The packets per run are read back from the stats (nic0.rxq0.rx_packets).

Prints a table and a JSON object (also written to --json FILE). The machine's load average is
recorded before and after, since a shared machine skews both.

    PYTHONPATH=python PPSIM_BUILD=build /usr/bin/python3 bench/bench_sweep.py [--quick] [--workers N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

import ppsim  # noqa: E402
from ppsim.sweeps import SweepInfo  # noqa: E402


def base_10k() -> dict:
    data = json.loads((REPO / "scenarios" / "xdp_drop.json").read_text())
    data["sim"].update({"duration_us": 20000, "drain_us": 100, "checker": "off", "sample_interval_us": 1000})
    return data


def grid_10k(n: int) -> dict:
    """n = a * b distinct points: pool size x NAPI per-packet cost."""
    a = 100 if n >= 100 else n
    b = max(1, n // a)
    return {"page_pool.pool_size_pages": [256 + 16 * i for i in range(a)],
            "napi.per_packet_ns": [20 + 0.5 * j for j in range(b)]}


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_throughput(workers: int, points: int, repeats: int) -> dict:
    """The same points on 1 and on N workers, alternating, `repeats` times each; xdp_drop with 40k
    packets per point, checker on. The speedup is from the best time of each (the least
    disturbed by other work on a shared machine); the medians are reported too."""
    data = json.loads((REPO / "scenarios" / "xdp_drop.json").read_text())
    data["sim"].update({"duration_us": 8000, "drain_us": 100})
    grid = {"page_pool.pool_size_pages": [256 + 16 * i for i in range(points)]}
    stats = ["nic0.rxq0.rx_packets", "page_pool.recycle_ratio"]
    t1s, tns = [], []
    for _ in range(repeats):
        df1, t1 = timed(lambda: ppsim.sweep(data, grid, stats=stats, workers=1))
        dfn, tn = timed(lambda: ppsim.sweep(data, grid, stats=stats, workers=workers))
        assert df1.equals(dfn), "workers=1 and workers=N differ"
        t1s.append(t1)
        tns.append(tn)
    r1, rn = points / min(t1s), points / min(tns)
    med = points / sorted(tns)[len(tns) // 2] / (points / sorted(t1s)[len(t1s) // 2])
    return {"points": points, "packets_per_point": int(df1["nic0.rxq0.rx_packets"].median()),
            "workers": workers, "repeats": repeats, "wall_s_1": [round(t, 3) for t in t1s],
            "wall_s_n": [round(t, 3) for t in tns], "points_per_s_1": round(r1, 2), "points_per_s_n": round(rn, 2),
            "speedup": round(rn / r1, 3), "speedup_of_medians": round(med, 3),
            "target_speedup": round(0.85 * workers, 3), "met": rn / r1 >= 0.85 * workers}


def bench_10k(workers: int, points: int) -> dict:
    data = base_10k()
    grid = grid_10k(points)
    n = len(grid["page_pool.pool_size_pages"]) * len(grid["napi.per_packet_ns"])
    info = SweepInfo()
    df, wall = timed(lambda: ppsim.sweep(data, grid, stats=["nic0.rxq0.rx_packets", "page_pool.recycle_ratio"],
                                         workers=workers, info=info))
    pk = df["nic0.rxq0.rx_packets"]
    # where a point's time goes, on this process: one point with ~no traffic (set-up, results) and
    # one with the full 100k packets
    idle = dict(data, sim=dict(data["sim"], duration_us=1), traffic=dict(data["traffic"], start_us=0))
    _, t_setup = timed(lambda: [ppsim.run(idle) for _ in range(20)])
    _, t_full = timed(lambda: [ppsim.run(data) for _ in range(5)])
    return {"points": n, "workers": workers, "chunk": info.chunk, "wall_s": round(wall, 2),
            "points_per_s": round(n / wall, 1), "packets_per_point_min": int(pk.min()),
            "packets_per_point_median": int(pk.median()), "packets_total": int(pk.sum()),
            "simulated_packets_per_wall_s": round(float(pk.sum()) / wall),
            "per_point_setup_ms": round(1000 * t_setup / 20, 2), "per_point_full_ms": round(1000 * t_full / 5, 2),
            "checker": "off", "sample_interval_us": 1000, "target_s": 120, "met": wall < 120}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--throughput-points", type=int, default=160)
    ap.add_argument("--repeats", type=int, default=3, help="throughput runs of each kind (best of them counts)")
    ap.add_argument("--points", type=int, default=10000, help="points of the big sweep (default 10000)")
    ap.add_argument("--quick", action="store_true", help="24 throughput points and a 1000-point big sweep")
    ap.add_argument("--skip-10k", action="store_true")
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args()
    if a.quick:
        a.throughput_points, a.points, a.repeats = 48, 1000, 1
    out = {"ppsim": ppsim.__version__, "nproc": os.cpu_count(), "load_before": [round(x, 2) for x in os.getloadavg()]}
    out["throughput"] = bench_throughput(a.workers, a.throughput_points, a.repeats)
    if not a.skip_10k:
        out["sweep_10k"] = bench_10k(a.workers, a.points)
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]

    t = out["throughput"]
    rows = [(f"throughput: {t['points']} points of {t['packets_per_point']} packets, best of {t['repeats']}", ""),
            ("throughput: points/s, 1 worker", f"{t['points_per_s_1']}"),
            (f"throughput: points/s, {t['workers']} workers", f"{t['points_per_s_n']}"),
            ("throughput: speedup, best of each (target >= 0.85 x N)",
             f"{t['speedup']} (target {t['target_speedup']}: {'met' if t['met'] else 'NOT met'}; "
             f"of the medians {t['speedup_of_medians']})")]
    if "sweep_10k" in out:
        s = out["sweep_10k"]
        rows += [(f"{s['points']}-point sweep, {s['workers']} workers, checker off", f"{s['wall_s']} s "
                  f"({s['points_per_s']} points/s; target < 120 s: {'met' if s['met'] else 'NOT met'})"),
                 ("  packets per point (min / median)", f"{s['packets_per_point_min']} / {s['packets_per_point_median']}"),
                 ("  simulated packets per wall second", f"{s['simulated_packets_per_wall_s']:,}"),
                 ("  one point in this process: set-up only / full", f"{s['per_point_setup_ms']} ms / {s['per_point_full_ms']} ms")]
    rows.append(("load average before / after", f"{out['load_before']} / {out['load_after']}"))
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    text = json.dumps(out, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
