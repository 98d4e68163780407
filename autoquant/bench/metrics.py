"""A load level's figures from its requests (pure). Definitions follow `vllm bench serve`
(autoquant/data/bench_metrics.yaml names each metric's equivalent in GuideLLM and AIPerf)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from autoquant.bench.records import SLO, Level, RequestResult, Stats, Summary


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear between closest ranks (numpy's default, what `vllm bench serve` reports)."""
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def stats(values: Sequence[float]) -> Stats | None:
    if not values:
        return None
    s = sorted(values)
    return Stats(len(s), sum(s) / len(s), percentile(s, 50), percentile(s, 90), percentile(s, 95),
                 percentile(s, 99), s[0], s[-1])


def in_flight_peak(results: Sequence[RequestResult]) -> int:
    events = sorted([(r.start_s, 1) for r in results] + [(r.start_s + r.e2e_ms / 1000.0, -1) for r in results],
                    key=lambda e: (e[0], e[1]))
    peak = now = 0
    for _, d in events:
        now += d
        peak = max(peak, now)
    return peak


def summarize(level: Level, results: Sequence[RequestResult], duration_s: float, slo: SLO | None = None,
              attainment: float = 0.9) -> Summary:
    """The figures of one level. Failures stay in the counts (requests, failed, errors by kind, and as misses
    in SLO attainment); latency statistics are over completed requests only, as in `vllm bench serve`."""
    slo = slo or SLO()
    ok = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    duration_s = max(duration_s, 1e-9)
    inp = sum(r.input_tokens for r in ok)
    out = sum(r.output_tokens for r in ok)
    sources = {r.tokens_from for r in ok if r.tokens_from}
    good = sum(r.meets(slo) for r in results) if slo.any else None
    share = (good / len(results)) if (good is not None and results) else None
    lags = [r.lag_ms for r in results if r.lag_ms]
    return Summary(
        level=level,
        requests=len(results),
        completed=len(ok),
        failed=len(failed),
        errors=dict(Counter(r.error_kind or "unknown" for r in failed)),
        duration_s=duration_s,
        input_tokens=inp,
        output_tokens=out,
        request_throughput=len(ok) / duration_s,
        output_throughput=out / duration_s,
        total_token_throughput=(inp + out) / duration_s,
        ttft_ms=stats([r.ttft_ms for r in ok if r.ttft_ms is not None]),
        tpot_ms=stats([t for r in ok if (t := r.tpot_ms) is not None]),
        itl_ms=stats([g for r in ok for g in r.itl_ms]),
        e2e_ms=stats([r.e2e_ms for r in ok]),
        goodput=(good / duration_s) if good is not None else None,
        slo_attainment=share,
        meets_slo=(share is not None and share >= attainment) if slo.any else (len(failed) == 0 and bool(ok)),
        tokens_from=(sources.pop() if len(sources) == 1 else ("mixed" if sources else "")),
        schedule_lag_p99_ms=percentile(sorted(lags), 99) if lags else None,
        peak_in_flight=in_flight_peak(results),
        short_outputs=sum(1 for r in ok if r.finish_reason not in ("", "length")),
        first_errors=[f"{r.error_kind}: {r.error}" for r in failed[:3]],
    )
