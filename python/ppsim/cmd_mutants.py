"""`ppsim mutants`: run every deliberately wrong model variant and check the harness catches it.

Two families: design mutants (commit "ppsim") and history mutants, each undoing one real upstream
page_pool fix (docs/bug-history.md). Every mutant names the invariant expected to catch it and
the shipped scenario that reaches it. The correct model must raise nothing over the scenarios;
each mutant runs its own scenario first (then the others, until one raises a violation). One line
per mutant says which invariant caught it and whether that is the expected one; then
`caught N of M (K by the expected invariant)`. Exit code 1 if a mutant escapes, one is caught by
another invariant than expected, or the correct model raises a false alarm."""
from __future__ import annotations

import glob
from pathlib import Path

from ppsim._native import REPO, core
from ppsim.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("mutants", help="check that the invariant checker catches every injected bug")
    p.add_argument("names", nargs="*", help="mutants to run (default: all)")
    p.add_argument("--scenarios", nargs="*", default=None, help="scenario files (default: scenarios/*.json)")
    p.add_argument("--list", action="store_true",
                   help="list the mutants: id, upstream commit (or ppsim), expected invariant, scenario, bug class")
    p.set_defaults(func=run)


def mutant_table() -> list[dict]:
    return list(core().mutants())


def _print_list(table: list[dict]) -> None:
    w = max(len(m["name"]) for m in table)
    wi = max(len(m["invariant"]) for m in table)
    print(f"{'id':<{w}}  {'commit':<12}  {'invariant':<{wi}}  scenario")
    for m in table:
        print(f"{m['name']:<{w}}  {m['commit']:<12}  {m['invariant']:<{wi}}  {m['scenario']}")
        print(f"{'':<{w}}  {m['bug_class']}")


def _expected_hit(ppsim, data, name: str, expected: str, first: dict):
    """The mutant raised `first` in stop mode; does the expected invariant also fire in that run?"""
    if first["invariant"] == expected:
        return True
    r = ppsim.run(data, mutants=[name], checker="collect")
    return expected in r.raw["invariants"].get("by_invariant", {})


def run(args) -> int:
    import ppsim

    table = mutant_table()
    if args.list:
        _print_list(table)
        return 0
    known = {m["name"]: m for m in table}
    names = args.names or list(known)
    for n in names:
        if n not in known:
            raise InputError(f"unknown mutant {n!r} (known: {', '.join(known)})")
    files = args.scenarios if args.scenarios is not None else sorted(
        f for f in glob.glob(str(REPO / "scenarios" / "*.json")) if not f.endswith(".schema.json"))
    if not files:
        raise InputError("no scenarios to run")
    scenarios = [(ppsim.load_scenario(f), Path(f).name) for f in files]

    false_alarms = 0
    for (data, _), fname in scenarios:
        r = ppsim.run(data, checker="collect")
        if not r.ok:
            false_alarms += 1
            v = r.violations[0]
            print(f"correct model: FALSE ALARM in {fname}: {v['invariant']}: {v['detail']}")
    caught = as_expected = 0
    for n in names:
        info = known[n]
        # The mutant's own scenario first, then the rest in name order.
        order = sorted(scenarios, key=lambda s: s[1] != info["scenario"])
        hit = None
        for (data, _), fname in order:
            r = ppsim.run(data, mutants=[n], checker="stop")
            if not r.ok:
                v = r.violations[0]
                hit = (fname, v, _expected_hit(ppsim, data, n, info["invariant"], v))
                break
        if not hit:
            print(f"{n}: ESCAPED (no scenario raised a violation; expected {info['invariant']} in {info['scenario']})")
            continue
        caught += 1
        fname, v, expected = hit
        as_expected += expected
        how = "as expected" if v["invariant"] == info["invariant"] else \
            f"expected {info['invariant']} also raised" if expected else f"NOT BY THE EXPECTED {info['invariant']}"
        where = "" if fname == info["scenario"] else f" (not in its scenario {info['scenario']})"
        print(f"{n} [{info['commit']}]: caught by {v['invariant']} ({how}) in {fname}{where} at "
              f"{v['time_ps'] / 1e6:.3f} us ({v['subject']}: {v['detail']})")
    print(f"caught {caught} of {len(names)} ({as_expected} by the expected invariant)"
          + (f"; {false_alarms} false alarm(s) on the correct model" if false_alarms else ""))
    return 0 if caught == len(names) and as_expected == caught and false_alarms == 0 else 1
