"""The fast form of the Python input fuzzer (tests/python/fuzz_inputs.py; `make fuzz` runs 20000+
inputs): 500 mutated scenarios, traces, capture directories, results files and PCIe arguments
with a fixed seed, each of which must work or raise a one-line InputError (exit 2 on the CLI)."""
import pytest

from fuzz_inputs import fuzz


@pytest.mark.fuzz
def test_500_mutated_inputs_work_or_raise_one_line_input_errors(tmp_path):
    r = fuzz(500, seed=20240601, workdir=tmp_path, cli_every=25)
    assert r.inputs >= 500
    assert not r.failures, "\n".join(f"{k} x{n}: {what} (input {path})" for k, (what, path, n) in r.failures.items())
    # The mutations must reach past the readers, not only be refused by them.
    assert r.worked > 50 and r.input_errors > 100, r.summary()
    assert r.by_kind["run dict"] and r.by_kind["capture replay"] and r.by_kind["report"], r.by_kind


def test_the_fuzzer_reports_an_exception_that_escapes(tmp_path, monkeypatch):
    """The harness itself: a consumer that raises something other than InputError is a failure."""
    import ppsim

    def broken(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(ppsim, "load_scenario", broken)
    r = fuzz(20, seed=1, workdir=tmp_path, cli_every=0)
    assert any(k.startswith("load_scenario: KeyError") for k in r.failures), r.failures
