"""The `Workload` record: what the traffic looks like and what it must get."""

from __future__ import annotations

from dataclasses import dataclass, field

WORKLOAD_SCHEMA_VERSION = 1

OBJECTIVES = ("cost", "latency", "throughput", "balanced", "quality")


@dataclass
class ConcurrencyBin:
    concurrency: int
    fraction: float  # share of time spent at this concurrency


@dataclass
class Workload:
    concurrency: int | None = 1  # None means "as many as fit" (--concurrency max)
    concurrency_distribution: list[ConcurrencyBin] = field(default_factory=list)
    isl: int = 512  # input tokens per request (typical, e.g. p50)
    osl: int = 256  # output tokens per request
    isl_p99: int | None = None
    osl_p99: int | None = None
    max_model_len: int | None = None  # context every request must be able to reach
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    min_tps: float | None = None  # per-request output tokens/s floor
    use_case: str | None = None  # chat | code | medical | summarization
    max_ppl_delta: float | None = None
    objective: str = "balanced"
    gpu_hour_cost: float | None = None  # USD per GPU-hour; None: use the catalog's default
    arrival_rate_rps: float | None = None  # from a traffic profile
    source: str = "flags"  # "flags" | "traffic:<file>" | "env"
    schema_version: int = WORKLOAD_SCHEMA_VERSION
