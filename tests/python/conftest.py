import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli():
    """Run ./ppsim with arguments; returns CompletedProcess (text)."""

    def _run(*args, env_extra=None, timeout=600):
        env = dict(os.environ)
        env.update(env_extra or {})
        return subprocess.run([str(REPO / "ppsim"), *map(str, args)], capture_output=True, text=True,
                              env=env, timeout=timeout, cwd=REPO)

    return _run


@pytest.fixture
def repo():
    return REPO
