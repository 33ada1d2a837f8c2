"""Parse page_pool traces: the kernel's tracefs text, `trace-cmd report` text, and ppsim's own
simulated traces (which use the tracefs format).

Accepted input, line by line (other events may be interleaved anywhere):

* tracefs `trace` / `trace_pipe` text::

      TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: FIELDS
      ppsim_traffic-5087 [000] ..s1. 579.735367: page_pool_state_hold: page_pool=... hold=1

  FLAGS (the irq-info column) is optional, 4 or 5 characters; a `(TGID)` column after TASK-PID
  (the record-tgid option) is accepted. `#` header lines, blank lines and
  `CPU:N [LOST M EVENTS]` lines are accepted (lost events are counted).
* `trace-cmd report` text, default or `-l` (latency) format, with or without an `INSTANCE:`
  prefix::

      inst:    ppsim_traffic-5395  [000]   651.889706: page_pool_state_hold: page_pool=0x...
      inst: ppsim_tr-5395    0..s1.   651.889706: page_pool_state_hold: page_pool=0x...

  Its `cpus=N` / `version = N` / `CPU N is empty` lines are accepted; trace_marker writes
  appear as `print: tracing_mark_write: TEXT` and become `Marker` events.

TIMESTAMP is `SECONDS.FRACTION` (any number of fraction digits) and is kept exactly as integer
nanoseconds (`ts_ns`); clocks that print a bare integer (counter, x86-tsc) keep that integer.
Pointers may be hashed (`0000000011419428`) or raw (`0xffff888102a05800`); both become ints.

Known events become typed dataclasses (`PageHold`, `PageRelease`, `PoolRelease`,
`PoolUpdateNid`, `NapiPoll`, `Marker`); unknown events are skipped and counted per name. A
line that is neither an event nor one of the lines above, or a known event whose fields are
truncated or malformed, raises `InputError("FILE:LINE: ...")`.

Summaries (`summarise`) are per pool: holds, releases, hold bursts, inflight at each
`page_pool_release`, and the contexts (CPU, softirq/process, task) of holds and releases.

A *hold burst* is a maximal run of `page_pool_state_hold` events of one pool, taken in trace
order, in which each hold after the first
  1. has the same CPU, PID and execution context as the previous hold,
  2. carries the next value of the pool's hold counter (previous + 1: no hold of this pool
     happened in between),
  3. follows the previous one within `burst_gap_us` microseconds (default 50), and
  4. has no `napi_poll` event from the same CPU between them (a `napi_poll` event marks the end
     of one NAPI poll, so a burst never spans two polls).
On the slow path the kernel bulk-allocates up to 64 pages at once (`PP_ALLOC_CACHE_REFILL`),
emitting one hold per page within a few microseconds, so each slow-path refill is one burst.

`python3 -m ppsim.trace FILE...` prints the summary of each file as JSON.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import sys
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from ppsim.errors import InputError

__all__ = [
    "Flags", "Event", "PageHold", "PageRelease", "PoolRelease", "PoolUpdateNid", "NapiPoll",
    "Marker", "Trace", "TraceParser", "HoldBurst", "PoolSummary", "NapiSummary", "TraceSummary",
    "parse_lines", "parse_text", "read_trace", "summarise", "phase_label",
]

DEFAULT_BURST_GAP_US = 50.0


# ---- events ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Flags:
    """The ftrace irq-info column, e.g. `..s1.`: irqs-off/BH, need-resched, hardirq/softirq,
    preempt depth, migrate-disable depth (kernel/trace/trace_output.c: trace_print_lat_fmt)."""

    raw: str
    irqs_off: bool
    bh_disabled: bool
    need_resched: bool
    hardirq: bool
    softirq: bool
    nmi: bool
    preempt_depth: int
    migrate_disable: int

    @classmethod
    def parse(cls, raw: str) -> "Flags":
        if len(raw) not in (4, 5):
            raise ValueError(f"flags '{raw}' must be 4 or 5 characters")
        c0, c1, c2, c3 = raw[0], raw[1], raw[2], raw[3]
        c4 = raw[4] if len(raw) == 5 else "."
        if c0 not in ".dDbX" or c1 not in ".NnpLlBb" or c2 not in ".hHsSzZ":
            raise ValueError(f"flags '{raw}' are not an ftrace irq-info column")

        def depth(c: str) -> int:
            if c == ".":
                return 0
            try:
                return int(c, 16)
            except ValueError:
                raise ValueError(f"flags '{raw}': depth '{c}' is not a hex digit") from None

        return cls(raw=raw, irqs_off=c0 in "dD", bh_disabled=c0 in "bD",
                   need_resched=c1 != ".", hardirq=c2 in "hHzZ", softirq=c2 in "sSH",
                   nmi=c2 in "zZ", preempt_depth=depth(c3), migrate_disable=depth(c4))

    @property
    def context(self) -> str:
        """`nmi`, `hardirq`, `softirq` (serving a softirq, e.g. NAPI), `process-bh` (process
        context with bottom halves disabled) or `process`."""
        if self.nmi:
            return "nmi"
        if self.hardirq:
            return "hardirq"
        if self.softirq:
            return "softirq"
        if self.bh_disabled:
            return "process-bh"
        return "process"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Header common to every event. `ts_ns` is the timestamp in integer nanoseconds; `line` is
    the 1-based line of the source text."""

    ts_ns: int
    cpu: int
    task: str
    pid: int
    flags: Flags | None
    name: str
    line: int

    @property
    def timestamp(self) -> float:
        """Seconds, as printed (float; use ts_ns for exact arithmetic)."""
        return self.ts_ns / 1e9

    @property
    def context(self) -> str | None:
        """Execution context from the flags column; None when the trace has no flags."""
        return self.flags.context if self.flags else None


