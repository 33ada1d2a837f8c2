"""Scenarios in, results out: the Python face of the compiled core."""
from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from ppsim._native import core
from ppsim.errors import InputError


def load_scenario(source: str | Path | Mapping[str, Any]) -> tuple[dict, str]:
    """A scenario as (dict, name for messages) from a path or a dict."""
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source)), "<scenario>"
    path = Path(source)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: no such scenario file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: at $: expected a JSON object, got {type(data).__name__}")
    return data, str(path)


def set_path(scenario: dict, dotted: str, value: Any) -> None:
    """scenario["a"]["b"] = value for "a.b", creating sections as needed."""
    node = scenario
    parts = dotted.split(".")
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise InputError(f"override {dotted}: $.{p} is not a section")
        node = nxt
    node[parts[-1]] = value


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
) -> Result:
    """Run one scenario (a path or a dict). `overrides` maps dotted parameter paths to values.
    Raises InputError (with file, JSON path and what was expected) on bad input."""
    data, name = load_scenario(scenario)
    for k, v in (overrides or {}).items():
        set_path(data, k, v)
    c = core()
    try:
        out = c.run(json.dumps(data), name, str(trace) if trace else "", seed, list(mutants), checker)
    except c.ScenarioError as e:
        raise InputError(str(e)) from None
    return Result(raw=json.loads(out), scenario=data, file=name, trace_path=str(trace) if trace else None)


def sweep(scenario, grid: Mapping[str, Iterable[Any]], *, seeds: Iterable[int] = (None,), stats: Iterable[str] = ()):
    """Run the cartesian product of `grid` (dotted path → values) × seeds; return a DataFrame with
    one row per run: the swept values, the seed, `ok`, and the requested stats (all if empty)."""
    import pandas as pd

    keys = list(grid)
    rows = []
    wanted = list(stats)
    for combo in itertools.product(*(list(grid[k]) for k in keys)):
        for s in seeds:
            r = run(scenario, seed=s, overrides=dict(zip(keys, combo)))
            row = dict(zip(keys, combo))
            row["seed"] = r.seed
            row["ok"] = r.ok
            for k in wanted or sorted(r.stats):
                row[k] = r.stats[k]
            rows.append(row)
    return pd.DataFrame(rows)
