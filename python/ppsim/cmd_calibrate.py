"""`ppsim calibrate`: measure this host for the cacheline model and write a machine profile.

    ./ppsim calibrate                          # → scenarios/machines/host.json ("profile": "host")
    ./ppsim calibrate --quick --out /tmp/h.json
    ./ppsim calibrate --from saved.json        # rebuild a profile from saved measurements
"""
from __future__ import annotations

import argparse
import json
import sys

from ppsim import strict_json
from ppsim.errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="measure this host (cacheline transfers, atomics, ptr_ring handoff, ...) into a machine profile",
        description="Runs the native ppsim_calibrate tool (pinned threads) and writes a machine profile "
                    "that scenarios name with coherence.profile. Timing is sensitive to other load: the "
                    "load average is recorded and every figure is a median over --reps repetitions. "
                    "See docs/coherence.md.",
    )
    p.add_argument("--out", metavar="FILE", help="profile to write (default scenarios/machines/NAME.json)")
    p.add_argument("--name", default="host", help="profile name (default host)")
    p.add_argument("--reps", type=int, default=7, help="repetitions per measurement (default 7)")
    p.add_argument("--quick", action="store_true", help="short runs (seconds; noisier)")
    p.add_argument("--only", metavar="GROUP",
                   help="measure one group: transfer, atomic, stream, ring, chase, memcpy, page, base or zerocopy")
    p.add_argument("--cpus", metavar="A,B,...",
                   help="OS CPU numbers to measure (default: one CPU per distance class from CPU 0, up to 8)")
    p.add_argument("--from", dest="from_file", metavar="FILE",
                   help="use measurements saved from ppsim_calibrate instead of measuring")
    p.add_argument("--save-measurements", metavar="FILE", help="also write the raw measurements here")
    p.add_argument("--json", action="store_true", help="print the profile JSON instead of the table")
    p.set_defaults(func=run)


def _cpus(text: str | None) -> list[int] | None:
    if text is None:
        return None
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit():
            raise InputError(f"--cpus: expected comma-separated CPU numbers, got {item!r} in {text!r}")
        out.append(int(item))
    if len(set(out)) != len(out):
        raise InputError(f"--cpus: CPU numbers repeat in {text!r}")
    return out


def run(args: argparse.Namespace) -> int:
    from ppsim import calibrate as cal

    if args.reps < 1:
        raise InputError(f"--reps: expected a positive integer, got {args.reps}")
    if args.from_file:
        try:
            meas = strict_json.load_file(args.from_file, what="measurements file")
        except InputError as e:
            raise InputError(f"--from: {e}") from None
    else:
        meas = cal.measure(reps=args.reps, quick=args.quick, cpus=_cpus(args.cpus), only=args.only)
    if args.only == "zerocopy" or (args.only is None and isinstance(meas, dict) and "transfer_ns" not in meas
                                   and "zerocopy" in meas):
        return _zerocopy_report(cal, meas, args)
    if args.from_file:
        profile, rows = cal.from_saved(meas, args.from_file, args.name)
    else:
        profile, rows = cal.make_profile(meas, name=args.name), cal.table(meas)
    if args.save_measurements:
        cal.write_profile(meas, args.save_measurements)
    out = cal.write_profile(profile, args.out or cal.DEFAULT_OUT.with_name(f"{args.name}.json"))
    if args.json:
        print(json.dumps(profile, indent=1))
        return 0
    w = sys.stdout.write
    host = meas.get("host", {})
    w(f"# {host.get('cpu_model', '?')}: {len(profile['topology']['cpus'])} CPUs; "
      f"load before {host.get('loadavg_before', '?')}, after {host.get('loadavg_after', '?')}\n")
    w(f"# {meas.get('reps', '?')} repetitions; spread = (p90 - p10) / median\n")
    w(f"{'measurement':<50} {'median':>10} {'p10':>10} {'p90':>10} {'spread':>8}  unit\n")
    for label, unit, med, p10, p90, spread in rows:
        w(f"{label:<50} {med:>10.2f} {p10:>10.2f} {p90:>10.2f} {spread:>7.1f}%  {unit}\n")
    if "zerocopy" in profile:
        _print_zerocopy(profile["zerocopy"], w)
    ref = args.name if out.resolve() == cal.DEFAULT_OUT.with_name(f"{args.name}.json").resolve() else str(out)
    w(f"profile written to {out}; a scenario uses it with \"coherence\": {{\"enabled\": true, \"profile\": \"{ref}\"}}\n")
    return 0


def _print_zerocopy(z: dict, w) -> None:
    c = z["costs"]
    w("zero-copy costs for a scenario: " + " ".join(f"--set zerocopy.{k}={v:g}" for k, v in c.items()
                                                  if not k.startswith("copy_")) + "\n")
    w(f"  copy to user: {c['copy_fixed_ns']:.0f} ns per call + {c.get('copy_per_page_ns', 0):.0f} ns per page + "
      f"{c['copy_ns_per_kib']:.1f} ns/KiB (stack.reader_call_ns, stack.reader_copy_ns_per_kib)\n")
    if "comparison" in z:
        w(f"{'bytes':>8} {'path':<14} {'native ns':>11} {'model ns':>11} {'error':>8}\n")
        for r in z["comparison"]:
            w(f"{r['bytes']:>8} {r['path']:<14} {r['native_ns']:>11.0f} {r['model_ns']:>11.0f} {100 * r['error']:>7.1f}%\n")


def _zerocopy_report(cal, meas: dict, args) -> int:
    """--only zerocopy: the fitted costs and the model-versus-native table (no profile written)."""
    z = {"costs": cal.zerocopy_costs(meas)}
    if "map_unmap_ns" in meas.get("zerocopy", {}):
        z["comparison"] = cal.zerocopy_comparison(meas)
    if args.save_measurements:
        cal.write_profile(meas, args.save_measurements)
    if args.json:
        print(json.dumps(z, indent=1))
        return 0
    w = sys.stdout.write
    host = meas.get("host", {})
    w(f"# {host.get('cpu_model', '?')}; load before {host.get('loadavg_before', '?')}, after {host.get('loadavg_after', '?')}\n")
    for label, unit, med, p10, p90, spread in cal.table(meas):
        w(f"{label:<50} {med:>10.1f} {p10:>10.1f} {p90:>10.1f} {spread:>7.1f}%  {unit}\n")
    _print_zerocopy(z, w)
    return 0
