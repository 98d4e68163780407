"""Checkpoint availability (given by the resolver as a mapping): missing ones are rejected with the way out."""

from __future__ import annotations

import pytest

from autoquant.planner import plan
from autoquant.records import Checkpoint, Workload


def test_missing_awq_checkpoint_is_rejected_with_how_to_quantize(model, node):
    m = model("meta-llama__Llama-2-7b-hf")
    w = Workload(concurrency=8, max_ppl_delta=0.3, objective="cost")
    p = plan(m, node("A100-80GB-SXM:1"), w, checkpoints={"awq-int4": None})
    assert p.chosen.method != "awq-int4"
    reasons = [r.reason for r in p.rejected if r.method == "awq-int4"]
    assert reasons and "no AWQ INT4 g128 checkpoint found for meta-llama/Llama-2-7b-hf" in reasons[0]
    assert "AutoAWQ" in reasons[0]


def test_fp8_on_vllm_needs_runtime_quantization_flag(model, node):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    w = Workload(concurrency=256, isl=1024, objective="throughput")
    p = plan(m, node("H100-SXM:1"), w, engine="vllm", method="fp8", checkpoints={"fp8": None})
    assert p.chosen is None
    assert "--allow-runtime-quantization" in p.rejected[0].reason
    p = plan(m, node("H100-SXM:1"), w, engine="vllm", method="fp8", checkpoints={"fp8": None},
             allow_runtime_quantization=True)
    assert p.chosen.method == "fp8"
    assert p.chosen.checkpoint.runtime_quantization and p.chosen.checkpoint.source == "base"


def test_available_checkpoint_is_attached(model, node):
    m = model("meta-llama__Llama-2-7b-hf")
    ck = Checkpoint(repo="TheBloke/Llama-2-7B-AWQ", method="awq-int4", verified=True)
    p = plan(m, node("A100-80GB-SXM:1"), Workload(concurrency=8, max_ppl_delta=0.3, objective="cost"),
             checkpoints={"awq-int4": ck})
    assert p.chosen.method == "awq-int4" and p.chosen.checkpoint is ck


def test_engine_flag_pins_max_model_len_and_max_num_seqs(model, node):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    p = plan(m, node("H100-SXM:1"), Workload(concurrency=None), engine="vllm", method="bf16", max_num_seqs=64,
             max_model_len=4096)
    assert p.chosen.concurrency == 64
    assert p.workload["max_model_len"] == 4096
    assert p.chosen.memory.kv_cache_gb == pytest.approx(64 * 4096 * 131072 / 1e9, abs=0.01)
