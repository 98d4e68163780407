"""Quality: perplexity increase per method and model size (autoquant/data/quality.yaml), and the floor.

Deltas are interpolated in log(parameters) between the sizes quality.yaml measured, and taken from the
nearest size outside that range. Unquantized methods (bf16, fp16) are 0 by definition. A method with
no figure is unknown: it passes no floor (we never guess a quality figure).
"""

from __future__ import annotations

import functools
import math
import re
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autoquant.facts import Facts, default_facts
from autoquant.planner import facts
from autoquant.records import Workload


def _data(fx: Facts | None = None) -> Mapping[str, Any]:
    return (fx or default_facts()).quality


def policy(fx: Facts | None = None) -> dict[str, Any]:
    """quality.yaml `planner_policy`: the default use case, the 16-bit reference's nominal uncertainty and the
    family size window (autoquant's choices, documented there and in docs/planner.md)."""
    return dict(_data(fx).get("planner_policy") or {})

_FAMILIES = (
    ("llama3", ("llama-3", "llama3")),
    ("llama2", ("llama-2", "llama2")),
    ("llama1", ("huggyllama", "llama-v1", "llama-1")),
    ("mixtral", ("mixtral",)),
    ("mistral", ("mistral",)),
    ("qwen3", ("qwen3",)),  # Qwen3 is more sensitive to low-bit quantization than Qwen2.5 (arXiv 2505.02214)
    ("qwen2", ("qwen",)),  # Qwen1.5 / Qwen2 / Qwen2.5
    ("deepseek", ("deepseek",)),
    ("gemma", ("gemma",)),
    ("falcon", ("falcon",)),
    ("phi", ("phi-", "phi3", "phi4")),
)


def _num(d: Mapping[str, Any], keys: tuple[str, ...]) -> float | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def _names(text: str, needle: str) -> bool:
    """`needle` in `text`, where a needle ending in a version digit is not a size's prefix: "llama-3" names
    Meta-Llama-3-8B, not huggyllama/llama-30b."""
    return re.search(re.escape(needle) + (r"(?!\d)" if needle[-1].isdigit() else ""), text) is not None


@functools.lru_cache(maxsize=4096)  # pure in its argument (the families are constants): a plan asks per candidate
def family(name: str) -> str | None:
    text = name.lower()
    for fam, needles in _FAMILIES:
        if any(_names(text, n) for n in needles):
            return fam
    return None


@dataclass(frozen=True)
class Point:
    params_b: float
    delta: float
    model: str = ""
    source: str = ""


@dataclass(frozen=True)
class Quality:
    ppl_delta: float | None  # None: unknown
    uncertainty: float | None
    source: str


def _rows(raw: Any) -> list[Point]:
    out = []
    if not isinstance(raw, Mapping):
        return out
    for key in ("measurements", "ppl_measurements"):
        for row in raw.get(key) or []:
            if not isinstance(row, Mapping):
                continue
            delta, size = row.get("delta"), row.get("params_b")
            if isinstance(delta, (int, float)) and isinstance(size, (int, float)) and size > 0:
                src = row.get("source")
                url = src.get("url", "") if isinstance(src, Mapping) else str(src or "")
                out.append(Point(float(size), float(delta), str(row.get("model", "")), url))
    return out


@functools.lru_cache(maxsize=4)  # keyed by the Facts object (identity)
def _table(fx: Facts | None = None) -> dict[str, list[Point]]:
    return {str(mid): pts for mid, raw in (_data(fx).get("methods") or {}).items() if (pts := _rows(raw))}


@functools.lru_cache(maxsize=4)
def use_case_thresholds(fx: Facts | None = None) -> dict[str, float]:
    """Use case -> max perplexity increase, from quality.yaml `use_cases` (the seed's VALIDATION_THRESHOLDS)."""
    out: dict[str, float] = {}
    for name, raw in (_data(fx).get("use_cases") or {}).items():
        if isinstance(raw, (int, float)):
            out[str(name)] = float(raw)
        elif isinstance(raw, Mapping):
            v = _num(raw, ("max_ppl_delta", "max_ppl_degradation", "ppl_delta", "threshold"))
            if v is not None:
                out[str(name)] = v
    return out


def quality_floor(workload: Workload, fx: Facts | None = None) -> tuple[float, str]:
    """(max perplexity increase, where it came from)."""
    if workload.max_ppl_delta is not None:
        return float(workload.max_ppl_delta), f"--max-ppl-delta {workload.max_ppl_delta:g}"
    cases = use_case_thresholds(fx)
    default = str(policy(fx)["default_use_case"])
    case = workload.use_case or default
    floor = cases.get(case, cases[default])
    how = f"use case {case}" + ("" if workload.use_case else " (default)")
    return floor, how


def _proxy(method: str, fx: Facts | None = None) -> str | None:
    return facts.methods(fx).get(method, {}).get("quality_proxy")


