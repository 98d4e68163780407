"""Regression tests for the planner fixes: one compute model across engines, llama.cpp per GPU class,
quantized-KV fallback and its quality, MIG slices, checkpoint shapes, unmeasured quality, wording."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from autoquant.catalog.gpus import synthetic_node
from autoquant.catalog.models import spec_from_catalog
from autoquant.commands.plan import collapse_unquantized
from autoquant.planner import estimate, plan
from autoquant.planner.calibration import default_calibration, gpu_class
from autoquant.planner.hardware import device_of
from autoquant.records import Checkpoint, Estimate, MigSlice, Node, Workload, from_dict, to_dict

NODES = Path(__file__).resolve().parents[1] / "fixtures" / "nodes"


def _node_fixture(name: str) -> Node:
    return from_dict(Node, json.loads((NODES / name).read_text()))


# --- 1. engine comparability: GEMM figure x engine factor, for every kernel of an engine
def test_trtllm_fp8_uses_the_fp8_gemm_figure_not_its_whole_model_ttft_figure():
    cal = default_calibration()
    vllm = cal.efficiency("cutlass-fp8", "H100-SXM", "vllm")
    trt = cal.efficiency("trtllm-fp8", "H100-SXM", "trtllm")
    # both GEMM figures are the FP8 MAMF figure (0.71 on H100), not TRT-LLM's 0.39 TTFT-table figure
    assert vllm.prefill_compute == trt.prefill_compute == pytest.approx(0.71)
    # the engine factors differ, and each comes from the engine (a kernel without rows inherits it)
    assert vllm.compute_factor == cal.engine_factor("vllm", "H100-SXM") != 1.0
    assert trt.compute_factor == cal.engine_factor("trtllm", "H100-SXM") != 1.0
    assert cal.efficiency("cutlass-int8", "H100-SXM", "vllm").compute_factor == vllm.compute_factor


def test_70b_fp8_on_2xh100_engines_differ_only_by_their_fitted_factors(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    w = Workload(concurrency=128, isl=512, osl=256, use_case="chat")
    p = plan(m, node("H100-SXM:2"), w)
    assert (p.chosen.engine, p.chosen.method, p.chosen.tp) == ("trtllm", "fp8", 2)
    vllm = next(a for a in p.alternatives if (a.engine, a.method, a.tp) == ("vllm", "fp8", 2))
    assert p.chosen.output_tokens_per_s > vllm.output_tokens_per_s


# --- 2. llama.cpp: per-GPU figures stand for their GPU class
def test_llamacpp_h100_pcie_takes_the_hopper_hbm_figures():
    cal = default_calibration()
    assert gpu_class("H100-PCIe") == gpu_class("H100-SXM") == "hopper-hbm"
    assert gpu_class("RTX4090") == "ada-gddr"
    pcie, sxm = cal.efficiency("llamacpp-cuda", "H100-PCIe"), cal.efficiency("llamacpp-cuda", "H100-SXM")
    assert (pcie.decode_bandwidth, pcie.prefill_compute) == (sxm.decode_bandwidth, sxm.prefill_compute)
    assert pcie.prefill_compute < 0.3 and "hopper-hbm" in pcie.source
    # a consumer card takes its own class's figure
    ada = cal.efficiency("llamacpp-cuda", "RTX4090")
    assert "ada-gddr" in ada.source and ada.decode_bandwidth != pcie.decode_bandwidth


def test_llamacpp_pp512_on_h100_pcie_is_within_25_percent_of_the_published_figure(model):
    # llama.cpp xDai benchmark: Llama-3-8B Q4_K_M pp512 on H100 PCIe = 8,125 tok/s (was predicted 30,706)
    m = model("meta-llama__Meta-Llama-3-8B")
    e = estimate(m, synthetic_node("H100-PCIe:1"), Workload(concurrency=1, isl=512, osl=1), engine="llamacpp",
                 method="gguf-q4_k_m")
    pp = 512 / (e.ttft_ms / 1000)
    assert abs(pp - 8125.45) / 8125.45 < 0.25


# --- 3. quantized KV cache
def test_vllm_fp8_kv_is_tried_and_the_estimate_says_so(model, node):
    # vLLM BF16 TP=2 holds 51 of 128 requests: it now queues the rest (docs/planner.md "Queueing beyond
    # capacity") instead of being rejected; fp8 KV would hold 103, but a quality floor is set
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    p = plan(m, node("H100-SXM:2"), Workload(concurrency=128, isl=512, osl=256, use_case="chat"))
    e = next(a for a in p.alternatives if (a.engine, a.method, a.tp) == ("vllm", "bf16", 2))
    assert e.kv_cache_dtype == "auto" and e.max_num_seqs == e.max_concurrency == 51 and e.concurrency == 128
    assert any("KV cache fp8 would hold more (room for 103 requests)" in n for n in e.notes)


def test_fp8_kv_tried_too_when_one_request_does_not_fit(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    p = plan(m, node("H100-SXM:2"), Workload(concurrency=1, isl=100_000, osl=31_000, use_case="chat"),
             engine="vllm", method="bf16", tp=2)
    assert p.chosen is None
    r = next(r for r in p.rejected if (r.engine, r.method, r.tp) == ("vllm", "bf16", 2))
    assert "cannot hold one request of 131000 tokens" in r.reason and "KV cache fp8" in r.reason


def test_fp8_kv_without_a_quality_figure_needs_no_floor(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    n = node("H100-SXM:2")
    floor = plan(m, n, Workload(concurrency=128, isl=512, osl=256, use_case="chat"))
    assert not any(a.kv_cache_dtype == "fp8" for a in [floor.chosen, *floor.alternatives])
    e = next(a for a in floor.alternatives if (a.engine, a.method, a.tp) == ("trtllm", "bf16", 2))
    assert any("no perplexity figure for a fp8 KV cache and a quality floor is set" in n for n in e.notes)
    free = plan(m, n, Workload(concurrency=128, isl=512, osl=256))
    kept = [a for a in [free.chosen, *free.alternatives] if a.kv_cache_dtype == "fp8"]
    assert kept and any("quality not measured for a fp8 KV cache" in note for note in kept[0].notes)


# --- 4. MIG
def test_mig_slice_selected_by_cuda_visible_devices_is_the_device():
    node = _node_fixture("h100-sxm-mig-3g40gb.json")
    d = device_of(node)
    assert d.count == 1 and d.memory_gb == pytest.approx(40320 * 1024**2 / 1e9)
    assert d.peak("fp16") == pytest.approx(989.5 * 60 / 132)
    assert d.bandwidth_gbps < 3350 and "MIG" in d.describe()
    p = plan(spec_from_catalog("meta-llama/Llama-3.1-8B-Instruct"), node, Workload(concurrency=8))
    assert p.chosen is not None and p.chosen.memory.capacity_gb <= d.memory_gb + 1e-3
    assert p.hardware == "1x H100-SXM (3g.40gb MIG slice)"


def test_mig_gpu_with_several_slices_plans_for_the_largest_and_says_so():
    node = _node_fixture("h100-sxm-mig-3g40gb.json")
    node = copy.deepcopy(node)
    gpu = node.gpus[0]
    gpu.mig_slices = [MigSlice(0, "1g.10gb", 10 * 1024**3, sm_count=16),
                      MigSlice(0, "3g.40gb", 40320 * 1024**2, sm_count=60),
                      MigSlice(0, "2g.20gb", 20 * 1024**3, sm_count=32)]
    d = device_of(node)
    assert d.memory_gb == pytest.approx(40320 * 1024**2 / 1e9)
    assert any("3 slices: planning for one slice (the largest, 3g.40gb)" in n for n in d.notes)


# --- 5. a checkpoint's own shapes
def test_padded_checkpoint_lifts_the_marlin_shape_rejection(model, node):
    m = model("Qwen__Qwen2.5-72B")
    n = node("H100-SXM:4")
    w = Workload(concurrency=8, max_ppl_delta=1.0)
    base = plan(m, n, w, engine="vllm", method="awq-int4", tp=4)
    assert base.chosen is None and "29568" in base.rejected[0].reason
    ck = Checkpoint(repo="example/Qwen2.5-72B-AWQ-padded", method="awq-int4", verified=True, status="verified",
                    intermediate_size=29696)
    p = plan(m, n, w, engine="vllm", method="awq-int4", tp=4, checkpoints={"awq-int4": ck})
    assert p.chosen is not None and p.chosen.tp == 4 and p.chosen.checkpoint is ck
    assert any("MLP width 29696" in note for note in p.chosen.notes)
    # Offline, a registry row's recorded width counts (its facts are what offline planning stands on); a
    # pattern-derived row's (status unconfirmed) does not.
    recorded = Checkpoint(repo="x/y", method="awq-int4", status="unverified", intermediate_size=29696)
    assert plan(m, n, w, engine="vllm", method="awq-int4", tp=4, checkpoints={"awq-int4": recorded}).chosen is not None
    guessed = Checkpoint(repo="x/y", method="awq-int4", status="unconfirmed", intermediate_size=29696)
    assert plan(m, n, w, engine="vllm", method="awq-int4", tp=4, checkpoints={"awq-int4": guessed}).chosen is None


# --- 6. unmeasured quality
def test_nvfp4_unknown_quality_is_kept_without_a_floor_and_rejected_with_one(model, node):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    n = node("H100-SXM:1")
    free = plan(m, n, Workload(concurrency=8), engine="vllm", method="nvfp4")
    assert free.chosen is not None and free.chosen.ppl_delta is None
    assert any(note.startswith("quality not measured") for note in free.chosen.notes)
    assert "quality not measured" in free.reasons[-1]
    floored = plan(m, n, Workload(concurrency=8, use_case="chat"), engine="vllm", method="nvfp4")
    assert floored.chosen is None and floored.rejected[0].rule == "quality"


def test_estimate_with_unknown_quality_round_trips(model, node):
    e = estimate(model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:1"), Workload(concurrency=8),
                 engine="vllm", method="nvfp4")
    assert e.ppl_delta is None
    again = from_dict(Estimate, json.loads(json.dumps(to_dict(e))))
    assert again.ppl_delta is None and again.tpot_ms == e.tpot_ms


# --- 7. wording and the human table
def test_gguf_only_rejection_names_the_methods(model, node):
    p = plan(model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:1"), Workload(concurrency=8))
    r = next(r for r in p.rejected if r.rule == "gguf-only-on-llamacpp")
    assert r.reason.startswith("bf16, fp16, fp8, ") and " on llama.cpp: llama.cpp loads GGUF files only" in r.reason
    assert "gguf-" not in r.method


def test_identical_bf16_and_fp16_rows_collapse_in_the_table_only(model, node):
    p = plan(model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:1"), Workload(concurrency=8))
    methods = [a.method for a in p.alternatives]
    assert "bf16" in methods and "fp16" in methods  # --json keeps both
    rows = collapse_unquantized(p.alternatives)
    shown = [r[1] for r in rows]
    assert len(rows) < len(p.alternatives) and "bf16/fp16" in shown
