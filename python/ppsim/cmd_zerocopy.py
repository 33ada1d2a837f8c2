"""`ppsim zerocopy --out DIR`: writable vs read-only vs zero-copy receive by packet size.

Runs scenarios/zerocopy_compare.json (or --base) once per frame size and mode and writes
zerocopy.csv, zerocopy.md (table, crossover) and zerocopy.png. --profile FILE takes the zero-copy
costs `ppsim calibrate` measured on a host instead of the defaults."""
from __future__ import annotations

import json
from pathlib import Path

from ppsim.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("zerocopy", help="compare writable, read-only and zero-copy receive by packet size")
    p.add_argument("--out", required=True, help="directory for zerocopy.md, zerocopy.png and zerocopy.csv")
    p.add_argument("--base", default=None, help="base scenario (default scenarios/zerocopy_compare.json)")
    p.add_argument("--sizes", default=None, help="comma-separated frame sizes in bytes (default 64..9000)")
    p.add_argument("--header-split", action="store_true", help="the NIC splits headers off (read-only and zero-copy modes)")
    p.add_argument("--profile", default=None, help="machine profile from `ppsim calibrate` with zero-copy costs")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a parameter of every point")
    p.set_defaults(func=run)


def int_list(text: str | None, arg: str) -> list[int] | None:
    if text is None:
        return None
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item.lstrip("-").isdigit():
            raise InputError(f"{arg}: expected comma-separated integers, got {item!r} in {text!r}")
        out.append(int(item))
    return out


def profile_overrides(path: str) -> tuple[dict, str]:
    """zerocopy.* and copy costs from a calibrated machine profile."""
    try:
        prof = json.loads(Path(path).read_text())
    except OSError as e:
        raise InputError(f"--profile {path}: cannot read: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"--profile {path}: malformed JSON ({e})") from None
    costs = prof.get("zerocopy", {}).get("costs") if isinstance(prof, dict) else None
    if not isinstance(costs, dict):
        raise InputError(f"--profile {path}: at $.zerocopy.costs: expected the zero-copy costs `ppsim calibrate` writes")
    o = {}
    for k in ("map_fixed_ns", "map_per_page_ns", "unmap_fixed_ns", "unmap_per_page_ns", "shootdown_ns",
              "shootdown_per_page_ns", "clear_ns_per_kib"):
        v = costs.get(k)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise InputError(f"--profile {path}: at $.zerocopy.costs.{k}: expected a number >= 0, got {v!r}")
        o[f"zerocopy.{k}"] = v
    if isinstance(costs.get("copy_ns_per_kib"), (int, float)):
        o["stack.reader_copy_ns_per_kib"] = costs["copy_ns_per_kib"]
    return o, prof.get("name", path)


def run(args) -> int:
    from ppsim import compare
    from ppsim.cmd_report import load_module
    from ppsim.cmd_run import parse_overrides

    overrides = parse_overrides(args.overrides)
    note = "Costs: the scenario's defaults (docs/zerocopy.md says where each comes from)."
    if args.profile:
        prof, name = profile_overrides(args.profile)
        overrides = {**prof, **overrides}
        note = f"Costs: zero-copy and copy costs measured on {name} by `ppsim calibrate` ({args.profile})."
    kw = {}
    sizes = int_list(args.sizes, "--sizes")
    if sizes:
        kw["sizes"] = sizes
    df = compare.zerocopy(args.base, header_split=args.header_split, overrides=overrides, **kw)
    cx = {slow: compare.crossover(df, slow=slow) for slow in ("read_only", "writable")}
    path = load_module("compare_report").zerocopy_report(df, Path(args.out), cx, note)
    w = print
    w(f"{'bytes':>6} {'mode':<10} {'CPU ns/pkt':>11} {'pages/pkt':>10} {'PCIe B/pkt':>11} {'transfers/pkt':>14}  bottleneck")
    for _, r in df.iterrows():
        w(f"{r['packet_bytes']:>6} {r['mode']:<10} {r['ns_per_packet']:>11.0f} {r['pages_per_packet']:>10.2f} "
          f"{r['pcie_bytes_per_packet']:>11.0f} {r['cacheline_transfers_per_packet']:>14.2f}  {r['bottleneck']}")
    for slow, v in cx.items():
        w(f"crossover vs {slow}: " + (f"zero-copy is cheaper from {v:.0f} bytes" if v else "none within the sweep"))
    w(f"wrote {path}")
    return 0 if df["ok"].all() else 1