@dataclass(frozen=True, slots=True, kw_only=True)
class PageHold(Event):
    """page_pool_state_hold: a page entered the pool from the page allocator (slow path)."""

    pool: int
    netmem: int
    is_net_iov: int
    pfn: int
    hold: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PageRelease(Event):
    """page_pool_state_release: a page left the pool for the page allocator."""

    pool: int
    netmem: int
    is_net_iov: int
    pfn: int
    release: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolRelease(Event):
    """page_pool_release: the inflight check at destroy (cnt=1) and at each retry."""

    pool: int
    inflight: int
    hold: int
    release: int
    cnt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolUpdateNid(Event):
    pool: int
    pool_nid: int
    new_nid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NapiPoll(Event):
    """napi:napi_poll, emitted after each poll: `work` packets done out of `budget`."""

    napi: int
    dev: str
    work: int
    budget: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Marker(Event):
    """A trace_marker write (tracing_mark_write)."""

    text: str


# ---- line parsing ------------------------------------------------------------------------

# Numbers are ASCII digits of bounded length (int() refuses strings over 4300 digits), and the task
# name starts at a non-blank so that a line of blanks does not backtrack quadratically.
_TS = r"(?P<ts>\d{1,20}(?:\.\d{1,30})?)"
_INST = r"(?:(?P<inst>[\w.-]+):\s+)?"
# tracefs text and trace-cmd's default report: TASK-PID [(TGID)] [CPU] [FLAGS] TS: EVENT: BODY
_EVENT_RE = re.compile(
    r"^" + _INST + r"\s*(?P<task>\S.*?)-(?P<pid>\d{1,10})\s+(?:\(\s*(?:-?\d{1,10}|-+)\)\s+)?"
    r"\[(?P<cpu>\d{1,10})\]\s+(?:(?P<flags>[.dDbX]\S{3,4})\s+)?" + _TS +
    r":\s+(?P<event>\w+):(?P<body>.*)$", re.ASCII)
# trace-cmd report -l: TASK-PID CPUFLAGS TS: EVENT: BODY (CPU number glued to the flags)
_LAT_RE = re.compile(
    r"^" + _INST + r"\s*(?P<task>\S.*?)-(?P<pid>\d{1,10})\s+(?P<cpu>\d{1,10})(?P<flags>[.dDbX]\S{3,4})\s+"
    + _TS + r":\s+(?P<event>\w+):(?P<body>.*)$", re.ASCII)
_LOST_RE = re.compile(r"\[LOST (\d{1,20}) EVENTS\]", re.ASCII)
_IGNORED_RE = re.compile(r"^(cpus=\d+|version = \d+|CPU \d+ is empty)\s*$", re.ASCII)
_NAPI_RE = re.compile(
    r"^napi poll on napi struct (?P<napi>\S+) for device (?P<dev>\S+) "
    r"work (?P<work>-?\d{1,20}) budget (?P<budget>-?\d{1,20})$", re.ASCII)
