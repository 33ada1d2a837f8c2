"""`ppsim vm2vm --out DIR`: VM-to-VM throughput, SR-IOV VF hairpin vs the host kernel (copy or
read-only zero-copy handoff), by packet size, PCIe link and line rate. Writes vm2vm.csv, vm2vm.md
(Gb/s, Mpps and the bottleneck per point) and vm2vm.png."""
from __future__ import annotations

from pathlib import Path

from ppsim.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("vm2vm", help="compare VM-to-VM paths: SR-IOV hairpin vs the kernel (copy, zero-copy)")
    p.add_argument("--out", required=True, help="directory for vm2vm.md, vm2vm.png and vm2vm.csv")
    p.add_argument("--sizes", default=None, help="comma-separated frame sizes in bytes (default 64..9000)")
    p.add_argument("--pcie", default=None, help="comma-separated links: gen2x8, gen3x8, gen3x16, gen4x16 (default all)")
    p.add_argument("--line-rates", default=None, help="comma-separated line rates in Gb/s (default 10,25,40,100)")
    p.add_argument("--paths", default=None,
                   help="comma-separated: vf_hairpin, vf_port_capped, kernel_copy, kernel_zerocopy (default all)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a parameter of every point")
    p.set_defaults(func=run)


def _words(text, arg):
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise InputError(f"{arg}: expected a comma-separated list")
    return items


def run(args) -> int:
    from ppsim import compare
    from ppsim.cmd_report import load_module
    from ppsim.cmd_run import parse_overrides
    from ppsim.cmd_zerocopy import int_list

    kw = {}
    if args.sizes:
        kw["sizes"] = int_list(args.sizes, "--sizes")
    if args.pcie:
        kw["pcie"] = _words(args.pcie, "--pcie")
    if args.paths:
        kw["paths"] = _words(args.paths, "--paths")
    if args.line_rates:
        rates = []
        for t in _words(args.line_rates, "--line-rates"):
            try:
                rates.append(float(t))
            except ValueError:
                raise InputError(f"--line-rates: expected numbers in Gb/s, got {t!r}") from None
        kw["line_rates"] = rates
    df = compare.vm2vm(overrides=parse_overrides(args.overrides), **kw)
    path = load_module("compare_report").vm2vm_report(df, Path(args.out))
    top = df["line_rate_gbps"].max()
    print(f"{'bytes':>6} {'path':<16} {'pcie':<8} {'Gb/s':>8} {'Mpps':>7}  bottleneck   (line rate {top:g} Gb/s)")
    seen = set()
    for _, r in df[df["line_rate_gbps"] == top].iterrows():
        key = (r["packet_bytes"], r["path"], r["pcie"] if r["path"].startswith("vf") else "")
        if key in seen:
            continue
        seen.add(key)
        print(f"{r['packet_bytes']:>6} {r['path']:<16} {key[2] or '-':<8} {r['gbps']:>8.1f} {r['mpps']:>7.2f}  {r['bottleneck']}")
    print(f"{df.attrs.get('simulations', '?')} simulations; wrote {path}")
    return 0 if df["ok"].all() else 1
