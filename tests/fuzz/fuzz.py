#!/usr/bin/python3
"""Runs the libFuzzer targets of a PPSIM_FUZZ build and reports executions and distinct failures.

    tests/fuzz/fuzz.py --build build-san --targets fuzz_scenario --runs=20000   # ctest's short form
    tests/fuzz/fuzz.py --build build-san --runs=1000000 --merge                 # make fuzz

Each target reads its committed corpus (tests/fuzz/corpus/<target>, never written unless --merge)
and writes what it discovers to BUILD/fuzz-work/<target>/new. A crash, a sanitizer report, an
uncaught exception, a timeout or running out of memory is a failure: its input is kept in
BUILD/fuzz-work/<target>/artifacts and the target is restarted for the remaining executions, so
one bug does not hide the next (at most --max-failures restarts). --merge (or --merge-only, after
a run) folds the committed and the new corpus into a minimal one (-merge=1, by edges) and
replaces the committed corpus with it, keeping the seed_* files made from shipped inputs.
Exit code 0 when no target failed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {  # name: (dictionary, max input length)
    "fuzz_scenario": ("scenario.dict", 8192),
    "fuzz_units": ("scenario.dict", 256),
    "fuzz_machine_profile": ("machine.dict", 16384),
    "fuzz_cpu_list": (None, 256),
    "fuzz_world": ("scenario.dict", 8192),
}
# make fuzz (--long): fuzz_world runs a SystemC world per input, a few hundred per second at best,
# so it runs at most this many.
LONG_RUNS = {"fuzz_world": 100_000}


def parse_failure(out: str) -> str:
    """A key that tells failures apart: the sanitizer's summary and the first frame in ppsim."""
    lines = out.splitlines()
    summary = next((ln for ln in lines if ln.startswith("SUMMARY:")), "")
    thrown = next((ln.strip() for ln in lines if ln.strip().startswith("what():")), "")
    kind = next((ln for ln in lines if "runtime error:" in ln or "ERROR: AddressSanitizer" in ln
                 or "ERROR: LeakSanitizer" in ln), "")
    # The first frame in ppsim's own sources (not the sanitizer, libFuzzer or the C++ runtime).
    src = r"/(?:sim|models|tools|tests|python)/[\w/]+\.(?:cc|h):\d+"
    frame = next((m.group(1) for m in re.finditer(r"#\d+ 0x[0-9a-f]+ in (.+?) \S*" + src, out)), "")
    key = " ".join(x.strip() for x in (summary, thrown, kind.split("runtime error:")[-1] if kind else "") if x)
    key = re.sub(r"0x[0-9a-f]+", "0x", key)
    key = re.sub(r"==\d+==", "", key)
    frame = re.sub(r"\(.*\)", "(...)", frame)[:160]
    return f"{key} @ {frame}" if frame else key or "unknown failure (see the log)"


def executed(out: str) -> int:
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", out)
    if m:
        return int(m.group(1))
    status = re.findall(r"^#(\d+)\s", out, re.M)
    return int(status[-1]) if status else 0


def run_target(build: Path, name: str, runs: int | None, seconds: float | None, seed: int, max_failures: int,
               verbose: bool, fresh: bool = False) -> tuple[int, dict[str, Path], float]:
    binary = build / "tests" / "fuzz" / name
    if not binary.exists():
        sys.exit(f"fuzz.py: {binary} is not built (make sanitize builds the fuzz targets)")
    dict_name, max_len = TARGETS[name]
    work = build / "fuzz-work" / name
    new, artifacts = work / ("new-short" if fresh else "new"), work / "artifacts"
    if fresh:  # a short run starts from the committed corpus alone, so its length does not grow
        shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    corpus = HERE / "corpus" / name
    total, failures, t0 = 0, {}, time.monotonic()
    attempt = 0
    while True:
        args = [str(binary), f"-seed={seed + attempt}", f"-max_len={max_len}", "-timeout=20", "-rss_limit_mb=2560",
                "-print_final_stats=1", f"-artifact_prefix={artifacts}/", "-reduce_inputs=1"]
        if dict_name:
            args.append(f"-dict={HERE / dict_name}")
        if runs is not None:
            args.append(f"-runs={runs - total}")
        if seconds is not None:
            args.append(f"-max_total_time={max(1, int(seconds - (time.monotonic() - t0)))}")
        args += [str(new), str(corpus)]
        p = subprocess.run(args, capture_output=True, text=True, errors="replace")
        out = p.stdout + p.stderr
        total += executed(out)
        if verbose:
            print(out[-3000:])
        if p.returncode == 0:
            break
        key = parse_failure(out)
        log = artifacts / f"failure-{len(failures) + 1}.log"
        log.write_text(out)
        failures.setdefault(key, log)
        print(f"  {name}: FAILURE after {total} executions: {key}\n    log: {log}", flush=True)
        attempt += 1
        done = (runs is not None and total >= runs) or (seconds is not None and time.monotonic() - t0 >= seconds)
        if done or attempt >= max_failures:
            break
    return total, failures, time.monotonic() - t0


