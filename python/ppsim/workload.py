"""What makes two captures repeats of one workload: every capture parameter except those that
say where and how a capture was taken (shared by `ppsim capture --resume` and `ppsim validate`)."""
from __future__ import annotations

# Parameters that may differ between the repeats of one group.
PER_CAPTURE_PARAMS = frozenset({"repeat", "out", "name", "force", "napi_lines", "sched", "max_load", "load_wait_s",
                                "buffer_kb", "destroy_timeout_s", "timeout_s"})


def workload_diff(a: dict, b: dict) -> list[str]:
    """The workload parameters on which two captures' `params` differ, sorted."""
    return sorted(k for k in set(a) | set(b) if k not in PER_CAPTURE_PARAMS and a.get(k) != b.get(k))
