"""ppsim: a simulator and verification harness for the memory model of Linux NIC receive paths.

    import ppsim
    r = ppsim.run("scenarios/default.json", seed=3)
    r.stats["page_pool.recycle_ratio"]      # value in its unit
    r.dataframe()                           # every stat: name, value, unit, doc
    r.ok                                    # no invariant violated
    ppsim.zerocopy()                        # writable vs read-only vs zero-copy by packet size (DataFrame)
    ppsim.vm2vm()                           # VM-to-VM: SR-IOV hairpin vs the kernel (DataFrame)
"""
from __future__ import annotations

from ppsim.errors import EnvironmentProblem, InputError
from ppsim.compare import crossover, vm2vm, zerocopy
from ppsim.scenario import Result, load_scenario, run, sweep

__all__ = ["run", "sweep", "load_scenario", "Result", "zerocopy", "vm2vm", "crossover", "InputError",
           "EnvironmentProblem", "__version__"]


def __getattr__(name):
    if name == "__version__":
        from ppsim._native import core

        return core().__version__
    raise AttributeError(name)
