"""Sanity limits on outside data (autoquant/data/limits.yaml) and the one check that applies them.

A number from a file, a header, a flag or the environment is checked once, where its record is built:
finite, of the right type, within its documented range. The work done on it (loops per layer, an n x n GPU
topology, recursion over nested JSON) is then bounded by the same limits.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

from autoquant.errors import InputError


@functools.cache
def _data() -> Mapping[str, Any]:
    from autoquant.data import load

    return load("limits")


def setting(section: str, name: str) -> int:
    """A size limit: json.max_depth, csv.max_field_chars, gguf.max_array_depth..."""
    return int(_data()[section][name])


def bound(name: str) -> tuple[float, float]:
    lo, hi = _data()["bounds"][name]
    return lo, hi


def describe_bound(name: str) -> str:
    lo, hi = bound(name)
    return f"{_number(lo)}..{_number(hi)}"


def check_number(value: Any, name: str, what: str, integer: bool = False) -> Any:
    """`value` when it is a finite number (an integer when asked) within bound `name`, else InputError naming
    `what`. Booleans are not numbers here."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise InputError(f"{what} must be {kind}, got {_shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{what} must be a finite number, got {value}")
    lo, hi = bound(name)
    if not lo <= value <= hi:
        raise InputError(f"{what} = {_shown(value)} is outside the sane range {describe_bound(name)}")
    return value


def check_bounds(record: Any, where: str) -> Any:
    """Every field of a dataclass record (and the records inside it) whose metadata names a bound, checked;
    None is left alone (unknown). Returns the record."""
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        for f in dataclasses.fields(record):
            value = getattr(record, f.name)
            name = f.metadata.get("bound")
            if name and value is not None:
                if isinstance(value, (list, tuple)):
                    for i, item in enumerate(value):
                        check_number(item, name, f"{where}.{f.name}[{i}]")
                else:
                    check_number(value, name, f"{where}.{f.name}")
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    check_bounds(item, f"{where}.{f.name}[{i}]")
            else:
                check_bounds(value, f"{where}.{f.name}")
    return record


def _number(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...{text[-12:]} ({len(text)} characters)"


def check_node(node: Any, where: str) -> Any:
    """A node record read from outside: its numbers in range (check_bounds) and its shape bounded before any
    per-GPU work: GPUs per node, nodes, a topology matrix no larger than the GPUs it describes."""
    lo, hi = bound("gpus_per_node")
    if len(node.gpus) > hi:
        raise InputError(f"{where}: {len(node.gpus)} GPUs in one node is more than the {int(hi)} autoquant plans for")
    n = len(node.gpus)
    if len(node.topology) > n or any(len(row) > n for row in node.topology):
        raise InputError(f"{where}: the topology matrix is larger than the node's {n} GPUs")
    for domain in node.nvlink_domains:
        if any(not 0 <= i < n for i in domain):
            raise InputError(f"{where}: an NVLink domain names a GPU the node does not have ({domain[:8]})")
    return check_bounds(node, where)
