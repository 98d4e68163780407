"""Estimates that say when they are useless: a TTFT of minutes, a stream under one token a second, or a
configuration outside the rows the speed factors were fitted on (overheads.yaml `usefulness`, calibration.yaml
`fitted_range`). Pure: the estimate's figures and the facts in, sentences out."""

from __future__ import annotations

from autoquant.planner import facts
from autoquant.planner.calibration import Calibration, gpu_class
from autoquant.planner.facts import Facts
from autoquant.records import ModelSpec


def warnings(ttft_ms: float, per_request_tps: float, model: ModelSpec, engine: str, gpu: str | None,
             isl: int, concurrency: int, calibration: Calibration, fx: Facts | None = None) -> list[str]:
    policy = facts.overheads(fx).get("usefulness") or {}
    out: list[str] = []
    max_ttft = float(policy.get("max_ttft_s", 60))
    if ttft_ms / 1000 >= max_ttft:
        out.append(f"TTFT {ttft_ms / 60000:.1f} min: requests wait minutes for a first token (queueing or a huge "
                   "prompt); this configuration cannot serve the workload as given")
    min_tps = float(policy.get("min_tokens_per_s", 1.0))
    if 0 < per_request_tps < min_tps:
        out.append(f"decode {per_request_tps:.2f} tok/s per request: under {min_tps:g} token/s, too slow to read along")
    if gpu is None:  # CPU: the llama.cpp CPU factors are published figures, not fitted
        return out
    span = calibration.fitted_span(engine, gpu)
    cls = gpu_class(gpu)
    if span is None:
        out.append(f"outside the fitted range: no measured rows for {engine} on {cls or gpu} GPUs; the speed figures "
                   "use published kernel factors only")
        return out
    margin = float(policy.get("range_margin", 2.0))
    checks = (("model size", model.total_params / 1e9, "params_b", "B parameters"), ("prompt", isl, "isl", "tokens"),
              ("concurrency", concurrency, "concurrency", "requests"))
    for what, value, key, unit in checks:
        lo, hi = span.get(key, (0.0, float("inf")))
        if hi <= 0:  # decode-only rows (llama-bench tg): they bound no prompt length
            continue
        if value > hi * margin or (key == "params_b" and value < lo / margin):
            out.append(f"outside the fitted range: {what} {value:,.0f} {unit} against {lo:,.0f}-{hi:,.0f} in the rows "
                       f"{engine}'s factors on {cls} GPUs were fitted on; the figures are extrapolated")
    return out
