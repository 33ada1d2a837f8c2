"""Scenarios in, results out: the Python face of the compiled core."""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ppsim import strict_json
from ppsim._native import core
from ppsim.errors import InputError, one_line

SEED_MAX = 2**63 - 1
SEED_EXPECTED = "expected an integer from 0 to 9223372036854775807 (2^63-1, the range of sim.seed)"
CHECKERS = ("stop", "collect", "off")


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed as sim.seed takes it: an integer 0..2^63-1; InputError naming `name` otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"{name}: {SEED_EXPECTED}, got {strict_json.type_name(seed)}")
    if not 0 <= seed <= SEED_MAX:
        got = str(seed) if seed.bit_length() <= 128 else ("a number below 0" if seed < 0 else "a number above it")
        raise InputError(f"{name}: {SEED_EXPECTED}, got {got}")
    return seed


def load_scenario(source: str | Path | Mapping[str, Any]) -> tuple[dict, str]:
    """A scenario as (dict, name for messages) from a path or a dict. Raises InputError for a file
    that cannot be read or is not strict JSON (a repeated key, NaN, binary bytes) and for a dict
    that is not JSON data."""
    if isinstance(source, Mapping):
        data = dict(source)
        strict_json.check_data(data, "<scenario>")
        return copy.deepcopy(data), "<scenario>"
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(f"scenario: expected a file path or a dict, got {type(source).__name__}")
    path = Path(source)
    data = strict_json.load_file(path, what="scenario file")
    if not isinstance(data, dict):
        raise InputError(f"{path}: at $: expected a JSON object, got {strict_json.type_name(data)}")
    return data, str(path)


def set_path(scenario: dict, dotted: str, value: Any, label: str | None = None) -> None:
    """scenario["a"]["b"] = value for "a.b", creating sections as needed. An object value sets each
    of its parameters (a.b={"c": 1} is a.b.c=1); replacing a whole section with anything else, or
    setting inside a parameter, is an InputError naming `label` (default "override PATH")."""
    label = label or f"override {dotted}"
    if not isinstance(dotted, str) or not dotted or any(not part for part in dotted.split(".")):
        raise InputError(f"{label}: expected a dotted parameter path such as page_pool.pool_size_pages, "
                         f"got {dotted!r:.60}")
    strict_json.check_data(value, label, "$." + dotted)
    if isinstance(value, dict):
        if not value:
            raise InputError(f"{label}: at $.{dotted}: expected parameters to set, got an empty object")
        for k, v in value.items():
            set_path(scenario, f"{dotted}.{k}", v, label)
        return
    node = scenario
    parts = dotted.split(".")
    for i, p in enumerate(parts[:-1]):
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise InputError(f"{label}: at $.{'.'.join(parts[:i + 1])}: expected a section, "
                             f"but the scenario has {strict_json.type_name(nxt)} there")
        node = nxt
    if isinstance(node.get(parts[-1]), dict):
        raise InputError(f"{label}: at $.{dotted}: is a section: set its parameters ({dotted}.NAME=VALUE), "
                         f"not {strict_json.type_name(value)}")
    node[parts[-1]] = value


def apply_overrides(scenario: dict, overrides: Mapping[str, Any], label: str = "override") -> None:
    """set_path for each item; the same parameter reached twice (a.b and a={"b": ...}, or a and
    a.b) is an InputError rather than a silent choice."""
    if not isinstance(overrides, Mapping):
        raise InputError(f"overrides: expected a dict of dotted path -> value, got {type(overrides).__name__}")
    seen: dict[str, str] = {}
    for k in overrides:
        if not isinstance(k, str):
            raise InputError(f"overrides: expected dotted paths (strings) as keys, got {type(k).__name__}")
    for k, v in overrides.items():
        for leaf in _leaves(k, v):
            for other, by in seen.items():
                if leaf == other or leaf.startswith(other + ".") or other.startswith(leaf + "."):
                    raise InputError(f"{label} {k}: sets $.{leaf}, which {label} {by} sets too")
            seen[leaf] = k
        set_path(scenario, k, v, f"{label} {k}")


def _leaves(dotted: str, value: Any) -> list[str]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(f"{dotted}.{k}", v)]
    return [dotted]


