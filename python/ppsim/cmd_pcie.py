"""`ppsim pcie`: bandwidth table of the PCIe cost model (DMA write, read, read+write, NIC models).

    ./ppsim pcie --gen 3 --lanes 8 --mps 256 --mrrs 512 --sizes 64,128,1500 --csv out.csv
"""
from __future__ import annotations

import argparse
import csv
import sys

from ppsim.errors import InputError

DEFAULT_SIZES = "64,128,256,512,1024,1500,2048,4096"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pcie",
        help="PCIe bandwidth table: DMA and NIC models for a link configuration",
        description="Steady-state data bandwidth (Gb/s) of DMA writes, reads, concurrent "
                    "read+write and the simple, kernel-driver and DPDK NIC models of Neugebauer "
                    "et al. (SIGCOMM 2018) on one PCIe link. See docs/pcie.md.",
    )
    p.add_argument("--gen", type=int, default=3, help="PCIe generation 1..6 (default 3)")
    p.add_argument("--lanes", type=int, default=8, help="link width: 1, 2, 4, 8 or 16 (default 8)")
    p.add_argument("--mps", type=int, default=256, help="Max_Payload_Size in bytes (default 256)")
    p.add_argument("--mrrs", type=int, default=512, help="Max_Read_Request_Size in bytes (default 512)")
    p.add_argument("--rcb", type=int, default=64, help="read completion boundary in bytes: 64 or 128")
    p.add_argument("--completions", choices=("mps", "rcb"), default="mps",
                   help="split read completions at MPS (default) or at the RCB")
    p.add_argument("--addr-bits", type=int, default=64, help="DMA address width: 32 or 64 (default 64)")
    p.add_argument("--ecrc", action="store_true", help="add a 4-byte ECRC digest to every TLP")
    p.add_argument("--read-rtt-ns", type=float, default=546.0,
                   help="DMA read round trip in ns (default 546: pcie-bench, Xeon E5-2630v4)")
    p.add_argument("--tags", type=int, default=32, help="outstanding read requests (default 32)")
    p.add_argument("--no-latency", action="store_true",
                   help="ignore the read round trip and the tag limit (link-bound bandwidth)")
    p.add_argument("--compat-pcie-bench", action="store_true",
                   help="reproduce the pcie-bench model, inconsistencies included")
    p.add_argument("--sizes", default=DEFAULT_SIZES,
                   help=f"comma-separated sizes in bytes: DMA transfer sizes, and Ethernet frame sizes with FCS for "
                        f"the NIC columns (the NIC DMAs size - 4 bytes) (default {DEFAULT_SIZES})")
    p.add_argument("--directions", default="rx,tx",
                   help="NIC directions to tabulate: rx, tx, both (comma-separated; default rx,tx)")
    p.add_argument("--csv", metavar="FILE", help="also write the table as CSV to FILE")
    p.set_defaults(func=run)


def _parse_list(flag: str, text: str, conv, what: str) -> list:
    out = []
    for item in text.split(","):
        item = item.strip()
        try:
            out.append(conv(item))
        except ValueError:
            raise InputError(f"{flag}: expected {what}, got {item!r} in {text!r}") from None
    if not out:
        raise InputError(f"{flag}: expected {what}, got nothing")
    return out


def _size(item: str) -> int:
    v = int(item)
    if v < 1:
        raise ValueError(item)
    return v


def _direction(item: str) -> str:
    if item not in ("rx", "tx", "both"):
        raise ValueError(item)
    return item


def run(args: argparse.Namespace) -> int:
    from ppsim.pcie import Link

    sizes = _parse_list("--sizes", args.sizes, _size, "comma-separated byte counts >= 1")
    directions = _parse_list("--directions", args.directions, _direction,
                             "a comma-separated list of rx, tx, both")
    link = Link(gen=args.gen, lanes=args.lanes, mps=args.mps, mrrs=args.mrrs, rcb=args.rcb,
                completion_split=args.completions, addr_bits=args.addr_bits, ecrc=args.ecrc,
                latency=not args.no_latency, read_rtt_ns=args.read_rtt_ns, max_tags=args.tags,
                compat_pcie_bench=args.compat_pcie_bench)
    rows = link.sweep(sizes, directions)
    columns = list(rows[0].keys())
    csv_file = None
    if args.csv:  # open before printing anything, so a bad path fails cleanly
        try:
            csv_file = open(args.csv, "w", newline="")
        except OSError as e:
            raise InputError(f"--csv: cannot write {args.csv}: {e.strerror}") from None

    out = sys.stdout
    out.write(f"# PCIe {link.describe()}\n")
    out.write(f"# TLP capacity {link.tlp_capacity_gbps:.2f} Gb/s per direction; values in Gb/s of data; "
              f"DMA columns: transfers of `size` bytes; NIC columns: `size`-byte frames (size - 4 bytes DMA'd)\n")
    heads = [c.removesuffix("_gbps") for c in columns]
    widths = [max(len(h), 7) for h in heads]
    out.write("  ".join(h.rjust(w) for h, w in zip(heads, widths)) + "\n")
    for r in rows:
        cells = [str(r["size"])] + [f"{r[c]:.2f}" for c in columns[1:]]
        out.write("  ".join(v.rjust(w) for v, w in zip(cells, widths)) + "\n")

    if csv_file:
        with csv_file:
            w = csv.writer(csv_file)
            w.writerow(columns)
            for r in rows:
                w.writerow([r["size"]] + [f"{r[c]:.6f}" for c in columns[1:]])
    return 0
