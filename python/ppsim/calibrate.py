"""Host calibration for the cacheline model: runs the native `ppsim_calibrate` tool and turns its
measurements into a machine profile (docs/coherence.md, "Profile format").

    >>> meas = measure(reps=7)                 # runs $PPSIM_BUILD/tools/calibrate/ppsim_calibrate
    >>> prof = make_profile(meas, name="host")
    >>> write_profile(prof, "scenarios/machines/host.json")

Every figure in the profile is a median over repetitions; `table(meas)` gives medians and spread.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ppsim._native import REPO, BuildMissing, build_dir
from ppsim.errors import InputError

DEFAULT_OUT = REPO / "scenarios" / "machines" / "host.json"
CLASSES = ("smt", "domain", "socket", "remote")


def binary() -> Path:
    """The native tool; BuildMissing (exit code 3) with a hint when it is not built."""
    exe = build_dir() / "tools" / "calibrate" / "ppsim_calibrate"
    if not exe.is_file() or not os.access(exe, os.X_OK):
        raise BuildMissing(
            f"ppsim_calibrate is not built (looked for {exe}): run `cmake --build {build_dir()} "
            f"--target ppsim_calibrate` (or `make build`) in {REPO}, or set PPSIM_BUILD to your build directory"
        )
    return exe


def _run(args: list[str]) -> dict:
    proc = subprocess.run([str(binary()), *args], capture_output=True, text=True)
    if proc.returncode == 2:
        raise InputError(proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else "ppsim_calibrate: bad arguments")
    if proc.returncode != 0:
        raise RuntimeError(f"ppsim_calibrate failed (exit {proc.returncode}): {proc.stderr.strip()}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise RuntimeError(f"ppsim_calibrate printed malformed JSON: {e}") from None


def host_topology() -> dict:
    """The host's topology as the native tool reads it from sysfs ({"cpus": [...], "source"})."""
    return _run(["--only", "topology"])["host"]["topology"]


def distance(a: dict, b: dict) -> str:
    if a["cpu"] == b["cpu"]:
        return "local"
    if a["core"] == b["core"]:
        return "smt"
    if a["domain"] == b["domain"]:
        return "domain"
    if a["socket"] == b["socket"]:
        return "socket"
    return "remote"


def representative_cpus(topo: dict, limit: int = 8) -> list[int]:
    """OS CPU numbers covering every distance class from the first CPU (SMT sibling, same cache
    domain, other domain, other socket), topped up with further CPUs up to `limit`."""
    cpus = topo["cpus"]
    first = cpus[0]
    chosen = [first]
    for cls in CLASSES:
        for c in cpus[1:]:
            if distance(first, c) == cls and c not in chosen:
                chosen.append(c)
                break
    for c in cpus:
        if len(chosen) >= limit:
            break
        if c not in chosen:
            chosen.append(c)
    return [c.get("os_cpu", c["cpu"]) for c in chosen]


GROUPS = ("transfer", "atomic", "stream", "ring", "chase", "memcpy", "page", "base", "zerocopy")


def measure(reps: int = 7, quick: bool = False, cpus: list[int] | None = None, only: str | None = None) -> dict:
    """Runs the native tool on this host and returns its JSON measurements (one group with `only`)."""
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise InputError(f"--reps: expected a positive integer, got {reps!r}")
    if only is not None and only not in GROUPS:
        raise InputError(f"--only: expected one of {', '.join(GROUPS)}, got {only!r}")
    if cpus is None:
        cpus = representative_cpus(host_topology())
    args = ["--reps", str(reps), "--cpus", ",".join(str(c) for c in cpus)]
    if quick:
        args.append("--quick")
    if only:
        args += ["--only", only]
    return _run(args)


ZC_SIZES = (4096, 16384, 65536)


