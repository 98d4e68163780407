"""Checkpoint availability (given by the resolver as a mapping): missing ones are rejected with the way out."""

from __future__ import annotations

import pytest

from autoquant.planner import plan
from autoquant.records import Checkpoint, QuantSpec, Workload


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
    # paged KV: each of the 64 holds its own ISL + OSL (768 tokens); 4096 bounds the longest
    assert p.chosen.memory.kv_cache_gb == pytest.approx(64 * 768 * 131072 / 1e9, abs=0.01)
    assert p.chosen.max_model_len == 4096


def _ck(repo, method, quant_method, producer, fmt=None, **quant):
    return Checkpoint(repo=repo, method=method, source="registry", verified=True, status="verified",
                      quant=QuantSpec(method=method, quant_method=quant_method, producer=producer, format=fmt,
                                      **quant))


def test_each_engine_takes_a_checkpoint_it_can_load_and_prefers_its_publishers(model, node):
    """Fails on the old layout: one checkpoint per method was paired with every engine, so TensorRT-LLM FP8
    named the compressed-tensors export although the ModelOpt one was there, and an AutoAWQ checkpoint was
    planned on TensorRT-LLM only because the method was refused outright."""
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    neuralmagic = _ck("neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8", "fp8", "compressed-tensors", "llm-compressor",
                      weight_bits=8, act_bits=8, weight_type="float")
    nvidia = _ck("nvidia/Llama-3.1-70B-Instruct-FP8", "fp8", "modelopt", "modelopt", "FP8", weight_bits=8,
                 act_bits=8, weight_type="float")
    autoawq = _ck("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", "awq-int4", "awq", "autoawq", "gemm",
                  weight_bits=4, group_size=128, zero_point=True)
    p = plan(m, node("H100-SXM:2"), Workload(concurrency=32),
             checkpoints={"fp8": [neuralmagic, nvidia], "awq-int4": [autoawq]})
    chosen = [c for c in (p.chosen, *p.alternatives) if c is not None]
    trt_fp8 = [c for c in chosen if c.engine == "trtllm" and c.method == "fp8"]
    vllm_fp8 = [c for c in chosen if c.engine == "vllm" and c.method == "fp8"]
    assert trt_fp8 and all(c.checkpoint.repo == nvidia.repo for c in trt_fp8)
    assert vllm_fp8 and all(c.checkpoint.repo == neuralmagic.repo for c in vllm_fp8)  # resolution's order
    assert not [c for c in chosen if c.engine == "trtllm" and c.method == "awq-int4"]
    rej = [r for r in p.rejected if r.engine == "trtllm" and r.method == "awq-int4"]
    assert rej and "TensorRT-LLM can load" in rej[0].reason and "ModelOpt" in rej[0].reason
    modelopt_awq = _ck("nvidia/Llama-3.1-70B-Instruct-AWQ", "awq-int4", "modelopt", "modelopt", "W4A16_AWQ",
                       weight_bits=4, group_size=128)
    p = plan(m, node("H100-SXM:2"), Workload(concurrency=32, max_ppl_delta=1.0), engine="trtllm",
             method="awq-int4", checkpoints={"awq-int4": [autoawq, modelopt_awq]})
    assert p.chosen is not None and p.chosen.checkpoint.repo == modelopt_awq.repo
