"""JSON a user hands ppsim (scenarios, --set values, capture meta.json, results.json), read
strictly and reported as one InputError line, as the C++ reader (sim/json_reader.h) does.

Python's json module accepts what JSON does not (NaN, Infinity, numbers that overflow to inf),
keeps the last of two values given for one key, and fails with other exceptions on binary bytes,
4300-digit integers or deep nesting. Here each of those is an InputError naming the source and
the JSON path (or line and column), and `check_data` holds Python objects passed instead of text
(ppsim.run({...})) to the same rules.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ppsim.errors import InputError

MAX_DEPTH = 64                    # as kMaxJsonDepth in sim/json_reader.h
MAX_INT_DIGITS = 4000             # below Python's int-from-string limit (4300)
MAX_FILE_BYTES = 64 << 20         # scenario and meta.json files


class MalformedJson(InputError):
    """The text is not JSON at all (as opposed to JSON that breaks a rule: a repeated key, NaN)."""


class _Bad:
    """Placed in the parsed tree where a value is not JSON; `check_data` reports it with its path."""

    def __init__(self, what: str) -> None:
        self.what = what


class _DupDict(dict):
    """An object in which `dup` was given twice."""

    dup: str


def _pairs(pairs: list) -> dict:
    d: dict = {}
    for k, v in pairs:
        if k in d:
            out = _DupDict(d)
            out.dup = k
            return out
        d[k] = v
    return d


def _float(text: str):
    v = float(text)
    return v if math.isfinite(v) else _Bad(f"expected a finite number, got {text[:40]}")


def _int(text: str):
    if len(text) > MAX_INT_DIGITS:
        return _Bad(f"expected a number, got an integer of {len(text)} digits")
    return int(text)


def _constant(name: str):
    return _Bad(f"expected a finite number, got {name} (not JSON)")


def _quote(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


def _depth_error_at(text: str) -> tuple[int, int]:
    """Line and column where nesting first exceeds MAX_DEPTH (strings skipped)."""
    depth, line, col, in_str, esc = 0, 1, 0, False, False
    for ch in text:
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return line, col
        elif ch in "]}":
            depth -= 1
    return line, max(col, 1)


def loads(text: str | bytes, source: str, path: str = "$") -> Any:
    """Parses JSON text; InputError naming `source` (and JSON paths from `path`) on anything that
    is not strict JSON."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedJson(f"{source}: not UTF-8 text (byte {e.start}): expected JSON") from None
    if not isinstance(text, str):
        raise InputError(f"{source}: expected JSON text, got {type(text).__name__}")
    if text.startswith("\ufeff"):  # a UTF-8 byte order mark, as nlohmann also skips
        text = text[1:]
    try:
        data = json.loads(text, object_pairs_hook=_pairs, parse_float=_float, parse_int=_int,
                          parse_constant=_constant)
    except json.JSONDecodeError as e:
        raise MalformedJson(f"{source}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except RecursionError:
        line, col = _depth_error_at(text)
        raise InputError(f"{source}: malformed JSON at line {line}, column {col}: "
                         f"nested deeper than {MAX_DEPTH} levels") from None
    check_data(data, source, path)
    return data


def load_file(path: str | os.PathLike, source: str | None = None, what: str = "JSON file",
              max_bytes: int = MAX_FILE_BYTES) -> Any:
    """Reads and parses a JSON file (at most `max_bytes`); `source` names it in errors."""
    p = Path(path)
    src = source or str(p)
    try:
        with p.open("rb") as f:
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise InputError(f"{src}: no such {what}") from None
    except IsADirectoryError:
        raise InputError(f"{src}: is a directory, expected a {what}") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{src}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    if len(raw) > max_bytes:
        raise InputError(f"{src}: larger than {max_bytes >> 20} MiB: expected a {what}")
    return loads(raw, src)


def type_name(v: Any) -> str:
    """What a JSON value is, as messages say it: "an object", "a string", ..."""
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, (list, tuple)):
        return "an array"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return "a number"
    return type(v).__name__


def check_data(data: Any, source: str, path: str = "$") -> None:
    """Raises InputError unless `data` is JSON data: dicts with string keys, lists, strings of valid
    Unicode, finite numbers, booleans and None, nested at most MAX_DEPTH levels."""
    stack = [(data, path, 0)]
    while stack:
        v, p, depth = stack.pop()
        if isinstance(v, _Bad):
            raise InputError(f"{source}: at {p}: {v.what}")
        if isinstance(v, dict):
            if depth >= MAX_DEPTH:
                raise InputError(f"{source}: at {p}: nested deeper than {MAX_DEPTH} levels")
            if isinstance(v, _DupDict):
                raise InputError(f"{source}: at {p}.{v.dup}: duplicate key {_quote(v.dup)}: given twice in one "
                                 "object (JSON objects must not repeat a key)")
            for k, x in reversed(list(v.items())):
                if not isinstance(k, str):
                    raise InputError(f"{source}: at {p}: expected string keys, got {type(k).__name__} {k!r:.40}")
                _check_text(k, source, p)
                stack.append((x, f"{p}.{k}", depth + 1))
        elif isinstance(v, (list, tuple)):
            if depth >= MAX_DEPTH:
                raise InputError(f"{source}: at {p}: nested deeper than {MAX_DEPTH} levels")
            for i in range(len(v) - 1, -1, -1):
                stack.append((v[i], f"{p}[{i}]", depth + 1))
        elif isinstance(v, str):
            _check_text(v, source, p)
        elif isinstance(v, bool) or v is None:
            pass
        elif isinstance(v, int):
            if v.bit_length() > 3 * MAX_INT_DIGITS:
                raise InputError(f"{source}: at {p}: expected a number, got an integer of {v.bit_length()} bits")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise InputError(f"{source}: at {p}: expected a finite number, got {v}")
        else:
            raise InputError(f"{source}: at {p}: expected JSON data (object, array, string, number, true, false "
                             f"or null), got {type(v).__name__}")


def _check_text(s: str, source: str, path: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"{source}: at {path}: string is not valid Unicode "
                         f"(lone surrogate U+{ord(s[e.start]):04X})") from None


def dumps(data: Any) -> str:
    """Compact JSON text of data that passed check_data (ASCII, so any reader accepts it)."""
    return json.dumps(data, allow_nan=False, separators=(",", ":"))
