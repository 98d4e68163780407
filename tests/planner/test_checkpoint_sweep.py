"""No plan names a checkpoint its engine cannot load: every catalog model on a fixed set of machines (GPU
generations Turing..Blackwell, Apple, CPU), checkpoints resolved offline (bundled registry + installed packages,
no Hub), and every candidate with a checkpoint re-checked independently against autoquant.engines.compat on the
checkpoint's own format and shapes. Plus the bug report's case (TensorRT-LLM FP8 of Llama-3.1-70B-Instruct must
name the ModelOpt export) and the FP8 64x64-block checkpoint TensorRT-LLM cannot load."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from autoquant.api import available_checkpoints
from autoquant.catalog.gpus import synthetic_node
from autoquant.catalog.models import known_ids, spec_from_catalog
from autoquant.engines.compat import compat
from autoquant.planner import facts, plan
from autoquant.planner.hardware import device_of
from autoquant.records import Checkpoint, CPUInfo, ModelSpec, Node, QuantSpec, Workload

MODELS = known_ids()


def _cpu_node() -> Node:
    cpu = CPUInfo(arch="x86_64", physical_cores=16, logical_cores=32, flags=["avx2", "fma", "avx512f"],
                  memory_bandwidth_gbps=100.0, matmul_gflops=1000.0)
    return Node(cpu=cpu, ram_total_bytes=128 * 10**9)


# machine id -> node (`apple`: tests/conftest.py's Apple node factory, chip and unified memory in GiB)
MACHINES = {
    "H100-SXM:8": lambda apple: synthetic_node("H100-SXM:8"),
    "A100-80GB-SXM:4": lambda apple: synthetic_node("A100-80GB-SXM:4"),
    "L40S:1": lambda apple: synthetic_node("L40S:1"),
    "RTX4090:1": lambda apple: synthetic_node("RTX4090:1"),
    "B200:8": lambda apple: synthetic_node("B200:8"),
    "T4:1": lambda apple: synthetic_node("T4:1"),
    "M2-Max-64GB": lambda apple: apple("M2-Max", 64),
    "cpu-x86-avx2": lambda apple: _cpu_node(),
}

# The default floor keeps INT4 and the small GGUF types out; a loose one lets them (and their checkpoints) in.
WORKLOADS = (Workload(concurrency=8), Workload(concurrency=8, max_ppl_delta=10.0))


@pytest.fixture
def offline_env(tmp_path, monkeypatch):
    """Checkpoint resolution sees the bundled registry and installed packages only: an empty HF cache, no
    local checkpoint folders, the Hub off."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("AUTOQUANT_CHECKPOINT_DIRS", raising=False)


def _checkpoints(m: ModelSpec, node: Node) -> dict:
    return available_checkpoints(m, node, offline=True, notify=lambda _msg: None)


def _shapes(m: ModelSpec, ck: Checkpoint) -> ModelSpec:
    """The checkpoint's own shapes: its MLP width when resolution read one (verified) or the registry records it."""
    if ck.intermediate_size and ck.status in ("verified", "unverified"):
        return replace(m, intermediate_size=int(ck.intermediate_size))
    return m


def _serves(requested: str, actual: str) -> bool:
    return actual == requested or (requested == "fp8-weight-only" and actual == "fp8")


