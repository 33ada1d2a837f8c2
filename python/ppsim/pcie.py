"""PCIe transaction cost model: a typed layer over the compiled `_core.pcie` (sim/cost/pcie.h).

    >>> link = Link(gen=3, lanes=8, mps=256, mrrs=512)
    >>> link.dma_read_gbps(1500), link.nic_gbps("kernel", 1500, "rx")
    >>> link.cost("dma_write", 1500)["up"]["tlps"]

Bandwidths are data Gb/s in steady state; `cost` gives one transaction's bytes, TLPs and DLLPs per
direction ("up" = device to root complex), serialization times and latency in picoseconds.
docs/pcie.md explains the model and every default. Bad arguments raise InputError.
"""
from __future__ import annotations

import math

from ppsim._native import core
from ppsim.errors import InputError

NIC_MODELS = ("simple", "kernel", "dpdk")
DIRECTIONS = ("rx", "tx", "both")
OPS = ("dma_write", "dma_read", "mmio_write", "mmio_read", "msix")


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError) as e:
        raise InputError(str(e)) from None


def _int(name: str, v, bits: int = 32) -> int:
    """An integer the compiled model can take (C++ int, or int64 for sizes); its own checks say
    what range makes sense."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise InputError(f"{name}: expected an integer, got {v!r:.40}")
    if not -(2 ** (bits - 1)) <= v < 2 ** (bits - 1):
        raise InputError(f"{name}: expected an integer of at most {bits} bits, got one of {v.bit_length()} bits")
    return v


def _size(name: str, v) -> int:
    return _int(name, v, 64)


def _num(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(f"{name}: expected a number, got {v!r:.40}")
    try:
        x = float(v)
    except OverflowError:
        raise InputError(f"{name}: expected a number from 0 to 1e9, got an integer of {v.bit_length()} bits") from None
    if not math.isfinite(x):
        raise InputError(f"{name}: expected a finite number, got {x}")
    return x


def _bool(name: str, v) -> bool:
    if not isinstance(v, bool):
        raise InputError(f"{name}: expected True or False, got {v!r}")
    return v


def _choice(name: str, v, choices) -> str:
    if not isinstance(v, str) or v not in choices:
        raise InputError(f"{name}: expected one of {', '.join(choices)}, got {v!r}")
    return v


class Link:
    """One PCIe link configuration.

    gen 1..6, lanes 1/2/4/8/16; mps/mrrs powers of two in 128..4096 (bytes); rcb 64/128 bytes;
    completion_split "mps" or "rcb"; addr_bits 32/64 for DMA (64 → 4DW headers), mmio_addr_bits for
    doorbells; ecrc adds a 4-byte digest per TLP; latency=False drops the read round trip
    (read_rtt_ns) and tag limit (max_tags) from bandwidths; compat_pcie_bench reproduces the
    pcie-bench model of Neugebauer et al. (SIGCOMM 2018), inconsistencies included.
    """

    def __init__(self, gen: int = 3, lanes: int = 8, mps: int = 256, mrrs: int = 512, *,
                 rcb: int = 64, completion_split: str = "mps", addr_bits: int = 64,
                 mmio_addr_bits: int = 32, ecrc: bool = False, latency: bool = True,
                 read_rtt_ns: float = 546.0, write_latency_ns: float = 273.0, max_tags: int = 32,
                 compat_pcie_bench: bool = False):
        self._link = _call(
            core().pcie.Link,
            gen=_int("gen", gen), lanes=_int("lanes", lanes), mps=_int("mps", mps),
            mrrs=_int("mrrs", mrrs), rcb=_int("rcb", rcb),
            completion_split=_choice("completion_split", completion_split, ("mps", "rcb")),
            addr_bits=_int("addr_bits", addr_bits), mmio_addr_bits=_int("mmio_addr_bits", mmio_addr_bits),
            ecrc=_bool("ecrc", ecrc), latency=_bool("latency", latency),
            read_rtt_ns=_num("read_rtt_ns", read_rtt_ns),
            write_latency_ns=_num("write_latency_ns", write_latency_ns),
            max_tags=_int("max_tags", max_tags),
            compat_pcie_bench=_bool("compat_pcie_bench", compat_pcie_bench))
        self.compat_pcie_bench = bool(compat_pcie_bench)

    def __repr__(self) -> str:
        return f"<ppsim.pcie.Link {self.describe()}>"

    def describe(self) -> str:
        return self._link.describe()

    @property
    def tlp_capacity_gbps(self) -> float:
        """Gb/s per direction available to TLPs (after line coding and SKP)."""
        return self._link.tlp_capacity_gbps

    @property
    def ack_interval_symbols(self) -> int:
        return self._link.ack_interval_symbols

    def dma_write_gbps(self, size: int) -> float:
        return _call(self._link.dma_write_gbps, _size("size", size))

    def dma_read_gbps(self, size: int) -> float:
        return _call(self._link.dma_read_gbps, _size("size", size))

    def dma_read_write_gbps(self, size: int) -> float:
        """Concurrent reads and writes of `size` bytes; Gb/s in each direction."""
        return _call(self._link.dma_read_write_gbps, _size("size", size))

    def nic_gbps(self, model: str, size: int, direction: str = "rx") -> float:
        """Packet data Gb/s of a NIC model ("simple", "kernel", "dpdk") moving `size`-byte
        packets (frame without FCS) in `direction` ("rx", "tx", or "both": per direction)."""
        return _call(self._link.nic_gbps, _choice("model", model, NIC_MODELS), _size("size", size),
                     _choice("direction", direction, DIRECTIONS))

    def nic_packet(self, model: str, size: int, direction: str = "rx") -> dict:
        """Average PCIe bytes, TLPs and operations per packet of a NIC model."""
        return _call(self._link.nic_packet, _choice("model", model, NIC_MODELS), _size("size", size),
                     _choice("direction", direction, DIRECTIONS))

    def cost(self, op: str, size: int) -> dict:
        """One transaction: {"up": {...}, "down": {...}, "latency_ps": int}."""
        return _call(self._link.cost, _choice("op", op, OPS), _size("size", size))

    def sweep(self, sizes, directions=("rx", "tx")) -> list[dict]:
        """One row per size: DMA write/read/read+write of `size`-byte transfers, and every NIC
        model in `directions` for Ethernet frames of `size` bytes, FCS included: the NIC DMAs
        size - 4 bytes per packet (as pcie-bench's nic_bw.py feeds its NIC models). In
        pcie-bench compatibility mode a row also has nic_bw.py's 40 Gb/s line-rate column."""
        if isinstance(directions, str) or not isinstance(directions, (list, tuple)):
            raise InputError(f"directions: expected a list of rx, tx, both, got {directions!r:.40}")
        for d in directions:
            _choice("direction", d, DIRECTIONS)
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            raise InputError(f"sizes: expected a list of byte counts, got {sizes!r:.40}")
        rows = []
        for s in sizes:
            row = {"size": s, "dma_write_gbps": self.dma_write_gbps(s),
                   "dma_read_gbps": self.dma_read_gbps(s),
                   "dma_read_write_gbps": self.dma_read_write_gbps(s)}
            frame_data = max(1, _int("size", s) - FCS_BYTES)
            if self.compat_pcie_bench:
                row["eth_40g_gbps"] = pcie_bench_line_rate_gbps(s, 40.0)
            for m in NIC_MODELS:
                for d in directions:
                    row[f"{m}_{d}_gbps"] = self.nic_gbps(m, frame_data, d)
            rows.append(row)
        return rows


FCS_BYTES = 4


def pcie_bench_line_rate_gbps(frame: int, gbps: float) -> float:
    """nic_bw.py's line-rate column: frame data (FCS removed) over the wire slot of a VLAN-tagged
    frame, as their eth.Cfg computes it: the FCS is removed once more and the payload clamped to
    the 42-byte VLAN minimum, so the slot is max(frame - 4, 64) + 20 bytes."""
    data = frame - FCS_BYTES
    return gbps * data / (max(data, 64) + 20)