MAX_LINE_CHARS = 65536  # a trace line is a few hundred characters; trace_marker writes < 4 KiB


def _ts_ns(text: str) -> int:
    if "." not in text:
        return int(text)
    sec, frac = text.split(".", 1)
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def _kv(body: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for tok in body.split():
        tok = tok.rstrip(",")
        key, sep, value = tok.partition("=")
        if not sep or not key or not value:
            raise ValueError(f"expected key=value, got '{tok}'")
        out[key] = value
    return out


def _need(kv: dict[str, str], *keys: str) -> list[str]:
    missing = [k for k in keys if k not in kv]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)} (truncated line?)")
    return [kv[k] for k in keys]


def _hex(name: str, v: str) -> int:
    if len(v) > 34 or not v.isascii():
        raise ValueError(f"{name}={v[:40]} is not a hex value of at most 32 digits")
    try:
        return int(v, 16)
    except ValueError:
        raise ValueError(f"{name}={v} is not a hex value") from None


def _dec(name: str, v: str) -> int:
    if len(v) > 20 or not v.lstrip("-").isascii():
        raise ValueError(f"{name}={v[:40]} is not a decimal integer of at most 20 digits")
    try:
        return int(v, 10)
    except ValueError:
        raise ValueError(f"{name}={v} is not a decimal integer") from None


def _page_fields(kv: dict[str, str], counter: str) -> dict:
    if "netmem" not in kv and "page" in kv:  # kernels before netmem (6.8-6.11) print page=
        kv["netmem"] = kv["page"]
    pool, netmem, pfn, count = _need(kv, "page_pool", "netmem", "pfn", counter)
    return dict(pool=_hex("page_pool", pool), netmem=_hex("netmem", netmem),
                is_net_iov=_dec("is_net_iov", kv.get("is_net_iov", "0")), pfn=_hex("pfn", pfn),
                **{counter: _dec(counter, count)})


def _parse_hold(body: str) -> tuple[type, dict]:
    return PageHold, _page_fields(_kv(body), "hold")


def _parse_page_release(body: str) -> tuple[type, dict]:
    return PageRelease, _page_fields(_kv(body), "release")


def _parse_pool_release(body: str) -> tuple[type, dict]:
    kv = _kv(body)
    pool, inflight, hold, release, cnt = _need(kv, "page_pool", "inflight", "hold", "release", "cnt")
    return PoolRelease, dict(pool=_hex("page_pool", pool), inflight=_dec("inflight", inflight),
                             hold=_dec("hold", hold), release=_dec("release", release),
                             cnt=_dec("cnt", cnt))


def _parse_update_nid(body: str) -> tuple[type, dict]:
    kv = _kv(body)
    pool, old, new = _need(kv, "page_pool", "pool_nid", "new_nid")
    return PoolUpdateNid, dict(pool=_hex("page_pool", pool), pool_nid=_dec("pool_nid", old),
                               new_nid=_dec("new_nid", new))


def _parse_napi(body: str) -> tuple[type, dict]:
    m = _NAPI_RE.match(body)
    if not m:
        raise ValueError("expected 'napi poll on napi struct PTR for device DEV work N budget N'")
    return NapiPoll, dict(napi=_hex("napi", m["napi"]), dev=m["dev"], work=int(m["work"]),
                          budget=int(m["budget"]))


def _parse_marker(body: str) -> tuple[type, dict]:
    return Marker, dict(text=body.rstrip("\n"))


_PARSERS = {
    "page_pool_state_hold": _parse_hold,
    "page_pool_state_release": _parse_page_release,
    "page_pool_release": _parse_pool_release,
    "page_pool_update_nid": _parse_update_nid,
    "napi_poll": _parse_napi,
    "tracing_mark_write": _parse_marker,
}


