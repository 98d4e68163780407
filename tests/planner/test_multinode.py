"""Multi-node plans (issue 14): each engine's multi-node rule as data, one server over several nodes (TP inside a
node, PP across), independent replicas one per node, the fabric's hop, mixed clusters, and the bounds."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from autoquant import cli
from autoquant.catalog.fabrics import fabric_ids, lookup
from autoquant.errors import UsageError
from autoquant.facts import default_facts
from autoquant.planner import estimate, perf, plan
from autoquant.planner.calibration import default_calibration
from autoquant.planner.candidates import Config, enumerate_configs, gate, nodes_spanned, setup_for
from autoquant.planner.cluster import pool
from autoquant.planner.hardware import device_of
from autoquant.records import Workload, to_dict

L405 = "meta-llama__Meta-Llama-3.1-405B"
L70 = "meta-llama__Llama-3.1-70B-Instruct"


def test_every_engine_says_how_it_spans_nodes_or_why_not():
    for spec in default_facts().engines.values():
        mn = spec.multi_node
        assert mn.get("source"), spec.id
        assert bool(mn.get("none")) != bool(mn.get("backends")), spec.id
        if mn.get("backends"):
            assert mn["default"] in mn["backends"] and spec.multi_node_backends[0] == mn["default"]
    engines = default_facts().engines
    assert engines["vllm"].multi_node_backends == ("ray", "mp")
    assert engines["trtllm"].multi_node_backends == ("mpi",)
    assert engines["sglang"].multi_node_backends == ("sglang",)
    assert engines["llamacpp"].multi_node_backends == () and "RPC" in engines["llamacpp"].no_multi_node


def test_an_engine_with_no_multi_node_backend_is_rejected_across_nodes(model, node):
    m, n = model("meta-llama__Llama-3.1-8B-Instruct"), replace(node("H100-SXM:8"), nodes=2)
    device = device_of(n)
    across = Config("llamacpp", "gguf-q4_k_m", gpus=16)
    assert nodes_spanned(across, device) == 2
    r = gate(across, m, device)
    assert r is not None and r.rule == "multi-node" and "proof of concept" in r.reason
    assert gate(Config("llamacpp", "gguf-q4_k_m", gpus=8), m, device) is None
    assert gate(Config("vllm", "bf16", tp=8, pp=2), m, device) is None


# --- one server over several nodes, or independent servers, one per node -------------------------------------


def nodes_of(node, text: str, n: int, **fabric):
    out = node(text)
    out.nodes = n
    for k, v in fabric.items():
        setattr(out, k, v)
    return out


def test_405b_bf16_on_two_h100_nodes_is_tp8_pp2_across_them(model, node):
    """811.7 GB of BF16 weights do not fit one node (8 x 80 GB); over 16 GPUs they are 811.7 / 16 = 50.7 GB each:
    TP=8 inside each node's NVLink domain, PP=2 across the two nodes."""
    p = plan(model(L405), nodes_of(node, "H100-SXM:8", 2), Workload(), engine="vllm", method="bf16")
    c = p.chosen
    assert (c.tp, c.pp, c.nodes, c.replicas, c.gpus) == (8, 2, 2, 1, 16)
    assert c.memory.weights_gb == pytest.approx(811.7 / 16, rel=0.01)
    assert any("1 of its 1 PP hop(s) cross the fabric" in n for n in c.notes)
    assert "x 2 nodes (assumed-ndr fabric" in p.hardware  # the plan says which fabric figure it assumed


def test_a_model_that_fits_one_node_gets_one_server_per_node_for_throughput(model, node):
    """70B BF16 fits one 8x H100 node. With two nodes and the throughput objective, two independent TP=8 servers
    (each taking half the users) beat PP=2 across the nodes: throughput = 2 x one node's at half the users, with
    that node's TTFT and TPOT."""
    m, two = model(L70), nodes_of(node, "H100-SXM:8", 2)
    w = Workload(concurrency=64, isl=512, osl=256, objective="throughput")
    p = plan(m, two, w, engine="vllm", method="bf16")
    c = p.chosen
    assert (c.tp, c.pp, c.nodes, c.replicas, c.gpus) == (8, 1, 1, 2, 16)
    one = estimate(m, node("H100-SXM:8"), replace(w, concurrency=32), engine="vllm", method="bf16", tp=8)
    assert c.output_tokens_per_s == pytest.approx(2 * one.output_tokens_per_s, rel=1e-3)
    assert (c.ttft_ms, c.tpot_ms) == (one.ttft_ms, one.tpot_ms)
    assert c.memory.total_gb == one.memory.total_gb and c.max_num_seqs == one.max_num_seqs  # per GPU, per server
    pp2 = next(a for a in p.alternatives if a.pp == 2 and a.tp == 8 and a.nodes == 2)
    assert pp2.output_tokens_per_s < c.output_tokens_per_s
    # the cost objective keeps one server: the same GPU-seconds per token at a fuller batch is cheaper
    cheap = plan(m, two, replace(w, objective="cost"), engine="vllm", method="bf16", tp=8)
    assert cheap.chosen.replicas == 1 and cheap.chosen.gpus == 8


