"""The ppsim report generator: results.json → a Markdown report with plots, and the same as one
self-contained HTML page (report.html: plots inline, every stat with its unit).

    ./ppsim report build/demo --out reports/demo        (the CLI verb)
    reports.report.generate(Path("build/demo/results.json"), Path("reports/demo"))

The report states what was run, the page_pool counters under the kernel's names, where pages
came from and went to, the invariant verdict, and plots the pool's occupancy over time.
"""
from __future__ import annotations

import math
from pathlib import Path

from ppsim import strict_json
from ppsim.errors import InputError

MAX_RESULTS_BYTES = 1 << 30

ALLOC = [("alloc_fast", "alloc cache hits (and frag page reuse)"),
         ("alloc_slow", "bulk slow-path allocations (64 pages each)"),
         ("alloc_slow_high_order", "high-order slow-path allocations"),
         ("alloc_empty", "refills that found the ptr_ring empty"),
         ("alloc_refill", "refills from the ptr_ring"),
         ("alloc_waive", "pages released at refill: wrong NUMA node")]
RECYCLE = [("recycle_cached", "pages recycled into the alloc cache (direct)"),
           ("recycle_cache_full", "direct recycles that found the cache full"),
           ("recycle_ring", "pages recycled into the ptr_ring"),
           ("recycle_ring_full", "recycles that found the ring full: page released"),
           ("recycle_released_refcnt", "pages released: refcount was not 1")]


def _check(res, src: str) -> None:
    """Raises InputError unless `res` has what the report reads, with the types it needs."""
    def fail(path: str, want: str, got) -> InputError:
        return InputError(f"{src}: at {path}: expected {want}, got {strict_json.type_name(got)} "
                          "(is this a ppsim results.json?)")

    def need(obj: dict, key: str, path: str, kinds: tuple, want: str):
        if key not in obj:
            raise InputError(f"{src}: missing {path}.{key} (is this a ppsim results.json?)")
        v = obj[key]
        if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
            raise fail(f"{path}.{key}", want, v)
        return v

    num = (int, float)
    if not isinstance(res, dict):
        raise fail("$", "an object", res)
    stats = need(res, "stats", "$", (dict,), "an object of stats")
    for k, v in stats.items():
        if not isinstance(v, dict):
            raise fail(f"$.stats[{k!r:.60}]", "an object {value, unit, doc}", v)
        x = need(v, "value", f"$.stats[{k!r:.60}]", num, "a number")
        if not -1e300 <= x <= 1e300:
            raise fail(f"$.stats[{k!r:.60}].value", "a number of at most 1e300", x)
        need(v, "unit", f"$.stats[{k!r:.60}]", (str,), "a string")
    wanted = ["sim.end_time_ns", "page_pool.pages_state_hold_cnt", "page_pool.pages_state_release_cnt",
              "page_pool.allocations", "page_pool.allocator_pages_per_alloc", "page_pool.recycle_ratio",
              "page_pool.direct_ratio"] + ["page_pool." + k for k, _ in ALLOC + RECYCLE]
    if "nic0.rx_mpps" in stats:
        wanted.append("nic0.rx_gbps")
    for c in {k.split(".")[0] for k in stats if k.startswith("cpu") and k.endswith(".softirq_util")}:
        wanted += [c + ".softirq_busy_ns", c + ".process_busy_ns"]
    for k in wanted:
        if k not in stats:
            raise InputError(f"{src}: missing $.stats[{k!r}] (is this a ppsim results.json?)")
    sc = need(res, "scenario", "$", (dict,), "an object")
    need(sc, "name", "$.scenario", (str,), "a string")
    need(sc, "file", "$.scenario", (str,), "a string")
    if "description" in sc and not isinstance(sc["description"], (str, type(None))):
        raise fail("$.scenario.description", "a string", sc["description"])
    need(res, "seed", "$", (int,), "an integer")
    need(res, "ppsim_version", "$", (str,), "a string")
    inv = need(res, "invariants", "$", (dict,), "an object")
    if "enabled" in inv:
        need(inv, "enabled", "$.invariants", (bool,), "true or false")
    if inv.get("enabled", True):
        if not need(inv, "ok", "$.invariants", (bool,), "true or false"):
            need(inv, "violations", "$.invariants", (int,), "an integer")
            kept = need(inv, "kept", "$.invariants", (list,), "an array of violations")
            if not kept:
                raise InputError(f"{src}: at $.invariants.kept: expected the violations, got an empty array")
            v = kept[0]
            if not isinstance(v, dict):
                raise fail("$.invariants.kept[0]", "an object", v)
            for k in ("invariant", "subject", "event", "detail"):
                need(v, k, "$.invariants.kept[0]", (str,), "a string")
            need(v, "time_ps", "$.invariants.kept[0]", num, "a number")
            hist = need(v, "history", "$.invariants.kept[0]", (list,), "an array of strings")
            for i, h in enumerate(hist):
                if not isinstance(h, str):
                    raise fail(f"$.invariants.kept[0].history[{i}]", "a string", h)
        else:
            need(inv, "checks", "$.invariants", (int,), "an integer")
    series = res.get("series", {})
    if not isinstance(series, dict):
        raise fail("$.series", "an object", series)
    for name, ser in series.items():
        path = f"$.series[{name!r:.60}]"
        if not isinstance(ser, dict):
            raise fail(path, "an object {t_ps, values}", ser)
        t, vals = need(ser, "t_ps", path, (list,), "an array"), need(ser, "values", path, (list,), "an array")
        if len(t) != len(vals):
            raise InputError(f"{src}: at {path}: expected as many values ({len(vals)}) as times ({len(t)})")
        for key, arr in (("t_ps", t), ("values", vals)):
            for i, x in enumerate(arr):
                if isinstance(x, bool) or not isinstance(x, num) or not math.isfinite(x) or abs(x) > 1e300:
                    raise fail(f"{path}.{key}[{i}]", "a number", x)
    hists = res.get("histograms", {})
    if not isinstance(hists, dict):
        raise fail("$.histograms", "an object", hists)
    for name, h in hists.items():
        if not name.endswith(".poll_work"):
            continue
        path = f"$.histograms[{name!r:.60}]"
        if not isinstance(h, dict):
            raise fail(path, "an object {bins}", h)
        bins = need(h, "bins", path, (dict,), "an object of bin -> count")
        for b, n in bins.items():
            if not (b.isascii() and b.lstrip("-").isdigit() and len(b) <= 18):
                raise InputError(f"{src}: at {path}.bins: expected integer bins, got {b!r:.40}")
            if isinstance(n, bool) or not isinstance(n, num) or abs(n) > 1e300:
                raise fail(f"{path}.bins[{b!r}]", "a number", n)


