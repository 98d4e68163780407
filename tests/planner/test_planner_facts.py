"""plan() and estimate() read their facts from the Facts object they are given (autoquant.facts), not from
process-wide state: a test builds its own and the plan follows it."""

from __future__ import annotations

from dataclasses import replace

from autoquant.data import load
from autoquant.facts import default_facts, facts_from_data
from autoquant.planner import estimate, plan
from autoquant.records import Workload


def _facts(**engine_overrides):
    engines = {**load("engines"), "engines": {**load("engines")["engines"]}}
    for eid, patch in engine_overrides.items():
        engines["engines"][eid] = {**engines["engines"][eid], **patch}
    return facts_from_data(engines, load("methods"), load("overheads"), load("pricing"), load("quality"))


def test_a_facts_object_without_an_engine_plans_without_it(model, node):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    base = default_facts()
    only_vllm = replace(base, engines={"vllm": base.engines["vllm"]})
    p = plan(m, node("H100-SXM:1"), Workload(concurrency=8), facts=only_vllm)
    assert {c.engine for c in [p.chosen, *p.alternatives]} == {"vllm"}
    assert {r.engine for r in p.rejected} <= {"vllm"}


def test_the_memory_fraction_comes_from_the_facts_given(model, node):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    half = _facts(vllm={"memory": {**load("engines")["engines"]["vllm"]["memory"], "fraction": 0.5}})
    full = estimate(m, node("H100-SXM:1"), Workload(), engine="vllm", method="bf16")
    halved = estimate(m, node("H100-SXM:1"), Workload(), engine="vllm", method="bf16", facts=half)
    assert halved.memory.capacity_gb < full.memory.capacity_gb * 0.6
    assert halved.max_concurrency < full.max_concurrency


def test_method_bits_come_from_the_facts_given(model, node):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    methods = load("methods")
    fat = facts_from_data(load("engines"), {**methods, "methods": {**methods["methods"],
                          "fp8": {**methods["methods"]["fp8"], "bits": 16}}}, load("overheads"), load("pricing"),
                          load("quality"))
    normal = estimate(m, node("H100-SXM:1"), Workload(), engine="vllm", method="fp8")
    wide = estimate(m, node("H100-SXM:1"), Workload(), engine="vllm", method="fp8", facts=fat)
    assert wide.memory.weights_gb > normal.memory.weights_gb * 1.5
