"""Mutants: every one is caught in its own shipped scenario by the invariant it names, the correct
model raises nothing there, and the history mutants match docs/bug-history.md."""
import json
import re

import pytest

import ppsim
from ppsim._native import core

MUTANTS = list(core().mutants())
HISTORY = [m for m in MUTANTS if m["commit"] != "ppsim"]


def test_history_mutants_are_named_after_their_commit():
    assert len(HISTORY) >= 20
    assert len(MUTANTS) - len(HISTORY) >= 19, "the design mutants are all still there"
    for m in HISTORY:
        assert re.fullmatch(r"[0-9a-f]{12}", m["commit"]), m
        assert m["name"].startswith(f"pp_{m['commit']}_"), m
    assert len({m["name"] for m in MUTANTS}) == len(MUTANTS)


def test_list_prints_id_commit_invariant_and_scenario(cli):
    p = cli("mutants", "--list")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["id", "commit", "invariant", "scenario"]
    rows = {line.split()[0]: line.split()[1:4] for line in lines[1:] if not line.startswith(" ")}
    assert len(rows) == len(MUTANTS)
    for m in MUTANTS:
        assert rows[m["name"]] == [m["commit"], m["invariant"], m["scenario"]]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m["name"] for m in MUTANTS])
def test_each_mutant_is_caught_by_its_invariant_in_its_scenario(repo, mutant):
    scenario = repo / "scenarios" / mutant["scenario"]
    assert scenario.exists(), f"{mutant['name']} names a scenario that is not shipped"
    r = ppsim.run(scenario, mutants=[mutant["name"]], checker="collect")
    hits = r.raw["invariants"]["by_invariant"]
    assert mutant["invariant"] in hits, (mutant["name"], hits)


@pytest.mark.parametrize("name", sorted({m["scenario"] for m in HISTORY}))
def test_the_correct_model_is_clean_in_every_history_scenario(repo, name):
    r = ppsim.run(repo / "scenarios" / name, checker="collect")
    assert r.ok, r.violations[:3]
    assert r.raw["invariants"]["by_invariant"] == {}


def test_the_efficiency_thresholds_are_parameters_that_can_fail(repo):
    # A pool that never recycles passes the safety invariants; only recycle_efficiency sees it,
    # and only while the threshold is below what the mutant releases (about 0.5 pages/packet).
    bad = "pp_44768decb7c0_numa_check_on_put"
    r = ppsim.run(repo / "scenarios/default.json", mutants=[bad], checker="collect")
    assert set(r.raw["invariants"]["by_invariant"]) == {"recycle_efficiency"}
    assert r.stats["page_pool.recycle_ratio"] < 0.01
    loose = ppsim.run(repo / "scenarios/default.json", mutants=[bad], checker="collect",
                      overrides={"checker.max_release_pages_per_packet": 0.9})
    assert loose.ok
    off = ppsim.run(repo / "scenarios/xdp_drop.json", mutants=[bad], checker="collect",
                    overrides={"checker.window_packets": 0})
    assert off.ok


def test_stopping_all_recycling_is_caught_in_default_and_xdp_drop(repo):
    for name in ("default.json", "xdp_drop.json"):
        r = ppsim.run(repo / "scenarios" / name, mutants=["pp_44768decb7c0_numa_check_on_put"], checker="stop")
        assert not r.ok and r.violations[0]["invariant"] == "recycle_efficiency", name


def test_recycling_pfmemalloc_pages_is_caught_in_memory_pressure(repo):
    r = ppsim.run(repo / "scenarios/memory_pressure.json", mutants=["pp_d5394610b1ba_recycle_pfmemalloc"], checker="stop")
    assert not r.ok and r.violations[0]["invariant"] == "never_recycle_pfmemalloc"
    assert "pfmemalloc" in r.violations[0]["detail"]


def test_bug_history_lists_every_history_mutant(repo):
    doc = (repo / "docs/bug-history.md").read_text()
    for m in HISTORY:
        assert m["commit"] in doc, m["name"]
        assert m["name"] in doc, m["name"]
    commits = set(re.findall(r"^\| `?([0-9a-f]{12})`? \|", doc, flags=re.M))
    assert len(commits) >= 20


def test_results_count_violations_per_invariant(repo, tmp_path, cli):
    p = cli("run", "scenarios/percpu_pool.json", "--mutant", "pp_56ef27e3abe6_disable_keeps_cpuid",
            "--set", "sim.checker=collect", "--out", tmp_path)
    assert p.returncode == 1
    res = json.loads((tmp_path / "results.json").read_text())
    by = res["invariants"]["by_invariant"]
    assert by.get("no_cache_after_destroy", 0) >= 1
    assert sum(by.values()) == res["invariants"]["violations"]