def ppl_delta(method: str, params: int, model_id: str = "", fx: Facts | None = None) -> Quality:
    """Perplexity increase of `method` on a model of `params` parameters (same family's rows first)."""
    m = facts.methods(fx).get(method, {})
    points = _table(fx).get(method, [])
    via = ""
    if not points and _proxy(method, fx):
        points = _table(fx).get(_proxy(method, fx) or "", [])
        via = f" (proxy: {_proxy(method, fx)} deltas bound {method} from above)"
    if not m.get("quantized", True):
        return Quality(0.0, float(policy(fx)["unquantized_uncertainty"]), "unquantized (16-bit reference)")
    if not points:
        return Quality(None, None, f"no published perplexity figure for {method}")
    fam = family(model_id) if model_id else None
    x = params / 1e9
    same = [p for p in points if fam and family(p.model) == fam]
    # The family's rows speak for this model only if one was measured at a similar size (quality.yaml
    # planner_policy.family_size_window, 3x).
    win = float(policy(fx)["family_size_window"])
    if not any(1 / win <= p.params_b / x <= win for p in same):
        same = []
    if same or not fam:
        used = same or points
        return _interpolate(used, x, (f"{fam} rows" if same else "all families' rows") + via)
    # No figure from the model's own family: the median of the other families' figures at this size, said so,
    # with the uncertainty at least +-borrowed_uncertainty x the delta (quality.yaml planner_policy) and the
    # family's own published accuracy figure where there is one.
    per_family: dict[str, Quality] = {}
    for other in sorted({family(p.model) or "" for p in points}):
        rows = [p for p in points if (family(p.model) or "") == other]
        if other and any(1 / win <= p.params_b / x <= win for p in rows):
            per_family[other] = _interpolate(rows, x, other)
    if not per_family:
        q = _interpolate(points, x, "all families' rows" + via)
        delta, lo, hi, said = q.ppl_delta or 0.0, q.ppl_delta or 0.0, q.ppl_delta or 0.0, q.source
    else:
        deltas = [q.ppl_delta or 0.0 for q in per_family.values()]
        delta, lo, hi = statistics.median(deltas), min(deltas), max(deltas)
        said = (f"the median of {len(deltas)} other families' figures at this size ({', '.join(per_family)}: "
                f"{lo:+.2f} to {hi:+.2f}){via}" if len(deltas) > 1 else
                f"borrowed from the {next(iter(per_family))} rows at this size ({lo:+.2f}){via}")
    widen = float(policy(fx).get("borrowed_uncertainty", 1.0)) * abs(delta)
    own = _own_accuracy(method, fam, x, fx)
    source = f"no {fam} perplexity figure for {method}: {said}" + (f"; {own}" if own else "")
    return Quality(delta, max((hi - lo) / 2, widen) or None, source)


def _interpolate(used: list[Point], x: float, where: str) -> Quality:
    by_size: dict[float, list[float]] = {}
    for p in used:
        by_size.setdefault(round(p.params_b, 1), []).append(p.delta)
    sizes = sorted(by_size)
    med = {sz: statistics.median(v) for sz, v in by_size.items()}
    spread = {sz: (max(v) - min(v)) / 2 for sz, v in by_size.items()}
    if x <= sizes[0] or len(sizes) == 1 or x >= sizes[-1]:
        sz = sizes[0] if x <= sizes[0] else sizes[-1]
        return Quality(med[sz], spread[sz] or None, f"{where} at {sz:g}B (nearest size)")
    lo, hi = next((lo, hi) for lo, hi in zip(sizes, sizes[1:], strict=False) if lo <= x <= hi)
    t = (math.log(x) - math.log(lo)) / (math.log(hi) - math.log(lo))
    delta = med[lo] + t * (med[hi] - med[lo])
    unc = spread[lo] + t * (spread[hi] - spread[lo])
    return Quality(delta, unc or None, f"{where}, interpolated in log(params) between {lo:g}B and {hi:g}B")


@functools.lru_cache(maxsize=4)  # keyed by the Facts object (identity), as _table
def _accuracy_table(fx: Facts | None = None) -> dict[str, list[Mapping[str, Any]]]:
    """method -> its rows with metric accuracy_recovery_pct (a value and a size)."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for mid, raw in (_data(fx).get("methods") or {}).items():
        rows = (raw.get("measurements") or []) if isinstance(raw, Mapping) else []
        out[str(mid)] = [r for r in rows if isinstance(r, Mapping) and r.get("metric") == "accuracy_recovery_pct"
                         and isinstance(r.get("value"), (int, float)) and isinstance(r.get("params_b"), (int, float))]
    return out


def _own_accuracy(method: str, fam: str, x: float, fx: Facts | None = None) -> str:
    """The family's published accuracy recovery for `method` nearest this size, in the unit it was published in
    (no conversion to perplexity is attempted: the two are different measurements)."""
    rows = [r for r in _accuracy_table(fx).get(method, []) if family(str(r.get("model", ""))) == fam]
    if not rows:
        return ""
    best = min(rows, key=lambda r: abs(math.log(float(r["params_b"]) / x)))
    model = str(best["model"]).split("/")[-1]
    return f"{model} {method} keeps {float(best['value']):.1f}% of its 16-bit accuracy ({best.get('task', 'tasks')})"


@functools.lru_cache(maxsize=32)
def kv_cache_delta(kv_cache_dtype: str, fx: Facts | None = None) -> float | None:
    """Perplexity increase of a quantized KV cache (quality.yaml `kv_cache: {<dtype>: {delta: ...}}`);
    None when quality.yaml does not give one (today it has none)."""
    if kv_cache_dtype in ("auto", "f16"):
        return 0.0
    raw = (_data(fx).get("kv_cache") or {}).get(kv_cache_dtype)
    if isinstance(raw, Mapping):
        return _num(raw, ("delta", "ppl_delta"))
    return float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