@dataclass
class Result:
    """What one run produced. `raw` is results.json as a dict."""

    raw: dict
    scenario: dict
    file: str
    trace_path: str | None = None
    _stats: dict = field(default=None, repr=False)

    @property
    def stats(self) -> dict[str, Any]:
        """{dotted name: value}."""
        if self._stats is None:
            self._stats = {k: v["value"] for k, v in self.raw["stats"].items()}
        return self._stats

    def unit(self, name: str) -> str:
        return self.raw["stats"][name]["unit"]

    @property
    def ok(self) -> bool:
        return bool(self.raw["invariants"]["ok"])

    @property
    def limit(self) -> dict | None:
        """None, or why a budget (sim.max_events, sim.max_wall_s, sim.max_memory_mib) stopped the
        run early: {"limit", "message", "at_ns", "events"}. Such a run's stats are partial."""
        return self.raw.get("run_limit")

    @property
    def violations(self) -> list[dict]:
        return list(self.raw["invariants"]["kept"])

    @property
    def seed(self) -> int:
        return int(self.raw["seed"])

    def series(self, name: str):
        """(times in microseconds, values) of a sampled time series."""
        s = self.raw["series"][name]
        return [t / 1e6 for t in s["t_ps"]], list(s["values"])

    def dataframe(self):
        """Every scalar stat as a pandas DataFrame with columns name, value, unit, doc."""
        import pandas as pd

        rows = [(k, v["value"], v["unit"], v["doc"]) for k, v in sorted(self.raw["stats"].items())]
        return pd.DataFrame(rows, columns=["name", "value", "unit", "doc"])

    def to_json(self) -> str:
        """results.json text: sorted keys, so equal runs give equal bytes."""
        return json.dumps(self.raw, indent=1, sort_keys=True) + "\n"


def run(
    scenario: str | Path | Mapping[str, Any],
    *,
    seed: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    trace: str | Path | None = None,
    mutants: Iterable[str] = (),
    checker: str = "",
    source: str | None = None,
    timeline: str | Path | None = None,
    timeline_max_events: int = 2_000_000,
) -> Result:
    """Run one scenario (a path or a dict). `overrides` maps dotted parameter paths to values;
    `source` names a dict scenario in messages and results (default "<scenario>"). `timeline`
    writes a Chrome/Perfetto trace-event JSON file of the run (open it in ui.perfetto.dev); it
    stops recording after `timeline_max_events` events and says so in its metadata.
    Raises InputError (with file, JSON path and what was expected) on bad input."""
    data, name = load_scenario(scenario)
    if source is not None:
        if not isinstance(source, str):
            raise InputError(f"source: expected a string naming the scenario, got {type(source).__name__}")
        name = source
    if overrides:
        apply_overrides(data, overrides)
    if seed is not None:
        check_seed(seed)
    if checker not in ("",) + CHECKERS:
        raise InputError(f"checker: expected one of {', '.join(CHECKERS)}, got {checker!r:.40}")
    if checker == "off":
        set_path(data, "sim.checker", "off", "checker")
        checker = ""
    mutants = _mutant_list(mutants)
    c = core()
    if mutants:
        known = [m["name"] for m in c.mutants()]
        for m in mutants:
            if m not in known:
                raise InputError(f"unknown mutant {m!r:.60} (known: {', '.join(known)})")
    if trace is not None and (not isinstance(trace, (str, os.PathLike)) or "\0" in os.fsdecode(trace)):
        raise InputError(f"trace: expected a file path, got {trace!r:.60}")
    trace_arg = os.fsencode(trace) if trace else b""
    if timeline is not None and (not isinstance(timeline, (str, os.PathLike)) or not os.fsdecode(timeline)
                                 or "\0" in os.fsdecode(timeline)):
        raise InputError(f"timeline: expected a file path, got {timeline!r:.60}")
    if isinstance(timeline_max_events, bool) or not isinstance(timeline_max_events, int) \
            or not 0 < timeline_max_events <= 20_000_000:
        raise InputError(f"timeline_max_events: expected an integer from 1 to 20000000 (each event takes ~40 bytes until the file is written), got {timeline_max_events!r:.40}")
    timeline_arg = os.fsencode(timeline) if timeline else b""
    try:
        out = c.run(strict_json.dumps(data), one_line(name), trace_arg, seed, mutants, checker,
                    timeline_arg, timeline_max_events)
    except c.ScenarioError as e:
        raise InputError(str(e)) from None
    return Result(raw=json.loads(out), scenario=data, file=name, trace_path=str(trace) if trace else None)


def _mutant_list(mutants: Any) -> list[str]:
    bad = InputError("mutants: expected a list of mutant names (see `ppsim mutants --list`)")
    if isinstance(mutants, (str, bytes)):
        raise bad
    try:
        out = list(mutants)
    except TypeError:
        raise bad from None
    if not all(isinstance(m, str) for m in out):
        raise bad
    return out


def sweep(scenario, grid: Mapping[str, Iterable[Any]], *, seeds: Iterable[int] = (None,), stats: Iterable[str] = (),
          workers: int = 1, cache: str | os.PathLike | None = None, progress: bool = False, dask: Any = None,
          info: Any = None):
    """Run the cartesian product of `grid` (dotted path → values) × seeds; return a DataFrame with
    one row per run: the swept values, the seed, `ok`, and the requested stats (all if empty).
    Parallel, cached and Dask runs: see ppsim.sweeps.sweep."""
    from ppsim.sweeps import sweep as run_sweep

    return run_sweep(scenario, grid, seeds=seeds, stats=stats, workers=workers, cache=cache, progress=progress,
                     dask=dask, info=info)