def _fmt(v, unit=""):
    if isinstance(v, float) and v != int(v):
        s = f"{v:.4g}"
    else:
        s = f"{int(v):,}" if isinstance(v, (int, float)) else str(v)
    return f"{s} {unit}".strip()


def _plot_occupancy(res: dict, out: Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = res.get("series", {})
    names = [("page_pool.alloc_cache_pages", "alloc cache"), ("page_pool.ring_pages", "ptr_ring"),
             ("page_pool.pages_out", "out (NIC rings, stack, sockets)"), ("page_pool.inflight_pages", "inflight (hold - release)")]
    if not any(n in series for n, _ in names):
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for n, label in names:
        if n in series and series[n]["t_ps"]:
            ax.plot([t / 1e6 for t in series[n]["t_ps"]], series[n]["values"], label=label, linewidth=1.2)
    ax.set_xlabel("simulated time (us)")
    ax.set_ylabel("pages")
    ax.set_title("Where the pool's pages are")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = out / "occupancy.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _plot_poll_work(res: dict, out: Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hists = {k: v for k, v in res.get("histograms", {}).items() if k.endswith(".poll_work")}
    if not hists:
        return None
    fig, ax = plt.subplots(figsize=(8, 3))
    for name, h in sorted(hists.items()):
        xs = sorted(int(k) for k in h["bins"])
        ax.bar(xs, [h["bins"][str(x)] for x in xs], alpha=0.6, label=name.rsplit(".", 1)[0])
    ax.set_xlabel("packets per NAPI poll")
    ax.set_ylabel("polls")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "poll_work.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def generate(results: Path, out: Path) -> Path:
    """Write out/report.md (and PNG plots) for a results.json; returns the report path."""
    results = Path(results)
    if results.is_dir():
        results = results / "results.json"
    res = strict_json.load_file(results, what="results.json", max_bytes=MAX_RESULTS_BYTES)
    _check(res, str(results))
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as e:
        raise InputError(f"--out {out}: cannot create directory: {getattr(e, 'strerror', None) or e}") from None
    try:
        return _write(res, out)
    except OSError as e:
        raise InputError(f"--out {out}: cannot write the report: {e.strerror}") from None


def _write(res: dict, out: Path) -> Path:
    st = {k: v["value"] for k, v in res["stats"].items()}
    unit = {k: v["unit"] for k, v in res["stats"].items()}
    sc = res["scenario"]
    lines = [f"# ppsim report: {sc['name'] or Path(sc['file']).stem}", ""]
    if sc.get("description"):
        lines += [sc["description"], ""]
    lines += [f"Scenario `{sc['file']}`, seed {res['seed']}, ppsim {res['ppsim_version']}; "
              f"simulated {st['sim.end_time_ns'] / 1e6:.3f} ms.", ""]
    inv = res["invariants"]
    if not inv.get("enabled", True):
        lines += ["**Invariants:** checker off.", ""]
    elif inv["ok"]:
        lines += [f"**Invariants:** all held ({inv['checks']:,} checks on page and pool events).", ""]
    else:
        lines += [f"**Invariants: {inv['violations']} violation(s).** First:", "", "```"]
        v = inv["kept"][0]
        lines += [f"{v['invariant']}: {v['subject']} at {v['time_ps'] / 1e6:.6f} us on {v['event']}: {v['detail']}"]
        lines += v["history"] + ["```", ""]
    if "nic0.rx_mpps" in st:
        drops = sum(v for k, v in st.items() if k.endswith(".rx_missed"))
        lines += ["## Traffic", "",
                  f"Received {st['nic0.rx_mpps']:.3f} Mpps ({st['nic0.rx_gbps']:.2f} Gb/s); "
                  f"{_fmt(drops)} packets dropped by the device (no posted descriptor), "
                  f"{_fmt(st.get('stack.rcvbuf_drops', 0))} by the socket (receive buffer full).", ""]
    lines += ["## page_pool counters (kernel names, summed over pools)", "", "| counter | value | meaning |", "|---|---:|---|"]
    for k, doc in ALLOC + RECYCLE:
        lines.append(f"| `{k}` | {_fmt(st['page_pool.' + k])} | {doc} |")
    lines += ["", "## Where pages came from and went", "",
              f"- Pages taken from the page allocator (`page_pool_state_hold`): {_fmt(st['page_pool.pages_state_hold_cnt'])}; "
              f"given back (`page_pool_state_release`): {_fmt(st['page_pool.pages_state_release_cnt'])}.",
              f"- Page allocations: {_fmt(st['page_pool.allocations'])}; pages from the allocator per allocation: "
              f"{st['page_pool.allocator_pages_per_alloc']:.4f}.",
              f"- Returned pages recycled: {100 * st['page_pool.recycle_ratio']:.1f}%, of which "
              f"{100 * st['page_pool.direct_ratio']:.1f}% went straight to the alloc cache (no ptr_ring).", ""]
    cpus = sorted({k.split(".")[0] for k in st if k.startswith("cpu") and k.endswith(".softirq_util")})
    if cpus:
        lines += ["| CPU | softirq busy | process busy | softirq share of traffic time |", "|---|---:|---:|---:|"]
        for c in cpus:
            lines.append(f"| {c} | {_fmt(st[c + '.softirq_busy_ns'] / 1e3)} us | {_fmt(st[c + '.process_busy_ns'] / 1e3)} us |"
                         f" {100 * st[c + '.softirq_util']:.1f}% |")
        lines.append("")
    occ = _plot_occupancy(res, out)
    if occ:
        lines += ["## Pool occupancy over time", "", f"![pool occupancy]({occ})", "",
                  "Alloc cache and ptr_ring hold free pages; *out* counts pages on NIC rings and in the stack; "
                  "*inflight* is hold − release, the kernel's own count.", ""]
    pw = _plot_poll_work(res, out)
    if pw:
        lines += ["## NAPI poll sizes", "", f"![packets per poll]({pw})", ""]
    extra = [k for k in sorted(st) if k.startswith("coherence.") or k.startswith("pcie.")]
    if extra:
        lines += ["## Cost models", "", "| stat | value |", "|---|---:|"]
        lines += [f"| `{k}` | {_fmt(st[k], unit[k])} |" for k in extra]
        lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    _write_html(res, out, [p for p in (occ, pw) if p])
    return path


def _write_html(res: dict, out: Path, plots: list[str]) -> Path:
    """out/report.html: what was run, the invariant verdict, the plots (inline) and every stat
    with its unit and doc."""
    from ppsim.html_page import esc, img, page, table

    sc = res["scenario"]
    st = res["stats"]
    title = f"ppsim report: {sc['name'] or Path(sc['file']).stem}"
    parts = []
    if sc.get("description"):
        parts.append(f"<p>{esc(sc['description'])}</p>")
    parts.append(f"<p>Scenario <code>{esc(sc['file'])}</code>, seed {esc(res['seed'])}, ppsim {esc(res['ppsim_version'])}; "
                 f"simulated {st['sim.end_time_ns']['value'] / 1e6:.3f} ms.</p>")
    inv = res["invariants"]
    if not inv.get("enabled", True):
        parts.append('<p id="verdict"><b>Invariants:</b> checker off.</p>')
    elif inv["ok"]:
        parts.append(f'<p id="verdict" class="ok">Invariants: all held ({inv["checks"]:,} checks on page and pool events).</p>')
    else:
        v = inv["kept"][0]
        parts.append(f'<p id="verdict" class="bad">Invariants: {inv["violations"]} violation(s). First:</p>')
        parts.append("<pre>" + esc("\n".join([f"{v['invariant']}: {v['subject']} at {v['time_ps'] / 1e6:.6f} us on "
                                              f"{v['event']}: {v['detail']}"] + v["history"])) + "</pre>")
    rl = res.get("run_limit")
    if isinstance(rl, dict) and rl:
        parts.append(f'<p class="bad">Stopped early by {esc(rl.get("limit"))}: {esc(rl.get("message"))} '
                     "(stats are partial).</p>")
    titles = {"occupancy.png": "Where the pool's pages are over time", "poll_work.png": "Packets per NAPI poll"}
    for p in plots:
        parts.append(f"<h2>{esc(titles.get(p, p))}</h2>" + img(out / p, titles.get(p, p)))
    parts.append("<h2>Statistics</h2>")
    rows = [(k, v["value"], v["unit"], v.get("doc", "")) for k, v in sorted(st.items())]
    parts.append(table(["stat", "value", "unit", "meaning"], rows))
    path = out / "report.html"
    path.write_text(page(title, "\n".join(parts)))
    return path
