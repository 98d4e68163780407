"""Sanity limits on outside data (autoquant/data/limits.yaml) and the one check that applies them.

A number from a file, a header, a flag or the environment is checked once, where its record is built
(config_int for config.json keys, records.serde for fields whose metadata names a bound, argtypes for flags):
finite, of the right type, within its documented range. The work done on it (loops per layer, an n x n GPU
topology, recursion over nested JSON) is then bounded by the same limits.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from autoquant.errors import InputError, shown


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
        raise InputError(f"{what} must be {kind}, got {shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{what} must be a finite number, got {value}")
    lo, hi = bound(name)
    if not lo <= value <= hi:
        raise InputError(f"{what} = {shown(value)} is outside the sane range {describe_bound(name)}")
    return value


def _number(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def check_node(node: Any, where: str) -> Any:
    """A node record read from outside (from_dict has checked each field's bound): its shape bounded before
    any per-GPU work: GPUs per node, a topology matrix no larger than the GPUs it describes."""
    lo, hi = bound("gpus_per_node")
    if len(node.gpus) > hi:
        raise InputError(f"{where}: {len(node.gpus)} GPUs in one node is more than the {int(hi)} autoquant plans for")
    n = len(node.gpus)
    if len(node.topology) > n or any(len(row) > n for row in node.topology):
        raise InputError(f"{where}: the topology matrix is larger than the node's {n} GPUs")
    for domain in node.nvlink_domains:
        if any(not 0 <= i < n for i in domain):
            raise InputError(f"{where}: an NVLink domain names a GPU the node does not have ({domain[:8]})")
    return node
