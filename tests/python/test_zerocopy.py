"""Read-only pages, zero-copy receive and the VM-to-VM comparison from Python and the command line:
the sweeps return what a user plots (units, one row per point, the crossover), the reports are
written, bad arguments give one line and exit 2, and the zero-copy calibration fits the model's
costs and compares the model with a native benchmark (fast form; docs/zerocopy.md has the full run)."""
from __future__ import annotations

import json
import math

import pytest

import ppsim
from ppsim import calibrate as cal
from ppsim.errors import InputError


def test_zerocopy_sweep_compares_the_three_modes_by_size():
    df = ppsim.zerocopy(sizes=[64, 4096])
    assert set(df["mode"]) == {"writable", "read_only", "zerocopy"} and len(df) == 6
    assert df["ok"].all()
    assert df.attrs["units"]["ns_per_packet"] == "ns"
    row = lambda mode, size: df[(df["mode"] == mode) & (df["packet_bytes"] == size)].iloc[0]
    # One packet per page for zero-copy; 2 KiB frags otherwise at 64 bytes.
    assert row("zerocopy", 64)["pages_per_packet"] == 1.0
    assert row("writable", 64)["pages_per_packet"] == 0.5
    # The copy grows with the frame; mapping does not: zero-copy wins at 4 KiB, loses at 64 B.
    assert row("zerocopy", 4096)["ns_per_packet"] < row("read_only", 4096)["ns_per_packet"]
    assert row("zerocopy", 64)["ns_per_packet"] > row("read_only", 64)["ns_per_packet"]
    # Read-only costs a separate head and a header copy on the NAPI CPU.
    assert row("read_only", 64)["softirq_ns_per_packet"] > row("writable", 64)["softirq_ns_per_packet"]
    x = ppsim.crossover(df)
    assert x is not None and 64 < x < 4096


def test_crossover_interpolates_and_reports_none():
    import pandas as pd

    df = pd.DataFrame([{"mode": "read_only", "packet_bytes": 100, "ns_per_packet": 10.0},
                       {"mode": "read_only", "packet_bytes": 200, "ns_per_packet": 30.0},
                       {"mode": "zerocopy", "packet_bytes": 100, "ns_per_packet": 20.0},
                       {"mode": "zerocopy", "packet_bytes": 200, "ns_per_packet": 20.0}])
    assert ppsim.crossover(df) == pytest.approx(150.0)
    assert ppsim.crossover(df, slow="zerocopy", fast="read_only") == 100.0
    df.loc[df["mode"] == "zerocopy", "ns_per_packet"] = 100.0
    assert ppsim.crossover(df) is None


def test_header_split_adds_pcie_bytes_but_not_to_writable():
    df = ppsim.zerocopy(sizes=[1500], header_split=True)
    plain = ppsim.zerocopy(sizes=[1500])
    get = lambda d, m: d[d["mode"] == m].iloc[0]["pcie_bytes_per_packet"]
    assert get(df, "writable") == pytest.approx(get(plain, "writable"))
    assert get(df, "zerocopy") > get(plain, "zerocopy")


def test_vm2vm_sweep_rows_paths_and_what_each_depends_on():
    df = ppsim.vm2vm(sizes=[64, 1500], pcie=["gen2x8", "gen4x16"], line_rates=[10, 100])
    assert len(df) == 4 * 2 * 2 * 2 and df["ok"].all()
    assert df.attrs["simulations"] < len(df)  # kernel paths are simulated once per size
    k = df[(df["path"] == "kernel_copy") & (df["packet_bytes"] == 1500)]
    assert k["gbps"].nunique() == 1  # no PCIe crossing: the link does not matter
    vf = lambda link, size, path="vf_hairpin", lr=100.0: df[(df["path"] == path) & (df["pcie"] == link) &
                                                            (df["packet_bytes"] == size) & (df["line_rate_gbps"] == lr)].iloc[0]
    assert vf("gen2x8", 1500)["gbps"] < vf("gen4x16", 1500)["gbps"]  # the hairpin crosses PCIe twice
    assert vf("gen2x8", 1500)["bottleneck"].startswith("pcie")
    capped = vf("gen4x16", 1500, "vf_port_capped", 10.0)
    assert capped["gbps"] < 10.0 and capped["bottleneck"] == "eswitch_port"


@pytest.mark.parametrize("kw", [dict(sizes=[10]), dict(pcie=["gen9x1"]), dict(line_rates=[33]), dict(paths=["x"])])
def test_vm2vm_bad_arguments_raise_input_error(kw):
    with pytest.raises(InputError):
        ppsim.vm2vm(**kw)


def test_zerocopy_and_vm2vm_commands_write_reports(cli, tmp_path):
    p = cli("zerocopy", "--sizes", "64,4096", "--out", tmp_path / "zc")
    assert p.returncode == 0, p.stderr
    md = (tmp_path / "zc" / "zerocopy.md").read_text()
    assert "Crossover against read-only" in md and "| 4096 | zerocopy |" in md
    assert (tmp_path / "zc" / "zerocopy.png").stat().st_size > 10000
    p = cli("vm2vm", "--sizes", "1500", "--pcie", "gen3x8", "--line-rates", "25", "--out", tmp_path / "vm")
    assert p.returncode == 0, p.stderr
    assert "host kernel, zero-copy handoff" in (tmp_path / "vm" / "vm2vm.md").read_text()
    assert (tmp_path / "vm" / "vm2vm.csv").read_text().count("\n") == 5


@pytest.mark.parametrize("args", [["zerocopy", "--sizes", "abc"], ["vm2vm", "--pcie", "gen9"],
                                  ["vm2vm", "--line-rates", "x"], ["zerocopy", "--profile", "/nonexistent.json"]])
