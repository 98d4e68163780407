"""What the planner predicted for the configuration a server runs, at each measured load: for `bench --plan`
(the comparison) and for `calibrate` (samples against the uncalibrated figure). Records in, records out: the
caller loads the model and the node."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autoquant.bench.compare import load_of
from autoquant.bench.records import Summary
from autoquant.errors import AutoquantError, InputError, UsageError
from autoquant.records import Workload


@dataclass(frozen=True)
class Target:
    """The configuration the benchmarked server runs."""

    model: str
    engine: str
    method: str
    tp: int = 1
    pp: int = 1
    dp: int = 1
    kv_cache_dtype: str | None = None
    n_gpu_layers: int | None = None

    def describe(self) -> str:
        par = f" TP={self.tp}" if self.tp > 1 else ""
        return f"{self.model} {self.method} on {self.engine}{par}"


def target_from_plan(plan: Mapping[str, Any], path: str) -> Target:
    chosen = plan.get("chosen") if isinstance(plan, Mapping) else None
    if not isinstance(chosen, Mapping) or not chosen.get("engine") or not chosen.get("method"):
        raise InputError(f"{path} is not a plan with a chosen configuration (make one with `autoquant plan MODEL "
                         "--json > plan.json`)")
    kv = chosen.get("kv_cache_dtype")
    return Target(str(plan.get("model") or ""), str(chosen["engine"]), str(chosen["method"]), int(chosen.get("tp") or 1),
                  int(chosen.get("pp") or 1), int(chosen.get("dp") or 1), None if kv in (None, "auto") else str(kv),
                  chosen.get("n_gpu_layers"))


def target_from_args(args, plan_path: str | None) -> Target | None:
    """From --plan, else --model/--engine/--method (None when neither is given)."""
    if plan_path:
        from autoquant.commands._options import load_json_record

        t = target_from_plan(load_json_record(plan_path, "plan", "make one with `autoquant plan MODEL --json`"),
                             plan_path)
        return t
    if not (getattr(args, "engine", None) or getattr(args, "method", None)):
        return None
    if not (args.engine and args.method and getattr(args, "model", None)):
        raise UsageError("say what the server runs: --model MODEL --engine E --method M (or --plan plan.json)")
    return Target(args.model, args.engine, args.method, args.tp or 1, getattr(args, "pp", None) or 1,
                  getattr(args, "dp", None) or 1, getattr(args, "kv_cache_dtype", None))


def estimates(target: Target, model, node, levels: list[Summary], calibration, predictor=None) -> list:
    """The planner's Estimate for `model` (the target's ModelSpec) at each level's measured load (None where
    the level has no completed request)."""
    from autoquant.planner import estimate

    out = []
    for s in levels:
        load = load_of(s)
        if load is None:
            out.append(None)
            continue
        wl = Workload(concurrency=load.concurrency, isl=load.isl, osl=load.osl, max_model_len=load.isl + load.osl)
        try:
            out.append(estimate(model, node, wl, engine=target.engine, method=target.method, tp=target.tp,
                                pp=target.pp, dp=target.dp, kv_cache_dtype=target.kv_cache_dtype,
                                n_gpu_layers=target.n_gpu_layers, calibration=calibration, predictor=predictor))
        except AutoquantError as exc:
            raise InputError(f"cannot predict {target.describe()} on this hardware: {exc}") from None
    return out
