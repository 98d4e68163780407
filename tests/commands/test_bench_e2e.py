"""REAL on CPU, nothing faked: `autoquant serve` (the demo Gemma 3 270M Q4_K_M through llama-cpp-python) measured
by `autoquant bench` and `calibrate`."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.e2e

READY_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def served(env, demo_server):
    pytest.importorskip("aiohttp", reason="bench needs aiohttp")
    server = demo_server(env, READY_TIMEOUT_S)
    yield f"http://127.0.0.1:{server['port']}/v1"
    server["proc"].terminate()
    server["proc"].wait(timeout=30)


def test_bench_measures_the_served_demo_under_concurrency(served, env, aq, tmp_path):
    out = tmp_path / "bench.json"
    r = aq(env, "bench", served, "--concurrency", "1,2", "--isl", "48", "--osl", "12", "--requests", "4",
           "--warmup", "1", "--ttft-ms", "60000", "--output", str(out), "--save-requests", "--plot", str(tmp_path))
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["schema"] == "autoquant.bench" and data["schema_version"] == 1
    assert data["server"]["engine"] == "llama-cpp-python"
    assert data["metric_names"]["tpot_ms"]["guidellm"] == "inter_token_latency_ms"
    for level in data["levels"]:
        # all complete at concurrency 2: the launch turns off llama-cpp-python's interrupt of a running stream
        assert level["completed"] == level["requests"] == 4, level["first_errors"]
        assert level["tokens_from"] == "tokenizer"
        assert 0 < level["tpot_ms"]["p50"] < 5000 and level["ttft_ms"]["p50"] > 0
        assert level["goodput"] == pytest.approx(level["request_throughput"])
    one, two = data["levels"]
    # llama-cpp-python runs one request at a time: at 2 in flight a request waits for the other's answer
    assert two["ttft_ms"]["mean"] > one["ttft_ms"]["mean"]
    assert len(data["requests"][0]) == 4
    assert (tmp_path / "latency_vs_load.png").stat().st_size > 1000
    assert "concurrency 2" in r.stdout and "TPOT p50" in r.stdout


def test_calibrate_then_estimate_uses_the_measurements(served, env, aq):
    model = ["--model", "google/gemma-3-270m", "--engine", "llamacpp", "--method", "gguf-q4_k_m"]
    r = aq(env, "calibrate", served, *model, "--isl", "48", "--osl", "12", "--requests", "2", "--warmup", "1")
    assert r.returncode == 0, r.stderr
    assert "calibration: 6 samples" in r.stdout and "calibrated from 3 runs" in r.stdout
    est = aq(env, "estimate", "google/gemma-3-270m", "--engine", "llamacpp", "--method", "gguf-q4_k_m",
             "--isl", "48", "--osl", "12")
    assert est.returncode == 0, est.stderr
    assert "calibrated from 3 runs on this node" in est.stdout
    raw = aq(env, "estimate", "google/gemma-3-270m", "--engine", "llamacpp", "--method", "gguf-q4_k_m",
             "--isl", "48", "--osl", "12", "--uncalibrated", "--json")
    cal = aq(env, "estimate", "google/gemma-3-270m", "--engine", "llamacpp", "--method", "gguf-q4_k_m",
             "--isl", "48", "--osl", "12", "--json")
    assert json.loads(raw.stdout)["tpot_ms"] != pytest.approx(json.loads(cal.stdout)["tpot_ms"])
