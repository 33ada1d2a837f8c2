"""`ppsim capture`: record real page_pool traces from this machine's kernel.

See docs/capture.md; the work is done by ppsim.capture. Every parameter's unit and doc come from
ppsim.capture.PARAMS.
"""
from __future__ import annotations

import argparse

from ppsim import capture
from ppsim.errors import InputError


def _int(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def register(subparsers) -> None:
    docs = {p.name: f"{p.doc} [{p.unit}]" if p.unit != "-" else p.doc for p in capture.PARAMS}
    d = capture.CaptureParams()
    p = subparsers.add_parser(
        "capture", help="capture real page_pool traces (root; veth + XDP in private namespaces)",
        description="Build two network namespaces joined by a veth with an XDP program, run a "
                    "bounded workload, record page_pool and napi_poll events in a private tracefs "
                    "instance, delete the veth and wait for the pool's destroy, then clean up. "
                    "Writes OUT/NAME-rK/{trace.txt,meta.json}. See docs/capture.md.")
    # argparse's own errors (unparsable numbers, unknown options): one line, exit code 2.
    p.error = lambda message: p.exit(2, f"ppsim capture: {message}\n")
    p.add_argument("--proto", default=d.proto, help=docs["proto"])
    amount = p.add_mutually_exclusive_group()
    amount.add_argument("--packets", type=_int,
                        help=f"{docs['packets']} (default 1000 when neither this nor --bytes is given)")
    amount.add_argument("--bytes", type=_int, help=docs["bytes"])
    for name in ("size", "sender_cpu", "receiver_cpu", "rate", "reader_delay_ms",
                 "reader_hold_ms", "rcvbuf", "mtu", "repeat", "buffer_kb"):
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=_int, default=getattr(d, name),
                       help=f"{docs[name]} (default {getattr(d, name)})")
    p.add_argument("--xdp", default=d.xdp, help=f"{docs['xdp']} (default {d.xdp})")
    p.add_argument("--xdp-mode", default=d.xdp_mode, help=f"{docs['xdp_mode']} (default {d.xdp_mode})")
    p.add_argument("--delete-while-inflight", action="store_true",
                   help="shorthand for --reader-hold-ms 2500 (the reader keeps its queue over "
                        "the delete and two destroy retries)")
    p.add_argument("--napi-lines", default=d.napi_lines, help=f"{docs['napi_lines']} (default {d.napi_lines})")
    p.add_argument("--sched", default=d.sched, help=f"{docs['sched']} (default {d.sched})")
    for name in ("max_load", "load_wait_s", "destroy_timeout_s", "timeout_s"):
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=_float, default=getattr(d, name),
                       help=f"{docs[name]} (default {getattr(d, name)})")
    p.add_argument("--out", default=d.out, help=f"parent directory of the capture directories (default {d.out})")
    p.add_argument("--name", default=None,
                   help="capture name, shared by the repeats (the meta.json `group`); default "
                        "derived from the parameters, e.g. udp-1400-xcpu")
    p.add_argument("--force", action="store_true", help="replace existing capture directories")
    p.add_argument("--resume", action="store_true",
                   help="keep the repeats --out already holds and take only the missing ones "
                        "(e.g. --repeat 6 after an earlier --repeat 3 takes r4..r6)")
    p.add_argument("--matrix", metavar="FILE",
                   help="take every group of a capture matrix (traces/matrix.json) that --out does not hold yet; "
                        "the other options are ignored")
    p.add_argument("--only", metavar="GROUP", action="append", default=[],
                   help="with --matrix: take only these groups (repeatable)")
    p.set_defaults(func=run)


def params_from_args(args: argparse.Namespace) -> capture.CaptureParams:
    hold = args.reader_hold_ms
    if args.delete_while_inflight:
        if hold:
            raise InputError("--delete-while-inflight: give it or --reader-hold-ms, not both")
        hold = 2500
    packets = args.packets
    if packets is None and args.bytes is None:
        packets = 1000
    return capture.CaptureParams(
        proto=args.proto, packets=packets, bytes=args.bytes, size=args.size,
        sender_cpu=args.sender_cpu, receiver_cpu=args.receiver_cpu, rate=args.rate,
        reader_delay_ms=args.reader_delay_ms, reader_hold_ms=hold, rcvbuf=args.rcvbuf,
        xdp=args.xdp, xdp_mode=args.xdp_mode, mtu=args.mtu, repeat=args.repeat,
        napi_lines=args.napi_lines, sched=args.sched, max_load=args.max_load, load_wait_s=args.load_wait_s,
        destroy_timeout_s=args.destroy_timeout_s, timeout_s=args.timeout_s,
        buffer_kb=args.buffer_kb, out=args.out, name=args.name, force=args.force)


def load_matrix(path: str) -> list[dict]:
    """The groups of a capture matrix file: [{"name", "family", "args"}], with its defaults merged."""
    import json
    import shlex

    try:
        with open(path, encoding="utf-8") as f:
            data = json.loads(f.read())
    except OSError as e:
        raise InputError(f"--matrix {path}: cannot read: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"--matrix {path}: malformed JSON ({e})") from None
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, list):
        raise InputError(f"--matrix {path}: at $.groups: expected a list of groups")
    defaults = data.get("defaults", "")
    if not isinstance(defaults, str):
        raise InputError(f"--matrix {path}: at $.defaults: expected a string of capture arguments")
    out = []
    for i, g in enumerate(groups):
        where = f"--matrix {path}: at $.groups[{i}]"
        if not isinstance(g, dict) or not isinstance(g.get("name"), str) or not isinstance(g.get("args"), str):
            raise InputError(f"{where}: expected an object with string name and args")
        if not isinstance(g.get("family"), str):
            raise InputError(f"{where}.family: expected a string (the fit/validation split needs it)")
        out.append({**g, "argv": shlex.split(defaults) + shlex.split(g["args"]) + ["--name", g["name"]]})
    names = [g["name"] for g in out]
    if len(set(names)) != len(names):
        raise InputError(f"--matrix {path}: group names repeat")
    return out


def run_matrix(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ppsim.cli import build_parser

    groups = load_matrix(args.matrix)
    unknown = set(args.only) - {g["name"] for g in groups}
    if unknown:
        raise InputError(f"--only: no such group in {args.matrix}: {', '.join(sorted(unknown))}")
    parser = build_parser()
    todo = []
    for g in groups:
        if args.only and g["name"] not in args.only:
            continue
        sub = parser.parse_args(["capture", *g["argv"], "--out", args.out])
        params = params_from_args(sub)
        params.validate()
        have = [(Path(args.out) / f"{g['name']}-r{k}" / "meta.json").exists() for k in range(1, params.repeat + 1)]
        if all(have) and not args.force:
            continue
        params.force = args.force
        todo.append(params)
    for params in todo:  # a kept repeat of another workload stops the session before it starts
        if not params.force:
            capture.check_resume(params)
    print(f"capture matrix: {len(todo)} of {len(groups)} groups to take", flush=True)
    for params in todo:
        for path in capture.run_captures(params, resume=True):  # missing repeats only
            print(path, flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.matrix:
        return run_matrix(args)
    params = params_from_args(args)
    params.validate()   # bad input is reported before any environment check
    if args.resume and args.force:
        raise InputError("--resume: give it or --force, not both")
    for path in capture.run_captures(params, resume=args.resume):
        print(path)
    return 0
