"""Speed model: roofline, crossover derived from catalog numbers, MoE expert reads, TP, regimes."""

from __future__ import annotations

import pytest

from autoquant.catalog.gpus import lookup
from autoquant.planner import estimate, perf
from autoquant.planner.calibration import Efficiency, default_calibration
from autoquant.planner.explain import crossover_table
from autoquant.planner.hardware import device_of
from autoquant.records import Workload


def test_crossover_derived_from_catalog(node):
    spec = lookup("H100-SXM")
    dev = device_of(node("H100-SXM:1"))
    ideal = perf.crossover_batch(dev, "fp16", 16.0, Efficiency(1.0, 1.0))
    # B* = peak / BW x bytes per weight / 2 = 989.5e12 / 3.35e12 x 2 / 2 ~ 295 (the seed says ~128)
    assert ideal == pytest.approx(spec.bf16_tflops * 1e12 / (spec.memory_bandwidth_gbps * 1e9), rel=1e-9)
    assert 290 < ideal < 300
    # weight-only INT4 keeps fp16 math with a quarter of the bytes: B* drops ~4x
    w4 = perf.crossover_batch(dev, "fp16", 4.15625, Efficiency(1.0, 1.0))
    assert w4 == pytest.approx(ideal * 4.15625 / 16)
    # FP8 W8A8: twice the peak, half the bytes: same B* as FP16
    assert perf.crossover_batch(dev, "fp8", 8.0, Efficiency(1.0, 1.0)) == pytest.approx(ideal * 2 / 2, rel=1e-3)
    a100 = perf.crossover_batch(device_of(node("A100-80GB-SXM:1")), "fp16", 16.0, Efficiency(1.0, 1.0))
    assert a100 == pytest.approx(312 / 2.039, rel=0.02)


def test_crossover_table_lists_precisions(model, node):
    rows = crossover_table(model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:1"))
    labels = [r[0] for r in rows]
    assert any("FP8" in x for x in labels) and any("W4A16" in x for x in labels)


def test_batch1_decode_is_weight_read_time(model, node):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    e = estimate(m, node("H100-SXM:1"), Workload(concurrency=1, isl=128, osl=128), engine="vllm", method="bf16")
    assert e.regime == "bandwidth_bound"
    # ~15 GB of weights read per token (embedding rows excluded) at 3.35 TB/s x efficiency, plus the
    # engine's fixed per-step overhead from the calibration
    lower = 15.0e9 / 3.35e12 * 1000
    step = default_calibration().overhead_ms("vllm")
    assert lower < e.tpot_ms - step < lower / 0.4
    awq = estimate(m, node("H100-SXM:1"), Workload(concurrency=1, isl=128, osl=128), engine="vllm",
                   method="awq-int4")
    assert awq.tpot_ms - step < (e.tpot_ms - step) / 2  # 4-bit weights: fewer bytes per step


def test_large_batch_is_compute_bound_and_fp8_helps(model, node):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    w = Workload(concurrency=512, isl=1024, osl=128)
    bf16 = estimate(m, node("H100-SXM:1"), w, engine="vllm", method="bf16")
    fp8 = estimate(m, node("H100-SXM:1"), w, engine="vllm", method="fp8")
    awq = estimate(m, node("H100-SXM:1"), w, engine="vllm", method="awq-int4")
    assert bf16.regime == "compute_bound"
    assert fp8.output_tokens_per_s > 1.3 * bf16.output_tokens_per_s
    assert awq.output_tokens_per_s < fp8.output_tokens_per_s  # W4A16 gains no compute


def test_moe_expected_experts():
    assert perf.expected_experts(8, 2, 1) == pytest.approx(2.0)
    assert perf.expected_experts(8, 2, 1000) == pytest.approx(8.0)
    assert 2 < perf.expected_experts(128, 8, 4) < 32


def test_moe_decode_reads_only_touched_experts(model, node):
    m = model("Qwen__Qwen3-30B-A3B")
    one = estimate(m, node("H100-SXM:1"), Workload(concurrency=1), engine="vllm", method="bf16")
    dense_time = 2 * m.total_params / 3.35e12 * 1000
    step = default_calibration().overhead_ms("vllm")
    assert one.tpot_ms - step < dense_time / 3  # 3B active of 30B


def test_tp_adds_communication_but_splits_weights(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    w = Workload(concurrency=8)
    tp2 = estimate(m, node("H100-SXM:4"), w, engine="vllm", method="fp8", tp=2)
    tp4 = estimate(m, node("H100-SXM:4"), w, engine="vllm", method="fp8", tp=4)
    assert tp4.tpot_ms < tp2.tpot_ms
    assert tp4.tpot_ms > tp2.tpot_ms / 2  # all-reduces keep it from scaling perfectly


def test_pcie_costs_more_than_nvlink(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    w = Workload(concurrency=64)
    sxm = estimate(m, node("H100-SXM:4"), w, engine="vllm", method="fp8", tp=4)
    pcie_node = node("H100-SXM:4")
    pcie_node.nvlink_domains = [[0], [1], [2], [3]]
    pcie = estimate(m, pcie_node, w, engine="vllm", method="fp8", tp=4)
    assert pcie.tpot_ms > sxm.tpot_ms


def test_regime_thresholds():
    assert perf.regime_of(0.2) == "bandwidth_bound"
    assert perf.regime_of(0.7) == "transitional"
    assert perf.regime_of(1.5) == "compute_bound"


def test_cost_per_million_tokens(model, node):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    e = estimate(m, node("H100-SXM:1"), Workload(concurrency=32, gpu_hour_cost=3.0), engine="vllm", method="bf16")
    assert e.cost_per_million_tokens == pytest.approx(3.0 / (e.output_tokens_per_s * 3600) * 1e6, rel=1e-3)
    unknown = estimate(m, node("L4:1"), Workload(concurrency=1), engine="vllm", method="awq-int4")
    assert unknown.cost_per_million_tokens is None  # no price in pricing.yaml: never guessed


def test_llamacpp_hybrid_offload_when_model_exceeds_vram(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    n = node("RTX4090:1")
    n.cpu.memory_bandwidth_gbps = 80.0
    n.cpu.matmul_gflops = 1000.0
    e = estimate(m, n, Workload(concurrency=1), engine="llamacpp", method="gguf-q4_k_m")
    assert e.n_gpu_layers is not None and 0 < e.n_gpu_layers < m.num_layers
    assert e.memory.host_weights_gb > 10
