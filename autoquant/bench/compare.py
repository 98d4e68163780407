"""Measured against predicted (pure): the rows `bench --plan` prints, and the calibration samples a level gives.

A level's load for the prediction is what the server really carried: a closed loop's concurrency, or for
an open loop the mean number in flight (Little's law: the sum of request latencies over the wall time),
with the measured mean prompt and output lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoquant.bench.records import Summary
from autoquant.planner.measured import Sample


@dataclass(frozen=True)
class Load:
    concurrency: int
    isl: int
    osl: int


def load_of(s: Summary) -> Load | None:
    if not s.completed or s.e2e_ms is None:
        return None
    if s.level.mode == "concurrency":
        conc = int(s.level.value)
    else:
        conc = max(1, round(s.e2e_ms.mean * s.completed / 1000.0 / s.duration_s))
    return Load(conc, max(1, round(s.input_tokens / s.completed)), max(1, round(s.output_tokens / s.completed)))


def rows(s: Summary, predicted) -> list[dict]:
    """Metric by metric: predicted (an Estimate), measured, and measured / predicted."""
    def row(metric: str, unit: str, pred: float | None, meas: float | None) -> dict:
        ratio = (meas / pred) if pred and meas is not None else None
        return {"level": s.level.describe(), "metric": metric, "unit": unit, "predicted": pred, "measured": meas,
                "ratio": ratio}

    per_req = (1000.0 / s.tpot_ms.mean) if s.tpot_ms and s.tpot_ms.mean > 0 else None
    return [
        row("TTFT mean", "ms", predicted.ttft_ms, s.ttft_ms.mean if s.ttft_ms else None),
        row("TPOT mean", "ms", predicted.tpot_ms, s.tpot_ms.mean if s.tpot_ms else None),
        row("per-request decode", "tok/s", predicted.per_request_tokens_per_s, per_req),
        row("output throughput", "tok/s", predicted.output_tokens_per_s, s.output_throughput),
    ]


def samples(s: Summary, predicted, model: str, taken_at: str, server: str, id_prefix: str) -> list[Sample]:
    """Calibration samples of one level against the *uncalibrated* prediction for its load: decode is the
    per-request rate 1000 / TPOT, prefill the prompt tokens per second of TTFT."""
    load = load_of(s)
    out: list[Sample] = []
    if load is None:
        return out
    common = dict(model=model, concurrency=load.concurrency, isl=load.isl, osl=load.osl, taken_at=taken_at,
                  server=server)
    if s.tpot_ms and s.tpot_ms.mean > 0 and predicted.tpot_ms > 0:
        out.append(Sample("decode", 1000.0 / s.tpot_ms.mean, 1000.0 / predicted.tpot_ms,
                          id=f"{id_prefix}:decode", **common))
    if s.ttft_ms and s.ttft_ms.mean > 0 and predicted.ttft_ms > 0:
        out.append(Sample("prefill", load.isl / (s.ttft_ms.mean / 1000.0), load.isl / (predicted.ttft_ms / 1000.0),
                          id=f"{id_prefix}:prefill", **common))
    return out
