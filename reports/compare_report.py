"""Reports for the comparison sweeps (ppsim.compare): Markdown tables and plots.

    zerocopy_report(df, Path("out"))   → out/zerocopy.md, out/zerocopy.png, out/zerocopy.csv
    vm2vm_report(df, Path("out"))      → out/vm2vm.md, out/vm2vm.png, out/vm2vm.csv
"""
from __future__ import annotations

import math
from pathlib import Path

MODE_LABEL = {"writable": "writable (copy to user)", "read_only": "read-only (copy to user)",
              "zerocopy": "read-only + zero-copy (map)"}
PATH_LABEL = {"vf_hairpin": "SR-IOV VF hairpin", "vf_port_capped": "VF hairpin, port-bound switch",
              "kernel_copy": "host kernel, copy", "kernel_zerocopy": "host kernel, zero-copy handoff"}


def _num(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def zerocopy_report(df, out: Path, crossovers: dict | None = None, note: str = "") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "zerocopy.csv", index=False)
    plt = _plt()
    metrics = [("ns_per_packet", "CPU ns per packet (all CPUs)"), ("pages_per_packet", "pool pages per packet (4 KiB)"),
               ("pcie_bytes_per_packet", "PCIe TLP bytes per packet"),
               ("cacheline_transfers_per_packet", "cacheline transfers per packet")]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (col, title) in zip(axes.flat, metrics):
        for mode, g in df.groupby("mode", sort=False):
            g = g.sort_values("packet_bytes")
            ax.plot(g["packet_bytes"], g[col], marker="o", ms=3, label=MODE_LABEL.get(mode, mode))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("frame size (bytes)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    x = (crossovers or {}).get("read_only")
    if x:
        axes[0][0].axvline(x, color="grey", ls="--", lw=1)
        axes[0][0].annotate(f"crossover {x:.0f} B", (x, axes[0][0].get_ylim()[1]), fontsize=8, ha="left", va="top")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "zerocopy.png", dpi=110)
    plt.close(fig)

    lines = ["# Writable vs read-only vs zero-copy receive", ""]
    if note:
        lines += [note, ""]
    cx = crossovers or {}
    for slow in ("read_only", "writable"):
        if slow in cx:
            v = cx[slow]
            lines.append(f"- Crossover against {MODE_LABEL[slow]}: " +
                         (f"zero-copy costs less CPU per packet from **{v:.0f} bytes** on." if v
                          else "zero-copy never costs less CPU within the sweep."))
    lines += ["", "![per-packet costs](zerocopy.png)", "",
              "| frame (B) | mode | CPU ns/pkt | softirq | process | pages/pkt | PCIe B/pkt | cacheline transfers/pkt |"
              " pages/map call | drops | bottleneck |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for _, r in df.sort_values(["packet_bytes"], kind="stable").iterrows():
        lines.append(f"| {r['packet_bytes']} | {r['mode']} | {_num(r['ns_per_packet'], 4)} | {_num(r['softirq_ns_per_packet'], 4)} | "
                     f"{_num(r['process_ns_per_packet'], 4)} | {_num(r['pages_per_packet'])} | {_num(r['pcie_bytes_per_packet'], 4)} | "
                     f"{_num(r['cacheline_transfers_per_packet'])} | {_num(r['pages_per_map_call'])} | {_num(int(r['drops']))} | "
                     f"{r['bottleneck']} |")
    lines += ["", "CPU ns per packet: softirq (NAPI, XDP, skb build, TLB-shootdown interrupts) plus process context "
              "(the socket reader's recvmsg and copy, or the application's map, unmap and shootdown wait), over every "
              "packet delivered to the consumer. Pages per packet: the page_pool memory each packet occupies. See "
              "docs/zerocopy.md for what each mode assumes."]
    path = out / "zerocopy.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def vm2vm_report(df, out: Path, note: str = "") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "vm2vm.csv", index=False)
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    top_line = df["line_rate_gbps"].max()
    for (path, link), g in df[df["line_rate_gbps"] == top_line].groupby(["path", "pcie"], sort=False):
        if path.startswith("kernel") and link != df["pcie"].iloc[0]:
            continue  # the kernel paths do not cross PCIe: one curve each
        label = PATH_LABEL.get(path, path) + ("" if path.startswith("kernel") else f", {link}")
        style = "--" if path.startswith("kernel") else "-"
        g = g.sort_values("packet_bytes")
        axes[0].plot(g["packet_bytes"], g["gbps"], style, marker="o", ms=3, label=label)
        axes[1].plot(g["packet_bytes"], g["mpps"], style, marker="o", ms=3, label=label)
    for ax, yl in zip(axes, ("Gb/s received", "Mpps received")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("frame size (bytes)")
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"VM-to-VM throughput (line rate {top_line:g} Gb/s)", fontsize=10)
    axes[1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "vm2vm.png", dpi=110)
    plt.close(fig)

    lines = ["# VM-to-VM: SR-IOV VF hairpin vs a shared, kernel-controlled NIC", ""]
    if note:
        lines += [note, ""]
    lines += ["![throughput](vm2vm.png)", "",
              f"Gb/s (Mpps) received and the bottleneck, at line rate {top_line:g} Gb/s:", ""]
    links = list(dict.fromkeys(df["pcie"]))
    cols = [("vf_hairpin", l) for l in links] + [("kernel_copy", None), ("kernel_zerocopy", None)]
    cols = [(p, l) for p, l in cols if p in set(df["path"])]
    head = "| frame (B) | " + " | ".join(PATH_LABEL[p] + (f" {l}" if l else "") for p, l in cols) + " |"
    lines += [head, "|---:|" + "---|" * len(cols)]
    sub = df[df["line_rate_gbps"] == top_line]
    for size in sorted(set(sub["packet_bytes"])):
        cells = []
        for p, l in cols:
            r = sub[(sub["packet_bytes"] == size) & (sub["path"] == p) & ((sub["pcie"] == l) if l else True)].iloc[0]
            cells.append(f"{r['gbps']:.1f} ({r['mpps']:.2f}) {r['bottleneck']}")
        lines.append(f"| {size} | " + " | ".join(cells) + " |")
    if "vf_port_capped" in set(df["path"]):
        lines += ["", "VF hairpin through a switch bound to port speed, Gb/s by line rate (PCIe " + links[-1] + "):", "",
                  "| frame (B) | " + " | ".join(f"{lr:g} Gb/s" for lr in sorted(set(df["line_rate_gbps"]))) + " |",
                  "|---:|" + "---:|" * len(set(df["line_rate_gbps"]))]
        cap = df[(df["path"] == "vf_port_capped") & (df["pcie"] == links[-1])]
        for size in sorted(set(cap["packet_bytes"])):
            row = cap[cap["packet_bytes"] == size].sort_values("line_rate_gbps")
            lines.append(f"| {size} | " + " | ".join(f"{v:.1f}" for v in row["gbps"]) + " |")
    lines += ["", "Every point is one simulation (`ppsim vm2vm`); the kernel paths use no PCIe and are simulated once "
              "per size. docs/vm2vm.md places these numbers next to published ones."]
    path = out / "vm2vm.md"
    path.write_text("\n".join(lines) + "\n")
    return path
