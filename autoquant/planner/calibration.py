"""Kernel efficiency factors: kernels.yaml (published), overridden by calibration records.

Order (later wins): autoquant/data/kernels.yaml -> autoquant/data/calibration.yaml (fitted by
benchmarks/accuracy.py) -> a `--calibration FILE` given by the user. Each layer may set, per kernel id,
`decode_bandwidth_efficiency` and `prefill_compute_efficiency` (and per GPU under `by_gpu:`), and per
engine `step_overhead_ms` (fixed scheduler/launch time per engine step) and `compute_factor`.

Whole-model compute efficiency = the GEMM efficiency of the kernel (a published micro-benchmark figure;
a kernel whose own figure is whole-model, `prefill_level: model`, points at the GEMM kernel of its math
with `gemm_efficiency_from`) x the engine's `compute_factor` (the share of a compute-bound step that is
GEMM time: attention, norms, sampling and scheduling are the rest; perf._roofline adds that share as
time), fitted per engine on all of that engine's rows. So every kernel of one engine is discounted
alike, whether or not it has rows of its own.
llama.cpp's kernel figures are llama-bench pp512 (whole-model) already; its factor stays 1 unless given.
An engine named in a kernel's `attention_kernel_of` (kernels.yaml `flash-attention`: vLLM, TRT-LLM) gets that
kernel's figure as `attention_compute`: attention FLOPs then run at it, outside the engine factor. A kernel's
`batched_decode_speedup` points (llama.cpp) bound what batching several decode slots gains (perf.batch_slowdown).

Per-GPU figures apply to that GPU; for a kernel with `by_gpu_scope: class` they also stand for GPUs of
the same class (architecture + memory family: hopper-hbm, ada-gddr, ...) that have none of their own.
A kernel without a figure borrows from the kernels its kernels.yaml `borrow_from:` list names, in order, and says so.
"""

from __future__ import annotations

import functools
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoquant.errors import InputError
from autoquant.planner.measured import Measured

_FIELDS = ("decode_bandwidth_efficiency", "prefill_compute_efficiency")
_SHORT = {"decode": "decode_bandwidth_efficiency", "prefill": "prefill_compute_efficiency"}


@dataclass(frozen=True)
class Efficiency:
    decode_bandwidth: float  # fraction of peak memory bandwidth decode steps reach
    prefill_compute: float  # fraction of peak tensor throughput GEMMs reach
    source: str = ""
    # whole-model / GEMM: the share of a compute-bound step the engine spends in GEMMs (perf._roofline)
    compute_factor: float = 1.0
    # fraction of the 16-bit peak the engine's attention kernel reaches (FlashAttention); None: attention
    # FLOPs are part of the whole-model figure (llama.cpp's pp512) and charged with the GEMMs
    attention_compute: float | None = None
    # llama.cpp: measured (batch, aggregate decode speedup over batch 1) points; empty: the roofline alone
    batch_speedup: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True)
