"""`ppsim validate DIR...`: replay kernel captures in the simulator and compare.

Prints a table (kernel median and range across repeats, ppsim, error, limit), writes it as JSON
and a plot of holds against packets, and exits 1 when anything is outside tolerance.

With `--seeds 1,11,21,31` it validates once per seed and prints, per group and per set, the gated
checks passed at each seed and over all of them (seeds.json): a model can pass at one seed by the
luck of its tick phases, and the sums over seeds show how much of a pass that is."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ppsim.cli import EXIT_LIMIT
from ppsim.cmd_run import positive_arg, seed_arg
from ppsim.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("validate", help="replay kernel captures (traces/*) and compare with the kernel")
    p.add_argument("dirs", nargs="+", help="capture directories (each with trace.txt and meta.json)")
    p.add_argument("--out", default="runs/validate", help="directory for validation.json, the plot and simulated traces")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=seed_arg, default=None, help="seed of the simulated runs (0 to 2^63-1)")
    seeds.add_argument("--seeds", type=seeds_arg, default=None, metavar="S1,S2,...",
                       help="validate once per seed and report the gated checks passed per group, set and seed "
                            "(seeds.json); exit 1 when a check fails at any seed that is not a known deviation")
    p.add_argument("--max-events", type=positive_arg(int, "an integer"), default=None, metavar="N",
                   help="stop each replay after N events (sim.max_events); exit code 4 if one stops")
    p.add_argument("--max-wall-s", type=positive_arg(float, "a number of seconds"), default=None, metavar="S",
                   help="stop each replay after S seconds of wall-clock time (sim.max_wall_s); exit code 4")
    p.set_defaults(func=run)


def seeds_arg(text: str) -> list[int]:
    """--seeds: distinct seeds separated by commas, at most 64."""
    import argparse

    parts = text.split(",")
    if not text.strip() or len(parts) > 64:
        raise argparse.ArgumentTypeError(f"expected 1 to 64 seeds separated by commas, got {text!r:.60}")
    out = [seed_arg(t) for t in parts]
    if len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"expected distinct seeds, got {text!r:.60}")
    return out


def write_validation(out: Path, res: dict) -> None:
    """validation.json: one validate() result, as both a single-seed and a --seeds run write it."""
    (out / "validation.json").write_text(json.dumps(res, indent=1, sort_keys=True, default=str) + "\n")


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return ",".join(str(x) for x in v)
    return str(v)


def plot(result: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = result["groups"]
    n = len(groups)
    cols = 3
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for ax, (name, g) in zip(axes.flat, sorted(groups.items())):
        exact = [k for k in g["kernel"] if k["curve_exact"]]
        for i, k in enumerate(exact):
            pts = k["holds_vs_packets"]
            ax.step([p for p, _ in pts] + [k["packets"]], [h for _, h in pts] + [pts[-1][1] if pts else 0],
                    where="post", color="tab:blue", alpha=0.6, label="kernel" if i == 0 else None)
        s = g["ppsim"]["holds_vs_packets"]
        ax.step([p for p, _ in s] + [g["ppsim"]["packets"]], [h for _, h in s] + [s[-1][1] if s else 0],
                where="post", color="tab:red", linestyle="--", label="ppsim")
        ax.set_title(name + ("" if exact else " (kernel napi lines thinned)"), fontsize=8)
        ax.set_xlabel("packets received", fontsize=7)
        ax.set_ylabel("pages held", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    path = out / "holds_vs_packets.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(args) -> int:
    from ppsim.replay import validate

    dirs = [Path(d) for d in args.dirs]
    for d in dirs:
        if not d.is_dir():
            raise InputError(f"{d}: not a directory")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as e:
        raise InputError(f"--out {out}: cannot create directory: {getattr(e, 'strerror', None) or e}") from None
    budgets = {k: v for k, v in (("sim.max_events", args.max_events), ("sim.max_wall_s", args.max_wall_s)) if v}
    if args.seeds:
        return run_seeds(dirs, out, args.seeds, budgets)
    res = validate(dirs, workdir=out / "sim", seed=args.seed, overrides=budgets)
    hdr = (f"{'group':34s} {'set':4s} {'metric':32s} {'kernel (median [range])':26s} {'ppsim (median [range])':>22s} {'error':>8s} "
           f"{'limit':>7s}")
    print(hdr)
    for r in res["rows"]:
        k = _fmt(r["kernel_median"])
        if r.get("kernel_range") and r["kernel_range"][0] != r["kernel_range"][1]:
            k += f" [{_fmt(r['kernel_range'][0])}..{_fmt(r['kernel_range'][1])}]"
        p = _fmt(r["ppsim"])
        if r.get("ppsim_range") and r["ppsim_range"][0] != r["ppsim_range"][1]:
            p += f" [{_fmt(r['ppsim_range'][0])}..{_fmt(r['ppsim_range'][1])}]"
        verdict = "ok" if r["ok"] else ("KNOWN" if "known" in r else "FAIL")
        if r["limit"] == "info":
            verdict = "info"
        elif r["metric"] == "holds_vs_packets.max_gap" and not r["ok"]:
            verdict = f"{verdict} (at packet {r.get('at_packets')})"
        if r.get("note"):
            verdict += f" ({r['note']})"
        print(f"{r['group']:34s} {r.get('set', '-')[:4]:4s} {r['metric']:32s} {k:26s} {p:>22s} "
              f"{_fmt(r['error']):>8s} {_fmt(r['limit']):>7s} {verdict}")
    try:
        write_validation(out, res)
        png = plot(res, out)
    except OSError as e:
        raise InputError(f"--out {out}: cannot write: {e.strerror}") from None
    gated = [r for r in res["rows"] if r["gated"]]
    bad = [r for r in gated if not r["ok"] and "known" not in r]
    known = [r for r in gated if not r["ok"] and "known" in r]
    for role in ("fit", "validation"):
        g = [r for r in gated if r.get("set") == role]
        if g:
            ng = len({r["group"] for r in g})
            nb = sum(1 for r in g if not r["ok"])
            nk = sum(1 for r in g if not r["ok"] and "known" in r)
            print(f"{role}: {len(g) - nb} of {len(g)} checks within tolerance over {ng} groups"
                  + (f" ({nk} known deviations, traces/known_deviations.json)" if nk else ""))
    within = sum(1 for r in gated if r["ok"])
    print(f"all: {within} of {len(gated)} checks within tolerance, {len(known)} known deviations, over "
          f"{len(res['groups'])} capture groups (plus {len(res['rows']) - len(gated)} reported figures); wrote "
          f"{out / 'validation.json'} and {png}")
    for lim in res["limits"]:
        print(f"ppsim validate: the replay of {lim['group']} stopped early: {lim['message']}", file=sys.stderr)
    if res["limits"]:
        return EXIT_LIMIT
    return 0 if not bad else 1


def seed_table(results: dict[int, dict]) -> dict:
    """Per group and per set, the gated checks passed at each seed ({seed: validate(...) result}):
    {"seeds", "groups": {name: {"set", "passed", "checks", "failing": {seed: [metric...]}}},
    "sets": {role: {"passed", "checks"}}, "unknown_failures"}. A check listed as a known deviation
    counts as failed when it fails; unknown_failures counts the failures that are not listed."""
    seeds = list(results)
    groups: dict[str, dict] = {}
    sets: dict[str, dict] = {}
    unknown = 0
    for i, seed in enumerate(seeds):
        for r in results[seed]["rows"]:
            if not r["gated"]:
                continue
            role = r.get("set", "validation")
            g = groups.setdefault(r["group"], {"set": role, "passed": [0] * len(seeds), "checks": [0] * len(seeds),
                                               "failing": {}})
            t = sets.setdefault(role, {"passed": [0] * len(seeds), "checks": [0] * len(seeds)})
            g["checks"][i] += 1
            t["checks"][i] += 1
            if r["ok"]:
                g["passed"][i] += 1
                t["passed"][i] += 1
            else:
                g["failing"].setdefault(str(seed), []).append(r["metric"])
                unknown += "known" not in r
    return {"seeds": seeds, "groups": dict(sorted(groups.items())), "sets": sets, "unknown_failures": unknown}


def run_seeds(dirs: list[Path], out: Path, seeds: list[int], budgets: dict) -> int:
    from ppsim.replay import validate

    results, limits = {}, []
    for i, seed in enumerate(seeds):
        # The first seed's replays are kept under --out/sim, as a single-seed run keeps them.
        results[seed] = validate(dirs, workdir=out / "sim" if i == 0 else None, seed=seed, overrides=budgets)
        limits += [dict(lim, seed=seed) for lim in results[seed]["limits"]]
    table = seed_table(results)
    cols = " ".join(f"{s:>9d}" for s in seeds)
    print(f"{'group':34s} {'set':10s} {cols} {'all seeds':>11s}")
    for name, g in table["groups"].items():
        cells = " ".join(f"{p:>4d} of {c:<2d}" for p, c in zip(g["passed"], g["checks"]))
        print(f"{name:34s} {g['set']:10s} {cells} {sum(g['passed']):>4d} of {sum(g['checks']):<4d}")
    for role, t in sorted(table["sets"].items()):
        per = ", ".join(str(p) for p in t["passed"])
        print(f"{role}: {per} of {t['checks'][0]} at seeds {', '.join(map(str, seeds))}; "
              f"{sum(t['passed'])} of {sum(t['checks'])} over the {len(seeds)} seeds")
    try:
        (out / "seeds.json").write_text(json.dumps(table, indent=1) + "\n")
        write_validation(out, results[seeds[0]])
    except OSError as e:
        raise InputError(f"--out {out}: cannot write: {e.strerror}") from None
    print(f"wrote {out / 'seeds.json'} (and {out / 'validation.json'} for seed {seeds[0]})")
    for lim in limits:
        print(f"ppsim validate: the replay of {lim['group']} (seed {lim['seed']}) stopped early: {lim['message']}",
              file=sys.stderr)
    if limits:
        return EXIT_LIMIT
    return 0 if not table["unknown_failures"] else 1
