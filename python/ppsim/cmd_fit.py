"""`ppsim fit DIR...`: fit the replay's costs (traces/replay_defaults.json) on the fit set.

Reads only the captures whose group the fixed split marks "fit" (traces/README.md); prints each
fitted value, the kernel's and the model's figure per capture after the fit, and with --write
updates the defaults file. See ppsim/fit.py for what is fitted to what. One run is one step:
each cost is fitted with the others at the values the defaults file holds when it starts."""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("fit", help="fit traces/replay_defaults.json on the fit set of the captures",
                       description="Fits the replay's costs on the fit set. One run is one step: each cost is "
                                   "fitted with the others at the values traces/replay_defaults.json holds when "
                                   "it starts, so a second run from its own output can move them on.")
    p.add_argument("dirs", nargs="+", help="capture directories (each with trace.txt and meta.json)")
    p.add_argument("--write", action="store_true", help="write the fitted values to traces/replay_defaults.json")
    p.set_defaults(func=run)


def run(args) -> int:
    from ppsim import fit

    dirs = [Path(d) for d in args.dirs]
    fit.check_dirs(dirs)
    res = fit.fit(dirs)
    print(f"fit set: {len(res['used'])} groups ({', '.join(res['used']) or 'none'})")
    print(f"not read (validation): {len(res['left_out'])} groups")
    for sec, v in sorted(res["values"].items()):
        for k, x in sorted(v.items()):
            print(f"  {sec}.{k} = {x:g}" if isinstance(x, (int, float)) else f"  {sec}.{k} = {x}")
    if res["rows"]:
        print(f"{'capture':44s} {'figure':22s} {'kernel':>10s} {'model':>10s} {'error':>7s}")
        for r in res["rows"]:
            if r["model"] is None:  # the model's replay had no such turn
                print(f"{r['capture']:44s} {r['figure']:22s} {r['kernel']:>10g} {'-':>10s} {'':>7s}")
                continue
            err = (r["model"] - r["kernel"]) / r["kernel"] if r["kernel"] else 0.0
            print(f"{r['capture']:44s} {r['figure']:22s} {r['kernel']:>10g} {r['model']:>10g} {err:>+7.1%}")
    for n in res["notes"]:
        print(f"note: {n}")
    if args.write:
        fit.write_defaults(res)
        print(f"wrote {fit.DEFAULTS_FILE}")
    return 0