def merge(build: Path, name: str) -> tuple[int, int]:
    """Minimal corpus covering the committed and the new inputs; replaces the committed one."""
    corpus, new = HERE / "corpus" / name, build / "fuzz-work" / name / "new"
    merged = build / "fuzz-work" / name / "merged"
    shutil.rmtree(merged, ignore_errors=True)
    merged.mkdir(parents=True)
    binary = build / "tests" / "fuzz" / name
    dict_name, max_len = TARGETS[name]
    # Edges only (no hit counts, comparisons or value profiles): the smallest corpus that still
    # reaches every edge the fuzzer reached, a few hundred small files per target.
    subprocess.run([str(binary), "-merge=1", "-use_counters=0", "-use_cmp=0", "-use_value_profile=0",
                    f"-max_len={max_len}", str(merged), str(corpus), str(new)], capture_output=True, check=True)
    before = len(list(corpus.iterdir()))
    # Keep the seeds made from shipped files under their names; the rest by content hash.
    seeds = {f.name for f in corpus.iterdir() if f.name.startswith("seed_")}
    for f in corpus.iterdir():
        if not f.name.startswith("seed_"):
            f.unlink()
    seed_bytes = {(corpus / s).read_bytes() for s in seeds}
    for f in merged.iterdir():
        if f.read_bytes() not in seed_bytes:
            shutil.copy(f, corpus / f.name)
    return before, len(list(corpus.iterdir()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", type=Path, required=True, help="the PPSIM_FUZZ build directory (build-san)")
    ap.add_argument("--targets", default=",".join(TARGETS), help="comma-separated targets (default: all)")
    ap.add_argument("--runs", type=int, default=None, help="executions per target")
    ap.add_argument("--time", type=float, default=None, help="seconds per target")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-failures", type=int, default=10, help="restarts after failures, per target")
    ap.add_argument("--merge", action="store_true", help="minimize the new inputs into the committed corpus")
    ap.add_argument("--merge-only", action="store_true", help="merge what earlier runs found, without fuzzing")
    ap.add_argument("--long", action="store_true", help="use the long-form run count of slow targets")
    ap.add_argument("--short", action="store_true",
                    help="start from the committed corpus only (ctest), not from what earlier runs found")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if a.runs is None and a.time is None and not a.merge_only:
        ap.error("give --runs or --time")
    names = [t for t in a.targets.split(",") if t]
    for t in names:
        if t not in TARGETS:
            ap.error(f"unknown target {t!r} (known: {', '.join(TARGETS)})")
    grand, bad = 0, 0
    for name in names:
        if a.merge_only:
            before, after = merge(a.build, name)
            print(f"{name}: corpus {before} -> {after} files")
            continue
        runs = min(a.runs, LONG_RUNS.get(name, a.runs)) if a.long and a.runs else a.runs
        total, failures, secs = run_target(a.build, name, runs, a.time, a.seed, a.max_failures, a.verbose, a.short)
        grand += total
        bad += len(failures)
        line = f"{name}: {total} executions in {secs:.0f} s, {len(failures)} distinct failure(s)"
        if a.merge:
            before, after = merge(a.build, name)
            line += f"; corpus {before} -> {after} files"
        print(line, flush=True)
        for key, log in failures.items():
            print(f"  {key}\n    log: {log}")
    print(f"all targets: {grand} executions, {bad} distinct failure(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