def _violations(m: ModelSpec, node: Node, c) -> list[str]:
    """Why candidate `c` names a checkpoint its engine cannot load (empty: it can)."""
    ck = c.checkpoint
    spec = facts.engine(c.engine)
    out = []
    runtime = ck.runtime_quantization
    subject = ck.quant if ck.quant is not None and not runtime else c.method
    if subject is ck.quant and ck.quant.method != c.method:  # FP8 W8A8 weights served as fp8-weight-only
        subject = dataclasses.replace(ck.quant, method=c.method)
    v = compat(spec, subject, device_of(node), c.tp, model=_shapes(m, ck), kv_cache_dtype=c.kv_cache_dtype)
    if not v.ok:
        out.append(f"compat refuses it: [{v.rule}] {v.reason}")
    elif c.kernel != v.kernel:
        out.append(f"kernel {c.kernel!r}, compat says {v.kernel!r}")
    if not _serves(c.method, ck.method):
        out.append(f"a {ck.method} checkpoint for {c.method}")
    if ck.quant is not None and not runtime and not _serves(c.method, ck.quant.method):
        out.append(f"its quantization is {ck.quant.method}, not {c.method}")
    if runtime:
        if not spec.quantizes_at_load(c.method):
            out.append(f"runtime quantization to {c.method}, which {spec.label} does not do at load time")
        if m.quantization is not None:
            out.append("runtime quantization of a model published quantized")
    if c.engine in ck.not_loadable:
        out.append(f"resolution recorded it not loadable by {c.engine}: {ck.not_loadable[c.engine]}")
    if not (ck.verified or ck.status == "unverified"):
        out.append(f"status {ck.status!r} is not choosable: {ck.reason}")
    return out


@pytest.mark.parametrize("machine", list(MACHINES))
def test_no_plan_names_a_checkpoint_its_engine_cannot_load(machine, offline_env, apple):
    node = MACHINES[machine](apple)
    checked = 0
    pre_quantized = 0  # candidates naming a checkpoint other than the base weights
    failures = []
    for model_id in MODELS:
        m = spec_from_catalog(model_id)
        checkpoints = _checkpoints(m, node)
        for w in WORKLOADS:
            p = plan(m, node, w, checkpoints=checkpoints, allow_runtime_quantization=True)
            for c in [p.chosen, *p.alternatives]:
                if c is None:
                    continue
                # every (engine, method) the mapping names was resolved: its candidates carry a checkpoint
                assert c.checkpoint is not None, (model_id, machine, c.engine, c.method)
                checked += 1
                pre_quantized += c.checkpoint.source != "base"
                for why in _violations(m, node, c):
                    failures.append(f"{model_id} on {machine}: {c.engine} {c.method} TP={c.tp} "
                                    f"KV={c.kv_cache_dtype} -> {c.checkpoint.repo}: {why}")
    assert not failures, "\n".join(failures)
    assert checked > 0 and pre_quantized > 0, (machine, checked, pre_quantized)  # not vacuous


# ------------------------------------------------------------------------------------- the bug report's case

NVIDIA_70B_FP8 = "nvidia/Llama-3.1-70B-Instruct-FP8"
NEURALMAGIC_70B_FP8 = "neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8"


def test_trtllm_fp8_llama_70b_names_the_modelopt_export_from_the_registry(offline_env):
    """Fails before the registry carried the producer: offline, both FP8 registry entries had producer None, so
    TensorRT-LLM's preferred_producers (modelopt) reordered nothing and it named the compressed-tensors export."""
    m = spec_from_catalog("meta-llama/Llama-3.1-70B-Instruct")
    node = synthetic_node("H100-SXM:2")
    checkpoints = _checkpoints(m, node)
    assert {NVIDIA_70B_FP8, NEURALMAGIC_70B_FP8} <= {c.repo for c in checkpoints["fp8"]}
    p = plan(m, node, Workload(concurrency=8), engine="trtllm", method="fp8", checkpoints=checkpoints,
             allow_runtime_quantization=True)
    trt = [c for c in (p.chosen, *p.alternatives) if c is not None]
    assert trt, [r.reason for r in p.rejected]
    assert all(c.engine == "trtllm" and c.method == "fp8" for c in trt)
    assert all(c.checkpoint.repo == NVIDIA_70B_FP8 for c in trt), [c.checkpoint.repo for c in trt]
    assert all(c.checkpoint.quant.producer == "modelopt" for c in trt)
    # unpinned: TensorRT-LLM still names ModelOpt; vLLM may name either (both are FP8 it loads)
    p = plan(m, node, Workload(concurrency=8), checkpoints=checkpoints, allow_runtime_quantization=True)
    fp8 = [c for c in (p.chosen, *p.alternatives) if c is not None and c.method == "fp8"]
    assert {c.checkpoint.repo for c in fp8 if c.engine == "trtllm"} == {NVIDIA_70B_FP8}
    vllm = [c for c in fp8 if c.engine == "vllm"]
    assert vllm and {c.checkpoint.repo for c in vllm} <= {NVIDIA_70B_FP8, NEURALMAGIC_70B_FP8}
    for c in fp8:
        assert not _violations(m, node, c)