def test_bad_command_arguments_exit_2_with_one_line(cli, tmp_path, args):
    p = cli(*args, "--out", tmp_path)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def _zc_meas(**over) -> dict:
    s = lambda m: {"median": m, "p10": m, "p90": m, "min": m, "max": m, "reps": 3}
    z = {"read_1b_ns": s(500.0), "clear_4k_ns": s(200.0),
         "memcpy_ns": {"64": s(5.0), "1500": s(60.0), "4096": s(160.0), "16384": s(640.0), "65536": s(2560.0)},
         "map_ns": {"1": s(1070.0), "32": s(3240.0)}, "unmap_ns": {"1": s(840.0), "32": s(2080.0)},
         "unmap_remote_ns": {"1": s(2840.0), "32": s(2080.0 + 2000.0 + 32 * 10.0)},
         "copy_to_user_ns": {"4096": s(700.0), "16384": s(1200.0), "65536": s(3100.0)},
         "read_128k_ns": s(500.0 + 128 * 40.0 + 32 * 100.0),
         "map_unmap_ns": {"4096": s(3900.0), "16384": s(4500.0), "65536": s(7200.0)}}
    z.update(over)
    return {"tool": "ppsim_calibrate", "zerocopy": z}


def test_zerocopy_costs_are_fitted_per_call_and_per_page():
    c = cal.zerocopy_costs(_zc_meas())
    assert c["map_per_page_ns"] == pytest.approx(70.0) and c["map_fixed_ns"] == pytest.approx(1000.0)
    assert c["unmap_per_page_ns"] == pytest.approx(40.0) and c["unmap_fixed_ns"] == pytest.approx(800.0)
    assert c["shootdown_ns"] == pytest.approx(2000.0)
    assert c["shootdown_per_page_ns"] == pytest.approx(320.0 / 31, abs=1e-3)  # costs are rounded to 1 ps
    assert c["clear_ns_per_kib"] == pytest.approx(50.0)
    assert c["copy_fixed_ns"] == 500.0 and c["copy_ns_per_kib"] == pytest.approx(40.0)
    assert c["copy_per_page_ns"] == pytest.approx(100.0)  # the 128 KiB read's excess per page


def test_zerocopy_comparison_uses_the_compiled_model():
    rows = cal.zerocopy_comparison(_zc_meas())
    by = {(r["bytes"], r["path"]): r for r in rows}
    # map 1 page + unmap 1 page + one shootdown = 1070 + 840 + 2000.
    assert by[(4096, "map_unmap")]["model_ns"] == pytest.approx(3910.0 + 320.0 / 31, abs=1e-2)
    assert by[(4096, "copy_to_user")]["model_ns"] == pytest.approx(500.0 + 100.0 + 4 * 40.0)
    assert by[(65536, "copy_to_user")]["model_ns"] == pytest.approx(500.0 + 16 * 100.0 + 64 * 40.0)
    assert by[(65536, "map_unmap")]["error"] == pytest.approx(
        (1000 + 16 * 70 + 800 + 16 * 40 + 2000 + 16 * 320.0 / 31 - 7200) / 7200, abs=1e-5)


def test_zerocopy_calibration_without_measurements_is_an_input_error():
    with pytest.raises(InputError):
        cal.zerocopy_costs({"tool": "ppsim_calibrate"})


@pytest.mark.slow
def test_native_zerocopy_calibration_runs_and_compares_every_path(cli):
    p = cli("calibrate", "--only", "zerocopy", "--quick", "--reps", "3", "--cpus", "0,1", "--json")
    if p.returncode == 2 and "not online" in p.stderr:
        pytest.skip("needs two CPUs")
    assert p.returncode == 0, p.stderr
    z = json.loads(p.stdout)
    assert all(v >= 0 for v in z["costs"].values())
    assert len(z["comparison"]) == 6
    # How close the model comes is a measurement (docs/zerocopy.md, on a quiet machine), not a
    # timed test: here every size and path is compared, and larger transfers cost more natively and
    # in the model alike.
    assert {(r["bytes"], r["path"]) for r in z["comparison"]} == {
        (b, k) for b in (4096, 16384, 65536) for k in ("copy_to_user", "map_unmap")}
    for r in z["comparison"]:
        assert r["native_ns"] > 0 and r["model_ns"] > 0 and math.isfinite(r["error"]), r
    for kind in ("copy_to_user", "map_unmap"):
        model = [r["model_ns"] for r in sorted(z["comparison"], key=lambda r: r["bytes"]) if r["path"] == kind]
        assert model == sorted(model) and model[0] < model[-1], kind


@pytest.mark.parametrize("name", sorted(__import__("ppsim.compare", fromlist=["MECHANISMS"]).MECHANISMS))
def test_each_linux_mechanism_parameter_set_runs_clean(name):
    from ppsim.compare import MECHANISMS

    r = ppsim.run("scenarios/zerocopy_dedicated.json", overrides=MECHANISMS[name])
    s = r.stats
    assert r.ok, r.violations[:1]
    assert s["zc.received"] > 1000
    if MECHANISMS[name]["zerocopy.mapping"] == "persistent":
        assert s["zc.shootdowns"] == 0 and s["zc.pages_mapped"] <= s["nic0.rxq0.pp.pages_state_hold_cnt"]
    else:
        assert s["zc.pages_mapped"] == s["zc.received"]
    if name == "tcp_zerocopy_receive":
        assert s["zc.bytes_cleared"] == 0  # the payload fills its page: nothing stale to clear