def zerocopy_costs(meas: dict) -> dict:
    """The zero-copy model's costs (the names sim/cost/zerocopy.h and the zerocopy.* parameters
    use, in ns and ns/KiB) fitted from the `zerocopy` measurements: per call and per page from
    the 1- and 32-page map/unmap, the shootdown as the remote unmap's excess, the copy's fixed part
    as a one-byte read(), its per-byte part as memcpy's slope from 4 to 64 KiB, and its per-page
    part from a 128 KiB read (none of these is a size the native composites use)."""
    z = meas.get("zerocopy") if isinstance(meas, dict) else None
    if not isinstance(z, dict) or "map_ns" not in z:
        raise InputError("calibration data: no zerocopy measurements (run with --only zerocopy or all groups)")
    if "error" in z:
        raise InputError(f"calibration data: the zerocopy measurements failed: {z['error']}")
    med = lambda *path: _median(z, *path)
    map1, map32 = med("map_ns", "1"), med("map_ns", "32")
    un1, un32 = med("unmap_ns", "1"), med("unmap_ns", "32")
    map_pp, un_pp = max(0.0, (map32 - map1) / 31), max(0.0, (un32 - un1) / 31)
    mc4, mc64 = med("memcpy_ns", "4096"), med("memcpy_ns", "65536")
    costs = {
        "map_fixed_ns": max(0.0, map1 - map_pp),
        "map_per_page_ns": map_pp,
        "unmap_fixed_ns": max(0.0, un1 - un_pp),
        "unmap_per_page_ns": un_pp,
        "shootdown_ns": max(0.0, med("unmap_remote_ns", "1") - un1) if "unmap_remote_ns" in z else 0.0,
        # The remote unmap's excess at 32 pages over 1 page, per page, beyond the local per-page cost.
        "shootdown_per_page_ns": (max(0.0, ((med("unmap_remote_ns", "32") - un32) - (med("unmap_remote_ns", "1") - un1)) / 31)
                                  if "32" in (z.get("unmap_remote_ns") or {}) else 0.0),
        "clear_ns_per_kib": med("clear_4k_ns") / 4,
        "copy_fixed_ns": med("read_1b_ns"),
        "copy_ns_per_kib": max(0.0, (mc64 - mc4) / 60),
    }
    # The kernel's copy costs more per page than memcpy's bytes: a 128 KiB read's excess over the
    # one-byte read and the bytes, per page.
    costs["copy_per_page_ns"] = (max(0.0, (med("read_128k_ns") - costs["copy_fixed_ns"] - 128 * costs["copy_ns_per_kib"]) / 32)
                                 if "read_128k_ns" in z else 0.0)
    return {k: round(v, 3) for k, v in costs.items()}


def zerocopy_comparison(meas: dict) -> list[dict]:
    """Per size: the native copy-to-user (pread) and map/unmap (with a shootdown) against what the
    model (the compiled sim/cost/zerocopy.h) charges with the fitted costs."""
    from ppsim._native import core

    costs = zerocopy_costs(meas)
    z = meas["zerocopy"]
    if "map_unmap_ns" not in z or "copy_to_user_ns" not in z:
        raise InputError("calibration data: the native zero-copy comparison needs two CPUs (--cpus A,B)")
    rows = []
    for size in ZC_SIZES:
        model = core().zerocopy.predict(costs, size, 1)
        for kind, native_key, model_key in (("copy_to_user", "copy_to_user_ns", "copy_to_user_ns"),
                                            ("map_unmap", "map_unmap_ns", "map_unmap_ns")):
            native = _median(z, native_key, str(size))
            rows.append({"bytes": size, "path": kind, "native_ns": native, "model_ns": model[model_key],
                         "error": (model[model_key] - native) / native if native else 0.0})
    return rows


def _median(meas: dict, *path: str) -> float:
    node = meas
    for p in path:
        if p not in node:
            raise InputError(f"calibration data: missing {'.'.join(path)}")
        node = node[p]
    return float(node["median"])