class Calibration:
    # kernel -> field -> (value, source); (kernel, gpu key) -> field -> (value, source)
    values: Mapping[str, Mapping[str, tuple[float, str]]] = field(default_factory=dict)
    by_gpu: Mapping[tuple[str, str], Mapping[str, tuple[float, str]]] = field(default_factory=dict)
    step_overhead_ms: Mapping[str, float] = field(default_factory=dict)
    # engine -> (whole-model / GEMM compute factor, source)
    compute_factor: Mapping[str, tuple[float, str]] = field(default_factory=dict)
    gemm_from: Mapping[str, str] = field(default_factory=dict)  # kernel -> kernel holding its GEMM figure
    class_scoped: frozenset[str] = frozenset()  # kernels whose by_gpu figures stand for the GPU's class
    attention_kernel: Mapping[str, str] = field(default_factory=dict)  # engine -> its attention kernel id
    batch_speedup: Mapping[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)  # kernel -> points
    borrow_from: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # kernel -> kernels whose figures it borrows
    # fitted per GPU class (hopper-hbm, ampere-hbm, ada-gddr, ...): (kernel, class) -> field -> (value, source)
    class_values: Mapping[tuple[str, str], Mapping[str, tuple[float, str]]] = field(default_factory=dict)
    # (engine, class) -> "step_overhead_ms" | "compute_factor" -> (value, source)
    engine_class: Mapping[tuple[str, str], Mapping[str, tuple[float, str]]] = field(default_factory=dict)
    # (engine, class) -> the span of the rows its factors were fitted on: params_b, isl, concurrency [min, max]
    fitted_range: Mapping[tuple[str, str], Mapping[str, tuple[float, float]]] = field(default_factory=dict)
    # this node's own measurements (autoquant calibrate): speed factors per engine x method x phase
    measured: Measured = field(default_factory=Measured)

    def with_measured(self, measured: Measured) -> Calibration:
        from dataclasses import replace

        return replace(self, measured=measured)

    def _field(self, kernel: str, name: str, gpu: str | None) -> tuple[float, str] | None:
        if name == _FIELDS[1] and kernel in self.gemm_from:
            via = self.gemm_from[kernel]
            got = self._field(via, name, gpu)
            return None if got is None else (got[0], f"{got[1]} (GEMM figure of {via})")
        chain = (kernel, *self.borrow_from.get(kernel, ()))
        cls = gpu_class(gpu) if gpu else None
        for i, k in enumerate(chain):
            borrowed = "" if i == 0 else f" (borrowed from {k})"
            if gpu and name in self.by_gpu.get((k, gpu), {}):
                v, src = self.by_gpu[(k, gpu)][name]
                return v, src + borrowed
            if cls and name in self.class_values.get((k, cls), {}):
                v, src = self.class_values[(k, cls)][name]
                return v, f"{src} ({cls}){borrowed}"
            if cls and k in self.class_scoped:
                same = sorted(g for (kk, g) in self.by_gpu if kk == k and g != gpu and gpu_class(g) == cls
                              and name in self.by_gpu[(kk, g)])
                if same:
                    v, src = self.by_gpu[(k, same[0])][name]
                    return v, f"{src}, same GPU class {cls}{borrowed}"
            if name in self.values.get(k, {}):
                v, src = self.values[k][name]
                return v, src + borrowed
        return None

    def efficiency(self, kernel: str, gpu: str | None = None, engine: str | None = None) -> Efficiency:
        """Decode bandwidth and GEMM efficiency of `kernel` on `gpu`, with `engine`'s compute factor
        (1 without an engine): compute-bound steps reach GEMM efficiency x factor of peak."""
        dec = self._field(kernel, _FIELDS[0], gpu)
        pre = self._field(kernel, _FIELDS[1], gpu)
        if dec is None or pre is None:
            pool = [v[n][0] for v in self.values.values() for n in _FIELDS if n in v]
            if not pool:
                raise InputError(f"no efficiency figures for kernel {kernel!r} (kernels.yaml is missing or empty)")
            median = statistics.median(pool)
            dec = dec or (median, "median of all kernels' figures (none for this kernel)")
            pre = pre or (median, "median of all kernels' figures (none for this kernel)")
        factor, fsrc = self._engine_value(engine, "compute_factor", gpu, (1.0, "")) if engine else (1.0, "")
        prefill_src = pre[1] + (f"; {engine} compute factor {factor:g} ({fsrc})" if fsrc else "")
        attention, att_src = None, ""
        akernel = self.attention_kernel.get(engine or "")
        if akernel:
            got = self._field(akernel, _FIELDS[1], gpu)
            if got is not None:
                attention, att_src = got[0], f"; attention: {akernel} {got[0]:g} ({got[1]})"
        return Efficiency(dec[0], pre[0], f"decode: {dec[1]}; prefill: {prefill_src}{att_src}", factor,
                          attention, self.batch_speedup.get(kernel, ()))

    def _engine_value(self, engine: str, name: str, gpu: str | None,
                      default: tuple[float, str]) -> tuple[float, str]:
        """An engine's fitted figure for the GPU's class where one was fitted, else its all-GPU figure."""
        cls = gpu_class(gpu) if gpu else None
        if cls and name in self.engine_class.get((engine, cls), {}):
            v, src = self.engine_class[(engine, cls)][name]
            return v, f"{src} ({cls})"
        if name == "step_overhead_ms":
            return (float(self.step_overhead_ms[engine]), "") if engine in self.step_overhead_ms else default
        if name == "layer_overhead_us":
            return default
        return self.compute_factor.get(engine, default)

    def overhead_ms(self, engine: str, gpu: str | None = None) -> float:
        """Fixed time per engine step (scheduling, sampling, launch gaps), for the GPU's class where fitted."""
        return float(self._engine_value(engine, "step_overhead_ms", gpu, (0.0, ""))[0])

    def layer_overhead_us(self, engine: str, gpu: str | None = None) -> float:
        """Fixed time per layer per step (kernel launch gaps, small kernels), for the GPU's class where fitted."""
        return float(self._engine_value(engine, "layer_overhead_us", gpu, (0.0, ""))[0])

    def fitted_span(self, engine: str, gpu: str | None) -> Mapping[str, tuple[float, float]] | None:
        """The span of the rows `engine`'s factors were fitted on for this GPU's class; None: not fitted there."""
        cls = gpu_class(gpu) if gpu else None
        return self.fitted_range.get((engine, cls)) if cls else None

    def engine_factor(self, engine: str, gpu: str | None = None) -> float:
        return self._engine_value(engine, "compute_factor", gpu, (1.0, ""))[0]

    def merged(self, layer: Mapping[str, Any], name: str, gpu_key=None) -> Calibration:
        values = {k: dict(v) for k, v in self.values.items()}
        by_gpu = {k: dict(v) for k, v in self.by_gpu.items()}
        gemm_from = dict(self.gemm_from)
        scoped = set(self.class_scoped)
        attention = dict(self.attention_kernel)
        speedups = dict(self.batch_speedup)
        borrow = dict(self.borrow_from)
        class_values = {k: dict(v) for k, v in self.class_values.items()}
        engine_class = {k: dict(v) for k, v in self.engine_class.items()}
        for kid, raw in _kernel_entries(layer).items():
            if not isinstance(raw, Mapping):
                continue
            if raw.get("borrow_from"):
                borrow[kid] = tuple(str(k) for k in raw["borrow_from"])
            src = str(raw.get("source") or name)
            for engine in raw.get("attention_kernel_of") or ():
                attention[str(engine)] = kid
            points = raw.get("batched_decode_speedup")
            if isinstance(points, Mapping):
                speedups[kid] = tuple(sorted((float(b), float(v)) for b, v in points.items()
                                             if _number(b) and _number(v)))
            if raw.get("gemm_efficiency_from"):
                gemm_from[kid] = str(raw["gemm_efficiency_from"])
            if raw.get("by_gpu_scope") == "class":
                scoped.add(kid)
            for f in _FIELDS:
                v = _number(raw.get(f))
                if v is not None:
                    values.setdefault(kid, {})[f] = (v, src)
                    for key in [k for k in class_values if k[0] == kid]:  # a later layer's figure wins
                        class_values[key].pop(f, None)
                    if raw.get("replaces_per_gpu"):  # a fitted figure that supersedes published per-GPU ones
                        for key in [k for k in by_gpu if k[0] == kid]:
                            by_gpu[key].pop(f, None)
            for cls, craw in (raw.get("by_gpu_class") or {}).items():
                for short, f in _SHORT.items():
                    v = _number((craw or {}).get(short, (craw or {}).get(f)))
                    if v is not None:
                        class_values.setdefault((kid, str(cls)), {})[f] = (v, src)
                        # a fitted class figure supersedes the earlier layers' per-GPU figures of that class
                        for key in [k for k in by_gpu if k[0] == kid and gpu_class(k[1]) == str(cls)]:
                            by_gpu[key].pop(f, None)
            for gname, graw in (raw.get("by_gpu") or {}).items():
                key = gpu_key(str(gname)) if gpu_key else str(gname)
                if not key or not isinstance(graw, Mapping):
                    continue
                for short, f in _SHORT.items():
                    v = _number(graw.get(short, graw.get(f)))
                    if v is not None:
                        by_gpu.setdefault((kid, key), {})[f] = (v, f"{src} ({gname})")
        overheads = dict(self.step_overhead_ms)
        factors = dict(self.compute_factor)
        for engine, raw in (layer.get("engines") or {}).items():
            if not isinstance(raw, Mapping):
                continue
            v = raw.get("step_overhead_ms")
            v = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else None
            if v is not None:
                overheads[str(engine)] = v
                for key in [k for k in engine_class if k[0] == str(engine)]:  # a later layer's figure wins
                    engine_class[key].pop("step_overhead_ms", None)
            f = _number(raw.get("compute_factor"))
            esrc = str(raw.get("source") or layer.get("source") or name).split(" from ")[0]
            if f is not None:
                factors[str(engine)] = (f, esrc)
                for key in [k for k in engine_class if k[0] == str(engine)]:
                    engine_class[key].pop("compute_factor", None)
            for cls, craw in (raw.get("by_gpu_class") or {}).items():
                for key in ("step_overhead_ms", "compute_factor", "layer_overhead_us"):
                    value = (craw or {}).get(key)
                    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                        engine_class.setdefault((str(engine), str(cls)), {})[key] = (float(value), esrc)
        spans = dict(self.fitted_range)
        for engine, classes in (layer.get("fitted_range") or {}).items():
            for cls, raw in (classes or {}).items():
                if isinstance(raw, Mapping):
                    spans[(str(engine), str(cls))] = {k: (float(v[0]), float(v[1])) for k, v in raw.items()
                                                      if isinstance(v, (list, tuple)) and len(v) == 2}
        return Calibration(values, by_gpu, overheads, factors, gemm_from, frozenset(scoped), attention, speedups,
                           borrow, class_values, engine_class, spans, self.measured)


