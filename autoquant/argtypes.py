"""Numbers from user text: argparse `type=` callables and flag/value checks, one wording.

Without `what`, a bad value raises argparse.ArgumentTypeError (argparse then names the flag); with
`what` (a flag, or a flag and the part of its value), a UsageError that names it. Every number is finite
and at most limits.yaml text.max_number_chars long (`inf`, `nan`, `1e400` and a 5,000-digit count are errors, not values);
`bounded(NAME)` also holds it to a range of autoquant/data/limits.yaml.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

from autoquant.errors import InputError, UsageError, shown

N = TypeVar("N", int, float)



def max_number_chars() -> int:
    """The longest text read as a number (limits.yaml): longer is no count or figure, and int() of 5,000
    digits is refused by Python itself."""
    from autoquant.limits import setting

    return setting("text", "max_number_chars")


def positive_int(text: str, what: str | None = None) -> int:
    """`text` as an integer >= 1."""
    return _positive(text, int, "a positive integer", what)


def positive_float(text: str, what: str | None = None) -> float:
    """`text` as a finite number > 0."""
    return _positive(text, float, "a positive number", what)


def bounded(name: str, integer: bool = False) -> Callable[[str], int | float]:
    """An argparse type: a positive number (an integer when asked) within limits.yaml bound `name`."""
    def convert(text: str) -> int | float:
        value = positive_int(text) if integer else positive_float(text)
        return _in_range(value, name, None)
    return convert


def in_range(value: N, name: str, what: str) -> N:
    """`value` (already a number) within bound `name`, else a UsageError naming `what`."""
    return _in_range(value, name, what)


def _in_range(value: N, name: str, what: str | None) -> N:
    from autoquant.limits import check_number

    try:
        return check_number(value, name, what or "value")
    except InputError as exc:
        if what is None:
            from autoquant.limits import describe_bound

            shown = value if isinstance(value, int) else f"{value:g}"
            raise argparse.ArgumentTypeError(f"{shown} is outside the sane range {describe_bound(name)}") from None
        raise UsageError(str(exc)) from None


def _positive(text: str, convert: Callable[[str], N], kind: str, what: str | None) -> N:
    value = None
    if isinstance(text, str) and len(text.strip()) <= max_number_chars():
        try:
            value = convert(text)
        except ValueError:
            value = None
    if value is not None and (isinstance(value, int) or math.isfinite(value)) and value > 0:
        return value
    if what is None:
        raise argparse.ArgumentTypeError(f"expected {kind}, got {shown(text)}")
    if value is None or not (isinstance(value, int) or math.isfinite(value)):
        raise UsageError(f"{what} must be {kind}, not {shown(text)}")
    raise UsageError(f"{what} must be {'at least 1' if convert is int else 'above 0'}, not {shown(value)}")
