"""`ppsim schema`: a draft 2020-12 JSON Schema of scenario files from the parameter registry; every
shipped scenario validates, and what the core refuses by type, key or range the schema refuses."""
import json

import pytest

jsonschema = pytest.importorskip("jsonschema", reason="python3-jsonschema is not installed (Debian: python3-jsonschema)")

from ppsim.schema import schema_text, scenario_schema  # noqa: E402


@pytest.fixture(scope="module")
def validator():
    schema = scenario_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_schema_is_current(repo):
    """scenarios/ppsim.schema.json is what `ppsim schema` prints: regenerate it with
    `./ppsim schema --out scenarios/ppsim.schema.json` after changing a parameter."""
    assert (repo / "scenarios" / "ppsim.schema.json").read_text() == schema_text()


def test_cli_prints_the_committed_schema(cli, repo, tmp_path):
    p = cli("schema")
    assert p.returncode == 0, p.stderr
    assert p.stdout == (repo / "scenarios" / "ppsim.schema.json").read_text()
    p = cli("schema", "--out", tmp_path / "s.json")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "s.json").read_text() == schema_text()


def test_cli_unwritable_out(cli, tmp_path):
    p = cli("schema", "--out", tmp_path / "missing" / "s.json")
    assert p.returncode == 2
    assert p.stderr.startswith(f"ppsim schema: --out {tmp_path / 'missing' / 's.json'}: cannot write the schema")
    assert len(p.stderr.splitlines()) == 1


def test_every_shipped_scenario_validates(repo, validator):
    files = sorted((repo / "scenarios").glob("*.json"))
    files = [f for f in files if f.name != "ppsim.schema.json"]
    assert len(files) > 40
    for f in files:
        errors = [e.message for e in validator.iter_errors(json.loads(f.read_text()))]
        assert not errors, f"{f.name}: {errors[:3]}"


def test_shape_units_defaults(validator):
    s = validator.schema
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["additionalProperties"] is False
    pp = s["properties"]["page_pool"]
    assert pp["type"] == "object" and pp["additionalProperties"] is False
    size = pp["properties"]["pool_size_pages"]
    assert "[unit: pages]" in size["description"]
    num = size["anyOf"][0]
    assert num["type"] == "integer" and num["minimum"] == 1 and size["default"] == 1024
    assert s["properties"]["workload"]["enum"] == ["nic", "veth"]


@pytest.mark.parametrize("scenario, where", [
    ({"page_pool": {"pool_size_pagez": 64}}, "Additional properties are not allowed ('pool_size_pagez'"),
    ({"bogus": {}}, "Additional properties are not allowed ('bogus'"),
    ({"page_pool": {"pool_size_pages": "lots"}}, "is not valid under any of the given schemas"),
    ({"page_pool": {"pool_size_pages": 64.5}}, "is not valid under any of the given schemas"),
    ({"sim": {"duration_us": 2e9}}, "is not valid under any of the given schemas"),
    ({"page_pool": {"pool_size_pages": 0}}, "is not valid under any of the given schemas"),
    ({"stack": {"defer_free": 1}}, "is not of type 'boolean'"),
    ({"workload": "tap"}, "is not one of ['nic', 'veth']"),
    ({"page_pool": 5}, "is not of type 'object'"),
])
def test_invalid_scenarios_fail(validator, scenario, where):
    errors = [e.message for e in validator.iter_errors(scenario)]
    assert errors and any(where in m for m in errors), errors


@pytest.mark.parametrize("text, ok", [("2 ms", True), ("2ms", True), (" 1.5e3 ns ", True), (".5 s", True),
                                      ("ms", False), ("2", False), ("2 ms extra", False), ("two ms", False)])
def test_unit_strings_as_the_core_reads_them(validator, text, ok):
    """The schema accepts a "<number> <unit>" string exactly when the core's reader parses it."""
    import ppsim
    from ppsim.sweeps import run_point

    scenario = {"sim": {"duration_us": text, "drain_us": 0}, "traffic": {"start_us": 0, "rate_pps": 1000}}
    assert validator.is_valid(scenario) == ok
    try:
        run_point(json.dumps(scenario), "<schema test>", 1, ("sim.end_time_ns",))
        core_ok = True
    except ppsim.InputError:
        core_ok = False
    assert core_ok == ok