# ----------------------------------------------------------------------- FP8 blocks TensorRT-LLM cannot load


def _block_fp8(quant_method: str, block: list[int]) -> Checkpoint:
    strategy = "block" if quant_method == "compressed-tensors" else None
    quant = QuantSpec(method="fp8", quant_method=quant_method, weight_bits=8, weight_type="float", act_bits=8,
                      dynamic_act=True, weight_block_size=block, weight_strategy=strategy,
                      producer="llm-compressor" if strategy else None)
    repo = f"testorg/Llama-3.1-70B-Instruct-FP8-block{block[0]}-{quant_method}"
    return Checkpoint(repo=repo, method="fp8", source="hub", verified=True, status="verified", quant=quant,
                      base="meta-llama/Llama-3.1-70B-Instruct")


@pytest.mark.parametrize("quant_method", ["fp8", "compressed-tensors"])
def test_fp8_64x64_blocks_are_never_trtllm_fp8_but_vllm_may_use_them(quant_method):
    """TensorRT-LLM takes block FP8 with 128x128 blocks only (llm_utils.py for `fp8` configs; compressed-tensors
    FP8_BLOCK_SCALES raises ValueError for any group size but 128). The compressed-tensors case failed before
    engines.yaml's trtllm-compressed-tensors rule checked weight_block_size."""
    m = spec_from_catalog("meta-llama/Llama-3.1-70B-Instruct")
    node = synthetic_node("H100-SXM:2")
    b64, b128 = _block_fp8(quant_method, [64, 64]), _block_fp8(quant_method, [128, 128])
    p = plan(m, node, Workload(concurrency=8), checkpoints={"fp8": [b64]}, allow_runtime_quantization=True)
    cands = [c for c in (p.chosen, *p.alternatives) if c is not None]
    assert not [c for c in cands if c.engine == "trtllm" and c.method == "fp8"]
    rej = [r for r in p.rejected if r.engine == "trtllm" and r.method == "fp8"]
    assert rej and all("128x128" in r.reason and "[64, 64]" in r.reason for r in rej), [r.reason for r in rej]
    vllm = [c for c in cands if c.engine == "vllm" and c.method == "fp8"]
    assert vllm and all(c.checkpoint is b64 for c in vllm)
    p = plan(m, node, Workload(concurrency=8), engine="trtllm", method="fp8", checkpoints={"fp8": [b64]},
             allow_runtime_quantization=True)
    assert p.chosen is None and any("128x128" in r.reason for r in p.rejected)
    # both listed, 64x64 first: each engine takes the first it can load
    p = plan(m, node, Workload(concurrency=8), checkpoints={"fp8": [b64, b128]}, allow_runtime_quantization=True)
    cands = [c for c in (p.chosen, *p.alternatives) if c is not None and c.method == "fp8"]
    assert {c.checkpoint.repo for c in cands if c.engine == "trtllm"} == {b128.repo}
    assert {c.checkpoint.repo for c in cands if c.engine == "vllm"} == {b64.repo}
    for c in cands:
        assert not _violations(m, node, c)


# ----------------------------------------------------------------------------------------- known open bug


def test_an_fp8_checkpoint_serves_fp8_weight_only_on_a100(offline_env):
    m = spec_from_catalog("meta-llama/Llama-3.1-8B-Instruct")
    node = synthetic_node("A100-80GB-SXM:1")
    p = plan(m, node, Workload(concurrency=8, max_ppl_delta=10.0), engine="vllm", method="fp8-weight-only",
             checkpoints=_checkpoints(m, node))
    assert p.chosen is not None, [r.reason for r in p.rejected]
    assert p.chosen.kernel == "marlin-fp8" and p.chosen.checkpoint.method == "fp8"
