#!/usr/bin/python3
"""Random mutations of ppsim's real inputs, fed to every Python input path; each must work or
raise ppsim.InputError (one line), and the command line must exit 0, 1, 2 (one line on stderr) or
4, never with a traceback.

    PYTHONPATH=python tests/python/fuzz_inputs.py --inputs 20000 --seed 1     # make fuzz
    fuzz(500, seed=1234)                                                       # test_fuzz.py

Inputs are made from the shipped scenarios, machine profiles and capture directories (trace.txt,
meta.json) and from a results.json: truncated, bytes flipped or inserted, binary junk, JSON values
replaced by other types, huge or non-finite numbers, deep nesting, repeated keys, long strings,
lone surrogates, huge files. The consumers are load_scenario and run (file and dict, with run
budgets so no input runs long), the trace parsers, the capture replay (load_meta,
scenario_from_meta, a budgeted replay, metrics), the report generator, saved calibration
measurements, ppsim.pcie.Link, and, for a sample, the CLI in a subprocess (run, stats, report,
validate, calibrate --from, pcie, python -m ppsim.trace).
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

import ppsim  # noqa: E402
from ppsim import pcie, replay, trace  # noqa: E402
from ppsim.errors import InputError  # noqa: E402

# Every run is budgeted: a mutated scenario may ask for hours of simulated work or gigabytes.
BUDGET = {"sim.max_events": 3000, "sim.max_wall_s": 2.0, "sim.max_memory_mib": 256}
CLI_BUDGET = ["--max-events", "3000", "--max-wall-s", "2", "--max-memory-mib", "256"]
WEIRD_NUMBERS = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -2**63 - 1, 10**30, 10**400, 1e308, -1e308,
                 5e-324, 0.5, -0.0, 1e-30, 4096, 65536, 16385]
WEIRD_STRINGS = ["", " ", "x" * 10000, "\x00", "\ud800", "\udcff", "é", "\u202e", "\n\r\t", "1e3 pps", "3 KiB",
                 "0.06 us", "5 pages", "NaN ns", "inf s", "-1 ms", "1e999 ns", "../../etc/passwd", "vf999", "pf",
                 "nic", "veth", "off", "collect", "udp", "tcp", "published-xeon-e5-2695v4", "/dev/zero"]
NON_JSON = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 5000, "0x10", "01", "+1", ".5", "1.", "'x'",
            "undefined", "True", "None"]


def _stat(m: float) -> dict:
    return {"median": m, "p10": m * 0.9, "p90": m * 1.1, "min": m * 0.8, "max": m * 1.2, "reps": 3}


# What ppsim_calibrate prints, in the shape tests/python/test_calibrate.py uses.
MEASUREMENTS = {
    "tool": "ppsim_calibrate", "reps": 3,
    "host": {"cpu_model": "Test CPU", "loadavg_before": "0.00", "loadavg_after": "0.00",
             "topology": {"cpus": [{"cpu": 0, "core": 0, "domain": 0, "node": 0, "socket": 0, "os_cpu": 0},
                                   {"cpu": 1, "core": 1, "domain": 0, "node": 0, "socket": 0, "os_cpu": 1}],
                          "source": "test"}},
    "transfer_ns": [dict(_stat(40.0), os_cpu_a=0, os_cpu_b=1)],
    "atomic_uncontended_ns": _stat(6.0), "stream_read_ns_per_line": _stat(12.0), "store_miss_ns_per_line": _stat(4.0),
    "chase_ns": {"16KiB": _stat(1.0), "4MiB": _stat(20.0), "256MiB": _stat(100.0)},
    "base_ns": {"alloc_fast_plus_recycle_direct": _stat(1.0), "refill_per_page": _stat(1.5), "recycle_ring": _stat(7.0),
                "queue_enqueue": _stat(2.0), "queue_dequeue": _stat(2.0), "page_ref_read": _stat(0.5)},
}


@dataclass
class Report:
    inputs: int = 0
    worked: int = 0
    input_errors: int = 0
    limited: int = 0
    by_kind: Counter = field(default_factory=Counter)
    worked_by_kind: Counter = field(default_factory=Counter)
    failures: dict = field(default_factory=dict)  # key -> (description, example input file)

    def fail(self, key: str, what: str, example: bytes | str, workdir: Path) -> None:
        if key in self.failures:
            self.failures[key][2] += 1
            return
        path = workdir / f"failure-{len(self.failures) + 1}.input"
        path.write_bytes(example if isinstance(example, bytes) else example.encode("utf-8", "surrogatepass"))
        self.failures[key] = [what, path, 1]

    def summary(self) -> str:
        return (f"{self.inputs} inputs: {self.worked} worked ({self.limited} stopped by a budget), "
                f"{self.input_errors} InputError, {sum(v[2] for v in self.failures.values())} failures "
                f"({len(self.failures)} distinct)")


# ---- mutations ---------------------------------------------------------------------------

def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    op = rng.randrange(9)
    if op == 0 and b:  # truncate
        return bytes(b[:rng.randrange(len(b))])
    if op == 1 and b:  # flip bytes
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if op == 2:  # insert binary junk
        pos = rng.randrange(len(b) + 1)
        return bytes(b[:pos]) + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) + bytes(b[pos:])
    if op == 3 and b:  # delete a chunk
        i = rng.randrange(len(b))
        return bytes(b[:i] + b[i + rng.randint(1, 200):])
    if op == 4 and b:  # duplicate a chunk
        i = rng.randrange(len(b))
        j = min(len(b), i + rng.randint(1, 400))
        return bytes(b[:j] + b[i:j] + b[j:])
    if op == 5:  # a whole file of binary
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 2000)))
    if op == 6:  # another encoding
        try:
            return data.decode("utf-8").encode(rng.choice(["utf-16", "utf-32", "latin-1"]), "replace")
        except UnicodeDecodeError:
            return data[::-1]
    if op == 7:  # NUL bytes and control characters
        pos = rng.randrange(len(b) + 1)
        return bytes(b[:pos]) + rng.choice([b"\x00", b"\r", b"\x1b[2J", b"\xef\xbb\xbf", b"\xff\xfe"]) + bytes(b[pos:])
    return bytes(b) * rng.randint(2, 50)  # repeated


def random_value(rng: random.Random, depth: int = 0):
    k = rng.randrange(10)
    if k == 0:
        return rng.choice(WEIRD_NUMBERS)
    if k == 1:
        return rng.choice(WEIRD_STRINGS)
    if k == 2:
        return rng.choice([True, False, None])
    if k == 3 and depth < 3:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if k == 4 and depth < 3:
        return {rng.choice(WEIRD_STRINGS + ["sim", "nic", "a"]): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if k == 5:
        return rng.uniform(-1e6, 1e6)
    if k == 6:
        return rng.randint(-10, 10**6)
    if k == 7:
        return "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randint(0, 30)))
    if k == 8:
        return rng.choice([float("nan"), float("inf"), -float("inf")])  # dict inputs only
    return rng.choice([0, 1, 2, 64, 1024, 1e9])


def paths_of(node, prefix=()):
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths_of(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths_of(v, prefix + (i,))
    return out


def set_at(root, path, value):
    if not path:
        return value
    node = root
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return root


def tweak(rng: random.Random, v):
    """A value of the same type, often still valid: scaled numbers, boundary values, flipped flags."""
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return rng.choice([0, 1, -1, v * 2, v // 2, v * 1000, v + 1, 2**rng.randrange(64), 65536, 4096, 16384])
    if isinstance(v, float):
        return rng.choice([0.0, v * rng.choice([0.001, 0.5, 2, 10, 1e6]), 1e-3, 1e9, 1e12])
    return v


def mutate_data(rng: random.Random, data, light: bool = False):
    """A JSON tree mutated in place of a random node: other types, weird numbers, deletions, new keys
    (`light`: only values of the same type, so that more inputs get past validation)."""
    data = json.loads(json.dumps(data))
    for _ in range(rng.randint(1, 4)):
        paths = paths_of(data)
        path = rng.choice(paths)
        op = rng.randrange(6)
        if light or op == 5 and rng.random() < 0.5:
            node = data
            for p in path:
                node = node[p]
            data = set_at(data, path, tweak(rng, node))
        elif op <= 2:
            data = set_at(data, path, random_value(rng))
        elif op == 3 and path:
            parent = data
            for p in path[:-1]:
                parent = parent[p]
            del parent[path[-1]]
        elif op == 4:
            node = data
            for p in path:
                node = node[p]
            if isinstance(node, dict):
                node[rng.choice(["unknown", "sim", "seed", "x" * 50, "\u00e9", ""])] = random_value(rng)
        else:
            wrapped = random_value(rng)
            for _ in range(rng.randint(1, 200)):
                wrapped = [wrapped] if rng.random() < 0.5 else {"a": wrapped}
            data = set_at(data, path, wrapped)
    return data


def json_text(rng: random.Random, data) -> bytes:
    """The tree as text, sometimes with text-only defects: repeated keys, NaN, deep nesting, huge size."""
    text = json.dumps(data, indent=rng.choice([None, 1]), allow_nan=True, ensure_ascii=rng.random() < 0.5)
    op = rng.randrange(8)
    if op == 0 and "{" in text:  # a key given twice
        i = text.index("{", rng.randrange(text.count("{")) and text.find("{", 1) if text.count("{") > 1 else 0)
        key = json.dumps(rng.choice(["sim", "name", "duration_us", "a"]))
        text = text[:i + 1] + f"{key}: 1, {key}: 2" + ("," if text[i + 1:].lstrip()[:1] not in ("}", "") else "") + text[i + 1:]
    elif op == 1:  # a bare non-JSON number somewhere a value goes
        pos = [i for i, c in enumerate(text) if c == ":"]
        if pos:
            i = rng.choice(pos)
            j = i + 1
            while j < len(text) and text[j] not in ",}]":
                j += 1
            text = text[:i + 1] + " " + rng.choice(NON_JSON) + text[j:]
    elif op == 2:  # very deep nesting
        n = rng.choice([65, 100, 1000, 100000])
        text = "[" * n + text + "]" * n
    elif op == 3 and rng.random() < 0.1:  # a huge file: whitespace or a long string
        text = text[:-1] + ", " + json.dumps("z" * rng.randint(1, 4) * 1_000_000) + "}" if text.endswith("}") else \
            " " * 5_000_000 + text
    elif op == 4:  # a lone surrogate escape
        text = text.replace('"', '"\\ud800', 1)
    raw = text.encode("utf-8", "surrogatepass")
    return mutate_bytes(rng, raw) if rng.random() < 0.3 else raw


def mutate_trace(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    for _ in range(rng.randint(1, 5)):
        if not lines:
            break
        i = rng.randrange(len(lines))
        op = rng.randrange(8)
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op == 2:
            lines[i] = lines[i][:rng.randrange(len(lines[i]) + 1)]
        elif op == 3:  # a number in the line replaced by something huge or odd
            toks = lines[i].split(" ")
            j = rng.randrange(len(toks))
            toks[j] = rng.choice(["9" * rng.choice([25, 5000]), "-1", "0x", "=", "hold=", "nan", "٣", toks[j] * 3])
            lines[i] = " ".join(toks)
        elif op == 4:
            lines[i] = lines[i].replace(rng.choice(["hold", "release", "napi", "page_pool", "[0", ":", "-"]),
                                        rng.choice(["", "x", "::", "\x00", "-" * 3, " " * 100]), 1)
        elif op == 5:
            rng.shuffle(lines)
        elif op == 6:
            lines[i] = " " * rng.randint(1, 70000) + lines[i]
        else:
            lines[i] = "".join(chr(rng.randrange(1, 0x2000)) for _ in range(rng.randint(1, 200))) + "\n"
    return "".join(lines)


# ---- the consumers -----------------------------------------------------------------------

class Fuzzer:
    def __init__(self, seed: int, workdir: Path, cli_every: int, verbose: bool = False):
        self.rng = random.Random(seed)
        self.work = workdir
        self.cli_every = cli_every
        self.verbose = verbose
        self.report = Report()
        self.scenarios = sorted(p for p in (REPO / "scenarios").glob("*.json") if not p.name.endswith(".schema.json"))
        self.profiles = sorted((REPO / "scenarios" / "machines").glob("*.json"))
        self.captures = sorted(p.parent for p in (REPO / "traces").glob("*/meta.json"))
        self.results = self._results()

    def _results(self) -> bytes:
        r = ppsim.run(REPO / "scenarios" / "default.json", overrides={"sim.duration_us": 200, "sim.drain_us": 50})
        return r.to_json().encode()

    def _file(self, name: str, data: bytes) -> Path:
        p = self.work / "in" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    def check(self, kind: str, fn, example) -> None:
        """Runs fn(); InputError (one line) or success are fine, anything else is a failure."""
        self.report.inputs += 1
        self.report.by_kind[kind] += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                out = fn()
            self.report.worked += 1
            self.report.worked_by_kind[kind] += 1
            if isinstance(out, ppsim.Result) and out.limit:
                self.report.limited += 1
        except InputError as e:
            self.report.input_errors += 1
            msg = str(e)
            if "\n" in msg or not msg.strip():
                self.report.fail(f"{kind}: InputError message is not one line", msg[:300], example, self.work)
        except Exception as e:  # noqa: BLE001 - the point is to catch whatever escapes
            tb = traceback.extract_tb(e.__traceback__)
            where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb)
                          if "/ppsim/" in f.filename or "/reports/" in f.filename), "?")
            self.report.fail(f"{kind}: {type(e).__name__} at {where}", f"{type(e).__name__}: {str(e)[:300]}",
                             example, self.work)
            if self.verbose:
                traceback.print_exc()

    def cli(self, kind: str, args: list, example) -> None:
        self.report.inputs += 1
        self.report.by_kind["cli " + kind] += 1
        from ppsim._native import build_dir

        env = dict(os.environ, PYTHONPATH=str(REPO / "python"), PPSIM_BUILD=str(build_dir().resolve()))
        try:
            p = subprocess.run([str(REPO / "ppsim"), *map(str, args)] if kind != "trace" else
                               [sys.executable, "-m", "ppsim.trace", *map(str, args)],
                               capture_output=True, text=True, errors="replace", env=env, timeout=120,
                               cwd=self.work)
        except subprocess.TimeoutExpired:
            self.report.fail(f"cli {kind}: timed out", " ".join(map(str, args)), example, self.work)
            return
        err = p.stderr.strip()
        if "Traceback" in p.stderr or p.returncode not in (0, 1, 2, 4):
            self.report.fail(f"cli {kind}: exit {p.returncode}" + (" with a traceback" if "Traceback" in err else ""),
                             err[-500:], example, self.work)
        elif p.returncode == 2 and (not err or "\n" in err):
            self.report.fail(f"cli {kind}: exit 2 without exactly one line on stderr", err[:500], example, self.work)
        elif p.returncode == 2:
            self.report.input_errors += 1
        else:
            self.report.worked += 1
            self.report.worked_by_kind["cli " + kind] += 1
            self.report.limited += p.returncode == 4

    # one input of each kind

    def scenario(self) -> None:
        src = self.rng.choice(self.scenarios)
        data = json.loads(src.read_text())
        if self.rng.random() < 0.7:
            data = mutate_data(self.rng, data)
        raw = json_text(self.rng, data)
        f = self._file("scenario.json", raw)
        self.check("load_scenario", lambda: ppsim.load_scenario(f), raw)
        if self.rng.random() < 0.5:
            self.check("run file", lambda: ppsim.run(f, overrides=BUDGET), raw)
        if self.cli_due():
            self.cli("run", ["run", f, "--out", self.work / "out", "--quiet", *CLI_BUDGET], raw)
        if self.cli_due():
            self.cli("stats", ["stats", f], raw)

    def scenario_dict(self) -> None:
        data = mutate_data(self.rng, json.loads(self.rng.choice(self.scenarios).read_text()), light=self.rng.random() < 0.6)
        seed = self.rng.choice([None, 0, 7, -1, 2**63 - 1, 2**63, 2**64, 1.5, "3", True])
        overrides = dict(BUDGET)
        if self.rng.random() < 0.5:
            path = self.rng.choice(["sim.seed", "traffic.rate_pps", "page_pool", "sim..x", "", "nic.queues.x",
                                    "page_pool.pool_size_pages", "cpus.count", "sim.max_events"])
            overrides[path] = random_value(self.rng)
        self.check("run dict", lambda: ppsim.run(data, seed=seed, overrides=overrides), json.dumps(data, default=str))

    def machine_profile(self) -> None:
        data = json.loads(self.rng.choice(self.profiles).read_text())
        raw = json_text(self.rng, mutate_data(self.rng, data, self.rng.random() < 0.5)) if self.rng.random() < 0.8 else \
            mutate_bytes(self.rng, json.dumps(data).encode())
        f = self._file("profile.json", raw)
        sc = {"sim": {"duration_us": 30, "drain_us": 10}, "traffic": {"start_us": 1},
              "coherence": {"enabled": True, "profile": str(f)}}
        self.check("machine profile", lambda: ppsim.run(sc, overrides=BUDGET), raw)

    def trace_text(self) -> None:
        cap = self.rng.choice(self.captures)
        src = trace.capture_trace(cap)
        text = (gzip.decompress(src.read_bytes()) if src.suffix == ".gz" else src.read_bytes()).decode()
        if len(text) > 200_000:
            text = text[:200_000]
        if self.rng.random() < 0.8:
            text = mutate_trace(self.rng, text)
            raw = text.encode("utf-8", "surrogatepass")
        else:
            raw = mutate_bytes(self.rng, text.encode())
        f = self._file("trace.txt", raw)
        self.check("read_trace", lambda: trace.read_trace(f).summary(), raw)
        gap = self.rng.choice([0, 50, 1e12, -1, float("nan"), "5", None, True])
        self.check("parse_text+summarise", lambda: trace.summarise(trace.parse_text(text), burst_gap_us=gap), raw)
        if self.cli_due():
            self.cli("trace", [f], raw)

    def capture(self) -> None:
        cap = self.rng.choice(self.captures)
        d = self.work / "cap"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        meta = json.loads((cap / "meta.json").read_text())
        raw = json_text(self.rng, mutate_data(self.rng, meta, self.rng.random() < 0.5)) if self.rng.random() < 0.8 else \
            mutate_bytes(self.rng, (cap / "meta.json").read_bytes())
        (d / "meta.json").write_bytes(raw)
        src = trace.capture_trace(cap)
        shutil.copy(src, d / src.name)

        def replayed():
            m = replay.load_meta(d)
            replay.group_captures([d])
            sc, r = replay.simulate(m, str(d / "meta.json"), self.work / "sim.trace.txt", overrides=BUDGET)
            if not r.limit:
                replay.metrics(self.work / "sim.trace.txt")
            return r

        self.check("capture replay", replayed, raw)
        if self.cli_due():
            self.cli("validate", ["validate", d, "--out", self.work / "val", "--max-events", "3000",
                                  "--max-wall-s", "2"], raw)

    def results_json(self) -> None:
        data = json.loads(self.results)
        light = self.rng.random() < 0.5
        raw = json_text(self.rng, mutate_data(self.rng, data, light)) if self.rng.random() < 0.85 else \
            mutate_bytes(self.rng, self.results)
        f = self._file("results.json", raw)
        gen = _report_generator()
        self.check("report", lambda: gen.generate(f, self.work / "report"), raw)
        if self.cli_due():
            self.cli("report", ["report", f, "--out", self.work / "report"], raw)

    def measurements(self) -> None:
        """Saved ppsim_calibrate output, as `ppsim calibrate --from FILE` reads it."""
        from ppsim import calibrate

        data = mutate_data(self.rng, MEASUREMENTS, self.rng.random() < 0.5)
        raw = json_text(self.rng, data)
        f = self._file("measurements.json", raw)

        def use():
            from ppsim import strict_json

            return calibrate.from_saved(strict_json.load_file(f), str(f))

        self.check("calibrate --from", use, raw)
        if self.cli_due():
            self.cli("calibrate", ["calibrate", "--from", f, "--out", self.work / "prof.json"], raw)

    def pcie_link(self) -> None:
        kw = {}
        for name in self.rng.sample(["gen", "lanes", "mps", "mrrs", "rcb", "completion_split", "addr_bits",
                                     "mmio_addr_bits", "ecrc", "latency", "read_rtt_ns", "write_latency_ns",
                                     "max_tags", "compat_pcie_bench"], self.rng.randint(0, 4)):
            kw[name] = random_value(self.rng)
        size = self.rng.choice(WEIRD_NUMBERS + ["64", None, 1500, 64])
        op = self.rng.choice(["dma_write", "mmio_read", "msix", "nope", 3])

        def use():
            link = pcie.Link(**kw)
            link.describe()
            link.dma_read_gbps(size)
            link.nic_gbps(self.rng.choice(["simple", "kernel", "dpdk", "x"]), size, self.rng.choice(["rx", "both", 1]))
            link.cost(op, size)
            return link.sweep([size, 64], self.rng.choice([("rx",), ("tx", "both"), "rx", ["up"]]))

        self.check("pcie.Link", use, json.dumps(kw, default=str) + f" size={size!r} op={op!r}")
        if self.cli_due():
            self.cli("pcie", ["pcie", "--gen", self.rng.choice(["3", "0", "99999999999999999999", "x", "-1"]),
                              "--sizes", self.rng.choice(["64,1500", "0", "", "1e3", "9" * 30, ",,"]),
                              "--read-rtt-ns", self.rng.choice(["546", "nan", "1e400", "-5"])], "pcie cli")

    def cli_due(self) -> bool:
        return self.cli_every > 0 and self.rng.randrange(self.cli_every) == 0

    def one(self) -> None:
        k = self.rng.random()
        if k < 0.30:
            self.scenario()
        elif k < 0.45:
            self.scenario_dict()
        elif k < 0.50:
            self.machine_profile()
        elif k < 0.72:
            self.trace_text()
        elif k < 0.84:
            self.capture()
        elif k < 0.90:
            self.results_json()
        elif k < 0.94:
            self.measurements()
        else:
            self.pcie_link()


_GEN = None


def _report_generator():
    global _GEN
    if _GEN is None:
        from ppsim.cmd_report import load_generator

        _GEN = load_generator()
    return _GEN


def fuzz(inputs: int, seed: int = 1, workdir: Path | None = None, cli_every: int = 25,
         verbose: bool = False, progress: bool = False) -> Report:
    """Runs at least `inputs` inputs (a draw may feed one input to several consumers)."""
    tmp = tempfile.TemporaryDirectory(prefix="ppsim-fuzz-") if workdir is None else None
    work = Path(tmp.name) if tmp else Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    f = Fuzzer(seed, work, cli_every, verbose)
    t0, last = time.monotonic(), 0.0
    try:
        while f.report.inputs < inputs:
            f.one()
            if progress and time.monotonic() - last > 30:
                last = time.monotonic()
                print(f"  ... {f.report.summary()} ({last - t0:.0f} s)", flush=True)
    finally:
        if tmp and not f.report.failures:
            tmp.cleanup()
    return f.report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cli-every", type=int, default=25, help="one CLI subprocess per this many draws (0: none)")
    ap.add_argument("--workdir", type=Path, default=None, help="keep inputs and failures here")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    t0 = time.monotonic()
    r = fuzz(a.inputs, a.seed, a.workdir, a.cli_every, a.verbose, progress=True)
    print(f"python fuzz: {r.summary()} in {time.monotonic() - t0:.0f} s")
    print("  by consumer (worked/inputs): " + ", ".join(f"{k} {r.worked_by_kind[k]}/{v}" for k, v in sorted(r.by_kind.items())))
    for key, (what, path, n) in r.failures.items():
        print(f"  FAILURE x{n} {key}\n    {what}\n    input: {path}")
    return 1 if r.failures else 0


if __name__ == "__main__":
    sys.exit(main())
