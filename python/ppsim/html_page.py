"""Self-contained HTML pages for reports: one file, plots embedded as base64 PNG data URIs, no
scripts, no external resources, so a report can be mailed or archived as it is."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Iterable

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f2f2f2; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #196f3d; font-weight: bold; }
.bad { color: #b03a2e; font-weight: bold; }
img { max-width: 100%; display: block; margin: 1em 0; }
code, pre { background: #f6f6f6; }
.unit { color: #666; font-weight: normal; }
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def img(png: Path | bytes, alt: str) -> str:
    """An <img> with the PNG inline as a data URI."""
    data = png if isinstance(png, bytes) else Path(png).read_bytes()
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def fmt_value(v: object) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        if v != v:
            return ""
        return f"{v:.6g}" if v != int(v) or abs(v) >= 1e15 else f"{int(v):,}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def table(headers: Iterable[str], rows: Iterable[Iterable[object]], units: Iterable[str] | None = None) -> str:
    """An HTML table; numbers right-aligned, units under the column names."""
    headers = list(headers)
    units = list(units) if units is not None else [""] * len(headers)
    head = "".join(f"<th>{esc(h)}" + (f' <span class="unit">({esc(u)})</span>' if u else "") + "</th>"
                   for h, u in zip(headers, units))
    body = []
    for r in rows:
        cells = []
        for v in r:
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            cells.append(f'<td class="num">{esc(fmt_value(v))}</td>' if num else f"<td>{esc(fmt_value(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>"


def page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n<h1>{esc(title)}</h1>\n{body}\n</body></html>\n")
