"""Reading JSON from outside (config.json, node records, plans, traffic lines, headers) strictly.

Python's json module accepts what JSON does not: NaN and Infinity, 1e400 (which becomes inf), integers of
any length (and then refuses 4,300 digits with a ValueError), and nesting until RecursionError. Each of those
is one clear InputError here, so no record is ever built from a non-finite or absurd number.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from autoquant.errors import InputError, shown
from autoquant.limits import setting


class JSONInputError(InputError):
    """Outside JSON that cannot be taken: `reason` without the `where` prefix, for callers that reword."""

    def __init__(self, where: str, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where, self.reason = where, reason


def loads(text: str | bytes, where: str) -> Any:
    """Parse `text` (from `where`, named in every error)."""
    if len(text) > setting("json", "max_bytes"):
        raise JSONInputError(where, f"{len(text):,} bytes of JSON is more than any record autoquant reads "
                         f"(limit {setting('json', 'max_bytes'):,})")
    try:
        value = json.loads(text, parse_constant=_constant(where), parse_float=_float(where),
                           parse_int=_int(where))
    except RecursionError:
        raise JSONInputError(where, f"JSON nested too deeply (limit {setting('json', 'max_depth')} levels)") from None
    except json.JSONDecodeError as exc:
        raise JSONInputError(where, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except UnicodeDecodeError:
        raise JSONInputError(where, "not UTF-8 JSON text") from None
    check_depth(value, where)
    return value


def load(path: str | Path, where: str | None = None) -> Any:
    """Parse the JSON file at `path`."""
    p = Path(path)
    size = p.stat().st_size
    if size > setting("json", "max_bytes"):
        raise JSONInputError(where or str(p), f"a {size:,}-byte file is more than any JSON record autoquant reads")
    try:
        text = p.read_bytes().decode("utf-8")  # RFC 8259: JSON exchanged between systems is UTF-8
    except UnicodeDecodeError:
        raise JSONInputError(where or str(p), "not UTF-8 JSON text") from None
    return loads(text, where or str(p))


def check_depth(value: Any, where: str) -> None:
    """Nesting deeper than json.max_depth is an error (iterative: deep input cannot exhaust the stack)."""
    limit = setting("json", "max_depth")
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise JSONInputError(where, f"JSON nested deeper than {limit} levels")
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def _constant(where: str):
    def reject(name: str) -> Any:
        raise JSONInputError(where, f"{name} is not a number JSON allows (give a finite number or null)")
    return reject


def _float(where: str):
    def parse(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise JSONInputError(where, f"{shown(text)} is too large to be a number here")
        return value
    return parse


def _int(where: str):
    digits = setting("json", "max_int_digits")

    def parse(text: str) -> int:
        if len(text.lstrip("-")) > digits:
            raise JSONInputError(where, f"an integer of {len(text)} digits is no count of anything "
                             f"(limit {digits} digits)")
        return int(text)
    return parse

