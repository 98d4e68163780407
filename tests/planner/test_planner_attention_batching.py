"""Attention at FlashAttention efficiency (not at GEMM x engine factor), KV reads as their own roofline,
and llama.cpp's batched decode held to its measured scaling (docs/planner.md 3)."""

from __future__ import annotations

import dataclasses

import pytest

from autoquant.planner import estimate, perf, plan
from autoquant.planner.calibration import default_calibration
from autoquant.planner.hardware import device_of
from autoquant.records import Workload


def test_vllm_and_trtllm_use_the_flashattention_figures_of_the_gpu_class():
    cal = default_calibration()
    assert cal.efficiency("cublas-bf16", "A100-80GB-SXM", "vllm").attention_compute == pytest.approx(0.5)
    assert cal.efficiency("marlin-int4", "H100-SXM", "vllm").attention_compute == pytest.approx(0.75)
    assert cal.efficiency("trtllm-bf16", "H100-PCIe", "trtllm").attention_compute == pytest.approx(0.75)
    # llama.cpp's pp512 figures are whole-model: attention stays inside them
    assert cal.efficiency("llamacpp-cuda", "A100-80GB-SXM", "llamacpp").attention_compute is None


def test_attention_is_not_discounted_by_the_engine_factor(model, node):
    # A 32k-token prefill: half its FLOPs are attention. Charged at GEMM x engine factor (the old model) it
    # takes far longer than at FlashAttention's efficiency.
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    dev = device_of(node("H100-SXM:1"))
    eff = default_calibration().efficiency("cublas-bf16", dev.key, "vllm")
    setup = perf.Setup(model=m, method="bf16", engine="vllm", device=dev, tp=1, pp=1, kv_bytes=2.0, eff=eff)
    split = perf.stage_step(setup, 0, 1, 32000, 32000)
    lumped = perf.stage_step(dataclasses.replace(setup, eff=dataclasses.replace(eff, attention_compute=None)),
                             0, 1, 32000, 32000)
    assert split.seconds < lumped.seconds
    # the attention share runs at 0.75 of the BF16 peak: 4 x layers x ctx/2 x heads x head_dim per token
    attn = 32000 * 4 * 32 * 16000 * 32 * 128 / (dev.peak("fp16") * 1e12 * 0.75)
    assert split.comp_s > attn


def test_kv_reads_are_not_hidden_under_a_compute_bound_gemm(model, node):
    # A mixed step: a big prefill chunk (compute-bound GEMM) plus decodes over long contexts (KV reads):
    # separate kernels, so the KV time adds instead of hiding under max(memory, compute).
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    dev = device_of(node("H100-SXM:1"))
    eff = default_calibration().efficiency("cublas-bf16", dev.key, "vllm")
    setup = perf.Setup(model=m, method="bf16", engine="vllm", device=dev, tp=1, pp=1, kv_bytes=2.0, eff=eff)
    mixed = perf.stage_step(setup, 64, 8000, 4096, 4096)
    no_kv = perf.stage_step(setup, 64, 1, 4096, 4096)
    kv_s = 64 * 8000 * 131072 / (dev.bandwidth_gbps * 1e9 * eff.decode_bandwidth)
    prefill_attn_s = 4096 * 4 * 32 * 2048 * 32 * 128 / (dev.peak("fp16") * 1e12 * 0.75)
    # the attention roofline is max(KV reads, attention FLOPs): the step grows by the KV time beyond the
    # prefill's attention time, while the GEMM (compute-bound, ~70 ms here) hides none of it
    assert no_kv.comp_s > kv_s
    assert mixed.seconds - no_kv.seconds == pytest.approx(kv_s - prefill_attn_s, rel=0.05)


def test_batch_slowdown_follows_the_measured_points():
    pts = default_calibration().efficiency("llamacpp-cuda", "A100-80GB-SXM", "llamacpp").batch_speedup
    assert dict(pts)[8.0] == pytest.approx(3.35)
    assert perf.batch_slowdown(pts, 1) == 1.0
    assert perf.batch_slowdown(pts, 8) == pytest.approx(8 / 3.35)
    assert 4 / 1.79 < perf.batch_slowdown(pts, 6) < 8 / 3.35
    assert perf.batch_slowdown((), 8) == 1.0  # vLLM/TRT-LLM: the roofline alone


def test_llamacpp_batch8_is_credited_the_measured_scaling_not_8x(model, node):
    m = model("meta-llama__Llama-2-7b-hf")
    n = node("A100-80GB-SXM:1")
    one = estimate(m, n, Workload(concurrency=1, isl=16, osl=256), engine="llamacpp", method="gguf-q4_k_m")
    eight = estimate(m, n, Workload(concurrency=8, isl=16, osl=256), engine="llamacpp", method="gguf-q4_k_m")
    # aggregate speedup at 8 slots: the batched-bench 3.35x (plus a little from KV and compute), never ~8x
    assert 2.5 < eight.output_tokens_per_s / one.output_tokens_per_s < 4.0


def test_interactive_8_users_on_a100_do_not_pick_llamacpp(model, node):
    m = model("meta-llama__Llama-2-7b-hf")
    w = Workload(concurrency=8, ttft_ms=100, min_tps=40, max_ppl_delta=0.3, objective="cost")
    p = plan(m, node("A100-80GB-SXM:1"), w)
    assert p.chosen.engine != "llamacpp"
    gguf = [a for a in p.alternatives if a.engine == "llamacpp"]
    assert all(a.output_tokens_per_s < p.chosen.output_tokens_per_s for a in gguf)