def _kernel_entries(layer: Mapping[str, Any]) -> dict[str, Any]:
    kernels = layer.get("kernels") if isinstance(layer, Mapping) else None
    if isinstance(kernels, Mapping):
        return {str(k): v for k, v in kernels.items()}
    return {}


def _number(value: Any) -> float | None:
    if isinstance(value, Mapping):
        value = value.get("value")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _catalog_key(name: str) -> str | None:
    """kernels.yaml names GPUs by catalog key or alias ('A100-SXM-80GB', 'RTX-4090'): the catalog key,
    matched exactly through the catalog's names (no fuzzy matching: 'H001-SXM' is no GPU)."""
    from autoquant.catalog.gpus import default_catalog

    spec = default_catalog().find(name)
    return spec.key if spec else None


@functools.lru_cache(maxsize=64)
def gpu_class(key: str) -> str | None:
    """architecture + memory family of a catalog GPU ('hopper-hbm', 'ada-gddr'); None when unknown."""
    from autoquant.catalog.gpus import default_catalog

    spec = default_catalog().find(key)
    if spec is None or not spec.architecture or not spec.memory_type:
        return None
    mem = str(spec.memory_type).lower()
    family = next((f for f in ("hbm", "gddr", "lpddr") if mem.startswith(f)), mem.split()[0])
    return f"{spec.architecture}-{family}"


@functools.lru_cache(maxsize=1)
def default_calibration() -> Calibration:
    from autoquant.data import load

    cal = Calibration()
    for name in ("kernels", "calibration"):
        try:
            layer = load(name) or {}
        except FileNotFoundError:
            continue
        cal = cal.merged(layer, f"autoquant/data/{name}.yaml", _catalog_key)
    return cal


def load_calibration(path: str | None) -> Calibration:
    """The default calibration, with a user file on top when given."""
    cal = default_calibration()
    if not path:
        return cal
    import yaml

    p = Path(path)
    try:
        layer = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise InputError(f"no such calibration file: {path}") from None
    if not isinstance(layer, Mapping) or not (_kernel_entries(layer) or layer.get("engines")):
        raise InputError(f"{path} is not a calibration record (expected 'kernels:' with efficiency factors)")
    return cal.merged(layer, str(p), _catalog_key)
