"""`ppsim run SCENARIO.json`: run one scenario, write results.json, print a summary."""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from ppsim import strict_json
from ppsim.cli import EXIT_LIMIT
from ppsim.errors import InputError
from ppsim.scenario import SEED_EXPECTED, SEED_MAX


def seed_arg(text: str) -> int:
    """--seed: an integer 0..2^63-1 (argparse reports anything else as one line, exit 2)."""
    try:
        v = int(text.strip(), 10)
    except ValueError:
        v = None
    if v is None or not 0 <= v <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"{SEED_EXPECTED}, got {text!r:.60}")
    return v


def register(sub) -> None:
    p = sub.add_parser("run", help="run a scenario and write DIR/results.json")
    p.add_argument("scenario", help="scenario JSON file")
    p.add_argument("--out", default=None, help="output directory (default: runs/<scenario name>)")
    p.add_argument("--seed", type=seed_arg, default=None, help="override sim.seed (0 to 2^63-1)")
    p.add_argument("--trace", default=None, help="also write a tracefs-format trace of page_pool events here")
    p.add_argument("--timeline", default=None, metavar="FILE.json",
                   help="also write a Chrome/Perfetto trace-event timeline (CPU slices, NIC queues, pool and "
                        "PCIe counters); open it in ui.perfetto.dev")
    p.add_argument("--timeline-max-events", type=positive_arg(int, "an integer"), default=2_000_000, metavar="N",
                   help="stop recording the timeline after N events (default 2000000)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="override a parameter, e.g. --set page_pool.pool_size_pages=256 (VALUE is JSON, or a string)")
    p.add_argument("--checker", choices=["stop", "collect", "off"], default=None, help="override sim.checker")
    p.add_argument("--mutant", action="append", default=[], help="run a deliberately wrong model variant (see `ppsim mutants`)")
    p.add_argument("--max-events", type=positive_arg(int, "an integer"), default=None, metavar="N",
                   help="stop after N dispatched events (sim.max_events); exit code 4")
    p.add_argument("--max-wall-s", type=positive_arg(float, "a number of seconds"), default=None, metavar="S",
                   help="stop after S seconds of wall-clock time (sim.max_wall_s); exit code 4")
    p.add_argument("--max-memory-mib", type=positive_arg(int, "an integer"), default=None, metavar="M",
                   help="memory budget in MiB (sim.max_memory_mib, default 4096): refuse or stop beyond it")
    p.add_argument("--quiet", action="store_true", help="print only the output path")
    p.set_defaults(func=run)


def positive_arg(conv, what: str):
    def parse(text: str):
        try:
            v = conv(text.strip())
        except (ValueError, OverflowError):
            v = None
        if v is None or not 0 < v < 1e18:
            raise argparse.ArgumentTypeError(f"expected {what} above 0, got {text!r:.60}")
        return v
    return parse


LIMIT_FLAGS = (("--max-events", "max_events", "sim.max_events"), ("--max-wall-s", "max_wall_s", "sim.max_wall_s"),
               ("--max-memory-mib", "max_memory_mib", "sim.max_memory_mib"))


def parse_overrides(items: list[str]) -> dict:
    """--set PATH=VALUE items as {PATH: value}. VALUE is JSON when it parses as JSON (strictly: a
    repeated key or NaN is an error), else the string itself. A path given twice is an error."""
    out = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--set {item}: expected PATH=VALUE")
        k, v = item.split("=", 1)
        k = k.strip()
        if k in out:
            raise InputError(f"--set {k}: given twice")
        try:
            out[k] = strict_json.loads(v, f"--set {k}", "$." + k)
        except strict_json.MalformedJson:
            out[k] = v
    return out


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if v != int(v) or abs(v) >= 1e15 else f"{int(v)}"
    return str(v)


def summary(r) -> str:
    s = r.stats
    lines = []
    name = r.raw["scenario"]["name"] or Path(r.file).stem
    lines.append(f"scenario {name}  seed {r.seed}  simulated {s['sim.end_time_ns'] / 1e6:.3f} ms")
    if "nic0.rx_mpps" in s:
        drops = sum(v for k, v in s.items() if k.endswith((".rx_missed", ".rx_switch_drops"))) + s.get("nic0.rx_fifo_drops", 0)
        lines.append(f"  rx {s['nic0.rx_mpps']:.3f} Mpps  {s['nic0.rx_gbps']:.2f} Gb/s  device drops {fmt(drops)}"
                     f"  socket drops {fmt(s.get('stack.rcvbuf_drops', 0))}")
    if "zc.received" in s:
        lines.append(f"  zero-copy: {fmt(s['zc.received'])} packets mapped to the application ({s['zc.rx_gbps']:.2f} Gb/s)"
                     f"  pages mapped {fmt(s['zc.pages_mapped'])} cleared {fmt(s['zc.pages_cleared'])}"
                     f"  shootdowns {fmt(s['zc.shootdowns'])}  queue drops {fmt(s['zc.queue_full_drops'])}")
    for k in sorted(s):
        if k.endswith(".mode_switch.done") and s[k]:
            q = k[: -len(".mode_switch.done")]
            lines.append(f"  mode switch of {q}: {s[q + '.mode_switch.duration_ns'] / 1e3:.1f} us,"
                         f" restart CPU {s[q + '.mode_switch.restart_cpu_ns'] / 1e3:.1f} us,"
                         f" {fmt(s[q + '.mode_switch.drained_packets'])} accepted packets delivered,"
                         f" {fmt(s.get(q + '.rx_switch_drops', 0))} dropped by the device meanwhile")
    if s.get("nic0.tx_mpps") or "kpath.rx_mpps" in s:
        tx = f"  tx {s['nic0.tx_mpps']:.3f} Mpps  {s['nic0.tx_gbps']:.2f} Gb/s"
        if "kpath.rx_mpps" in s:
            tx += f"  kernel path {s['kpath.rx_mpps']:.3f} Mpps  {s['kpath.rx_gbps']:.2f} Gb/s"
        lines.append(tx)
    nic = r.raw.get("nic", {}).get("nic0")
    if nic:
        u = nic["utilization"]
        lines.append(f"  bottleneck {nic['bottleneck']}: {nic['why']}  (pcie up {100 * u['pcie_up']:.0f}%"
                     f" down {100 * u['pcie_down']:.0f}%, wire rx {100 * u['wire_rx']:.0f}% tx {100 * u['wire_tx']:.0f}%)")
    alloc = ["alloc_fast", "alloc_slow", "alloc_slow_high_order", "alloc_empty", "alloc_refill", "alloc_waive"]
    rec = ["recycle_cached", "recycle_cache_full", "recycle_ring", "recycle_ring_full", "recycle_released_refcnt"]
    lines.append("  page_pool alloc:   " + "  ".join(f"{k[6:]} {fmt(s['page_pool.' + k])}" for k in alloc))
    lines.append("  page_pool recycle: " + "  ".join(f"{k[8:]} {fmt(s['page_pool.' + k])}" for k in rec))
    lines.append(f"  pages: hold {fmt(s['page_pool.pages_state_hold_cnt'])}  release {fmt(s['page_pool.pages_state_release_cnt'])}"
                 f"  recycled {100 * s['page_pool.recycle_ratio']:.1f}% of returns"
                 f"  ({100 * s['page_pool.direct_ratio']:.1f}% direct)"
                 f"  allocator pages per alloc {s['page_pool.allocator_pages_per_alloc']:.4f}")
    if r.limit:
        lines.append(f"  STOPPED EARLY by {r.limit['limit']}: {r.limit['message']} (stats are partial)")
    inv = r.raw["invariants"]
    if not inv.get("enabled", True):
        lines.append("  invariants: checker off")
    elif inv["ok"]:
        lines.append(f"  invariants: ok ({inv['checks']} checks)")
    else:
        lines.append(f"  invariants: {inv['violations']} VIOLATION(S)")
        for v in r.violations[:3]:
            lines.append(f"    {v['invariant']}: {v['subject']} at {v['time_ps'] / 1e6:.6f} us on {v['event']}: {v['detail']}")
            for h in v["history"]:
                lines.append(f"      {h}")
    return "\n".join(lines)


def default_out(data: dict, scenario: str) -> Path:
    """runs/<scenario name>, the name made safe as one directory name."""
    name = data.get("name") if isinstance(data.get("name"), str) else ""
    name = re.sub(r"[^\w.+-]+", "_", name).lstrip(".") or Path(scenario).stem or "run"
    return Path("runs") / name


def run(args) -> int:
    import ppsim

    overrides = parse_overrides(args.overrides)
    flags = (("--checker", "checker", "sim.checker"), ("--seed", "seed", "sim.seed")) + LIMIT_FLAGS
    for flag, attr, path in flags:
        if getattr(args, attr) is not None and path in overrides:
            raise InputError(f"{flag} and --set {path} both set {path}: give one")
    data, name = ppsim.load_scenario(args.scenario)
    if args.checker:
        overrides["sim.checker"] = args.checker
    for flag, attr, path in LIMIT_FLAGS:
        if getattr(args, attr) is not None:
            overrides[path] = getattr(args, attr)
    ppsim.scenario.apply_overrides(data, overrides, "--set")
    out = Path(args.out) if args.out else default_out(data, args.scenario)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as e:
        raise InputError(f"--out {out}: cannot create directory: {getattr(e, 'strerror', None) or e}") from None
    if not out.is_dir():
        raise InputError(f"--out {out}: not a directory")
    t0 = time.perf_counter()
    r = ppsim.run(data, source=name, seed=args.seed, trace=args.trace, mutants=args.mutant,
                  timeline=args.timeline, timeline_max_events=args.timeline_max_events)
    wall = time.perf_counter() - t0
    try:
        (out / "results.json").write_text(r.to_json())
    except OSError as e:
        raise InputError(f"--out {out}: cannot write results.json: {e.strerror}") from None
    if args.quiet:
        print(out / "results.json")
    else:
        print(summary(r))
        extra = "".join(f" and {f}" for f in (args.trace, args.timeline) if f)
        print(f"  wrote {out / 'results.json'}{extra}  ({wall:.2f} s wall)")
    if r.limit:
        print(f"ppsim run: stopped early at {r.limit['at_ns'] / 1e3:.3f} us simulated: {r.limit['message']}; "
              f"partial results in {out / 'results.json'}", file=sys.stderr)
        return EXIT_LIMIT
    return 0 if r.ok else 1
