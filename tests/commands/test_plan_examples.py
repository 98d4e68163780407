"""The seed's examples with its own models, planned offline from the bundled registry (no Hub, empty HF cache):
what a new user sees first."""

from __future__ import annotations

import json

import pytest

from autoquant import cli


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("AUTOQUANT_CHECKPOINT_DIRS", raising=False)


def _plan(capsys, *args: str) -> dict:
    rc = cli.main(["plan", *args, "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out)


def test_example_3_llama2_7b_chat_on_an_m2_max_plans_q4_k_m_or_q5_k_m(capsys):
    # the seed: "Q5_K_M, or Q4_K_M when speed matters more"; never the most aggressive type under the floor
    p = _plan(capsys, "meta-llama/Llama-2-7b-chat-hf", "--gpu", "M2-Max", "--concurrency", "1",
              "--max-ppl-delta", "0.2", "--min-tps", "15", "--ttft-ms", "500")
    c = p["chosen"]
    assert c["engine"] == "llamacpp" and c["method"] in ("gguf-q4_k_m", "gguf-q5_k_m")
    assert c["checkpoint"]["repo"] == "TheBloke/Llama-2-7B-Chat-GGUF"
    assert c["checkpoint"]["files"] == [f"llama-2-7b-chat.{c['method'].removeprefix('gguf-').upper()}.gguf"]


def test_example_1_llama2_7b_chat_on_an_a100_for_cost_plans_int4_on_vllm(capsys):
    p = _plan(capsys, "meta-llama/Llama-2-7b-chat-hf", "--gpu", "A100-80GB-SXM", "--concurrency", "8",
              "--ttft-ms", "100", "--min-tps", "40", "--max-ppl-delta", "0.3", "--objective", "cost")
    c = p["chosen"]
    assert (c["engine"], c["method"]) in (("vllm", "awq-int4"), ("vllm", "gptq-int4"))
    assert c["checkpoint"]["repo"].startswith("TheBloke/Llama-2-7B-Chat-")
    assert c["command"][:3] == ["vllm", "serve", c["checkpoint"]["repo"]]


def test_qwen25_72b_awq_plans_at_tp4_from_the_official_padded_checkpoint(capsys):
    p = _plan(capsys, "Qwen/Qwen2.5-72B-Instruct", "--gpu", "H100-SXM:4", "--engine", "vllm",
              "--method", "awq-int4", "--tp", "4")
    c = p["chosen"]
    assert c["tp"] == 4 and c["checkpoint"]["repo"] == "Qwen/Qwen2.5-72B-Instruct-AWQ"
    assert c["checkpoint"]["intermediate_size"] == 29696
    assert c["command"][c["command"].index("--tensor-parallel-size") + 1] == "4"
