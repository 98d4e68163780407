"""A level's figures from request records: the `vllm bench serve` definitions, failures kept in the counts."""

from __future__ import annotations

import numpy as np
import pytest

from autoquant.bench.metrics import stats, summarize
from autoquant.bench.records import SLO, Level, RequestResult

C1 = Level("concurrency", 1.0)


def ok(i, ttft, e2e, tokens, start=0.0, itl=(), finish="length", source="usage", inp=100):
    return RequestResult(i, True, start, e2e, ttft, tuple(itl), inp, tokens, source, finish_reason=finish,
                         asked_tokens=tokens)


def test_tpot_is_decode_time_over_tokens_after_the_first():
    r = ok(0, ttft=100.0, e2e=1000.0, tokens=10)
    assert r.tpot_ms == pytest.approx(100.0)
    assert ok(1, 100.0, 150.0, 1).tpot_ms is None  # one token: no decode interval


def test_failures_stay_in_the_counts_and_miss_the_slo():
    results = [ok(0, 50, 500, 10), ok(1, 80, 900, 10),
               RequestResult(2, False, 0.0, 30.0, error_kind="http", error="HTTP 500"),
               RequestResult(3, False, 0.0, 30.0, error_kind="timeout", error="slow")]
    s = summarize(C1, results, duration_s=2.0, slo=SLO(ttft_ms=100), attainment=0.5)
    assert (s.requests, s.completed, s.failed) == (4, 2, 2)
    assert s.errors == {"http": 1, "timeout": 1}
    assert s.slo_attainment == pytest.approx(0.5)  # 2 good of 4 sent, not of 2 completed
    assert s.meets_slo is True
    assert s.goodput == pytest.approx(1.0)
    assert s.request_throughput == pytest.approx(1.0)
    assert s.output_throughput == pytest.approx(10.0)
    assert s.total_token_throughput == pytest.approx(110.0)


def test_a_request_over_any_slo_is_not_good():
    r = ok(0, ttft=50, e2e=2050, tokens=21)  # TPOT 100
    assert r.meets(SLO(ttft_ms=60))
    assert not r.meets(SLO(ttft_ms=60, tpot_ms=99))
    assert not r.meets(SLO(e2e_ms=2000))


def test_percentiles_match_numpy():
    rng = np.random.default_rng(3)
    values = list(rng.exponential(100, size=101))
    st = stats(values)
    for q, got in ((50, st.p50), (90, st.p90), (95, st.p95), (99, st.p99)):
        assert got == pytest.approx(float(np.percentile(values, q)))
    assert st.mean == pytest.approx(float(np.mean(values)))


def test_itl_pools_every_gap_and_tokens_source_is_reported():
    results = [ok(0, 10, 40, 3, itl=(10, 20)), ok(1, 10, 40, 3, itl=(30, 40), source="tokenizer")]
    s = summarize(C1, results, 1.0)
    assert s.itl_ms.n == 4 and s.itl_ms.max == 40
    assert s.tokens_from == "mixed"


def test_answers_stopped_early_are_counted():
    s = summarize(C1, [ok(0, 10, 40, 3, finish="stop"), ok(1, 10, 40, 3)], 1.0)
    assert s.short_outputs == 1


def test_peak_in_flight_from_start_times_and_latencies():
    results = [ok(0, 1, 1000, 2, start=0.0), ok(1, 1, 1000, 2, start=0.5), ok(2, 1, 1000, 2, start=1.5)]
    assert summarize(C1, results, 3.0).peak_in_flight == 2


def test_no_slo_means_no_goodput():
    s = summarize(C1, [ok(0, 10, 40, 3)], 1.0)
    assert s.goodput is None and s.slo_attainment is None
