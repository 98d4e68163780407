"""Queueing beyond capacity (docs/planner.md): an engine whose KV cache holds M < C requests runs M at a
time and queues the rest; Little's law gives throughput and the wait. Real configs, synthetic nodes; nothing
is faked (the planner is pure)."""

from __future__ import annotations

import pytest

from autoquant.planner import estimate, plan
from autoquant.planner.candidates import running_at_once
from autoquant.planner.explain import explain
from autoquant.planner.perf import Speed, queued
from autoquant.records import Workload

LLAMA70 = "meta-llama__Llama-3.1-70B-Instruct"


def test_littles_law_by_hand():
    # M = 100 at once, TTFT_M = 100 ms, TPOT_M = 20 ms, OSL 200: T = 0.1 + 200 x 0.02 = 4.1 s;
    # X = 100 / 4.1 = 24.390 req/s -> 4,878.05 tok/s; C = 300: W = 4.1 x (300/100 - 1) = 8.2 s
    at_m = Speed(ttft_ms=100.0, tpot_ms=20.0, per_request_tps=50.0, output_tps=5000.0, regime="transitional",
                 compute_to_memory=0.7)
    sp, wait = queued(at_m, 300, 100, 200)
    assert wait == pytest.approx(8.2)
    assert sp.ttft_ms == pytest.approx(8300.0)
    assert sp.output_tps == pytest.approx(100 / 4.1 * 200)
    assert sp.tpot_ms == 20.0 and sp.per_request_tps == 50.0
    # closed loop: C / X = T + W
    assert 300 / (sp.output_tps / 200) == pytest.approx(4.1 + 8.2)
    # no queue at or below M
    assert queued(at_m, 100, 100, 200) == (at_m, 0.0)


def test_running_at_once():
    assert running_at_once(512, 338, 1024, None) == 338  # KV room
    assert running_at_once(128, 338, 1024, None) == 128  # all fit
    assert running_at_once(512, 338, 1024, 64) == 64  # --max-num-seqs pinned below KV room
    assert running_at_once(None, 338, 256, None) == 256  # "max": the engine's default cap
    assert running_at_once(None, 338, 1024, None) == 338


def test_estimate_over_capacity_is_the_estimate_at_m_plus_the_wait(model, node):
    m, n = model(LLAMA70), node("H100-SXM:2")
    at_c = estimate(m, n, Workload(concurrency=512, isl=512, osl=256), engine="trtllm", method="fp8", tp=2)
    big_m = at_c.max_concurrency
    assert at_c.memory.fits and 1 <= big_m < 512
    at_m = estimate(m, n, Workload(concurrency=big_m, isl=512, osl=256), engine="trtllm", method="fp8", tp=2)
    service_s = at_m.ttft_ms / 1000 + 256 * at_m.tpot_ms / 1000
    assert at_c.concurrency == 512 and at_c.max_num_seqs == big_m
    assert at_c.tpot_ms == at_m.tpot_ms
    assert at_c.output_tokens_per_s == pytest.approx(big_m / service_s * 256, rel=1e-3)
    assert at_c.ttft_ms == pytest.approx(at_m.ttft_ms + service_s * (512 / big_m - 1) * 1000, rel=1e-3)
    assert at_c.memory.kv_cache_gb == pytest.approx(at_m.memory.kv_cache_gb)
    assert any(f"{big_m} of 512 requests run at once (KV room); the rest queue" in s for s in at_c.notes)


def test_512_users_70b_on_2_h100_picks_a_datacenter_engine_and_queues(model, node):
    p = plan(model(LLAMA70), node("H100-SXM:2"), Workload(concurrency=512, isl=512, osl=256, use_case="chat"))
    c = p.chosen
    assert c is not None and c.engine in ("vllm", "trtllm") and c.tp == 2
    assert c.concurrency == 512 and c.max_num_seqs < 512
    assert any("of 512 requests run at once" in s for s in c.notes)
    # 10x what the old pick (llama.cpp Q3_K_S, 333 tok/s, TPOT 1.5 s) did
    assert c.output_tokens_per_s > 3000 and c.tpot_ms < 200


def test_explain_flips_do_not_propose_llamacpp_for_70b_interactive_on_2_h100(model, node):
    _, lines = explain(model(LLAMA70), node("H100-SXM:2"),
                       Workload(concurrency=128, isl=512, osl=256, use_case="chat"))
    flips = lines[lines.index("What would flip it:") + 1:]
    flips = flips[:next((i for i, s in enumerate(flips) if s.startswith("Rejected (")), len(flips))]
    assert flips and not any("llama.cpp" in s for s in flips)
    tighter = next(s for s in flips if "tighter quality floor" in s)
    # With no checkpoint list every method counts as available: W8A16 (+0.002 ppl) is the next-best quality
    # that still fits 2x H100 without queueing.
    assert "gptq-int8 on vLLM TP=2" in tighter


def test_queue_wait_that_breaks_the_ttft_slo_is_rejected(model, node):
    m, n = model(LLAMA70), node("H100-SXM:2")
    free = plan(m, n, Workload(concurrency=512, isl=512, osl=256, use_case="chat"), engine="trtllm", method="fp8",
                tp=2)
    assert free.chosen is not None and free.chosen.ttft_ms > 2000
    slo = plan(m, n, Workload(concurrency=512, isl=512, osl=256, use_case="chat", ttft_ms=2000),
               engine="trtllm", method="fp8", tp=2)
    assert slo.chosen is None
    r = next(r for r in slo.rejected if r.rule == "slo")
    assert "misses the TTFT SLO" in r.reason and "of 512 requests run at once" in r.reason


def test_pinned_max_num_seqs_caps_the_batch_and_queues(model, node):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    p = plan(m, node("H100-SXM:1"), Workload(concurrency=128), engine="vllm", method="bf16", max_num_seqs=64)
    c = p.chosen
    assert c.concurrency == 128 and c.max_num_seqs == 64 and c.max_concurrency > 128
    assert any("64 of 128 requests run at once (--max-num-seqs)" in s for s in c.notes)


def test_llamacpp_slots_queue_too(model, node):
    # 8B Q4_K_M on one RTX 4090 (24 GB) at 32k context: the KV cache has slots (-np) for a few; the rest queue
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    e = estimate(m, node("RTX4090:1"), Workload(concurrency=64, isl=30000, osl=2000), engine="llamacpp",
                 method="gguf-q4_k_m", n_gpu_layers=None)
    assert e.memory.fits and 1 <= e.max_num_seqs == e.max_concurrency < 64
    assert any(f"{e.max_num_seqs} of 64 requests run at once" in s for s in e.notes)


def test_concurrency_max_means_as_many_as_fit_without_a_queue(model, node):
    p = plan(model(LLAMA70), node("H100-SXM:2"), Workload(concurrency=None, isl=512, osl=256, use_case="chat"),
             engine="trtllm", method="fp8", tp=2)
    c = p.chosen
    assert c.concurrency == c.max_num_seqs == c.max_concurrency
    assert not any("run at once" in s for s in c.notes)
