"""Ways out of a plan that chose nothing (autoquant/planner/ways_out.py): each is the planner run again on changed
inputs, and the figures follow the arithmetic of weights, GPU memory and bandwidth. Nothing is faked: the planner
is pure; `checkpoints` stands for what resolution found (an empty list: no checkpoint of that method)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from autoquant.facts import default_facts
from autoquant.planner import facts, memory, ways_out
from autoquant.planner.calibration import default_calibration
from autoquant.planner.decide import plan
from autoquant.records import Workload, from_dict, to_dict
from autoquant.records.plan import Plan

GIB = 1024**3


def _ways(model, node, workload=None, **kwargs):
    workload = workload or Workload()
    base = plan(model, node, workload, **kwargs)
    assert base.chosen is None
    return ways_out.ways_out(model, node, workload, base, **kwargs)


def _kind(ways, kind):
    found = [w for w in ways if w.kind == kind]
    assert found, f"no {kind} way out in {[w.kind for w in ways]}"
    return found[0]


def test_70b_fp8_on_a_4090_needs_four_gpus_as_its_weights_say(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    way = _kind(_ways(m, node("RTX4090:1"), method="fp8"), "more_gpus")
    e = way.estimate
    weights = memory.weight_bytes_total(m, "fp8") / 1e9  # 70.55e9 x (8 + 32/8192) / 8 + the 16-bit embeddings
    assert weights == pytest.approx(72.7, abs=0.1)
    # 72.7 GB over 2 GPUs is 36.4 GB each, over the ~23.7 GB a 24 GiB card gives the engine; TP=3 does not divide
    # 64 heads; over 4 it is 18.2 GB + overhead, which fits
    assert weights / 2 + e.memory.overhead_gb > e.memory.capacity_gb
    assert (way.gpus, e.tp, e.method, way.change) == (4, 4, "fp8", "--gpu RTX4090:4")
    assert e.memory.weights_gb == pytest.approx(weights / 4, rel=0.01)
    assert e.memory.weights_gb + e.memory.overhead_gb < e.memory.capacity_gb
    assert way.hardware == "4x RTX4090" and e.output_tokens_per_s > 0 and e.tpot_ms > 0


def test_70b_bf16_on_a_4090_needs_a_full_board_of_eight(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    way = _kind(_ways(m, node("RTX4090:1"), method="bf16"), "more_gpus")
    weights = memory.weight_bytes_total(m, "bf16") / 1e9  # 70.55e9 x 2 bytes = 141.1 GB
    assert weights == pytest.approx(141.1, abs=0.1)
    # 141.1 GB / (what a 24 GiB card leaves for weights, ~23.7 GB) -> 6 GPUs of memory, and TP comes in 1, 2, 4, 8
    room = way.estimate.memory.capacity_gb - way.estimate.memory.overhead_gb
    need = math.ceil(weights / room)
    assert need in (6, 7) and weights / 4 > 24 * GIB / 1e9
    assert (way.gpus, way.estimate.tp) == (min(t for t in (1, 2, 4, 8) if t >= need), 8) == (8, 8)


def test_405b_bf16_spills_onto_more_nodes_of_a_full_board(model, node):
    m = model("meta-llama__Meta-Llama-3.1-405B")
    way = _kind(_ways(m, node("RTX4090:1"), method="bf16"), "more_nodes")
    weights = memory.weight_bytes_total(m, "bf16") / 1e9  # 811.7 GB
    # 4 nodes of 8 hold 811.7 / 32 = 25.4 GB each, over a 24 GiB card; 5 nodes of 8 (126 layers, at most 26 per
    # stage): 811.7 x 26/126 / 8 = 20.9 GB + the embedding shard, which fits
    assert weights / 32 > 24 * GIB / 1e9 * 0.92
    assert way.change == "--gpu RTX4090:8 --nodes 5"
    assert (way.estimate.tp, way.estimate.pp, way.gpus) == (8, 5, 40)


def test_fewer_bits_is_a_dead_end_on_a_4090_with_its_arithmetic(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    ways = _ways(m, node("RTX4090:1"))
    dead = [w for w in ways if w.estimate is None]
    assert [w.kind for w in dead] == ["any_checkpoint"] and dead == ways[-1:]
    q2k = memory.weight_bytes_total(m, "gguf-q2_k") / 1e9  # 70.55e9 x 3.1593 bits / 8 = 27.9 GB
    assert q2k == pytest.approx(70.55 * 3.1593 / 8, rel=0.01)
    assert f"gguf-q2_k) are {q2k:.1f} GB" in dead[0].summary and "25.8 GB of GPU memory" in dead[0].summary


def test_the_method_that_fits_when_no_checkpoint_exists_says_how_to_get_one(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    none_found = {meth: [] for meth in facts.methods()}
    ways = _ways(m, node("L40S:1"), checkpoints=none_found)
    way = _kind(ways, "any_checkpoint")
    e = way.estimate
    # 8 bits (72.7 GB) do not fit 48 GB; the planner's pick does, fully on the GPU, within the chat floor
    assert memory.weight_bytes_total(m, "fp8") / 1e9 > 48
    assert e.memory.fits and e.n_gpu_layers is None and e.memory.host_weights_gb == 0
    assert memory.bits_per_weight(e.method, m) < 8
    assert way.quality_floor == 0.3 and e.ppl_delta is not None and e.ppl_delta <= 0.3
    assert "(floor 0.3)" in way.summary
    assert "--recipes" in way.summary or way.change == "--allow-runtime-quantization"


def test_offload_speed_follows_the_cpu_bandwidth(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")

    def offload(bandwidth):
        n = node("RTX4090:1")
        n.ram_total_bytes = 8 * GIB  # too little: the plan itself rejects the offload
        n.cpu.memory_bandwidth_gbps = bandwidth
        return _kind(_ways(m, n, method="gguf-q4_k_m"), "cpu_offload")

    slow, fast = offload(100.0), offload(200.0)
    assert slow.estimate.n_gpu_layers == fast.estimate.n_gpu_layers
    e = slow.estimate
    assert 0 < e.n_gpu_layers < m.num_layers
    # the layers left in RAM: Q4_K_M's 43.2 GB x (81 - ngl) / 81 (80 layers and the embedding/head)
    total = memory.weight_bytes_total(m, "gguf-q4_k_m") / 1e9
    assert e.memory.host_weights_gb == pytest.approx(total * (1 - e.n_gpu_layers / 81), rel=0.01)
    # each token reads them from RAM at bandwidth x the CPU kernel's decode efficiency: doubling the bandwidth
    # takes half that time off the TPOT
    eff = default_calibration().efficiency("llamacpp-cpu", None, "llamacpp").decode_bandwidth
    cpu_ms_at_100 = e.memory.host_weights_gb / (100.0 * eff) * 1000
    assert slow.estimate.tpot_ms - fast.estimate.tpot_ms == pytest.approx(cpu_ms_at_100 / 2, rel=0.05)
    assert slow.estimate.tpot_ms > cpu_ms_at_100
    # the host RAM it needs: those weights and the 2 GiB the OS keeps (engines.yaml host_reserve_gib)
    assert slow.host_ram_gb == pytest.approx(e.memory.host_weights_gb + 2 * GIB / 1e9, abs=0.1)
    assert "this node has 9 GB: too little" in slow.summary


def test_offload_on_a_described_gpu_says_ram_is_unknown_and_what_host_it_assumed(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    way = _kind(_ways(m, node("RTX4090:1")), "cpu_offload")
    assert "this node's RAM is unknown" in way.summary and "assumed 89.6 GB/s" in way.summary
    assert any("Ryzen 9 9950X" in n for n in way.notes)
    assert way.estimate.per_request_tokens_per_s == pytest.approx(1000 / way.estimate.tpot_ms, rel=0.01)


def test_a_smaller_model_of_the_family_from_the_catalog(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    way = _kind(_ways(m, node("RTX4090:1")), "smaller_model")
    assert way.model == "meta-llama/Llama-3.1-8B-Instruct" and way.estimate.memory.fits


def test_ways_out_are_cheapest_first_fewest_gpus_then_gpu_seconds_per_token(model, node):
    ways = _ways(model("meta-llama__Llama-3.1-70B-Instruct"), node("RTX4090:1"))
    live = [w for w in ways if w.estimate is not None]
    keys = [(w.gpus, w.gpus / w.estimate.output_tokens_per_s) for w in live]
    assert keys == sorted(keys) and len(live) >= 3


def test_an_unmeetable_ttft_slo_says_the_one_the_nearest_candidate_meets(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    n = node("H100-SXM:2")
    w = Workload(ttft_ms=10)
    way = _kind(_ways(m, n, w), "relax_slo")
    asked = float(way.change.split()[1])
    assert way.change.startswith("--ttft-ms ") and asked > 10 and way.estimate.ttft_ms <= asked
    assert plan(m, n, replace(w, ttft_ms=asked)).chosen is not None


def test_a_quality_floor_nothing_meets_says_the_floor_that_gets_a_plan(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    n = node("L40S:1")
    w = Workload(max_ppl_delta=0.01)
    way = _kind(_ways(m, n, w), "relax_quality")
    floor = float(way.change.split()[1])
    assert floor > 0.01 and way.estimate.ppl_delta <= floor and way.quality_floor == floor
    assert plan(m, n, replace(w, max_ppl_delta=floor)).chosen is not None


def test_a_plan_that_chose_something_has_no_ways_out(model, node):
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    n = node("H100-SXM:1")
    base = plan(m, n, Workload())
    assert base.chosen is not None
    assert ways_out.ways_out(m, n, Workload(), base) == []
    assert ways_out.with_ways_out(base, m, n, Workload()) is base and base.ways_out == []


def test_the_search_is_bounded_by_its_replan_budget(model, node, monkeypatch):
    m = model("meta-llama__Meta-Llama-3.1-405B")
    calls = []
    real = ways_out.plan

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ways_out, "plan", counting)
    fx = default_facts()
    budget = int(fx.overheads["ways_out"]["max_replans"])
    _ways(m, node("RTX4090:1"), Workload(ttft_ms=1), method="bf16")
    assert 0 < len(calls) - 1 <= budget  # the base plan, then at most the budget
    calls.clear()
    tight = replace(fx, overheads={**fx.overheads, "ways_out": {**fx.overheads["ways_out"], "max_replans": 2}})
    base = real(m, node("RTX4090:1"), Workload(), method="bf16", facts=tight)
    ways_out.ways_out(m, node("RTX4090:1"), Workload(), base, method="bf16", fx=tight)
    assert len(calls) == 2


def test_ways_out_round_trip_through_the_plan_record(model, node):
    m = model("meta-llama__Llama-3.1-70B-Instruct")
    n = node("RTX4090:1")
    base = plan(m, n, Workload())
    p = ways_out.with_ways_out(base, m, n, Workload())
    assert p.ways_out and base.ways_out == []
    back = from_dict(Plan, to_dict(p))
    assert back.ways_out == p.ways_out
