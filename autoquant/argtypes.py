"""Positive numbers from user text: argparse `type=` callables and flag/value checks, one wording.

Without `what`, a bad value raises argparse.ArgumentTypeError (argparse then names the flag); with
`what` (a flag, or a flag and the part of its value), a UsageError that names it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from autoquant.errors import UsageError

N = TypeVar("N", int, float)


def positive_int(text: str, what: str | None = None) -> int:
    """`text` as an integer >= 1."""
    return _positive(text, int, "a positive integer", what)


def positive_float(text: str, what: str | None = None) -> float:
    """`text` as a number > 0."""
    return _positive(text, float, "a positive number", what)


def _positive(text: str, convert: Callable[[str], N], kind: str, what: str | None) -> N:
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is not None and value > 0:
        return value
    if what is None:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
    if value is None:
        raise UsageError(f"{what} must be {kind}, not {text!r}")
    raise UsageError(f"{what} must be {'at least 1' if convert is int else 'above 0'}, not {text}")
