"""Compatibility rules: Marlin shapes and groups, capabilities, engine/format support."""

from __future__ import annotations

import pytest

from autoquant.errors import RuleError
from autoquant.planner import estimate, plan, rules
from autoquant.records import CPUInfo, Node, Workload


def test_marlin_rejects_qwen25_72b_at_tp4(model):
    m = model("Qwen__Qwen2.5-72B")
    assert m.intermediate_size == 29568
    ok, reason = rules.check_marlin_shapes(m, 4, 128)
    assert not ok
    assert "29568" in reason and "7392" in reason and "128" in reason
    assert rules.check_marlin_shapes(m, 1, 128) == (True, None)


def test_marlin_supported_predicate():
    assert rules.check_marlin_supported(4, 128, True, "8.0") == (True, None)
    ok, reason = rules.check_marlin_supported(4, 128, True, "7.0")
    assert not ok and "7.5" in reason
    ok, reason = rules.check_marlin_supported(8, 128, True, "8.0")
    assert not ok and "8-bit" in reason  # AWQ (zero point) is 4-bit only
    assert rules.check_marlin_supported(8, 128, False, "8.0")[0]  # GPTQ 8-bit symmetric
    ok, reason = rules.check_marlin_supported(4, 256, False, "9.0")
    assert not ok and "256" in reason


def test_fp8_w8a8_never_on_a100(node, model):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    with pytest.raises(RuleError, match="fp8 W8A8 on vLLM: needs compute capability 8.9, A100-80GB-SXM has 8.0"):
        estimate(m, node("A100-80GB-SXM:1"), Workload(), engine="vllm", method="fp8")
    p = plan(m, node("A100-80GB-SXM:4"), Workload(concurrency=512))
    assert all(c.method != "fp8" for c in [p.chosen, *p.alternatives])
    assert any(r.method == "fp8" and "8.9" in r.reason for r in p.rejected)


def test_trtllm_cannot_load_autoawq(node, model):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    with pytest.raises(RuleError, match="AutoAWQ/AutoGPTQ"):
        estimate(m, node("H100-SXM:1"), Workload(), engine="trtllm", method="awq-int4")


def test_gguf_on_vllm_needs_plugin_and_llamacpp_needs_gguf(node, model):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    with pytest.raises(RuleError, match="vllm-gguf-plugin"):
        estimate(m, node("H100-SXM:1"), Workload(), engine="vllm", method="gguf-q4_k_m")
    with pytest.raises(RuleError, match="GGUF"):
        estimate(m, node("H100-SXM:1"), Workload(), engine="llamacpp", method="awq-int4")


def test_apple_runs_llamacpp_only(model, apple):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    with pytest.raises(RuleError, match="Apple Silicon"):
        estimate(m, apple("M2-Max", 32), Workload(), engine="vllm", method="bf16")
    p = plan(m, apple("M2-Max", 32), Workload())
    assert {c.engine for c in [p.chosen, *p.alternatives]} == {"llamacpp"}


def test_x86_cpu_without_avx2_rejects_llamacpp(model):
    m = model("meta-llama__Llama-3.2-1B")
    cpu = CPUInfo(arch="x86_64", flags=["sse4_2"], memory_bandwidth_gbps=50.0, matmul_gflops=500.0)
    node = Node(cpu=cpu, ram_total_bytes=64 * 10**9)
    p = plan(m, node, Workload())
    assert p.chosen is None
    assert any("AVX2" in r.reason for r in p.rejected)
    cpu.flags = ["avx2", "fma"]
    assert plan(m, node, Workload()).chosen.engine == "llamacpp"


def test_tp_divisibility(model):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    assert rules.check_tp(m, 8) == (True, None)
    ok, reason = rules.check_tp(m, 3)
    assert not ok and "32 attention heads" in reason


def test_tp_larger_than_gpus_is_a_rule_error(node, model):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    with pytest.raises(RuleError, match="TP=4 needs 4 GPUs"):
        estimate(m, node("H100-SXM:2"), Workload(), engine="vllm", method="bf16", tp=4)


def test_every_rule_has_a_reason_and_a_source():
    from autoquant.planner import facts

    for rule in facts.rules():
        assert rule.get("id") and rule.get("reason") and rule.get("source"), rule
