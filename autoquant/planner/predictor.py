"""The predictor interface: an outside performance model the planner may ask for one configuration's figures.

Pure: records and a type alias only. Implementations live at the edge (autoquant/predictors/), are optional,
and answer None for a configuration they do not cover.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from autoquant.records import ModelSpec


@dataclass(frozen=True)
class PredictRequest:
    """One serving configuration at one operating point: `concurrency` requests in flight, each with
    `isl` prompt tokens and `osl` output tokens, on one replica of tp x pp GPUs."""

    model: ModelSpec
    gpu: str  # autoquant GPU catalog key (autoquant/data/gpus.yaml), e.g. "H100-SXM"
    engine: str  # engine id (autoquant/data/engines.yaml), e.g. "vllm"
    method: str  # quantization method id (autoquant/data/methods.yaml), e.g. "fp8"
    kv_cache_dtype: str  # as the plan names it: "auto", "fp8", "fp8_e4m3", ...
    tp: int
    pp: int
    concurrency: int
    isl: int
    osl: int


@dataclass(frozen=True)
class Figures:
    """A predictor's answer for one PredictRequest."""

    ttft_ms: float  # time to first token
    tpot_ms: float  # time per output token after the first
    output_tokens_per_s: float  # output tokens per second of the whole replica (all tp x pp GPUs, all requests)
    memory_gb: float | None  # per GPU, GB (1e9 bytes); None when the predictor does not say
    source: str  # who answered and from what, e.g. "AIConfigurator 0.12.0 SILICON (h100_sxm, vllm 0.24.0, agg)"


# None: the predictor does not cover this request (hardware, engine, method, model or an error inside it).
Predictor = Callable[[PredictRequest], Figures | None]
