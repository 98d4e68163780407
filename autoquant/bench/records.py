"""Records of a benchmark: its settings, one request's outcome, one load level's summary, the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA = "autoquant.bench"
SCHEMA_VERSION = 1

# Error kinds a failed request is counted under (never dropped from the totals).
ERROR_KINDS = ("http", "timeout", "connection", "incomplete", "empty", "protocol")


@dataclass(frozen=True)
class SLO:
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2e_ms))


@dataclass(frozen=True)
class RequestSpec:
    """One request to send: its prompt, the output tokens asked for, and (open loop, replay) when."""

    index: int
    prompt: str | list[int]
    isl: int  # intended prompt tokens (the real count comes back in usage, or is counted)
    osl: int  # max_tokens
    send_at: float | None = None  # seconds after the start; None: as soon as a worker is free


@dataclass(frozen=True)
class RequestResult:
    index: int
    ok: bool
    start_s: float  # when it was sent, seconds after the level started
    e2e_ms: float = 0.0
    ttft_ms: float | None = None
    itl_ms: tuple[float, ...] = ()
    input_tokens: int = 0
    output_tokens: int = 0
    tokens_from: str = ""  # usage | tokenizer | chunks: where output_tokens came from
    error_kind: str = ""
    error: str = ""
    lag_ms: float = 0.0  # open loop: how late it was sent against its schedule
    asked_tokens: int = 0  # max_tokens sent
    finish_reason: str = ""  # length (reached max_tokens) | stop (end of sequence, a stop string) | ...

    @property
    def tpot_ms(self) -> float | None:
        """(latency - TTFT) / (tokens - 1), as `vllm bench serve`; None under two tokens."""
        if not self.ok or self.ttft_ms is None or self.output_tokens < 2:
            return None
        return (self.e2e_ms - self.ttft_ms) / (self.output_tokens - 1)

    def meets(self, slo: SLO) -> bool:
        if not self.ok:
            return False
        checks = ((slo.ttft_ms, self.ttft_ms), (slo.tpot_ms, self.tpot_ms), (slo.e2e_ms, self.e2e_ms))
        return all(limit is None or (value is not None and value <= limit) for limit, value in checks)


@dataclass(frozen=True)
class Stats:
    n: int
    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    min: float
    max: float


@dataclass(frozen=True)
class Level:
    """One load level: a concurrency (closed loop) or a request rate (open loop), or a replay."""

    mode: str  # concurrency | rate | replay
    value: float  # the concurrency, or requests per second (inf: all at once); the time scale for a replay
    burstiness: float = 1.0

    def describe(self) -> str:
        if self.mode == "concurrency":
            return f"concurrency {int(self.value)}"
        if self.mode == "replay":
            return f"replay x{self.value:g} time"
        rate = "inf" if self.value == float("inf") else f"{self.value:g}"
        kind = "Poisson" if self.burstiness == 1.0 else f"gamma, burstiness {self.burstiness:g}"
        return f"rate {rate} req/s ({kind})"


@dataclass(frozen=True)
class Summary:
    level: Level
    requests: int  # sent and measured (warm-up excluded)
    completed: int
    failed: int
    errors: dict[str, int]
    duration_s: float
    input_tokens: int
    output_tokens: int
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    ttft_ms: Stats | None
    tpot_ms: Stats | None
    itl_ms: Stats | None
    e2e_ms: Stats | None
    goodput: float | None  # req/s meeting every SLO given; None: no SLO given
    slo_attainment: float | None  # fraction of requests (failures count) meeting every SLO
    meets_slo: bool | None
    tokens_from: str  # usage | tokenizer | chunks | mixed
    schedule_lag_p99_ms: float | None = None
    peak_in_flight: int = 0
    short_outputs: int = 0  # completed with fewer tokens than asked (the server stopped them early)
    first_errors: list[str] = field(default_factory=list)  # up to 3 messages, to say what went wrong


@dataclass(frozen=True)
class Settings:
    """Exactly what was asked (the report repeats it)."""

    url: str
    model: str = ""
    endpoint: str = "completions"  # completions | chat
    levels: tuple[Level, ...] = ()
    isl: int = 512
    osl: int = 256
    range_ratio: float = 0.0  # lengths drawn uniformly in [x(1-r), x(1+r)]
    traffic: str | None = None
    requests: int | None = None
    duration_s: float | None = None
    warmup: int = 1
    seed: int = 0
    timeout_s: float = 600.0
    slo: SLO = SLO()
    find_max: bool = False
    slo_attainment: float = 0.9
    max_concurrency: int | None = None  # open loop: at most this many in flight
    ignore_eos: bool = True


@dataclass(frozen=True)
class Report:
    settings: Settings
    server: dict[str, Any]
    levels: list[Summary]
    started_at: str
    max_meeting_slo: dict[str, Any] | None = None  # --find-max: {"mode", "value", "summary index"}
    comparison: list[dict[str, Any]] = field(default_factory=list)  # --plan: predicted vs measured rows
    warnings: list[str] = field(default_factory=list)
    metric_names: dict[str, Any] = field(default_factory=dict)  # our metric -> vllm/guidellm/aiperf names
    requests: list[list[RequestResult]] | None = None  # --save-requests: per level
    schema: str = SCHEMA
    schema_version: int = SCHEMA_VERSION
