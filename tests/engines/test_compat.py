"""autoquant.engines.compat: the one rule set for engine x checkpoint format x method x device x TP."""

from __future__ import annotations

import pytest

from autoquant.engines import compat
from autoquant.engines.compat import check_tp
from autoquant.errors import RuleError
from autoquant.facts import default_facts
from autoquant.planner import estimate, plan
from autoquant.planner.hardware import device_of
from autoquant.records import CPUInfo, Node, QuantSpec, Workload

ENGINES = default_facts().engines


def _dev(node, key):
    return device_of(node(key))


def awq(bits=4, group=128, zero_point=True):
    return QuantSpec(method="awq-int4", quant_method="awq", weight_bits=bits, group_size=group,
                     zero_point=zero_point, producer="autoawq")


def gptq(bits=4, group=128, sym=True, act_order=False):
    return QuantSpec(method="gptq-int4" if bits == 4 else "gptq-int8", quant_method="gptq", weight_bits=bits,
                     group_size=group, symmetric=sym, act_order=act_order, producer="gptqmodel")


def test_marlin_rejects_qwen25_72b_at_tp4_and_names_the_shape(model, node):
    m = model("Qwen__Qwen2.5-72B")
    assert m.intermediate_size == 29568
    v = compat(ENGINES["vllm"], awq(), _dev(node, "A100-80GB-SXM:4"), 4, model=m)
    assert not v.ok and v.rule == "marlin_shapes"
    assert "29568" in v.reason and "7392" in v.reason and "128" in v.reason
    assert compat(ENGINES["vllm"], awq(), _dev(node, "A100-80GB-SXM:4"), 1, model=m).ok


def test_marlin_types_bits_zero_point_and_group():
    vllm = ENGINES["vllm"]
    assert compat(vllm, awq()).ok
    v = compat(vllm, awq(bits=8))
    assert not v.ok and "4-bit AWQ" in v.reason  # vLLM loads 4-bit AWQ only (format rule)
    assert compat(vllm, gptq(bits=8)).ok  # GPTQ 8-bit symmetric: uint8b128
    v = compat(vllm, gptq(group=256))
    assert not v.ok and "256" in v.reason
    v = compat(vllm, gptq(sym=False))
    assert not v.ok and "symmetric" in v.reason


def test_marlin_needs_sm75(node):
    v = compat(ENGINES["vllm"], "awq-int4", _dev(node, "V100-SXM2-32GB"))
    assert not v.ok and "7.5" in v.reason


def test_gptq_on_hopper_runs_machete_and_falls_back_to_marlin_on_shapes(model, node):
    """Fails on the old layout: the planner said Machete with no shape rule while the verifier rejected on
    Marlin shapes. Now one rule: Machete (SM90) first, then Marlin, each with its own shape limits."""
    h100 = _dev(node, "H100-SXM:8")
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    assert compat(ENGINES["vllm"], gptq(), h100, 1, model=m).kernel == "machete-int4"
    # act-order with the input partitioned across GPUs: not Machete; Marlin's k-not-full path takes it
    assert compat(ENGINES["vllm"], gptq(act_order=True), h100, 2, model=m).kernel == "marlin-int4"
    assert compat(ENGINES["vllm"], gptq(), _dev(node, "A100-80GB-SXM"), 1, model=m).kernel == "marlin-int4"
    q72 = model("Qwen__Qwen2.5-72B")
    v = compat(ENGINES["vllm"], gptq(), h100, 4, model=q72)
    assert not v.ok and "29568" in v.reason  # neither kernel takes 7392 per GPU


def test_fp8_w8a8_never_on_a100(node, model):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    with pytest.raises(RuleError, match="fp8 W8A8 on vLLM: needs compute capability 8.9, A100-80GB-SXM has 8.0"):
        estimate(m, node("A100-80GB-SXM:1"), Workload(), engine="vllm", method="fp8")
    p = plan(m, node("A100-80GB-SXM:4"), Workload(concurrency=512))
    assert all(c.method != "fp8" for c in [p.chosen, *p.alternatives])
    assert any(r.method == "fp8" and "8.9" in r.reason for r in p.rejected)


def test_trtllm_cannot_load_autoawq_but_loads_a_modelopt_awq_export(node):
    """Fails on the old layout: the verifier accepted ModelOpt W4A16_AWQ for TensorRT-LLM while the planner
    rejected the method outright, though its own reason recommended that export."""
    h100 = _dev(node, "H100-SXM")
    v = compat(ENGINES["trtllm"], awq(), h100)
    assert not v.ok and "AutoAWQ/AutoGPTQ" in v.reason
    modelopt = QuantSpec(method="awq-int4", quant_method="modelopt", weight_bits=4, group_size=128,
                         format="W4A16_AWQ", producer="modelopt")
    assert compat(ENGINES["trtllm"], modelopt, h100).ok
    assert compat(ENGINES["trtllm"], "awq-int4", h100).ok  # the method runs there, from the right checkpoint


