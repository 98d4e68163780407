"""Fixes from the planner code review: runtime FP8 only on vLLM, structured quality reasons, exact GPU names
in kernels.yaml, figures read from the data files. Nothing is faked: the planner is pure, and the checkpoint
resolver runs offline (no Hub on this machine; the outermost boundary, the network, is simply not used)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoquant.catalog.gpus import lookup, synthetic_node
from autoquant.data import load
from autoquant.planner import candidates, facts, memory, perf
from autoquant.planner.calibration import _catalog_key, default_calibration
from autoquant.planner.decide import estimate, plan
from autoquant.planner.hardware import device_of, pcie_gbps
from autoquant.records import Checkpoint, Workload


def test_runtime_fp8_never_on_trtllm_through_the_api(model):
    from autoquant.api import plan_model

    # a model the bundled registry has no FP8 checkpoint of
    p = plan_model(model("meta-llama__Llama-3.2-3B-Instruct"), synthetic_node("H100-SXM"), Workload(),
                   allow_runtime_quantization=True, offline=True)
    cands = [c for c in (p.chosen, *p.alternatives) if c is not None]
    assert any(c.engine == "vllm" and c.checkpoint and c.checkpoint.runtime_quantization for c in cands)
    assert not [c for c in cands if c.engine == "trtllm" and c.checkpoint and c.checkpoint.runtime_quantization]
    rej = [r for r in p.rejected if r.engine == "trtllm" and r.method == "fp8"]
    assert rej and "TensorRT-LLM does not quantize at load time" in rej[0].reason


def test_runtime_checkpoint_from_the_planner_is_verified_and_names_its_base(model):
    m = model("microsoft__phi-4")
    p = plan(m, synthetic_node("H100-SXM"), Workload(), engine="vllm", method="fp8", checkpoints={"fp8": None},
             allow_runtime_quantization=True)
    ck = p.chosen.checkpoint
    assert ck.runtime_quantization and ck.status == "verified" and ck.base == m.id
    runtime = Checkpoint(repo=m.id, method="fp8", source="base", verified=True, runtime_quantization=True,
                         status="verified", base=m.id)
    p = plan(m, synthetic_node("H100-SXM"), Workload(), engine="trtllm", method="fp8", checkpoints={"fp8": runtime})
    assert p.chosen is None and p.rejected[0].rule == "checkpoint"


def test_quality_rejection_quotes_the_quality_source_not_the_last_note(model):
    p = plan(model("meta-llama__Llama-3.1-8B-Instruct"), synthetic_node("H100-SXM"),
             Workload(concurrency=512, isl=4000, use_case="chat"), engine="vllm", method="nvfp4")
    quality = [r for r in p.rejected if r.rule == "quality"]
    assert quality and all("no published perplexity figure for nvfp4" in r.reason for r in quality)
    assert not any("KV cache" in r.reason.split("quality unknown:")[-1] for r in quality)


def test_estimate_carries_its_quality_source(model, node):
    e = estimate(model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM"), engine="vllm", method="bf16")
    assert e.ppl_source == "unquantized (16-bit reference)"


def test_catalog_key_matches_names_exactly():
    assert _catalog_key("H001-SXM") is None
    assert _catalog_key("H100-SXM") == "H100-SXM"
    assert _catalog_key("A100-80GB-SXM") == "A100-80GB-SXM"
    assert ("cublas-bf16", "A100-80GB-SXM") in default_calibration().by_gpu


def test_kernel_without_figures_borrows_from_its_yaml_list():
    eff = default_calibration().efficiency("marlin-fp4", "H100-SXM", "vllm")
    assert "borrowed from marlin-int4" in eff.source


def test_regime_thresholds_come_from_overheads_yaml():
    r = load("overheads")["regime"]
    lo, hi = float(r["bandwidth_bound_below"]), float(r["compute_bound_from"])
    assert perf.regime_of(lo * 0.99) == "bandwidth_bound"
    assert perf.regime_of(lo) == "transitional"
    assert perf.regime_of(hi) == "compute_bound"


def test_pcie_from_generation_when_the_catalog_has_no_pcie_figure():
    spec = replace(lookup("L40S"), pcie_gbps=None, pcie_gen=4)
    table = load("gpus")["interconnects"]["pcie_gen4"]["x16_gbps_bidirectional"]
    assert pcie_gbps(spec) == float(table)
    assert pcie_gbps(replace(spec, pcie_gen=None)) is None


def test_no_link_figure_means_unknown_speed_at_tp2(model):
    device = replace(device_of(synthetic_node("L40S:2")), pcie_gbps=None, nvlink_gbps=None)
    cal = default_calibration()
    s = perf.Setup(model=model("meta-llama__Llama-3.1-8B-Instruct"), method="bf16", engine="vllm", device=device,
                   tp=2, pp=1, kv_bytes=2.0, eff=cal.efficiency("cublas-bf16", device.key, "vllm"))
    with pytest.raises(perf.UnknownSpeed, match="PCIe"):
        perf.comm_seconds(s, 1.0)


def test_llamacpp_slot_cap_is_llama_max_seq():
    seqs, _ = memory.engine_batch_limits(facts.engine("llamacpp"), device_of(synthetic_node("RTX-4090")))
    assert seqs == facts.engine("llamacpp").max_batch == 256


def test_estimate_offload_uses_the_planner_helper(model, node):
    m, n = model("meta-llama__Llama-3.1-70B-Instruct"), node("RTX-4090")
    n.cpu.memory_bandwidth_gbps = 60.0  # a probed node would carry it; the synthetic one has none
    n.ram_total_bytes = 128 * 1024**3
    w = Workload(isl=1000, osl=200)
    e = estimate(m, n, w, engine="llamacpp", method="gguf-q4_k_m")
    assert e.n_gpu_layers == candidates.llamacpp_layers(m, "gguf-q4_k_m", device_of(n), 1, w, "f16", 1)
    assert e.n_gpu_layers is not None


def test_marlin_shape_rules_follow_the_kernel_vllm_picks(model):
    from autoquant.engines import compat

    # An MLP width whose down_proj input (14400) is not a multiple of 128: Marlin rules it out where (and only
    # where) vLLM runs Marlin; Machete (SM90) needs input % 64 and takes it.
    m = replace(model("meta-llama__Llama-3.1-8B-Instruct"), intermediate_size=14336 + 64)
    vllm = facts.engine("vllm")
    on_ampere = compat(vllm, "gptq-int4", device_of(synthetic_node("A100-80GB-SXM")), 1, model=m)
    on_hopper = compat(vllm, "gptq-int4", device_of(synthetic_node("H100-SXM")), 1, model=m)
    assert on_hopper.ok and on_hopper.kernel == "machete-int4"
    assert not on_ampere.ok and "14400" in on_ampere.reason