def test_the_fabric_sets_the_pp_hop_as_the_arithmetic_says(model, node):
    """A hop between nodes: latency + 2 tensors (hidden states, residual) x tokens x hidden x 2 B over the node's
    GB/s, sent as TP slices on min(TP, rails) rails. 405B (hidden 16384), a 4096-token micro-batch (an 8192-token
    prompt over PP=2): 268.4 MB; 8x NDR (368 GB/s measured, 8 rails, TP=8): 10 us + 0.73 ms; 100 GbE TCP (12.5 GB/s,
    one rail): 50 us + 21.5 ms."""
    m = model(L405)
    cal = default_calibration()
    nbytes = 2 * 4096 * 16384 * 2
    for fabric, gbps, latency in (("ib-ndr", 368.0, 10.0), ("ethernet-100g", 12.5, 50.0)):
        device = device_of(nodes_of(node, "H100-SXM:8", 2, fabric=fabric))
        setup = setup_for(Config("vllm", "bf16", tp=8, pp=2), m, device, cal)
        assert setup.nodes == 2 and device.fabric == lookup(fabric)
        assert perf.hop_seconds(setup, 4096, True) == pytest.approx(latency * 1e-6 + nbytes / (gbps * 1e9))
        assert perf.pp_hops_seconds(setup, 4096) == perf.hop_seconds(setup, 4096, True)  # PP=2: one hop, across
    # a bare --inter-node-gbps is the node's bandwidth over one NIC per GPU, the default's latency
    given = device_of(nodes_of(node, "H100-SXM:8", 2, inter_node_gbps=100.0))
    setup = setup_for(Config("vllm", "bf16", tp=4, pp=2), m, given, cal)
    assert (given.fabric.node_gbps, given.fabric.rails, given.fabric.latency_us) == (100.0, 8, 10.0)
    assert perf.hop_seconds(setup, 4096, True) == pytest.approx(10e-6 + nbytes / (100e9 * 4 / 8))
    # end to end: one user's TTFT at a 4096-token prompt moves by the two hops' difference. A lone prompt is one
    # microbatch: all 4096 tokens' hidden states cross between the nodes
    w = Workload(concurrency=1, isl=4096, osl=64)
    fast, slow = (estimate(m, nodes_of(node, "H100-SXM:8", 2, fabric=f), w, engine="vllm", method="bf16", tp=8, pp=2)
                  for f in ("ib-ndr", "ethernet-100g"))
    hop = (50e-6 + nbytes / 12.5e9) - (10e-6 + nbytes / 368e9)
    assert slow.ttft_ms - fast.ttft_ms == pytest.approx(hop * 1000, rel=0.02)


def test_pp_does_not_speed_up_one_users_prompt(model, node):
    # one prompt cannot be split into microbatches: it crosses the stages one after another, so TP=2 x PP=4
    # takes as long as TP=2 alone (plus the hops), and TP=8 is faster than both
    m, w = model(L70), Workload(concurrency=1, isl=8192, osl=64)
    h100 = nodes_of(node, "H100-SXM:8", 1)
    tp2, pp4, tp8 = (estimate(m, h100, w, engine="vllm", method="bf16", tp=tp, pp=pp)
                     for tp, pp in ((2, 1), (2, 4), (8, 1)))
    assert tp2.ttft_ms <= pp4.ttft_ms <= tp2.ttft_ms * 1.05
    assert tp8.ttft_ms < tp2.ttft_ms / 2


def test_pp_stages_on_one_node_hop_over_nvlink_not_the_fabric(model, node):
    m = model(L70)
    device = device_of(nodes_of(node, "H100-SXM:8", 2, fabric="ethernet-100g"))
    setup = setup_for(Config("vllm", "bf16", tp=4, pp=2), m, device, default_calibration())
    assert setup.nodes == 1
    assert perf.pp_hops_seconds(setup, 4096) == perf.hop_seconds(setup, 4096, False)
    assert perf.hop_seconds(setup, 4096, False) < perf.hop_seconds(setup, 4096, True) / 10


