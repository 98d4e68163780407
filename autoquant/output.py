"""Printing records: JSON for scripts, aligned plain-text tables for people, and autoquant's own lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from autoquant.errors import MESSAGE_LIMIT, escape_controls, one_line
from autoquant.records.serde import to_dict
from autoquant.secrets import environment_secrets, scrub

# A line that carries a launch command (argv and env, secrets masked) is meant to be copied: it is clipped
# only past any real one, not at MESSAGE_LIMIT.
COMMAND_LIMIT = 20_000


def print_json(record: Any, stream: TextIO | None = None) -> None:
    """The record as JSON, with secrets masked in its strings (a plan carries the launch command, a bench
    report the server's URL)."""
    data = _scrubbed(to_dict(record), environment_secrets())
    # One write: json.dump writes every token separately, a system call each on an unbuffered stdout
    # (PYTHONUNBUFFERED=1, common in containers): ~8,000 for a plan.
    # allow_nan=False: a NaN or inf would make the output invalid JSON; an error is better than that.
    (stream or sys.stdout).write(json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def _scrubbed(value: Any, secrets: list[str]) -> Any:
    # strings only: masking the serialized text could cut into numbers and keys
    if isinstance(value, str):
        return scrub(value, secrets, environ={})
    if isinstance(value, list):
        return [_scrubbed(v, secrets) for v in value]
    if isinstance(value, dict):
        return {k: _scrubbed(v, secrets) for k, v in value.items()}
    return value


def say(message: str, secrets: Iterable[str] = (), stream: TextIO | None = None, limit: int = MESSAGE_LIMIT) -> None:
    """Print `autoquant: <message>` (stderr): the one printer of autoquant's own notes, warnings and errors.
    Secrets and URL credentials are masked, control characters escaped (user text cannot start a new line)
    and input longer than `limit` clipped (a launch command, meant to be copied, may pass a larger one)."""
    print(f"autoquant: {one_line(scrub(message, secrets), limit)}", file=stream or sys.stderr, flush=True)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str] | None = None) -> str:
    """Left-aligned columns separated by two spaces; None prints as '-'."""
    cells = [[_cell(v) for v in row] for row in rows]
    if headers:
        cells.insert(0, list(headers))
    if not cells:
        return ""
    widths = [max(len(r[i]) if i < len(r) else 0 for r in cells) for i in range(max(map(len, cells)))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in cells]
    if headers:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k.ljust(width)}  {_cell(v)}" for k, v in pairs)


def human_bytes(n: float | int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} TiB"


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, (list, tuple)):
        return ",".join(_cell(x) for x in v)
    return escape_controls(str(v))  # a newline in a model name must not start a row of its own
