"""HTML reports, for a run and for sweeps, rendered by headless Chromium: every embedded plot must
decode (naturalWidth > 0), the stats table carries units, the invariant verdict is there."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import ppsim

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: chromium; "
                                                               "`make deps` installs it)")

# Added to a copy of the page: once everything has loaded, the title says how many images there
# are and how many decoded to a real bitmap.
PROBE = ("<script>window.addEventListener('load', function () {"
         " var imgs = Array.prototype.slice.call(document.images);"
         " var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0 && i.naturalHeight > 0; });"
         " document.title = 'PROBE ' + imgs.length + ' ' + ok.length; });</script>")


def images_loaded(page: Path, tmp_path: Path) -> tuple[int, int]:
    """(images, images decoded) as Chromium sees `page`."""
    probe = tmp_path / f"probe_{page.parent.name}.html"
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    p = subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=10000",
                        "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r"<title>PROBE (\d+) (\d+)</title>", p.stdout)
    assert m, f"chromium did not run the probe (exit {p.returncode}): {p.stderr[-500:]}"
    return int(m.group(1)), int(m.group(2))


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    from conftest import REPO

    data = json.loads((REPO / "scenarios" / "default.json").read_text())
    data["sim"].update({"duration_us": 200, "drain_us": 100})
    p = tmp_path_factory.mktemp("sc") / "short.json"
    p.write_text(json.dumps(data))
    return p


def test_run_report_html(cli, short, tmp_path):
    run = tmp_path / "run"
    assert cli("run", short, "--out", run, "--quiet").returncode == 0
    p = cli("report", run, "--out", tmp_path / "rep")
    assert p.returncode == 0, p.stderr
    html = (tmp_path / "rep" / "report.html").read_text()
    assert (tmp_path / "rep" / "report.md").is_file()
    assert 'id="verdict" class="ok">Invariants: all held' in html
    res = json.loads((run / "results.json").read_text())
    # every stat, with its unit
    assert html.count("<tr>") == len(res["stats"]) + 1  # and the header row
    assert "<td>page_pool.pages_state_hold_cnt</td>" in html and "<td>pages</td>" in html
    assert html.count("data:image/png;base64,") >= 1 and "<script" not in html


def test_run_report_html_shows_violations(tmp_path):
    from ppsim.cmd_report import load_generator

    # a results.json with a violation, made by hand from a real one
    src = ppsim.run({"sim": {"duration_us": 100, "drain_us": 50}}, seed=1)
    raw = dict(src.raw)
    raw["invariants"] = {"enabled": True, "ok": False, "violations": 2, "checks": 10,
                         "kept": [{"invariant": "conservation", "subject": "page 7", "event": "recycle",
                                   "detail": "counted <twice>", "time_ps": 1000000, "history": ["alloc", "put"]}]}
    (tmp_path / "results.json").write_text(json.dumps(raw))
    load_generator().generate(tmp_path / "results.json", tmp_path / "rep")
    html = (tmp_path / "rep" / "report.html").read_text()
    assert 'class="bad">Invariants: 2 violation(s)' in html
    assert "counted &lt;twice&gt;" in html


@needs_chromium
def test_run_report_images_render_in_chromium(cli, short, tmp_path):
    run = tmp_path / "run"
    assert cli("run", short, "--out", run, "--quiet").returncode == 0
    assert cli("report", run, "--out", tmp_path / "rep").returncode == 0
    n, ok = images_loaded(tmp_path / "rep" / "report.html", tmp_path)
    assert n >= 1 and ok == n


@needs_chromium
@pytest.mark.parametrize("grids, kind", [
    ([["page_pool.pool_size_pages=64,128,256"]], "line"),
    ([["page_pool.pool_size_pages=64,256"], ["traffic.rate_pps=400000,800000"]], "heatmap"),
])
def test_sweep_report_renders_in_chromium(cli, short, tmp_path, grids, kind):
    out = tmp_path / "sw"
    args = [a for g in grids for a in ("--grid", g[0])]
    p = cli("sweep", short, *args, "--seeds", "1,2", "--stats", "page_pool.recycle_ratio,page_pool.pages_state_hold_cnt",
            "--workers", "2", "--out", out)
    assert p.returncode == 0, p.stderr
    html = (out / "report.html").read_text()
    assert len(list(out.glob(f"{kind}_*.png"))) == 2
    assert '<span class="unit">(pages)</span>' in html and 'class="ok">Invariants: held in every point.' in html
    n, ok = images_loaded(out / "report.html", tmp_path)
    assert n == 2 and ok == 2
    # `ppsim report` on the sweep directory writes the same page again elsewhere
    p = cli("report", out, "--out", tmp_path / "again")
    assert p.returncode == 0, p.stderr
    assert images_loaded(tmp_path / "again" / "report.html", tmp_path) == (2, 2)


def test_broken_image_is_detected(tmp_path):
    """The probe itself: a page with an undecodable image must not pass."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: chromium)")
    page = tmp_path / "p" / "report.html"
    page.parent.mkdir()
    page.write_text('<!DOCTYPE html><html><head><title>x</title></head><body>'
                    '<img src="data:image/png;base64,iVBORw0KGgoAAAAN"></body></html>')
    assert images_loaded(page, tmp_path) == (1, 0)


@pytest.mark.parametrize("meta, expect", [
    ("[]", "sweep.json: at $: expected an object (is this a ppsim sweep.json?)"),
    ('{"grid": {}, "table": "sweep.csv", "units": {}, "stats": []}', "sweep.csv: cannot read the sweep table"),
    ('{"grid": [], "table": "sweep.csv", "units": {}, "stats": []}', "sweep.json: at $.grid: expected an object"),
])
def test_report_on_a_bad_sweep_dir_exit_2(cli, tmp_path, meta, expect):
    d = tmp_path / "sw"
    d.mkdir()
    (d / "sweep.json").write_text(meta)
    p = cli("report", d, "--out", tmp_path / "rep")
    assert p.returncode == 2 and expect in p.stderr, p.stderr
    assert len(p.stderr.splitlines()) == 1
