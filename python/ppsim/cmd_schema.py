"""`ppsim schema [--out FILE]`: the JSON Schema (draft 2020-12) of scenario files."""
from __future__ import annotations

import sys
from pathlib import Path

from ppsim.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("schema", help="print the JSON Schema of scenario files (from the parameter registry)")
    p.add_argument("--out", default=None, metavar="FILE", help="write it to FILE instead of stdout")
    p.set_defaults(func=run)


def run(args) -> int:
    from ppsim.schema import schema_text

    text = schema_text()
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    try:
        out.write_text(text)
    except (OSError, ValueError) as e:
        raise InputError(f"--out {out}: cannot write the schema: {getattr(e, 'strerror', None) or e}") from None
    print(f"wrote {out}")
    return 0
