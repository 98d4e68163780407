"""The planner's read-only views of a Facts object (autoquant/facts): methods, engine specs, overheads,
pricing. plan() and estimate() take the Facts and pass it down (`fx`); without one, the packaged facts.
Every figure that drives a decision comes from a YAML file under autoquant/data/ with its source.
"""

from __future__ import annotations

from typing import Any

from autoquant.engines.compat import capability_tuple
from autoquant.engines.spec import EngineSpec
from autoquant.facts import Facts, default_facts

GIB_GB = 1024**3 / 1e9  # GiB -> GB

__all__ = ["GIB_GB", "Facts", "capability_tuple", "engine", "engine_ids", "engine_label", "engines", "kv_dtype_bytes",
           "math_precision", "method", "method_label", "methods", "overheads", "prices"]


def methods(fx: Facts | None = None) -> dict[str, dict[str, Any]]:
    return (fx or default_facts()).methods  # type: ignore[return-value]


def kv_dtype_bytes(fx: Facts | None = None) -> dict[str, float]:
    return (fx or default_facts()).kv_dtype_bytes  # type: ignore[return-value]


def engines(fx: Facts | None = None) -> dict[str, EngineSpec]:
    return (fx or default_facts()).engines  # type: ignore[return-value]


def engine_ids(fx: Facts | None = None) -> tuple[str, ...]:
    return (fx or default_facts()).engine_ids


def engine(engine_id: str, fx: Facts | None = None) -> EngineSpec:
    return (fx or default_facts()).engine(engine_id)


def overheads(fx: Facts | None = None) -> dict[str, Any]:
    return (fx or default_facts()).overheads  # type: ignore[return-value]


def prices(fx: Facts | None = None) -> dict[str, float]:
    return (fx or default_facts()).prices  # type: ignore[return-value]


def method(method_id: str, fx: Facts | None = None) -> dict[str, Any]:
    return methods(fx)[method_id]


def method_label(method_id: str, fx: Facts | None = None) -> str:
    return str(methods(fx).get(method_id, {}).get("label", method_id))


def engine_label(engine_id: str, fx: Facts | None = None) -> str:
    spec = engines(fx).get(engine_id)
    return spec.label if spec else engine_id


def math_precision(method_id: str, capability: str | None, fx: Facts | None = None) -> str:
    """fp16 | fp8 | int8 | fp4 | gguf: the tensor-core precision a method's GEMMs run in here."""
    m = methods(fx).get(method_id, {})
    native = capability_tuple(m.get("native_min_capability"))
    if native and (capability_tuple(capability) or (0, 0)) < native:
        return str(m.get("math_below_native", "fp16"))
    return str(m.get("math", "fp16"))