def test_llamacpp_never_spans_nodes(model, node):
    """llama.cpp's multi_node is `none`: every placement it gets stays on one node (replicas, one per node, are
    independent servers and allowed)."""
    m = model(L70)
    p = plan(m, nodes_of(node, "L40S:2", 4), Workload(concurrency=4), engine="llamacpp")
    cands = [c for c in [p.chosen, *p.alternatives] if c is not None]
    assert cands and all(c.nodes == 1 for c in cands)
    assert all(c.gpus // c.replicas <= 2 for c in cands)
    device = device_of(nodes_of(node, "L40S:2", 4))
    r = gate(Config("llamacpp", "gguf-q4_k_m", gpus=4), m, device)
    assert r is not None and r.rule == "multi-node"


def _record(node, text: str, n: int = 1):
    out = node(text)
    out.nodes = n
    return out


def test_identical_records_pool_and_a_mixed_list_keeps_its_types(node):
    h, a = _record(node, "H100-SXM:8"), _record(node, "A100-80GB-SXM:8")
    same = pool([h, _record(node, "H100-SXM:8", 3)])
    assert same.nodes == 4 and same.others == []
    mixed = pool([h, a, _record(node, "H100-SXM:8")])
    assert mixed.nodes == 2 and [o.nodes for o in mixed.others] == [1]
    assert mixed.others[0].gpus[0].catalog_key == "A100-80GB-SXM"
    assert pool([h], nodes=8).nodes == 8
    with pytest.raises(UsageError, match="node types"):
        pool([h, a], nodes=4)


def test_a_mixed_cluster_is_planned_per_node_type_and_the_objective_picks(model, node):
    """One server never spans node types. 70B for throughput on 2x (8x H100) + 1x (8x A100): the H100 nodes win,
    and the plan says what the A100 node would have given."""
    m = model(L70)
    mixed = pool([_record(node, "H100-SXM:8", 2), _record(node, "A100-80GB-SXM:8")])
    w = Workload(concurrency=64, objective="throughput")
    p = plan(m, mixed, w, engine="vllm", method="bf16")
    assert p.chosen.gpu == "H100-SXM" and p.chosen.replicas == 2
    assert "mixed cluster" in p.hardware and any("on 8x A100-80GB-SXM" in r for r in p.reasons)
    alone = plan(m, _record(node, "H100-SXM:8", 2), w, engine="vllm", method="bf16")
    assert p.chosen.output_tokens_per_s == alone.chosen.output_tokens_per_s
    # a node type that cannot host a pin is said, not fatal: TP=8 on 4-GPU nodes
    pinned = plan(m, pool([_record(node, "L40S:4"), _record(node, "H100-SXM:8")]), w, engine="vllm", method="bf16",
                  tp=8)
    assert pinned.chosen.gpu == "H100-SXM" and any("TP=8 needs 8 GPUs" in r for r in pinned.reasons)


def test_candidates_grow_with_log_nodes_and_4096_nodes_plan_in_bounded_time(model, node):
    m = model(L405)
    counts = {n: len(list(enumerate_configs(m, device_of(nodes_of(node, "H100-SXM:8", n)), Workload())))
              for n in (4, 4096)}
    assert counts[4096] <= 3 * counts[4]
    start = time.monotonic()
    p = plan(model("meta-llama__Llama-3.1-8B-Instruct"), nodes_of(node, "H100-SXM:8", 4096), Workload(concurrency=64),
             engine="vllm")
    assert time.monotonic() - start < 30
    assert p.chosen is not None and p.chosen.gpus <= 4096 * 8


def test_plan_405b_on_two_nodes_from_the_command_line(capsys):
    rc = cli.main(["plan", "meta-llama/Llama-3.1-405B-Instruct", "--gpu", "H100-SXM:8", "--nodes", "2", "--method",
                   "bf16", "--engine", "vllm", "--json", "--offline"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    c = data["chosen"]
    assert (c["tp"], c["pp"], c["nodes"], c["replicas"]) == (8, 2, 2, 1)


def test_fabric_flags_and_a_cluster_of_records_from_the_command_line(tmp_path: Path, capsys, node):
    one = tmp_path / "h100.json"
    one.write_text(json.dumps(to_dict(node("H100-SXM:8"))))
    rc = cli.main(["plan", "meta-llama/Llama-3.1-405B-Instruct", "--hardware", str(one), "--hardware", str(one),
                   "--method", "bf16", "--engine", "vllm", "--fabric", "roce-400", "--inter-node-gbps", "200",
                   "--json", "--offline"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["chosen"]["pp"] == 2 and data["chosen"]["nodes"] == 2
    assert "roce-400 fabric, 200 GB/s per node given" in data["hardware"]
    cluster = tmp_path / "cluster.json"
    cluster.write_text(json.dumps([to_dict(node("H100-SXM:8")), to_dict(node("A100-80GB-SXM:8"))]))
    rc = cli.main(["plan", "meta-llama/Llama-3.1-70B-Instruct", "--hardware", str(cluster), "--objective",
                   "throughput", "--json", "--offline"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and "mixed cluster" in data["hardware"]
    assert cli.main(["plan", "meta-llama/Llama-3.1-70B-Instruct", "--gpu", "H100-SXM:8", "--fabric", "carrier-pigeon",
                     "--offline"]) == 2
    assert cli.main(["plan", "meta-llama/Llama-3.1-70B-Instruct", "--gpu", "H100-SXM:8", "--inter-node-gbps", "1e9",
                     "--offline"]) == 2


def test_the_fabric_flags_change_serves_decision_key():
    import argparse

    from autoquant.commands import serve
    from autoquant.launchers.flags import Pins

    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    keys = {serve.decision_key(parser.parse_known_args(["m", *extra])[0], "m", Pins(), Workload(), fingerprint={})
            for extra in ([], ["--fabric", "ib-ndr"], ["--inter-node-gbps", "100"])}
    assert len(keys) == 3


def test_roce_names_the_400_gbe_roce_fabric():
    assert lookup("roce") == lookup("roce-400")
    assert "roce" in fabric_ids()
