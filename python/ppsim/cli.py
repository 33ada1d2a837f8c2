"""`ppsim` command line. Each verb lives in its own module, which provides
`register(subparsers)` adding a parser whose default `func(args) -> int` runs the verb.

Exit codes: 0 success, 1 a check failed (invariant, validation, mutant escaped),
2 bad input (scenario, arguments, trace), 3 the build or the environment is missing,
4 a budget stopped the run early (sim.max_events, sim.max_wall_s, sim.max_memory_mib; the
results written say so).
"""
from __future__ import annotations

import argparse
import importlib
import sys

# verb modules, in the order `ppsim --help` lists them
VERBS = ["run", "sweep", "params", "schema", "stats", "mutants", "report", "zerocopy", "vm2vm", "capture", "validate", "fit", "pcie", "calibrate"]

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_ENV, EXIT_LIMIT = 0, 1, 2, 3, 4


class OneLineParser(argparse.ArgumentParser):
    """argparse's own errors (an unparsable number, an unknown option) as one line and exit code 2,
    like every other input error, instead of the usage block."""

    def error(self, message: str):
        from ppsim.errors import one_line

        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="ppsim",
        description="Simulator and verification harness for the memory model of Linux NIC receive paths.",
    )
    sub = p.add_subparsers(dest="verb", metavar="VERB", parser_class=OneLineParser)
    sub.required = True
    for name in VERBS:
        try:
            mod = importlib.import_module(f"ppsim.cmd_{name}")
        except ModuleNotFoundError as e:
            if e.name == f"ppsim.cmd_{name}":
                continue  # verb not part of this checkout yet
            raise
        mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from ppsim._native import BuildMissing
    from ppsim.errors import EnvironmentProblem, InputError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        print(f"ppsim {args.verb}: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (BuildMissing, EnvironmentProblem) as e:
        print(f"ppsim: {e}", file=sys.stderr)
        return EXIT_ENV
    except KeyboardInterrupt:
        print("ppsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output went to a pipe that closed early (`ppsim params | head`): not an error.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
