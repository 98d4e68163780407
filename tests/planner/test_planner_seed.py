"""The seed's worked examples and master decision table, as tests (docs/planner.md says where physics
departs from the seed's numbers)."""

from __future__ import annotations

from autoquant.planner import plan
from autoquant.records import Checkpoint, QuantSpec, Workload

# The seed's INT4 checkpoints are AutoAWQ / AutoGPTQ exports (TheBloke/Llama-2-7B-AWQ, -GPTQ: g128): vLLM
# loads them (Marlin), TensorRT-LLM cannot (it needs ModelOpt W4A16 exports). Methods not named here are
# planned as if their checkpoint existed.
SEED_AWQ = {
    "awq-int4": [Checkpoint(
        repo="TheBloke/Llama-2-7B-AWQ", method="awq-int4", source="registry", verified=True, status="verified",
        quant=QuantSpec(method="awq-int4", quant_method="awq", weight_bits=4, group_size=128, zero_point=True,
                        format="gemm", producer="autoawq"))],
    "gptq-int4": [Checkpoint(
        repo="TheBloke/Llama-2-7B-GPTQ", method="gptq-int4", source="registry", verified=True, status="verified",
        quant=QuantSpec(method="gptq-int4", quant_method="gptq", weight_bits=4, group_size=128, symmetric=True,
                        producer="autogptq"))],
}


def test_example1_7b_chat_on_a100_at_the_seeds_constraints(model, node):
    # The seed's exact constraints, no engine pin: the seed's answer, AWQ + Marlin on vLLM. With vLLM's compute
    # factor fitted per GPU class (A100 rows, docs/planner.md 6) its 512-token prefill at batch 8 meets 50 ms.
    # llama.cpp is not picked: its batched decode follows llama.cpp's measured scaling.
    m = model("meta-llama__Llama-2-7b-hf")
    w = Workload(concurrency=8, ttft_ms=50, min_tps=40, max_ppl_delta=0.3, objective="cost")
    p = plan(m, node("A100-80GB-SXM:1"), w, checkpoints=SEED_AWQ)
    assert p.chosen is not None and p.chosen.ttft_ms <= 50
    assert (p.chosen.engine, p.chosen.method, p.chosen.kernel) == ("vllm", "awq-int4", "marlin-int4")
    assert p.chosen.regime == "bandwidth_bound"


def test_example1_with_a_100ms_ttft_is_awq_marlin_on_vllm(model, node):
    # With the TTFT the seed's vLLM can meet, the seed's answer wins unpinned: AWQ + Marlin on vLLM.
    m = model("meta-llama__Llama-2-7b-hf")
    w = Workload(concurrency=8, ttft_ms=100, min_tps=40, max_ppl_delta=0.3, objective="cost")
    p = plan(m, node("A100-80GB-SXM:1"), w, checkpoints=SEED_AWQ)
    assert (p.chosen.engine, p.chosen.method, p.chosen.kernel) == ("vllm", "awq-int4", "marlin-int4")
    assert p.chosen.regime == "bandwidth_bound"
    # physics: FP16 at batch 8 does ~60 tok/s per user on an A100, so it passes 40 tok/s (the seed says 32)
    fp16 = [a for a in p.alternatives if a.method in ("fp16", "bf16") and a.engine == "vllm"]
    assert fp16 and fp16[0].per_request_tokens_per_s > 40
    assert p.chosen.output_tokens_per_s > fp16[0].output_tokens_per_s


def test_example2_70b_batch_api_on_2xh100_is_fp8_w8a8_tp2(model, node):
    m = model("meta-llama__Llama-2-70b-hf")
    w = Workload(concurrency=128, ttft_ms=5000, min_tps=10, max_ppl_delta=0.1, objective="cost")
    p = plan(m, node("H100-SXM:2"), w)
    assert p.chosen.method == "fp8" and p.chosen.tp == 2
    # With one compute model for both engines (GEMM figure x fitted engine factor) TRT-LLM wins, as the seed says
    assert p.chosen.engine == "trtllm"
    assert p.chosen.regime in ("transitional", "compute_bound")
    # INT4 on one GPU fits but is compute-limited at batch 128: not chosen
    awq1 = [a for a in p.alternatives if a.method == "awq-int4" and a.tp == 1]
    assert all(a.output_tokens_per_s / a.gpus < p.chosen.output_tokens_per_s / p.chosen.gpus for a in awq1)


def test_example3_7b_on_m2_max_is_gguf_q4_or_q5(model, apple):
    # The seed's quality numbers (+0.16 Q4_K_M, +0.05 Q5_K_M) are Llama-3-8B's: plan that model.
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    w = Workload(concurrency=1, ttft_ms=500, min_tps=15, max_ppl_delta=0.2, objective="latency")
    p = plan(m, apple("M2-Max", 32), w)
    assert p.chosen.engine == "llamacpp"
    assert p.chosen.method in ("gguf-q4_k_m", "gguf-q5_k_m")
    assert p.chosen.kernel == "llamacpp-metal"


def test_405b_on_8xh100_is_fp8_tp8(model, node):
    m = model("meta-llama__Meta-Llama-3.1-405B")
    p = plan(m, node("H100-SXM:8"), Workload(concurrency=64, use_case="chat", objective="cost"))
    assert p.chosen.method == "fp8" and p.chosen.tp == 8


def test_int4_not_chosen_for_compute_bound_batch(model, node):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    p = plan(m, node("H100-SXM:1"), Workload(concurrency=256, isl=1024, osl=256, use_case="summarization",
                                               objective="throughput"))
    assert p.chosen.method not in ("awq-int4", "gptq-int4")


def test_int4_chosen_when_memory_forces_it(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    p = plan(m, node("A100-80GB-SXM:1"), Workload(concurrency=4, use_case="summarization", objective="cost"))
    assert p.chosen.method in ("awq-int4", "gptq-int4")


def test_no_feasible_plan_says_why(model, node):
    m = model("meta-llama__Meta-Llama-3.1-405B")
    p = plan(m, node("L4:1"), Workload(use_case="medical"))
    assert p.chosen is None and p.rejected and all(r.reason for r in p.rejected)
    assert "no configuration" in p.reasons[0]