def make_profile(meas: dict, name: str = "host") -> dict:
    """A machine profile (the format MachineProfile::from_json reads) from measurements."""
    if not isinstance(meas, dict) or meas.get("tool") != "ppsim_calibrate":
        raise InputError("calibration data: expected the JSON that ppsim_calibrate prints")
    topo = meas["host"]["topology"]
    places = topo["cpus"]
    by_os = {p.get("os_cpu", p["cpu"]): p for p in places}
    n = len(places)
    matrix: list[list[float | None]] = [[None] * n for _ in range(n)]
    for i in range(n):
        matrix[i][i] = 0.0
    per_class: dict[str, list[float]] = {c: [] for c in CLASSES}
    for pair in meas.get("transfer_ns", []):
        a, b = by_os.get(pair["os_cpu_a"]), by_os.get(pair["os_cpu_b"])
        if a is None or b is None:
            raise InputError(f"calibration data: CPU pair {pair['os_cpu_a']},{pair['os_cpu_b']} is not in the topology")
        v = float(pair["median"])
        matrix[a["cpu"]][b["cpu"]] = matrix[b["cpu"]][a["cpu"]] = v
        per_class[distance(a, b)].append(v)
    present = {distance(a, b) for a in places for b in places if a["cpu"] != b["cpu"]}
    stamp = f"ppsim calibrate on {meas['host'].get('cpu_model', '?')} (load {meas['host'].get('loadavg_before', '?')})"
    latency: dict[str, float] = {}
    sources: dict[str, str] = {}
    for cls in CLASSES:
        vals = sorted(per_class[cls])
        if vals:
            latency[f"transfer_{cls}"] = vals[len(vals) // 2]
            sources[f"latency_ns.transfer_{cls}"] = f"{stamp}: median of {len(vals)} CPU pair(s), CAS ping-pong / 2"
        elif cls in present:
            raise InputError(f"calibration data: the topology has CPU pairs at distance '{cls}' but none was "
                             f"measured (pass --cpus with such a pair)")
    chase = meas.get("chase_ns", {})
    latency["llc_hit"] = _median(meas, "chase_ns", "4MiB") if "4MiB" in chase else 0.0
    latency["dram"] = _median(meas, "chase_ns", "256MiB") if "256MiB" in chase else 0.0
    sources["latency_ns.llc_hit"] = f"{stamp}: dependent loads over 4 MiB (assumed to fit the LLC)"
    sources["latency_ns.dram"] = f"{stamp}: dependent loads over 256 MiB (4 KiB pages: includes TLB misses)"
    nodes = {p["node"] for p in places}
    if len(nodes) > 1 or len({p["socket"] for p in places}) > 1:
        latency["dram_remote"] = round(latency["dram"] * 1.6, 3)
        sources["latency_ns.dram_remote"] = "assumption: 1.6 x local DRAM (remote DRAM is not measured)"
    if "atomic_uncontended_ns" in meas:
        latency["atomic"] = _median(meas, "atomic_uncontended_ns")
        sources["latency_ns.atomic"] = f"{stamp}: lock xadd on a private line"
    base = {}
    b = meas.get("base_ns", {})
    if b:
        lifo = _median(meas, "base_ns", "alloc_fast_plus_recycle_direct")
        base = {"alloc_fast": lifo / 2, "recycle_direct": lifo / 2,
                "refill_per_page": _median(meas, "base_ns", "refill_per_page"),
                "recycle_ring": _median(meas, "base_ns", "recycle_ring"),
                "queue_enqueue": _median(meas, "base_ns", "queue_enqueue"),
                "queue_dequeue": _median(meas, "base_ns", "queue_dequeue"),
                "page_ref_read": _median(meas, "base_ns", "page_ref_read")}
        sources["base_ns"] = (f"{stamp}: single-core loops over tools/calibrate/recycle_kernels.h; the LIFO "
                              "pop+push pair is split evenly between alloc_fast and recycle_direct")
    for key, meas_key, what in (("stream_line", "stream_read_ns_per_line",
                                 "in-order reads of 64 lines another CPU just wrote, per line"),
                                ("store_miss", "store_miss_ns_per_line",
                                 "one store into each of 64 lines another CPU just wrote (shuffled, then a fence), per line")):
        if meas_key in meas:
            latency[key] = _median(meas, meas_key)
            sources[f"latency_ns.{key}"] = f"{stamp}: {what}"
    sources["ddio"] = "not measurable from user space: off (set coherence.ddio in a scenario)"
    prof = {
        "name": name,
        "description": f"Measured by `ppsim calibrate` on this host: {meas['host'].get('cpu_model', '?')}, "
                       f"{n} CPUs. {topo.get('source', '')}",
        "topology": {"cpus": places, "source": topo.get("source", "host")},
        "latency_ns": {k: round(v, 3) for k, v in latency.items()},
        "transfer_matrix_ns": [[None if v is None else round(v, 3) for v in row] for row in matrix],
        "ddio": {"enabled": False, "nic_domain": 0},
        "sources": sources,
        "measurements": {k: v for k, v in meas.items() if k not in ("tool",)},
    }
    if base:
        prof["base_ns"] = {k: round(v, 3) for k, v in base.items()}
    if isinstance(meas.get("zerocopy"), dict) and "map_ns" in meas["zerocopy"]:
        prof["zerocopy"] = {
            "costs": zerocopy_costs(meas),
            "source": f"{stamp}: mmap(MAP_POPULATE)/munmap of memfd page-cache pages at 1 and 32 pages, munmap with "
                      "a thread of the process spinning on a second CPU, memcpy at 4 and 64 KiB, a one-byte read(), "
                      "memset of 4 KiB (tools/calibrate/zerocopy_bench.h)",
        }
        if "map_unmap_ns" in meas["zerocopy"]:
            prof["zerocopy"]["comparison"] = zerocopy_comparison(meas)
    return prof


def from_saved(meas, source: str, name: str = "host") -> tuple[dict, list]:
    """make_profile and table for measurements read from a file (`calibrate --from`): the format
    is the native tool's output, checked as it is read, so anything that does not fit it is an
    InputError naming the file rather than the KeyError or TypeError of the field read."""
    try:
        return make_profile(meas, name=name), table(meas)
    except InputError as e:
        raise InputError(f"--from {source}: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as e:
        what = f"missing {e}" if isinstance(e, KeyError) else str(e)
        raise InputError(f"--from {source}: not the measurements ppsim_calibrate prints ({type(e).__name__}: "
                         f"{what[:120]})") from None


def write_profile(profile: dict, out: str | os.PathLike) -> Path:
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(profile, indent=1) + "\n")
    except OSError as e:
        raise InputError(f"--out: cannot write {path}: {e.strerror}") from None
    return path


def table(meas: dict) -> list[tuple[str, str, float, float, float, float]]:
    """Rows (figure, unit, median, p10, p90, spread %) for every measurement."""
    rows = []

    def add(label: str, unit: str, s: dict) -> None:
        med = float(s["median"])
        spread = 100.0 * (float(s["p90"]) - float(s["p10"])) / med if med else 0.0
        rows.append((label, unit, med, float(s["p10"]), float(s["p90"]), spread))

    for pair in meas.get("transfer_ns", []):
        add(f"transfer cpu{pair['os_cpu_a']}<->cpu{pair['os_cpu_b']} (one-way)", "ns", pair)
    for key, label in (("atomic_uncontended_ns", "atomic inc, uncontended"),
                       ("atomic_contended_ns", "atomic inc, 2 CPUs contending"),
                       ("ring_handoff_ns_per_item", "ptr_ring handoff A->B, per item"),
                       ("stream_read_ns_per_line", "64 remote-dirty lines, in-order reads, per line"),
                       ("store_miss_ns_per_line", "64 remote-dirty lines, shuffled stores, per line")):
        if key in meas:
            add(label, "ns", meas[key])
    for size, s in meas.get("chase_ns", {}).items():
        add(f"load latency, {size} working set", "ns", s)
    for size, s in meas.get("memcpy_gbps", {}).items():
        add(f"memcpy {size}", "GB/s", s)
    for key, s in meas.get("page_ns", {}).items():
        if isinstance(s, dict):
            add(f"page: {key} (approximation)", "ns", s)
    for key, s in meas.get("base_ns", {}).items():
        add(f"base (1 CPU): {key}", "ns", s)
    z = meas.get("zerocopy", {})
    if isinstance(z, dict):
        for key, label in (("read_1b_ns", "zero-copy: read() of 1 byte"), ("clear_4k_ns", "zero-copy: clear 4 KiB")):
            if key in z:
                add(label, "ns", z[key])
        for group, label in (("memcpy_ns", "memcpy {} B"), ("map_ns", "mmap+populate {} page(s)"),
                             ("unmap_ns", "munmap {} page(s)"), ("unmap_remote_ns", "munmap {} page(s), mm on 2 CPUs"),
                             ("copy_to_user_ns", "native: pread {} B"), ("map_unmap_ns", "native: map+unmap {} B, 2 CPUs")):
            for size, s in z.get(group, {}).items():
                add("zero-copy: " + label.format(size), "ns", s)
    return rows
