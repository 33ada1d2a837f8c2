"""`ppsim params`: every scenario parameter with its type, unit, default and doc."""
from __future__ import annotations

import json

from ppsim._native import core


def register(sub) -> None:
    p = sub.add_parser("params", help="list every scenario parameter (type, unit, default, doc)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("prefix", nargs="?", default="", help="only parameters whose path starts with this")
    p.set_defaults(func=run)


def run(args) -> int:
    specs = [s for s in json.loads(core().params()) if s["path"].startswith(args.prefix)]
    if args.json:
        print(json.dumps(specs, indent=1))
        return 0
    for s in specs:
        rng = ""
        if "choices" in s:
            rng = " {" + "|".join(s["choices"]) + "}"
        elif "min" in s or "max" in s:
            rng = f" [{s.get('min', '')}..{s.get('max', '')}]"
        unit = f" {s['unit']}" if s["unit"] else ""
        print(f"{s['path']}  ({s['type']}{unit}{rng}, default {json.dumps(s['default'])})")
        print(f"    {s['doc']}" + (f"  [source: {s['source']}]" if s.get("source") else ""))
    return 0
