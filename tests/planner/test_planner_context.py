"""Context and batch from the workload: on a paged KV cache a request holds its own length and --max-model-len
bounds only the longest; a traffic profile's context bound and peak concurrency reach the command."""

from __future__ import annotations

from pathlib import Path

from autoquant.api import attach_commands
from autoquant.planner import plan
from autoquant.planner.candidates import request_contexts
from autoquant.probes.traffic import profile_file
from autoquant.records import Workload

TRACE = Path(__file__).resolve().parents[1] / "fixtures" / "traces" / "azure_llm_2023_code" / \
    "AzureLLMInferenceTrace_code.csv"


def test_a_paged_request_holds_its_own_length_and_a_slot_the_longest():
    w = Workload(isl=512, osl=256, max_model_len=8192)
    assert request_contexts(w, paged=True) == (8192, 768)
    assert request_contexts(w, paged=False) == (8192, 8192)
    assert request_contexts(Workload(isl=512, osl=256), paged=True) == (768, 768)


def test_max_model_len_bounds_the_longest_request_not_every_request(model, node):
    # 8B BF16 on one H100: 8192 tokens x 128 KiB = 1 GiB a request would cap the batch at ~63; requests of
    # 768 tokens leave room for hundreds.
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    w = Workload(concurrency=128, isl=512, osl=256, max_model_len=8192)
    p = plan(m, node("H100-SXM:1"), w, engine="vllm", method="bf16")
    assert p.chosen.max_model_len == 8192
    assert p.chosen.max_num_seqs == 128 and p.chosen.max_concurrency > 300


def test_the_longest_request_must_still_fit_once(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    p = plan(m, node("H100-SXM:2"), Workload(isl=512, osl=256, max_model_len=131072), engine="vllm", method="bf16",
             tp=2, kv_cache_dtype="auto")
    assert p.chosen is None
    assert any("cannot hold one request of 131072 tokens" in r.reason for r in p.rejected)


def test_llamacpp_slots_each_get_the_longest_context(model, node):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    w = Workload(concurrency=4, isl=512, osl=256, max_model_len=8192)
    p = plan(m, node("L4:1"), w, engine="llamacpp", method="gguf-q4_k_m")
    assert p.chosen.max_model_len == 8192
    per_slot_gb = p.chosen.memory.kv_bytes_per_token * 8192 / 1e9
    assert p.chosen.memory.kv_cache_gb >= p.chosen.max_num_seqs * per_slot_gb * 0.99


def test_a_traffic_profiles_context_and_peak_concurrency_reach_the_command(model, node):
    prof = profile_file(str(TRACE))
    w = prof.workload
    assert w.max_model_len == 7680
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    p = attach_commands(plan(m, node("H100-SXM:1"), w, engine="vllm", method="bf16"), m.id, node=node("H100-SXM:1"))
    cmd = p.chosen.command
    assert cmd[cmd.index("--max-model-len") + 1] == "7680"
    peak = max(b.concurrency for b in w.concurrency_distribution)
    assert int(cmd[cmd.index("--max-num-seqs") + 1]) == peak