class TraceParser:
    """Parses trace text line by line; keeps counts of what it skipped.

    `skipped` counts unknown events by name; `lost_events` sums `[LOST N EVENTS]` lines;
    `formats` records which line formats were seen (`tracefs`, `trace-cmd`, `trace-cmd-l`).
    """

    def __init__(self, source: str = "<trace>") -> None:
        self.source = source
        self.skipped: Counter[str] = Counter()
        self.lost_events = 0
        self.formats: set[str] = set()
        self.lines = 0

    def _error(self, lineno: int, what: str, text: str) -> InputError:
        shown = text.rstrip("\n")
        if len(shown) > 100:
            shown = shown[:100] + "..."
        return InputError(f"{self.source}:{lineno}: {what}: {shown!r}")

    def parse_line(self, text: str, lineno: int) -> Event | None:
        """One line to an event, or None for headers, blank lines and skipped events."""
        self.lines = max(self.lines, lineno)
        if not isinstance(text, str):
            raise InputError(f"{self.source}:{lineno}: expected a line of text, got {type(text).__name__}")
        if len(text) > MAX_LINE_CHARS:
            raise self._error(lineno, f"line longer than {MAX_LINE_CHARS} characters: not a trace line", text)
        stripped = text.strip()
        if not stripped or stripped.startswith("#") or _IGNORED_RE.match(stripped):
            return None
        m = _EVENT_RE.match(text.rstrip("\n"))
        fmt = "tracefs"
        if not m:
            m = _LAT_RE.match(text.rstrip("\n"))
            fmt = "trace-cmd-l"
        if not m:
            lost = _LOST_RE.search(stripped)
            if lost:
                self.lost_events += int(lost.group(1))
                return None
            raise self._error(lineno, "not a trace event line (expected "
                              "'TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: FIELDS')", text)
        if m["inst"] is not None and fmt == "tracefs":
            fmt = "trace-cmd"
        event, body = m["event"], m["body"].strip()
        if event == "print" and body.startswith("tracing_mark_write:"):
            event, body = "tracing_mark_write", body[len("tracing_mark_write:"):].lstrip()
        parser = _PARSERS.get(event)
        if parser is None:
            self.skipped[event] += 1
            return None
        flags = None
        if m["flags"]:
            try:
                flags = Flags.parse(m["flags"])
            except ValueError as e:
                raise self._error(lineno, str(e), text) from None
        try:
            cls, fields = parser(body)
        except ValueError as e:
            raise self._error(lineno, f"bad {event} event: {e}", text) from None
        self.formats.add(fmt)
        return cls(ts_ns=_ts_ns(m["ts"]), cpu=int(m["cpu"]), task=m["task"].strip(),
                   pid=int(m["pid"]), flags=flags, name=event, line=lineno, **fields)

    def parse(self, lines: Iterable[str]) -> Iterator[Event]:
        for lineno, text in enumerate(lines, 1):
            ev = self.parse_line(text, lineno)
            if ev is not None:
                yield ev


def _iter_lines(lines: Iterable[str], source: str):
    if isinstance(lines, (str, bytes)) or not hasattr(lines, "__iter__"):
        raise InputError(f"{source}: expected an iterable of text lines, got {type(lines).__name__}")
    return lines


def parse_lines(lines: Iterable[str], source: str = "<trace>") -> Iterator[Event]:
    """Yields the known events of `lines` (a generator: errors surface as you iterate)."""
    return TraceParser(source).parse(_iter_lines(lines, source))


# ---- whole traces ------------------------------------------------------------------------

@dataclass
class Trace:
    """All known events of one trace, in file order, plus what the parser skipped."""

    source: str
    events: list[Event]
    skipped: Counter = field(default_factory=Counter)
    lost_events: int = 0
    formats: set = field(default_factory=set)

    def of(self, cls: type) -> list:
        return [e for e in self.events if isinstance(e, cls)]

    def holds(self) -> list[PageHold]:
        return self.of(PageHold)

    def releases(self) -> list[PageRelease]:
        return self.of(PageRelease)

    def pool_releases(self) -> list[PoolRelease]:
        return self.of(PoolRelease)

    def napi_polls(self) -> list[NapiPoll]:
        return self.of(NapiPoll)

    def markers(self) -> list[Marker]:
        return self.of(Marker)

    def pools(self) -> list[int]:
        """Pools in order of first appearance."""
        seen: dict[int, None] = {}
        for e in self.events:
            pool = getattr(e, "pool", None)
            if pool is not None:
                seen.setdefault(pool, None)
        return list(seen)

    def summary(self, burst_gap_us: float = DEFAULT_BURST_GAP_US) -> "TraceSummary":
        return summarise(self, burst_gap_us=burst_gap_us)


