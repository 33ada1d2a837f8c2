"""The sweep report: a sweep directory (sweep.json + sweep.csv or .parquet, as `ppsim sweep` writes
it) → plots (a line per stat over a 1-D grid, a heatmap per stat over a 2-D grid; means over the
seeds) and report.html with the plots inline and the table with units.

    ./ppsim sweep ... --out DIR          (writes it at the end)
    ./ppsim report DIR --out DIR         (again, from the files)
"""
from __future__ import annotations

import re
from pathlib import Path

from ppsim import strict_json
from ppsim.errors import InputError

MAX_PLOTS = 12
MAX_TABLE_ROWS = 500
# Plotted when the sweep kept every stat: the ones a page_pool question usually starts from.
DEFAULT_PLOTS = ["page_pool.recycle_ratio", "page_pool.direct_ratio", "page_pool.pages_state_hold_cnt",
                 "page_pool.allocator_pages_per_alloc", "page_pool.recycle_ring_full", "nic0.rx_mpps",
                 "nic0.rx_gbps", "stack.rcvbuf_drops"]


def _load(run_dir: Path):
    import pandas as pd

    meta = strict_json.load_file(run_dir / "sweep.json", what="sweep.json")
    src = str(run_dir / "sweep.json")
    if not isinstance(meta, dict):
        raise InputError(f"{src}: at $: expected an object (is this a ppsim sweep.json?)")
    for key, kind, want in (("grid", dict, "an object"), ("table", str, "a file name"), ("units", dict, "an object"),
                            ("stats", list, "an array")):
        if not isinstance(meta.get(key), kind):
            raise InputError(f"{src}: at $.{key}: expected {want} (is this a ppsim sweep.json?)")
    table = run_dir / Path(meta["table"]).name
    try:
        df = pd.read_parquet(table) if table.suffix == ".parquet" else pd.read_csv(table)
    except (OSError, ValueError, ImportError) as e:
        raise InputError(f"{table}: cannot read the sweep table: {str(e)[:200]}") from None
    keys = [k for k in meta["grid"] if k in df.columns]
    if len(keys) != len(meta["grid"]) or "seed" not in df.columns:
        raise InputError(f"{table}: expected the columns {', '.join(list(meta['grid']) + ['seed'])}")
    return meta, df, keys


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)


def _plot_stats(meta: dict, df, keys: list) -> list[str]:
    skip = set(keys) | {"seed", "ok"}
    numeric = [c for c in df.columns if c not in skip and df[c].dtype.kind in "biuf"]
    want = [s for s in meta["stats"] if s in numeric] or [s for s in DEFAULT_PLOTS if s in numeric] or numeric
    return want[:MAX_PLOTS]


def _label(name: str, units: dict) -> str:
    u = units.get(name) or ""
    return f"{name} ({u})" if u else name


