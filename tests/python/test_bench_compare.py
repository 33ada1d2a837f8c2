"""bench/compare_builds.py (`make bench-compare`): medians per build, per CPU second, and the
ratio; a failing or missing benchmark binary is a clear error, not a traceback."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "compare_builds.py"


def fake_bench(path: Path, rates: list[float], cpu_share: float = 1.0, fail: bool = False) -> Path:
    """A stand-in for ppsim_bench: prints Google Benchmark JSON, one rate per call in turn."""
    state = path.with_suffix(".n")
    path.write_text(f"""#!{sys.executable}
import json, sys
from pathlib import Path
if {fail!r}:
    print("boom", file=sys.stderr); sys.exit(3)
state = Path({str(state)!r})
n = int(state.read_text()) if state.exists() else 0
state.write_text(str(n + 1))
rate = {rates!r}[n % {len(rates)}]
print(json.dumps({{"benchmarks": [{{"name": "BM_NicRxPath/bytes:64", "pkts_per_s": rate,
                                   "real_time": 100.0, "cpu_time": 100.0 * {cpu_share!r}}}]}}))
""")
    path.chmod(0o755)
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_medians_ratio_and_cpu_time_scaling(tmp_path):
    base = fake_bench(tmp_path / "base", [10e6, 30e6, 11e6])          # median 11 M/s
    # Wall-clock rates of 9 M/s with the process on the CPU 75% of the time: 12 M/s per CPU second.
    head = fake_bench(tmp_path / "head", [9e6, 1e6, 9e6], cpu_share=0.75)
    out = tmp_path / "cmp.json"
    p = run(str(base), str(head), "--runs", "3", "--json", str(out))
    assert p.returncode == 0, p.stderr
    row, = json.loads(out.read_text())["rows"]
    assert row["base_per_s"] == 11e6
    assert row["head_per_s"] == 12e6
    assert abs(row["ratio"] - 12 / 11) < 1e-12
    assert "x1.091" in p.stdout


def test_a_failing_or_missing_binary_is_named(tmp_path):
    good = fake_bench(tmp_path / "good", [1e6])
    bad = fake_bench(tmp_path / "bad", [1e6], fail=True)
    p = run(str(good), str(bad), "--runs", "1")
    assert p.returncode == 1
    assert "exited with 3" in p.stderr and "boom" in p.stderr and "Traceback" not in p.stderr
    p = run(str(tmp_path / "missing"), str(good))
    assert p.returncode == 2
    assert "not an executable benchmark binary" in p.stderr and "Traceback" not in p.stderr