def parse_text(text: str, source: str = "<text>") -> Trace:
    if not isinstance(text, str):
        raise InputError(f"{source}: expected trace text (str), got {type(text).__name__}")
    parser = TraceParser(source)
    events = list(parser.parse(text.splitlines()))
    return Trace(source, events, parser.skipped, parser.lost_events, parser.formats)


def capture_trace(capture_dir: str | Path) -> Path:
    """A capture directory's trace: trace.txt, or trace.txt.gz for the larger captures."""
    d = Path(capture_dir)
    gz = d / "trace.txt.gz"
    return gz if gz.is_file() and not (d / "trace.txt").is_file() else d / "trace.txt"


def _file_lines(f, source: str) -> Iterator[str]:
    """Decoded lines of a binary file; each line is checked as UTF-8 on its own, so an error names
    the line, and no line is read beyond MAX_LINE_CHARS bytes (a binary file may have no newline)."""
    lineno = 0
    while True:
        raw = f.readline(4 * MAX_LINE_CHARS + 1)
        if not raw:
            return
        lineno += 1
        if len(raw) > 4 * MAX_LINE_CHARS:
            raise InputError(f"{source}:{lineno}: line longer than {MAX_LINE_CHARS} characters: not a trace line")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"{source}:{lineno}: not UTF-8 text (byte {e.start} of the line): expected tracefs "
                             "or trace-cmd report text") from None


