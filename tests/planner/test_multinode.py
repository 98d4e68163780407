"""Multi-node plans (issue 14): each engine's multi-node rule as data, one server over several nodes (TP inside a
node, PP across), independent replicas one per node, the fabric's hop, mixed clusters, and the bounds."""

from __future__ import annotations

from dataclasses import replace

from autoquant.facts import default_facts
from autoquant.planner.candidates import Config, gate, nodes_spanned
from autoquant.planner.hardware import device_of


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
