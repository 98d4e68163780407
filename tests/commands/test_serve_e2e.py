"""REAL end to end on CPU: `autoquant serve` (no model: the demo Gemma 3 270M Q4_K_M) through llama.cpp,
supervised -> ready -> an OpenAI chat completion returns text -> SIGTERM -> clean exit 0. Nothing is faked."""

from __future__ import annotations

import json
import os
import signal
import urllib.request

import pytest

pytestmark = pytest.mark.e2e

READY_TIMEOUT_S = 180
REQUEST_TIMEOUT_S = 120


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


def test_ready_line_names_the_url(server):
    assert f"http://127.0.0.1:{server['port']}/v1" in server["ready"]


def test_models_lists_the_served_name(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server['port']}/v1/models", timeout=30) as resp:
        ids = [m["id"] for m in json.loads(resp.read())["data"]]
    assert ids == ["gemma-3-270m"]


def test_chat_completion_returns_text(server):
    out = _post(server["port"], "/v1/chat/completions", {
        "model": "gemma-3-270m", "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 8,
        "temperature": 0,
    })
    text = out["choices"][0]["message"]["content"]
    assert isinstance(text, str) and text.strip()
    assert 0 < out["usage"]["completion_tokens"] <= 8


def test_sigterm_exits_cleanly_with_zero(server):
    proc = server["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{server['port']}/v1/models", timeout=5)
