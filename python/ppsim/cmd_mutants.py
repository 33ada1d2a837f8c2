"""`ppsim mutants`: run every deliberately wrong model variant and check the harness catches it.

The correct model must raise nothing over the scenarios; each mutant must raise at least one
violation in at least one of them. One line per mutant, then `caught N of M`; exit code 1 if a
mutant escapes or the correct model raises a false alarm."""
from __future__ import annotations

import glob
from pathlib import Path

from ppsim._native import REPO, core
from ppsim.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("mutants", help="check that the invariant checker catches every injected bug")
    p.add_argument("names", nargs="*", help="mutants to run (default: all)")
    p.add_argument("--scenarios", nargs="*", default=None, help="scenario files (default: scenarios/*.json)")
    p.add_argument("--list", action="store_true", help="list the mutants and the bug class each one re-creates")
    p.set_defaults(func=run)


def run(args) -> int:
    import ppsim

    known = dict(core().mutants())
    if args.list:
        for name, bug in known.items():
            print(f"{name}: {bug}")
        return 0
    names = args.names or list(known)
    for n in names:
        if n not in known:
            raise InputError(f"unknown mutant {n!r} (known: {', '.join(known)})")
    files = args.scenarios if args.scenarios is not None else sorted(glob.glob(str(REPO / "scenarios" / "*.json")))
    if not files:
        raise InputError("no scenarios to run")
    scenarios = [ppsim.load_scenario(f) for f in files]

    false_alarms = 0
    for data, name in scenarios:
        r = ppsim.run(data, checker="collect")
        if not r.ok:
            false_alarms += 1
            v = r.violations[0]
            print(f"correct model: FALSE ALARM in {Path(name).name}: {v['invariant']}: {v['detail']}")
    caught = 0
    for n in names:
        hit = None
        for data, name in scenarios:
            r = ppsim.run(data, mutants=[n], checker="stop")
            if not r.ok:
                hit = (Path(name).name, r.violations[0])
                break
        if hit:
            caught += 1
            v = hit[1]
            print(f"{n}: caught by {v['invariant']} in {hit[0]} at {v['time_ps'] / 1e6:.3f} us ({v['subject']}: {v['detail']})")
        else:
            print(f"{n}: ESCAPED (no scenario raised a violation)")
    print(f"caught {caught} of {len(names)}" + (f"; {false_alarms} false alarm(s) on the correct model" if false_alarms else ""))
    return 0 if caught == len(names) and false_alarms == 0 else 1
