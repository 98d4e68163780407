"""Data parallel on one node: N replicas of a TP group against one wide group, by the objective."""

from __future__ import annotations

import pytest

from autoquant.errors import RuleError
from autoquant.planner import estimate, plan
from autoquant.records import Workload

BUSY = Workload(concurrency=64, isl=1024, osl=256, objective="throughput")
# At 256 users an 8B model's decode steps are compute-bound on one TP=8 group, whose all-reduces then buy nothing:
# replicas of smaller groups do more (at 64 users TP=8 still wins, as AIConfigurator's database also has it).
SATURATED = Workload(concurrency=256, isl=1024, osl=256, objective="throughput")


def test_replicas_are_planned_when_they_give_more_throughput(model, node):
    p = plan(model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:8"), SATURATED, engine="vllm", method="bf16")
    assert p.chosen.dp > 1
    assert p.chosen.dp * p.chosen.tp == 8 and p.chosen.gpus == 8
    wide = next(a for a in p.alternatives if a.tp == 8 and a.dp == 1)
    assert p.chosen.output_tokens_per_s > wide.output_tokens_per_s


def test_replicas_split_the_requests_and_add_their_output(model, node):
    m, n = model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:8")
    one = estimate(m, n, Workload(concurrency=16, isl=1024, osl=256), engine="vllm", method="bf16", tp=2)
    four = estimate(m, n, BUSY, engine="vllm", method="bf16", tp=2, dp=4)
    assert four.concurrency == 64 and four.gpus == 8 and four.dp == 4
    assert four.ttft_ms == one.ttft_ms and four.tpot_ms == one.tpot_ms
    assert four.output_tokens_per_s == pytest.approx(4 * one.output_tokens_per_s, rel=1e-3)
    assert four.max_num_seqs == one.max_num_seqs  # per replica, as --max-num-seqs is per engine core
    assert four.memory.total_gb == one.memory.total_gb  # per GPU


def test_one_request_gains_nothing_from_replicas(model, node):
    w = Workload(concurrency=1, isl=512, osl=256, objective="latency")
    p = plan(model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:8"), w, engine="vllm", method="bf16")
    assert p.chosen.dp == 1


def test_engines_without_replicas_in_one_server_are_not_planned_with_them(model, node):
    m, n = model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:8")
    p = plan(m, n, BUSY, engine="trtllm", method="bf16")
    assert {c.dp for c in [p.chosen, *p.alternatives]} == {1}
    with pytest.raises(RuleError, match="one replica per server"):
        estimate(m, n, BUSY, engine="trtllm", method="bf16", tp=2, dp=4)


def test_a_replica_count_the_node_cannot_hold_is_an_error(model, node):
    with pytest.raises(RuleError, match="DP=4 x TP=4 needs 16 GPUs"):
        plan(model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:8"), BUSY, tp=4, dp=4)


def test_pinned_replicas_are_honoured(model, node):
    p = plan(model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:8"), BUSY, engine="vllm", method="bf16",
             dp=2)
    assert {c.dp for c in [p.chosen, *p.alternatives]} == {2}
