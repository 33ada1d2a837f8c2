"""`ppsim stats [SCENARIO]`: every statistic a run of the scenario reports, with unit and doc."""
from __future__ import annotations

import json

from ppsim import strict_json
from ppsim._native import core
from ppsim.errors import InputError, one_line


def register(sub) -> None:
    p = sub.add_parser("stats", help="list the stats a scenario's run reports (name, kind, unit, doc)")
    p.add_argument("scenario", nargs="?", default=None, help="scenario JSON file (default: all defaults)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ppsim.scenario import load_scenario

    data, name = load_scenario(args.scenario) if args.scenario else ({}, "<defaults>")
    c = core()
    try:
        specs = json.loads(c.stats(strict_json.dumps(data), one_line(name)))
    except c.ScenarioError as e:
        raise InputError(str(e)) from None
    if args.json:
        print(json.dumps(specs, indent=1))
        return 0
    for s in specs:
        print(f"{s['path']}  ({s['kind']}, {s['unit'] or '-'})  {s['doc']}")
    return 0