def _line(df, key: str, stat: str, units: dict, out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = df.groupby(key, sort=False)[stat]
    mean, lo, hi = g.mean(), g.min(), g.max()
    xs = list(mean.index)
    numeric_x = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
    pos = xs if numeric_x else list(range(len(xs)))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(pos, mean.values, marker="o", linewidth=1.4)
    if df["seed"].nunique() > 1:
        ax.fill_between(pos, lo.values, hi.values, alpha=0.2, label="min..max over seeds")
        ax.legend(fontsize=8)
    if not numeric_x:
        ax.set_xticks(pos, [str(x) for x in xs], rotation=30, ha="right")
    ax.set_xlabel(_label(key, units))
    ax.set_ylabel(_label(stat, units))
    ax.set_title(stat if df["seed"].nunique() == 1 else f"{stat} (mean over {df['seed'].nunique()} seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    name = f"line_{_safe(stat)}.png"
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return name


def _heatmap(df, keys: list, stat: str, units: dict, out: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ky, kx = keys
    ys, xs = list(df[ky].drop_duplicates()), list(df[kx].drop_duplicates())
    m = df.groupby([ky, kx], sort=False)[stat].mean().unstack(kx).reindex(index=ys, columns=xs)
    fig, ax = plt.subplots(figsize=(7, 4.8))
    im = ax.imshow(m.values.astype(float), aspect="auto", origin="lower", cmap="viridis")
    step_x, step_y = max(1, len(xs) // 12), max(1, len(ys) // 12)
    ax.set_xticks(range(0, len(xs), step_x), [str(x) for x in xs[::step_x]], rotation=30, ha="right")
    ax.set_yticks(range(0, len(ys), step_y), [str(y) for y in ys[::step_y]])
    ax.set_xlabel(_label(kx, units))
    ax.set_ylabel(_label(ky, units))
    if len(xs) * len(ys) <= 64:
        for i in range(len(ys)):
            for j in range(len(xs)):
                v = m.values[i, j]
                if v == v:  # dark text on the bright end of viridis, white on the dark end
                    ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7,
                            color="k" if im.norm(v) > 0.6 else "w")
    fig.colorbar(im, ax=ax, label=_label(stat, units))
    ax.set_title(stat if df["seed"].nunique() == 1 else f"{stat} (mean over {df['seed'].nunique()} seeds)", fontsize=10)
    fig.tight_layout()
    name = f"heatmap_{_safe(stat)}.png"
    fig.savefig(out / name, dpi=100)
    plt.close(fig)
    return name


def generate(run_dir: Path, out: Path | None = None) -> Path:
    """Write plots and report.html for the sweep in run_dir (into out, default run_dir)."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir
    meta, df, keys = _load(run_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as e:
        raise InputError(f"--out {out}: cannot create directory: {getattr(e, 'strerror', None) or e}") from None
    try:
        return _write(meta, df, keys, out)
    except OSError as e:
        raise InputError(f"--out {out}: cannot write the sweep report: {e.strerror}") from None


def _write(meta: dict, df, keys: list, out: Path) -> Path:
    from ppsim.html_page import esc, img, page, table

    units = {k: v for k, v in meta["units"].items() if isinstance(v, str)}
    plots: list[str] = []
    stats = _plot_stats(meta, df, keys)
    if len(keys) == 1:
        plots = [_line(df, keys[0], s, units, out) for s in stats]
    elif len(keys) == 2:
        plots = [_heatmap(df, keys, s, units, out) for s in stats]
    parts = []
    grid_desc = "; ".join(f"<code>{esc(k)}</code> = {esc(', '.join(map(str, v)))}" for k, v in meta["grid"].items())
    seeds = meta.get("seeds")
    parts.append(f"<p>Base scenario <code>{esc(meta.get('scenario', '?'))}</code>. Grid: {grid_desc}. "
                 f"Seeds: {esc(', '.join('scenario' if s is None else str(s) for s in seeds) if isinstance(seeds, list) else '?')}.</p>")
    where = f"Dask {meta['dask']}" if meta.get("dask") else f"{meta.get('workers', '?')} worker process(es)"
    parts.append(f"<p>{esc(meta.get('points', len(df)))} points ({esc(meta.get('computed', '?'))} run, "
                 f"{esc(meta.get('cached', '?'))} from the cache) in {esc(meta.get('wall_s', '?'))} s on {esc(where)}; "
                 f"ppsim {esc((meta.get('versions') or {}).get('ppsim', '?'))}.</p>")
    n_bad = int((df["ok"] == False).sum()) if "ok" in df.columns else 0  # noqa: E712 (a column, not a bool)
    parts.append(f'<p id="verdict" class="{"ok" if n_bad == 0 else "bad"}">Invariants: '
                 + ("held in every point." if n_bad == 0 else f"violated in {n_bad} of {len(df)} points.") + "</p>")
    if plots:
        parts.append("<h2>Plots</h2>")
        for p in plots:
            parts.append(img(out / p, p))
    else:
        parts.append(f"<p>No plots: {len(keys)}-dimensional grid (plots are drawn for 1-D and 2-D grids).</p>")
    parts.append("<h2>Table</h2>")
    if len(df) > MAX_TABLE_ROWS:
        parts.append(f"<p>First {MAX_TABLE_ROWS} of {len(df)} rows; every row is in <code>{esc(meta['table'])}</code>.</p>")
    shown = df.head(MAX_TABLE_ROWS)
    cols = list(shown.columns)
    rows = [[None if v != v else v for v in r] for r in shown.itertuples(index=False, name=None)]
    parts.append(table(cols, rows, [units.get(c, "") for c in cols]))
    path = out / "report.html"
    path.write_text(page(f"ppsim sweep: {Path(str(meta.get('scenario', 'sweep'))).stem}", "\n".join(parts)))
    return path
