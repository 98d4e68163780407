"""Dataclass <-> JSON-ready dict conversion for the records passed between stages.

Records are plain dataclasses; this module is the one place that knows how to turn them into
JSON-ready dicts and back, so any stage can be replayed from a file (`probe --save` then
`plan --hardware node.json`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from autoquant.errors import shown

T = TypeVar("T")


def to_dict(obj: Any) -> Any:
    """Recursively convert dataclasses (and lists/tuples/dicts of them) to JSON-ready values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def from_dict(cls: type[T], data: Any) -> T:
    """Build `cls` from a dict produced by `to_dict` (unknown keys are ignored, missing ones default)."""
    return _convert(cls, data, cls.__name__)


# No number in a record is larger (2^63: bytes, tokens and counts all fit); a bigger one is corrupt input,
# and finite only: NaN and inf in a record make every figure built on it meaningless (and --json invalid).
MAX_MAGNITUDE = 2**63


class RecordError(ValueError):
    """A record file does not have the shape its type needs."""


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        real = [a for a in args if a is not type(None)]
        if len(real) == 1:  # Optional[X]: X's own error says more than "matches none of"
            return _convert(real[0], value, where)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except (RecordError, TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise RecordError(f"{where}: {shown(value)} matches none of {tp} ({'; '.join(errors)})")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise RecordError(f"{where}: expected an object, got {type(value).__name__}")
        hints = get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _convert(hints[f.name], value[f.name], f"{where}.{f.name}")
                if f.metadata.get("bound") and kwargs[f.name] is not None:
                    _check_bound(kwargs[f.name], f.metadata["bound"], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecordError(f"{where}: missing field '{f.name}'")
        return tp(**kwargs)
    if origin in (list, typing.List):  # noqa: UP006
        (arg,) = get_args(tp) or (Any,)
        if not isinstance(value, list):
            raise RecordError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(arg, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise RecordError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where) for v in value)
        return tuple(_convert(a, v, where) for a, v in zip(args, value, strict=False))
    if origin is dict:
        k_t, v_t = get_args(tp) or (Any, Any)
        if not isinstance(value, dict):
            raise RecordError(f"{where}: expected an object, got {type(value).__name__}")
        return {_convert(k_t, k, where): _convert(v_t, v, f"{where}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in get_args(tp):
            raise RecordError(f"{where}: {shown(value)} is not one of {get_args(tp)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(f"{where}: expected a number, got {shown(value)}")
        if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
            raise RecordError(f"{where}: expected a finite number, got {shown(value)}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{where}: expected an integer, got {shown(value)}")
        if abs(value) > MAX_MAGNITUDE:
            raise RecordError(f"{where}: {shown(value)} is no count of anything")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise RecordError(f"{where}: expected true/false, got {shown(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise RecordError(f"{where}: expected a string, got {shown(value)}")
        return value
    return value



def _check_bound(value: Any, name: str, where: str) -> None:
    from autoquant.errors import InputError
    from autoquant.limits import check_number

    try:
        for item in value if isinstance(value, (list, tuple)) else (value,):
            check_number(item, name, where)
    except InputError as exc:
        raise RecordError(str(exc)) from None
