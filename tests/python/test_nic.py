"""The NIC model through the Python API and the CLI: the shipped NIC scenarios name the resource
that limits them, SR-IOV hairpin traffic crosses PCIe both ways while the kernel path does not
touch it, and the summary prints the bottleneck."""
import json

import pytest

import ppsim
from ppsim.errors import InputError

# scenario → (bottleneck, stat that carries its throughput)
EXPECTED = {
    "nic_rx_64b_100g_gen3x8": ("pcie_up", "nic0.rx_mpps"),
    "nic_rx_64b_100g_gen4x16": ("wire", "nic0.rx_mpps"),
    "nic_rx_256b_40g_gen3x8": ("wire", "nic0.rx_mpps"),
    "nic_rx_1500b_100g_gen3x8": ("pcie_up", "nic0.rx_mpps"),
    "nic_rx_1500b_100g_gen4x16": ("wire", "nic0.rx_mpps"),
    "nic_rx_fetch_latency": ("pcie_read_latency", "nic0.rx_mpps"),
    "nic_rx_cpu_bound": ("cpu_softirq", "nic0.rx_mpps"),
    "nic_tx_64b_100g_gen3x8": ("pcie_read_latency", "nic0.tx_mpps"),
    "nic_tx_1500b_100g_gen3x8": ("pcie_down", "nic0.tx_mpps"),
    "nic_tx_1500b_40g_gen4x16": ("wire_tx", "nic0.tx_mpps"),
    "sriov_vf2vf_eswitch": ("pcie_up", "nic0.rx_mpps"),
    "sriov_vf2vf_kernel": ("cpu_sender", "kpath.rx_mpps"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_nic_scenarios_name_their_bottleneck(repo, name):
    r = ppsim.run(repo / "scenarios" / f"{name}.json")
    assert r.ok, r.violations
    assert len(r.raw["scenario"]["description"]) > 80
    nic = r.raw["nic"]["nic0"]
    want, rate = EXPECTED[name]
    assert nic["bottleneck"] == want, nic["why"]
    assert r.stats[rate] > 0.5
    u = nic["utilization"]
    assert set(u) >= {"wire_rx", "wire_tx", "pcie_up", "pcie_down", "pcie_read_latency", "cpu_softirq", "cpu_sender",
                      "cpu_reader"}
    assert all(0 <= v <= 1 for v in u.values())
    if want.startswith("pcie_") and want != "pcie_read_latency":
        assert u[want] > 0.97


def test_wire_and_pcie_bounds_of_the_shipped_receive_scenarios(repo):
    line = ppsim.run(repo / "scenarios/nic_rx_1500b_100g_gen4x16.json").stats
    assert line["nic0.rx_mpps"] == pytest.approx(line["nic0.wire.rx_max_mpps"], rel=2e-3)
    assert line["pcie.link0.up.utilization"] < 0.6
    narrow = ppsim.run(repo / "scenarios/nic_rx_1500b_100g_gen3x8.json").stats
    assert narrow["nic0.rx_fifo_drops"] > 0
    assert narrow["nic0.rx_mpps"] < 0.6 * narrow["nic0.wire.rx_max_mpps"]
    # What got through is what the link carries: the link is full, so ~55 Gb/s of 1496-byte DMAs.
    assert narrow["pcie.link0.up.utilization"] > 0.99
    assert 53 < narrow["nic0.rx_gbps"] < 57


def test_vm_to_vm_eswitch_crosses_pcie_twice_and_beats_the_kernel_path(repo):
    e = ppsim.run(repo / "scenarios/sriov_vf2vf_eswitch.json").stats
    k = ppsim.run(repo / "scenarios/sriov_vf2vf_kernel.json").stats
    moved = e["nic0.vf1.rxq0.rx_bytes"]
    assert moved > 0
    assert e["pcie.link0.down.payload_bytes"] >= e["nic0.vf0.txq0.tx_bytes"] >= moved
    assert e["pcie.link0.up.payload_bytes"] >= moved
    # Every hairpinned packet was written to VF1, dropped by the RX buffer, or still in it at teardown.
    assert e["nic0.hairpin_packets"] == e["nic0.vf1.rxq0.rx_packets"] + e["nic0.rx_fifo_drops"] + e["nic0.rx_discarded"]
    assert k["pcie.link0.up.payload_bytes"] == 0
    assert k["kpath.copy_bytes"] == k["kpath.rx_bytes"] > 0
    assert e["nic0.rx_gbps"] > 1.5 * k["kpath.rx_gbps"]


def test_kernel_path_wins_when_the_link_is_the_limit_and_copies_are_cheap(repo):
    # Same pair on a Gen1 x4 link (about 8 Gb/s each way): the hairpin is now PCIe-bound far
    # below what the kernel path's CPUs do.
    over = {"pcie.gen": 1, "pcie.lanes": 4}
    e = ppsim.run(repo / "scenarios/sriov_vf2vf_eswitch.json", overrides=over)
    k = ppsim.run(repo / "scenarios/sriov_vf2vf_kernel.json", overrides=over)
    assert e.raw["nic"]["nic0"]["bottleneck"] in ("pcie_up", "pcie_down")
    assert k.stats["kpath.rx_gbps"] > 2 * e.stats["nic0.rx_gbps"]


def test_run_prints_the_bottleneck_and_is_deterministic(cli, tmp_path):
    outs = []
    for d in ("a", "b"):
        p = cli("run", "scenarios/sriov_vf2vf_eswitch.json", "--out", tmp_path / d)
        assert p.returncode == 0, p.stderr
        assert "bottleneck pcie_up:" in p.stdout
        assert "tx " in p.stdout
        outs.append((tmp_path / d / "results.json").read_bytes())
    assert outs[0] == outs[1]
    res = json.loads(outs[0])
    assert res["nic"]["nic0"]["bottleneck"] == "pcie_up"
    kinds = {n["name"]: n["kind"] for n in res["topology"]["nodes"]}
    assert kinds["rc0"] == "root_complex" and kinds["nic0.vf0"] == "endpoint" and kinds["nic0.pf0"] == "endpoint"
    assert any(e["kind"] == "pcie_link" and e.get("link") == 0 for e in res["topology"]["edges"])


def test_scenario_errors_name_the_parameter(repo):
    with pytest.raises(InputError, match=r"\$\.traffic\.tx_to.*vf0\.\.vf1"):
        ppsim.run(repo / "scenarios/sriov_vf2vf_eswitch.json", overrides={"traffic.tx_to": "vf2"})
    with pytest.raises(InputError, match=r"\$\.wire\.line_rate_gbps.*Ethernet line rate"):
        ppsim.run(repo / "scenarios/default.json", overrides={"wire.line_rate_gbps": 33})
