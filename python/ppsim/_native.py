"""Finds and loads the compiled `_core` module from the CMake build tree.

The package lives in python/ppsim; CMake writes `_core*.so` into build/python/ppsim. The build
directory is $PPSIM_BUILD, else <checkout>/build.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


REPO = REPO  # re-exported: the checkout root


class BuildMissing(RuntimeError):
    pass


def build_dir() -> Path:
    return Path(os.environ.get("PPSIM_BUILD", REPO / "build"))


_core = None


def core():
    """The compiled module; raises BuildMissing with a hint when it has not been built."""
    global _core
    if _core is not None:
        return _core
    pkg_dir = build_dir() / "python" / "ppsim"
    import ppsim

    if str(pkg_dir) not in ppsim.__path__:
        ppsim.__path__.append(str(pkg_dir))
    try:
        _core = importlib.import_module("ppsim._core")
    except ImportError as e:
        raise BuildMissing(
            f"ppsim's compiled core is not built (looked in {pkg_dir}): run `make build` "
            f"(or `make test`/`make demo`) in {REPO} first [{e}]"
        ) from None
    return _core