def scan_trace(path: str | Path, consume):
    """Opens a trace file (gzipped when it ends in .gz) and returns consume(lines), the lines
    decoded one by one; InputError names the file (and line) when it cannot be read."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"trace: expected a file path, got {type(path).__name__}")
    p = Path(path)
    try:
        # Captures with many scheduler lines are stored gzipped (trace.txt.gz).
        opened = gzip.open(p, "rb") if p.suffix == ".gz" else p.open("rb")
        with opened as f:
            return consume(_file_lines(f, str(p)))
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise InputError(f"{p}: not a complete gzip file ({e}): expected a gzipped tracefs trace") from None
    except FileNotFoundError:
        raise InputError(f"{p}: no such trace file") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a directory, expected a trace file") from None
    except (OSError, ValueError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError(f"{p}: cannot read: {getattr(e, 'strerror', None) or e}") from None


def read_trace(path: str | Path) -> Trace:
    """Parses a trace file; InputError names the file (and line) when it cannot."""
    parser = TraceParser(str(path) if isinstance(path, (str, os.PathLike)) else "trace")
    events = scan_trace(path, lambda lines: list(parser.parse(lines)))
    return Trace(str(Path(path)), events, parser.skipped, parser.lost_events, parser.formats)


# ---- summaries ---------------------------------------------------------------------------

def phase_label(text: str) -> str:
    """A marker's phase name: the text without a leading `ppsim:` and without key=value words
    (`ppsim: sender done sent=10` -> `sender done`)."""
    if text.startswith("ppsim:"):
        text = text[len("ppsim:"):]
    return " ".join(w for w in text.split() if "=" not in w)


def _where(e: Event) -> str:
    return f"cpu{e.cpu}/{e.context or 'unknown'}/{e.task}"


@dataclass
class HoldBurst:
    pool: int
    cpu: int
    task: str
    pid: int
    context: str | None
    start_ns: int
    end_ns: int
    first_hold: int
    last_hold: int
    size: int
    first_line: int
    phase: str

    def to_dict(self) -> dict:
        return {"cpu": self.cpu, "task": self.task, "pid": self.pid, "context": self.context,
                "start_ns": self.start_ns, "duration_ns": self.end_ns - self.start_ns,
                "first_hold": self.first_hold, "size": self.size, "line": self.first_line,
                "phase": self.phase}


@dataclass
class PoolSummary:
    """What one pool did. Contexts are `cpuN/CONTEXT/TASK` strings; phases are the label of
    the last marker before the event (`phase_label`), `start` before any marker."""

    pool: int
    holds: int = 0
    releases: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    hold_bursts: list[HoldBurst] = field(default_factory=list)
    pool_releases: list[PoolRelease] = field(default_factory=list)
    pool_release_phases: list[str] = field(default_factory=list)
    hold_contexts: Counter = field(default_factory=Counter)
    release_contexts: Counter = field(default_factory=Counter)
    holds_by_phase: Counter = field(default_factory=Counter)
    releases_by_phase: Counter = field(default_factory=Counter)
    hold_counter_gaps: int = 0      # hold= values that skip (events lost or trace started late)
    release_counter_gaps: int = 0
    last_hold_counter: int | None = None
    last_release_counter: int | None = None
    pfns_held: set = field(default_factory=set)
    pfns_released: set = field(default_factory=set)

    @property
    def burst_sizes(self) -> list[int]:
        return [b.size for b in self.hold_bursts]

    @property
    def inflight_at_release(self) -> list[int]:
        return [r.inflight for r in self.pool_releases]

    @property
    def destroyed(self) -> bool:
        """The last page_pool_release saw no page inflight (the pool was freed)."""
        return bool(self.pool_releases) and self.pool_releases[-1].inflight <= 0

    @property
    def retry_intervals_ms(self) -> list[float]:
        r = self.pool_releases
        return [round((b.ts_ns - a.ts_ns) / 1e6, 3) for a, b in zip(r, r[1:])]

    def to_dict(self) -> dict:
        return {
            "pool": f"{self.pool:016x}",
            "holds": self.holds,
            "releases": self.releases,
            "hold_bursts": len(self.hold_bursts),
            "burst_sizes": self.burst_sizes,
            "bursts": [b.to_dict() for b in self.hold_bursts],
            "inflight_at_release": self.inflight_at_release,
            "pool_releases": [
                {"ts_ns": r.ts_ns, "cpu": r.cpu, "task": r.task, "pid": r.pid,
                 "context": r.context, "inflight": r.inflight, "hold": r.hold,
                 "release": r.release, "cnt": r.cnt, "phase": ph}
                for r, ph in zip(self.pool_releases, self.pool_release_phases)],
            "retry_intervals_ms": self.retry_intervals_ms,
            "destroyed": self.destroyed,
            "hold_contexts": dict(self.hold_contexts.most_common()),
            "release_contexts": dict(self.release_contexts.most_common()),
            "holds_by_phase": dict(self.holds_by_phase),
            "releases_by_phase": dict(self.releases_by_phase),
            "hold_counter_gaps": self.hold_counter_gaps,
            "release_counter_gaps": self.release_counter_gaps,
            "distinct_pages_held": len(self.pfns_held),
            "pages_held_not_released": len(self.pfns_held - self.pfns_released),
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
        }


@dataclass
class NapiSummary:
    dev: str
    polls: int = 0
    work: int = 0
    work_histogram: Counter = field(default_factory=Counter)
    budgets: Counter = field(default_factory=Counter)
    contexts: Counter = field(default_factory=Counter)
    polls_by_phase: Counter = field(default_factory=Counter)
    work_by_phase: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {"dev": self.dev, "polls": self.polls, "work": self.work,
                "work_histogram": {str(k): v for k, v in sorted(self.work_histogram.items())},
                "budgets": {str(k): v for k, v in sorted(self.budgets.items())},
                "contexts": dict(self.contexts.most_common()),
                "polls_by_phase": dict(self.polls_by_phase),
                "work_by_phase": dict(self.work_by_phase)}


@dataclass
class TraceSummary:
    source: str
    pools: dict[int, PoolSummary]
    napi: dict[str, NapiSummary]
    markers: list[Marker]
    skipped: Counter
    lost_events: int
    burst_gap_us: float

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "burst_gap_us": self.burst_gap_us,
            "pools": [p.to_dict() for p in self.pools.values()],
            "napi": [n.to_dict() for n in self.napi.values()],
            "markers": [{"ts_ns": m.ts_ns, "cpu": m.cpu, "task": m.task, "pid": m.pid,
                         "text": m.text} for m in self.markers],
            "skipped_events": dict(self.skipped),
            "lost_events": self.lost_events,
        }


def summarise(trace: Trace | Iterable[Event], burst_gap_us: float = DEFAULT_BURST_GAP_US,
              source: str | None = None) -> TraceSummary:
    """Per-pool and per-device summaries of a trace (see the module doc for hold bursts)."""
    if (isinstance(burst_gap_us, bool) or not isinstance(burst_gap_us, (int, float))
            or not 0 <= burst_gap_us <= 1e12):
        raise InputError(f"burst_gap_us: expected a number of microseconds from 0 to 1e12, got {burst_gap_us!r:.40}")
    if not isinstance(trace, Trace) and (isinstance(trace, (str, bytes)) or not hasattr(trace, "__iter__")):
        raise InputError(f"summarise: expected a Trace or an iterable of events, got {type(trace).__name__}")
    if isinstance(trace, Trace):
        events, skipped, lost, src = trace.events, trace.skipped, trace.lost_events, trace.source
    else:
        events, skipped, lost, src = list(trace), Counter(), 0, "<events>"
    gap_ns = int(burst_gap_us * 1000)
    pools: dict[int, PoolSummary] = {}
    napi: dict[str, NapiSummary] = {}
    markers: list[Marker] = []
    phase = "start"
    napi_seq: Counter = Counter()        # polls seen so far, per CPU
    open_burst: dict[int, tuple[HoldBurst, int]] = {}  # pool -> (burst, napi_seq at last hold)

    def pool_of(e) -> PoolSummary:
        ps = pools.get(e.pool)
        if ps is None:
            ps = pools[e.pool] = PoolSummary(e.pool)
        if ps.first_ns is None:
            ps.first_ns = e.ts_ns
        ps.last_ns = e.ts_ns
        return ps

    for e in events:
        if isinstance(e, Marker):
            markers.append(e)
            label = phase_label(e.text)
            if label:
                phase = label
        elif isinstance(e, NapiPoll):
            napi_seq[e.cpu] += 1
            ns = napi.get(e.dev)
            if ns is None:
                ns = napi[e.dev] = NapiSummary(e.dev)
            ns.polls += 1
            ns.work += e.work
            ns.work_histogram[e.work] += 1
            ns.budgets[e.budget] += 1
            ns.contexts[_where(e)] += 1
            ns.polls_by_phase[phase] += 1
            ns.work_by_phase[phase] += e.work
        elif isinstance(e, PageHold):
            ps = pool_of(e)
            ps.holds += 1
            ps.hold_contexts[_where(e)] += 1
            ps.holds_by_phase[phase] += 1
            ps.pfns_held.add(e.pfn)
            if ps.last_hold_counter is not None and e.hold != (ps.last_hold_counter + 1) % 2**32:
                ps.hold_counter_gaps += 1
            ps.last_hold_counter = e.hold
            cur = open_burst.get(e.pool)
            if cur is not None:
                b, seq = cur
                if (b.cpu == e.cpu and b.pid == e.pid and b.context == e.context
                        and e.hold == (b.last_hold + 1) % 2**32
                        and e.ts_ns - b.end_ns <= gap_ns and napi_seq[e.cpu] == seq):
                    b.end_ns, b.last_hold, b.size = e.ts_ns, e.hold, b.size + 1
                    open_burst[e.pool] = (b, napi_seq[e.cpu])
                    continue
            b = HoldBurst(pool=e.pool, cpu=e.cpu, task=e.task, pid=e.pid, context=e.context,
                          start_ns=e.ts_ns, end_ns=e.ts_ns, first_hold=e.hold, last_hold=e.hold,
                          size=1, first_line=e.line, phase=phase)
            ps.hold_bursts.append(b)
            open_burst[e.pool] = (b, napi_seq[e.cpu])
        elif isinstance(e, PageRelease):
            ps = pool_of(e)
            ps.releases += 1
            ps.release_contexts[_where(e)] += 1
            ps.releases_by_phase[phase] += 1
            ps.pfns_released.add(e.pfn)
            if (ps.last_release_counter is not None
                    and e.release != (ps.last_release_counter + 1) % 2**32):
                ps.release_counter_gaps += 1
            ps.last_release_counter = e.release
        elif isinstance(e, PoolRelease):
            ps = pool_of(e)
            ps.pool_releases.append(e)
            ps.pool_release_phases.append(phase)
        elif isinstance(e, PoolUpdateNid):
            pool_of(e)
    return TraceSummary(source if source is not None else src, pools, napi, markers, skipped,
                        lost, burst_gap_us)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python3 -m ppsim.trace TRACE_FILE...", file=sys.stderr)
        return 2
    out = []
    try:
        for path in args:
            out.append(read_trace(path).summary().to_dict())
    except InputError as e:
        print(f"ppsim.trace: {e}", file=sys.stderr)
        return 2
    json.dump(out if len(out) > 1 else out[0], sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
