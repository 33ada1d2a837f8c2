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
        profile, rows = cal.from_saved(meas, args.from_file, args.name)
    else:
        meas = cal.measure(reps=args.reps, quick=args.quick, cpus=_cpus(args.cpus))
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
    ref = args.name if out.resolve() == cal.DEFAULT_OUT.with_name(f"{args.name}.json").resolve() else str(out)
    w(f"profile written to {out}; a scenario uses it with \"coherence\": {{\"enabled\": true, \"profile\": \"{ref}\"}}\n")
    return 0