def test_trtllm_refuses_int8_compressed_tensors_and_static_per_tensor_fp8(node):
    """Fails on the old layout: the verifier accepted every compressed-tensors checkpoint for TensorRT-LLM.
    Its loader maps 8-bit groups to FP8 (channel or 128 block weight scales) and 4-bit float to NVFP4 only."""
    h100 = _dev(node, "H100-SXM")
    int8 = QuantSpec(method="int8-sq", quant_method="compressed-tensors", weight_bits=8, act_bits=8,
                     weight_type="int", weight_strategy="channel", producer="llm-compressor")
    assert not compat(ENGINES["trtllm"], int8, h100).ok
    static = QuantSpec(method="fp8", quant_method="compressed-tensors", weight_bits=8, act_bits=8,
                       weight_type="float", weight_strategy="tensor", producer="llm-compressor")
    v = compat(ENGINES["trtllm"], static, h100)
    assert not v.ok and "per-tensor" in v.reason
    dynamic = QuantSpec(method="fp8", quant_method="compressed-tensors", weight_bits=8, act_bits=8,
                        weight_type="float", weight_strategy="channel", producer="llm-compressor")
    assert compat(ENGINES["trtllm"], dynamic, h100).ok


def test_block_fp8_other_than_128_is_not_for_trtllm(node):
    q = QuantSpec(method="fp8", quant_method="fp8", weight_bits=8, act_bits=8, weight_type="float",
                  weight_block_size=[64, 64])
    v = compat(ENGINES["trtllm"], q, _dev(node, "H100-SXM"))
    assert not v.ok and "128x128" in v.reason
    assert compat(ENGINES["vllm"], q, _dev(node, "H100-SXM")).ok


def test_gguf_on_vllm_needs_plugin_and_llamacpp_needs_gguf(node, model):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    with pytest.raises(RuleError, match="vllm-gguf-plugin"):
        estimate(m, node("H100-SXM:1"), Workload(), engine="vllm", method="gguf-q4_k_m")
    with pytest.raises(RuleError, match="GGUF"):
        estimate(m, node("H100-SXM:1"), Workload(), engine="llamacpp", method="awq-int4")
    gguf = QuantSpec(method="gguf-q4_k_m", quant_method="gguf", weight_bits=4.5, container="gguf")
    assert not compat(ENGINES["vllm"], gguf).ok and compat(ENGINES["llamacpp"], gguf).ok


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
    assert check_tp(m, 8).ok
    v = check_tp(m, 3)
    assert not v.ok and "32 attention heads" in v.reason


def test_tp_larger_than_gpus_is_a_rule_error(node, model):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    with pytest.raises(RuleError, match="TP=4 needs 4 GPUs"):
        estimate(m, node("H100-SXM:2"), Workload(), engine="vllm", method="bf16", tp=4)


def test_kv_cache_dtypes_are_one_list_per_engine(node):
    """Fails on the old layout: engines.yaml and engines_flags.yaml disagreed (TRT-LLM nvfp4, llama.cpp q4_0)."""
    b200, h100 = _dev(node, "B200-SXM"), _dev(node, "H100-SXM")
    assert compat(ENGINES["trtllm"], "bf16", b200, kv_cache_dtype="nvfp4").ok
    v = compat(ENGINES["trtllm"], "bf16", h100, kv_cache_dtype="nvfp4")
    assert not v.ok and "Blackwell" in v.reason
    assert compat(ENGINES["llamacpp"], "gguf-q4_k_m", h100, kv_cache_dtype="q4_0").ok
    assert not compat(ENGINES["vllm"], "bf16", h100, kv_cache_dtype="q4_0").ok


def test_every_kernel_choice_and_format_rule_has_a_source():
    for spec in ENGINES.values():
        for method, choices in spec.methods.items():
            for choice in choices:
                assert choice.kernel, (spec.id, method)
        for rule in spec.formats:
            assert rule.id and rule.source, (spec.id, rule)
        assert spec.memory.get("source") and spec.kv_source, spec.id


def test_w8a16_runs_on_each_engine_from_the_checkpoint_it_loads(node):
    """W8A16 is one method: Machete (SM90) / Marlin on vLLM, Marlin on SGLang, INT8 weight-only on TensorRT-LLM,
    which loads it from a ModelOpt export and not from a compressed-tensors integer scheme."""
    h100, a100 = _dev(node, "H100-SXM"), _dev(node, "A100-80GB-SXM")
    assert compat(ENGINES["vllm"], gptq(bits=8), h100).kernel == "machete-int8"
    assert compat(ENGINES["vllm"], gptq(bits=8), a100).kernel == "marlin-int8"
    assert compat(ENGINES["sglang"], gptq(bits=8), a100).kernel == "marlin-int8"
    assert compat(ENGINES["trtllm"], "gptq-int8", h100).kernel == "trtllm-int8-wo"
    assert not compat(ENGINES["trtllm"], gptq(bits=8), h100).ok  # AutoGPTQ format
    w8a16 = QuantSpec(method="gptq-int8", quant_method="compressed-tensors", weight_bits=8, weight_type="int",
                      weight_strategy="channel", producer="llm-compressor")
    v = compat(ENGINES["trtllm"], w8a16, h100)
    assert not v.ok and "integer" in v.reason
    modelopt = QuantSpec(method="gptq-int8", quant_method="modelopt", weight_bits=8, format="W8A16",
                         producer="modelopt")
    assert compat(ENGINES["trtllm"], modelopt, h100).ok
