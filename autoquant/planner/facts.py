"""The planner's data: methods, engines, overheads, pricing, kernel efficiencies (read-only views).

Every figure that drives a decision comes from a YAML file under autoquant/data/ with its source;
this module only reads them (through `autoquant.data.load`) and answers small questions.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from autoquant.data import load

GIB_GB = 1024**3 / 1e9  # GiB -> GB


def _safe_load(name: str) -> Any:
    try:
        return load(name) or {}
    except FileNotFoundError:
        return {}


@functools.lru_cache(maxsize=1)
def methods() -> dict[str, dict[str, Any]]:
    return dict(_safe_load("methods").get("methods") or {})


@functools.lru_cache(maxsize=1)
def kv_dtype_bytes() -> dict[str, float]:
    return {k: float(v) for k, v in (_safe_load("methods").get("kv_cache_dtypes") or {}).items()}


@functools.lru_cache(maxsize=1)
def engines() -> dict[str, dict[str, Any]]:
    return dict(_safe_load("engines").get("engines") or {})


@functools.lru_cache(maxsize=1)
def rules() -> list[dict[str, Any]]:
    return list(_safe_load("engines").get("rules") or [])


@functools.lru_cache(maxsize=1)
def marlin() -> dict[str, Any]:
    return dict(_safe_load("engines").get("marlin") or {})


@functools.lru_cache(maxsize=1)
def overheads() -> dict[str, Any]:
    return dict(_safe_load("overheads"))


@functools.lru_cache(maxsize=1)
def prices() -> dict[str, float]:
    out: dict[str, float] = {}
    for key, entry in (_safe_load("pricing").get("prices") or {}).items():
        if isinstance(entry, Mapping) and isinstance(entry.get("usd_per_hour"), (int, float)):
            out[str(key)] = float(entry["usd_per_hour"])
    return out


def method(method_id: str) -> dict[str, Any]:
    return methods()[method_id]


def method_label(method_id: str) -> str:
    return str(methods().get(method_id, {}).get("label", method_id))


def engine_label(engine: str) -> str:
    return str(engines().get(engine, {}).get("label", engine))


def capability_tuple(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    parts = str(text).split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def kernel_for(method_id: str, engine: str, capability: str | None, device_kind: str) -> str:
    """Kernel id (kernels.yaml) that runs `method_id` on `engine` at this capability."""
    if method_id.startswith("gguf-"):
        return {"cuda": "llamacpp-cuda", "apple": "llamacpp-metal"}.get(device_kind, "llamacpp-cpu")
    spec = methods().get(method_id, {}).get("kernels", {}).get(engine)
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        cap = capability_tuple(capability) or (0, 0)
        for rng, kernel in spec.items():
            lo, _, hi = str(rng).partition("-")
            lo_t, hi_t = capability_tuple(lo) or (0, 0), capability_tuple(hi or lo) or (99, 9)
            if lo_t <= cap <= hi_t:
                return str(kernel)
        return str(next(iter(spec.values())))
    return ""


def math_precision(method_id: str, capability: str | None) -> str:
    """fp16 | fp8 | int8 | fp4 | gguf: the tensor-core precision a method's GEMMs run in here."""
    m = methods().get(method_id, {})
    native = capability_tuple(m.get("native_min_capability"))
    if native and (capability_tuple(capability) or (0, 0)) < native:
        return str(m.get("math_below_native", "fp16"))
    return str(m.get("math", "fp16"))
