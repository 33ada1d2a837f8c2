"""The comparisons ppsim exists for, as sweeps that return pandas DataFrames.

    import ppsim
    df = ppsim.zerocopy()               # writable vs read-only vs zero-copy receive, by packet size
    ppsim.crossover(df)                 # the size above which zero-copy costs less CPU than copying
    vm = ppsim.vm2vm()                  # VM-to-VM: SR-IOV VF hairpin vs the host kernel (copy / zero-copy)

Each point is one simulation of a shipped scenario (`scenarios/zerocopy_compare.json`,
`scenarios/vm2vm_*.json`) with the swept parameters overridden; `df.attrs["units"]` gives every
column's unit. The report generator (reports/compare_report.py, `ppsim zerocopy` / `ppsim vm2vm`)
turns the frames into Markdown tables and plots.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from ppsim._native import REPO
from ppsim.errors import InputError
from ppsim.scenario import load_scenario, run

ZC_MODES = ("writable", "read_only", "zerocopy")

# The mechanisms Linux has today for zero-copy receive, as parameter sets over
# scenarios/zerocopy_dedicated.json (docs/zerocopy.md explains each choice).
MECHANISMS = {
    "brouer_2016": {"zerocopy.steering": "ntuple", "zerocopy.mapping": "per_page", "zerocopy.clear": "tagged",
                    "nic.header_split": False},
    "tcp_zerocopy_receive": {"zerocopy.steering": "rss", "zerocopy.mapping": "per_page", "nic.header_split": True,
                             "zerocopy.batch_pages": 32, "zerocopy.max_user_pages": 0,
                             "traffic.header_bytes": 86, "traffic.packet_bytes": 4186, "nic.buffer_bytes": 4096},
    "af_xdp_zc": {"zerocopy.steering": "dedicated", "zerocopy.mapping": "persistent", "nic.header_split": False,
                  "page_pool.pool_size_pages": 2240, "zerocopy.max_user_pages": 2048},
    "io_uring_zcrx": {"zerocopy.steering": "dedicated", "zerocopy.mapping": "persistent", "nic.header_split": True,
                      "page_pool.pool_size_pages": 2240, "zerocopy.max_user_pages": 2048},
    "devmem_tcp": {"zerocopy.steering": "dedicated", "zerocopy.mapping": "persistent", "nic.header_split": True,
                   "zerocopy.clear_ns_per_kib": 0, "page_pool.pool_size_pages": 2240, "zerocopy.max_user_pages": 2048},
}
ZC_SIZES = (64, 128, 256, 512, 1024, 1500, 2048, 4096, 9000)
VM_PATHS = ("vf_hairpin", "vf_port_capped", "kernel_copy", "kernel_zerocopy")
VM_SIZES = (64, 128, 256, 512, 1024, 1500, 4096, 9000)
PCIE = {"gen2x8": (2, 8), "gen3x8": (3, 8), "gen3x16": (3, 16), "gen4x16": (4, 16)}
LINE_RATES = (10.0, 25.0, 40.0, 100.0)


def _sizes(sizes: Iterable[Any], name: str) -> list[int]:
    out = []
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, int) or not 64 <= s <= 9216:
            raise InputError(f"{name}: expected frame sizes in bytes from 64 to 9216, got {s!r}")
        out.append(s)
    if not out:
        raise InputError(f"{name}: expected at least one size")
    return out


def buffer_for(frame: int) -> dict:
    """RX buffer and page order that hold a frame (FCS stripped): 2 KiB frags up to 2 KiB, a
    4 KiB page up to 4 KiB, 16 KiB order-2 pages for jumbo frames."""
    data = frame - 4
    if data <= 2048:
        return {"nic.buffer_bytes": 2048, "page_pool.order": 0, "page_pool.max_len_bytes": 4096}
    if data <= 4096:
        return {"nic.buffer_bytes": 4096, "page_pool.order": 0, "page_pool.max_len_bytes": 4096}
    return {"nic.buffer_bytes": 16384, "page_pool.order": 2, "page_pool.max_len_bytes": 16384}


def _apply(base: dict, overrides: Mapping[str, Any]) -> dict:
    import copy

    from ppsim.scenario import set_path

    s = copy.deepcopy(base)
    for k, v in overrides.items():
        set_path(s, k, v)
    return s


def _cpu_ns(stats: dict) -> tuple[float, float]:
    soft = sum(v for k, v in stats.items() if k.startswith("cpu") and k.endswith(".softirq_busy_ns"))
    proc = sum(v for k, v in stats.items() if k.startswith("cpu") and k.endswith(".process_busy_ns"))
    return soft, proc


def zerocopy(base: str | Mapping[str, Any] | None = None, *, sizes: Iterable[int] = ZC_SIZES,
             modes: Iterable[str] = ZC_MODES, header_split: bool = False, coherence: bool = True,
             overrides: Mapping[str, Any] | None = None):
    """Writable vs read-only vs zero-copy receive by packet size: CPU ns, pool pages, PCIe bytes
    and cacheline transfers per packet delivered to the application (copied by a socket reader,
    or mapped). `base` defaults to scenarios/zerocopy_compare.json."""
    import pandas as pd

    data, name = load_scenario(base if base is not None else REPO / "scenarios" / "zerocopy_compare.json")
    modes = list(modes)
    for m in modes:
        if m not in ZC_MODES:
            raise InputError(f"modes: expected some of {', '.join(ZC_MODES)}, got {m!r}")
    rows = []
    for size in _sizes(sizes, "sizes"):
        for mode in modes:
            o = {"traffic.packet_bytes": size, "nic.header_split": bool(header_split) and mode != "writable",
                 "coherence.enabled": bool(coherence), **buffer_for(size)}
            o["nic.rx_mode"] = "writable" if mode == "writable" else "read_only"
            o["zerocopy.enabled"] = mode == "zerocopy"
            o.update(overrides or {})
            r = run(_apply(data, o))
            s = r.stats
            soft, proc = _cpu_ns(s)
            pkts = s["zc.received"] if mode == "zerocopy" else s["stack.reads"]
            polled = s["nic0.rxq0.rx_polled"] or 1
            pcie = s["pcie.link0.up.bytes"] + s["pcie.link0.down.bytes"]
            buf = o["nic.buffer_bytes"] if mode != "zerocopy" else 4096 << o["page_pool.order"]
            page = 4096 << o["page_pool.order"]
            rows.append({
                "mode": mode, "packet_bytes": size,
                "ns_per_packet": (soft + proc) / pkts if pkts else float("nan"),
                "softirq_ns_per_packet": soft / pkts if pkts else float("nan"),
                "process_ns_per_packet": proc / pkts if pkts else float("nan"),
                "pages_per_packet": (buf / page if 2 * buf <= page else 1.0) * (page // 4096),
                "pool_pages_max": max(r.series("page_pool.inflight_pages")[1] or [0]),
                "pcie_bytes_per_packet": pcie / polled,
                "cacheline_transfers_per_packet": s.get("coherence.transfers_per_packet", float("nan")),
                "pages_per_map_call": s["zc.pages_mapped"] / s["zc.map_calls"] if s.get("zc.map_calls") else float("nan"),
                "delivered": pkts,
                "drops": s.get("stack.rcvbuf_drops", 0) + s.get("zc.queue_full_drops", 0)
                + sum(v for k, v in s.items() if k.endswith(".rx_missed")),
                "bottleneck": r.raw.get("nic", {}).get("nic0", {}).get("bottleneck", ""),
                "ok": r.ok,
            })
    df = pd.DataFrame(rows)
    df.attrs["units"] = {"packet_bytes": "bytes", "ns_per_packet": "ns", "softirq_ns_per_packet": "ns",
                         "process_ns_per_packet": "ns", "pages_per_packet": "4 KiB pages",
                         "pool_pages_max": "pages", "pcie_bytes_per_packet": "bytes (TLP, both directions)",
                         "cacheline_transfers_per_packet": "transfers", "pages_per_map_call": "pages",
                         "delivered": "packets", "drops": "packets"}
    df.attrs["scenario"] = name
    return df


def crossover(df, slow: str = "read_only", fast: str = "zerocopy", column: str = "ns_per_packet") -> float | None:
    """The packet size (bytes, interpolated) from which `fast` costs less than `slow` in `column`;
    None when it never does within the sweep, the smallest size when it always does."""
    a = df[df["mode"] == slow].set_index("packet_bytes")[column]
    b = df[df["mode"] == fast].set_index("packet_bytes")[column]
    sizes = sorted(set(a.index) & set(b.index))
    prev = None
    for size in sizes:
        d = b[size] - a[size]
        if d <= 0:
            if prev is None:
                return float(size)
            ps, pd_ = prev
            return float(ps + (size - ps) * pd_ / (pd_ - d))
        prev = (size, d)
    return None


def _vm_run(path: str, size: int, gen: int, lanes: int, line: float, overrides: Mapping[str, Any]):
    base = {"vf_hairpin": "vm2vm_vf_hairpin", "vf_port_capped": "vm2vm_vf_port_capped",
            "kernel_copy": "vm2vm_kernel_copy", "kernel_zerocopy": "vm2vm_kernel_zerocopy"}[path]
    data, _ = load_scenario(REPO / "scenarios" / f"{base}.json")
    o = {"traffic.tx_packet_bytes": size, "pcie.gen": gen, "pcie.lanes": lanes, "wire.line_rate_gbps": line,
         **buffer_for(size)}
    if path == "vf_port_capped":
        o["sriov.eswitch_port_gbps"] = line
    o.update(overrides)
    r = run(_apply(data, o))
    s = r.stats
    nic = r.raw.get("nic", {}).get("nic0", {})
    if path.startswith("vf"):
        gbps, mpps = s["nic0.rx_gbps"], s["nic0.rx_mpps"]
    elif path == "kernel_copy":
        gbps, mpps = s["kpath.rx_gbps"], s["kpath.rx_mpps"]
    else:
        gbps, mpps = s["zc.rx_gbps"], s["zc.rx_mpps"]
    return {"gbps": gbps, "mpps": mpps, "bottleneck": nic.get("bottleneck", ""), "why": nic.get("why", ""),
            "pcie_up_utilization": nic.get("utilization", {}).get("pcie_up", 0.0),
            "pcie_down_utilization": nic.get("utilization", {}).get("pcie_down", 0.0), "ok": r.ok}


def vm2vm(*, sizes: Iterable[int] = VM_SIZES, pcie: Iterable[str] = tuple(PCIE), line_rates: Iterable[float] = LINE_RATES,
          paths: Iterable[str] = VM_PATHS, overrides: Mapping[str, Any] | None = None):
    """VM-to-VM throughput by packet size, PCIe link and line rate for: SR-IOV VF hairpin through
    the NIC's switch (PCIe twice), the same with the switch bound to port speed, the host kernel
    with a copy, and the host kernel with read-only zero-copy page handoff. One row per (path,
    size, PCIe, line rate); a path that does not depend on a dimension is simulated once and
    repeated (`depends_on` says which dimensions it uses)."""
    import pandas as pd

    paths = list(paths)
    for p in paths:
        if p not in VM_PATHS:
            raise InputError(f"paths: expected some of {', '.join(VM_PATHS)}, got {p!r}")
    links = []
    for name in pcie:
        if name not in PCIE:
            raise InputError(f"pcie: expected some of {', '.join(PCIE)}, got {name!r}")
        links.append(name)
    rates = []
    for lr in line_rates:
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr not in (1, 2.5, 5, 10, 25, 40, 50, 100, 200, 400):
            raise InputError(f"line_rates: expected Ethernet rates in Gb/s (10, 25, 40, 100, ...), got {lr!r}")
        rates.append(float(lr))
    depends = {"vf_hairpin": ("pcie",), "vf_port_capped": ("pcie", "line_rate"), "kernel_copy": (),
               "kernel_zerocopy": ()}
    cache: dict = {}
    rows = []
    for size in _sizes(sizes, "sizes"):
        for path in paths:
            for link in links:
                for lr in rates:
                    key = (path, size, link if "pcie" in depends[path] else None, lr if "line_rate" in depends[path] else None)
                    if key not in cache:
                        gen, lanes = PCIE[link]
                        cache[key] = _vm_run(path, size, gen, lanes, lr, overrides or {})
                    rows.append({"path": path, "packet_bytes": size, "pcie": link, "line_rate_gbps": lr,
                                 "depends_on": "+".join(depends[path]) or "cpu only", **cache[key]})
    df = pd.DataFrame(rows)
    df.attrs["units"] = {"packet_bytes": "bytes", "line_rate_gbps": "Gb/s", "gbps": "Gb/s (frames without FCS)",
                         "mpps": "Mpps", "pcie_up_utilization": "ratio", "pcie_down_utilization": "ratio"}
    df.attrs["simulations"] = len(cache)
    return df
