"""Contract: the requests bench and validate send to vLLM pass vLLM's own request models, and validate reads a
response vLLM's own response models serialized (scripts/vllm_wire.py runs in vLLM's virtual environment)."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pytest

from autoquant.bench import client as bench_client
from autoquant.bench.records import RequestSpec
from autoquant.servers import VLLM, Server
from autoquant.validate import client

pytestmark = pytest.mark.vllm

HELPER = Path(__file__).parents[2] / "scripts" / "vllm_wire.py"
SERVER = Server("http://vllm.invalid:8000", VLLM, "org/model")


@pytest.fixture(scope="module")
def vllm_wire():
    import importlib.util
    import sys

    python = os.environ.get("AUTOQUANT_VLLM_PYTHON") or (sys.executable if importlib.util.find_spec("vllm") else None)
    if python is None:
        pytest.skip("vLLM is not installed here: set AUTOQUANT_VLLM_PYTHON (CI: .ci/run installs it)")

    def run(payload: dict) -> dict:
        out = subprocess.run([python, str(HELPER)], input=json.dumps(payload), capture_output=True, text=True,
                             timeout=300, env={**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"})
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout)

    return run


def test_requests_pass_vllms_models_and_its_response_parses(vllm_wire, monkeypatch):
    sent: list[dict] = []

    def capture(url, body, timeout_s, what, server=None):
        sent.append(body)
        return {"choices": [{"prompt_logprobs": [None]}]}

    monkeypatch.setattr(client, "_request", capture)
    client.prompt_logprobs(SERVER, [2, 5, 7], top_k=20)
    bench_body = bench_client.payload(SERVER, "completions", RequestSpec(0, "a b c", 3, 16), ignore_eos=True)
    ids_body = bench_client.payload(SERVER, "completions", RequestSpec(0, [11, 12, 13], 3, 16), ignore_eos=True)
    rows = [None, {"5": -0.1, "9": -2.5}, {"7": -0.7, "5": -1.2}]
    got = vllm_wire({"completions": [sent[0], bench_body, ids_body],
                     "tokenize": [{"model": SERVER.model, "prompt": "a b", "add_special_tokens": False}],
                     "prompt_logprobs": rows})
    assert got["errors"] == [None, None, None, None]

    monkeypatch.setattr(client, "_request", lambda *a, **k: got["response"])
    positions = client.prompt_logprobs(SERVER, [2, 5, 7], top_k=20)
    assert positions[0] is None
    assert positions[1].logprob == pytest.approx(-0.1) and set(positions[1].top) == {5, 9}
    assert positions[2].logprob == pytest.approx(-0.7) and math.isclose(positions[2].top[5], -1.2)


def test_the_helper_rejects_what_vllm_rejects(vllm_wire):
    bad = {"model": "m", "prompt": "hi", "max_tokens": 4, "stream": True, "prompt_logprobs": 5}
    assert "prompt_logprobs" in vllm_wire({"completions": [bad]})["errors"][0]
