"""The load generator against a fake streaming server: TTFT and ITL from chunk times, usage over counting,
every failure kept under its kind, open-loop send times, closed-loop concurrency."""

from __future__ import annotations

import asyncio
import math

import pytest

pytest.importorskip("aiohttp")

from autoquant.bench import client  # noqa: E402
from autoquant.bench.records import Level, RequestSpec  # noqa: E402
from autoquant.servers import connect  # noqa: E402


@pytest.fixture(scope="module")
def fake(openai_fake):
    s = openai_fake.FakeServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def server(fake):
    return connect(fake.url)


def one(server, prompt, osl=3, timeout=10.0):
    results, _ = asyncio.run(client.run_level(server, "completions", Level("concurrency", 1.0),
                                              [RequestSpec(0, prompt, 10, osl)], ignore_eos=True,
                                              timeout_s=timeout))
    return results[0]


def test_identifies_the_server(server):
    assert server.kind == "vllm" and server.model == "fake-model" and server.version == "0.0.fake"
    assert server.max_model_len == 4096


def test_ttft_and_itl_come_from_chunk_times(server):
    r = one(server, "delay=0.05 tokens=5")
    assert r.ok and r.finish_reason == "length"
    assert 40 <= r.ttft_ms <= 200
    assert len(r.itl_ms) == 4 and all(35 <= g <= 200 for g in r.itl_ms)
    assert r.output_tokens == 5 and r.tokens_from == "chunks"
    assert r.tpot_ms == pytest.approx((r.e2e_ms - r.ttft_ms) / 4)


def test_usage_wins_over_counting(server):
    r = one(server, "tokens=4 usage")
    assert (r.output_tokens, r.input_tokens, r.tokens_from) == (4, 11, "usage")


def test_request_asks_for_usage_and_exact_length(fake, server):
    one(server, "tokens=2", osl=7)
    body = fake.bodies[-1]
    assert body["max_tokens"] == 7 and body["stream"] is True and body["ignore_eos"] is True
    assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("prompt, kind", [("status=500", "http"), ("nodone", "incomplete"),
                                          ("nofinish", "incomplete"), ("tokens=0", "empty")])
def test_failures_are_kept_with_their_kind(server, prompt, kind):
    r = one(server, prompt)
    assert not r.ok and r.error_kind == kind and r.error


def test_a_hung_request_times_out(server):
    r = one(server, "hang", timeout=0.5)
    assert not r.ok and r.error_kind == "timeout"


def test_unreachable_server_is_a_connection_error():
    from autoquant.servers import Server

    dead = Server("http://127.0.0.1:9", "vllm", "m")
    r = one(dead, "tokens=1")
    assert not r.ok and r.error_kind == "connection"


def test_open_loop_sends_on_schedule(fake, server):
    specs = [RequestSpec(i, "tokens=1", 1, 1, send_at=0.2 * i) for i in range(4)]
    before = len(fake.arrivals)
    results, wall = asyncio.run(client.run_level(server, "completions", Level("rate", 5.0), specs,
                                                 ignore_eos=True, timeout_s=5))
    times = fake.arrivals[before:]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(0.15 <= g <= 0.3 for g in gaps), gaps
    assert all(r.ok and r.lag_ms < 50 for r in results)
    assert wall == pytest.approx(0.6, abs=0.2)


def test_closed_loop_keeps_n_in_flight(server):
    from autoquant.bench.metrics import in_flight_peak

    specs = [RequestSpec(i, "delay=0.05 tokens=3", 1, 3) for i in range(9)]
    results, wall = asyncio.run(client.run_level(server, "completions", Level("concurrency", 3.0), specs,
                                                 ignore_eos=True, timeout_s=5))
    assert len(results) == 9 and all(r.ok for r in results)
    assert in_flight_peak(results) == 3
    assert wall == pytest.approx(3 * 0.15, rel=0.6)  # three rounds of three


def test_duration_stops_sending(server):
    specs = [RequestSpec(i, "delay=0.05 tokens=2", 1, 2) for i in range(100)]
    results, wall = asyncio.run(client.run_level(server, "completions", Level("concurrency", 2.0), specs,
                                                 ignore_eos=True, timeout_s=5, duration_s=0.5))
    assert 4 <= len(results) < 30 and wall < 1.5
    assert math.isfinite(wall)
