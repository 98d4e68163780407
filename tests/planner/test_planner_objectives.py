"""Objectives weigh quality: `balanced` trades it against cost and latency, `quality` puts it first; the default
floor yields to a pin that leaves nothing under it, a floor the user set never does."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoquant.facts import default_facts
from autoquant.planner import plan
from autoquant.records import Workload

EXAMPLE3 = Workload(concurrency=1, ttft_ms=500, min_tps=15, max_ppl_delta=0.2)


def _with_policy(**policy):
    fx = default_facts()
    q = dict(fx.quality)
    q["planner_policy"] = {**q["planner_policy"], **policy}
    return replace(fx, quality=q)


def test_balanced_plans_q4_k_m_or_q5_k_m_for_the_seeds_example3_model(model, apple):
    # Llama-2-7B chat on an M2 Max, floor 0.2, 15 tok/s, TTFT 500 ms: every GGUF type under the floor meets the
    # SLOs with room; the seed prefers Q5_K_M (or Q4_K_M for speed), not the fastest type under the floor.
    p = plan(model("meta-llama__Llama-2-7b-hf"), apple("M2-Max", 32), EXAMPLE3)
    assert p.chosen.method in ("gguf-q4_k_m", "gguf-q5_k_m")


def test_balanced_without_its_quality_term_takes_the_fastest_type_under_the_floor(model, apple):
    # The weight is what moves the choice: at W = 1 (cost x latency only) the most aggressive type wins.
    fx = _with_policy(balanced_quality_weight=1)
    p = plan(model("meta-llama__Llama-2-7b-hf"), apple("M2-Max", 32), EXAMPLE3, facts=fx)
    fastest = min([p.chosen, *p.alternatives], key=lambda e: e.tpot_ms)
    assert p.chosen.method == fastest.method
    assert p.chosen.ppl_delta > 0.1


def test_quality_objective_takes_the_smallest_delta_that_meets_every_slo(model, apple):
    w = replace(EXAMPLE3, objective="quality")
    p = plan(model("meta-llama__Llama-2-7b-hf"), apple("M2-Max", 32), w)
    feasible = [p.chosen, *p.alternatives]
    best = min(e.ppl_delta for e in feasible)
    assert p.chosen.ppl_delta <= best + 0.01
    assert p.chosen.per_request_tokens_per_s >= 15


def test_quality_objective_breaks_a_quality_tie_on_cost(model, node):
    # bf16 and fp16 carry the same (zero) delta: the cheaper per token wins, and 16-bit beats any quantized one
    p = plan(model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:1"),
             Workload(concurrency=8, objective="quality"), engine="vllm")
    assert p.chosen.ppl_delta == 0.0
    same = [a for a in p.alternatives if a.ppl_delta == 0.0 and a.method == p.chosen.method]
    assert all(a.gpus / a.output_tokens_per_s >= p.chosen.gpus / p.chosen.output_tokens_per_s * 0.98 for a in same)


def test_a_pinned_method_over_the_default_floor_plans_with_a_warning(model, node):
    # +0.65 ppl for Llama-3-8B GPTQ INT4 is over the default chat floor (0.3): the user asked for it, so it plans
    p = plan(model("meta-llama__Llama-3.1-8B-Instruct"), node("L4:1"), Workload(), method="gptq-int4")
    assert p.chosen is not None and p.chosen.method == "gptq-int4"
    assert any("above the default 0.3 floor" in w and "--method gptq-int4" in w for w in p.chosen.warnings)
    assert any("above the default" in r for r in p.reasons)


def test_a_floor_the_user_set_still_rejects_a_pinned_method(model, node):
    p = plan(model("meta-llama__Llama-3.1-8B-Instruct"), node("L4:1"), Workload(use_case="chat"), method="gptq-int4")
    assert p.chosen is None
    assert any(r.rule == "quality" and "exceeds the 0.3 floor" in r.reason for r in p.rejected)


def test_an_engine_pin_keeps_the_default_floor_while_something_meets_it(model, node):
    p = plan(model("meta-llama__Llama-3.1-8B-Instruct"), node("L4:1"), Workload(), engine="vllm")
    assert p.chosen.ppl_delta is None or p.chosen.ppl_delta <= 0.3
    assert not any("above the default" in w for w in p.chosen.warnings)
    assert any(r.rule == "quality" and r.method == "gptq-int4" for r in p.rejected)


@pytest.mark.parametrize("objective", ["cost", "latency", "throughput", "balanced", "quality"])
def test_the_runner_up_is_compared_in_plain_words(model, node, objective):
    p = plan(model("meta-llama__Llama-3.1-8B-Instruct"), node("L4:1"), Workload(concurrency=4, objective=objective))
    line = next(r for r in p.reasons if r.startswith("runner-up"))
    assert "% worse" not in line
    assert "x " in line or "x the" in line or "ppl" in line
