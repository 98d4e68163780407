"""Clusters: a list of node records pooled into node types, and a mixed cluster planned one type at a time.

Semantics (docs/planner.md "Several nodes"):
- identical nodes (the same GPUs, as many, the same memory; or the same Apple chip / CPU and RAM) are one
  group: a `Node` whose `nodes` counts them;
- a mixed list keeps its first group as the node and the others in `Node.others`;
- one server never spans node types: vLLM's Ray placement and the engines' TP x PP layouts assume identical
  nodes, and a pipeline over different GPUs runs at its slowest stage while holding the smallest GPU's memory.
  So a mixed cluster is planned on each node type on its own, and the objective picks the type; the plan says
  which one it used and what the others would have given. Replicas on a second node type are a second plan
  (`--hardware that.json`).
Pure: records in, records out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from autoquant.errors import InputError, RuleError, UsageError
from autoquant.records import Node, Plan, Workload


def node_type(node: Node) -> tuple:
    """What makes two node records the same machine to the planner."""
    gpus = tuple(sorted((g.catalog_key or g.name, round(g.memory_total_bytes / 2**30), g.mig_enabled)
                        for g in node.gpus))
    apple = (node.apple.catalog_key or node.apple.chip, node.apple.unified_memory_bytes) if node.apple else None
    host = None if node.gpus or node.apple else (node.cpu.model, node.cpu.physical_cores,
                                                 round((node.usable_ram_bytes() or 0) / 2**30))
    return gpus, apple, host, node.fabric, node.inter_node_gbps, node.inter_node_latency_us


def flatten(node: Node) -> list[Node]:
    """A node and the other node types it carries, each without them."""
    return [replace(node, others=[]), *(m for o in node.others for m in flatten(o))]


def pool(records: Sequence[Node], nodes: int | None = None) -> Node:
    """One Node for a list of records: identical ones pooled (their `nodes` added up), the first type as the node
    and any other types in `others`. `nodes` (--nodes) sets the count of a single type; a mixed list's counts are
    its records'."""
    from autoquant.limits import bound

    groups: dict[tuple, Node] = {}
    for n in (m for rec in records for m in flatten(rec)):
        key = node_type(n)
        if key in groups:
            groups[key].nodes += max(1, n.nodes)
        else:
            groups[key] = replace(n, nodes=max(1, n.nodes), others=[])
    pooled = list(groups.values())
    if not pooled:
        raise InputError("no node record given")
    if nodes:
        if len(pooled) > 1:
            raise UsageError(f"--nodes {nodes} with {len(pooled)} node types: each record's own `nodes` counts "
                             "its machines in a mixed cluster (repeat --hardware, or set `nodes` in the records)")
        pooled[0].nodes = nodes
    total = sum(g.nodes for g in pooled)
    if total > bound("nodes")[1]:
        raise InputError(f"{total} nodes in all is more than the {int(bound('nodes')[1])} autoquant plans for")
    first, *rest = pooled
    first.others = rest
    return first


def type_label(node: Node) -> str:
    """'8x H100-SXM': one machine of a node type, as the planner sees it."""
    from autoquant.planner.hardware import device_of

    return device_of(replace(node, nodes=1, others=[])).describe()


def describe(node: Node) -> str:
    """'2x (8x H100-SXM) + 1x (4x A100-80GB-SXM)': every node type of a cluster."""
    return " + ".join(f"{g.nodes}x ({type_label(g)})" for g in flatten(node))


def plan_mixed(plan_fn: Callable[..., Plan], model: Any, node: Node, workload: Workload,
               kwargs: dict[str, Any]) -> Plan:
    """A mixed cluster: the plan on each node type, the best chosen one by the workload's objective (decide.rank),
    the other types' results in its reasons."""
    from autoquant.planner.decide import rank
    from autoquant.planner.quality import quality_floor

    groups = flatten(node)
    plans: list[tuple[Node, Plan]] = []
    refused: list[str] = []
    first_error: RuleError | None = None
    for g in groups:
        try:
            plans.append((g, plan_fn(model, g, workload, **kwargs)))
        except RuleError as exc:  # a pin this node type cannot host (TP=8 on 4-GPU nodes)
            first_error = first_error or exc
            refused.append(f"{g.nodes} node(s) of another type not planned: {exc}")
    if not plans and first_error is not None:
        raise first_error
    chosen = [(g, p) for g, p in plans if p.chosen is not None]
    fx = kwargs.get("facts")
    floor = quality_floor(workload, fx)[0]  # the floor the plans were made under
    if chosen:
        best_est = rank([p.chosen for _, p in chosen], workload.objective, workload.osl, fx, floor)[0]
        g, best = next((g, p) for g, p in chosen if p.chosen is best_est)
    else:
        g, best = plans[0]
    lines = [f"mixed cluster {describe(node)}: one server never spans node types, so each type was planned on "
             f"its own and the objective '{workload.objective}' picked the {g.nodes} node(s) of "
             f"{type_label(g)}"]
    for other, p in plans:
        if other is g:
            continue
        if p.chosen is None:
            lines.append(f"on {p.hardware}: nothing fits, meets the SLOs and the quality floor")
        else:
            c = p.chosen
            lines.append(f"on {p.hardware}: {c.method} on {c.engine} TP={c.tp} PP={c.pp}"
                         + (f" x{c.replicas} servers" if c.replicas > 1 else "")
                         + f", {c.output_tokens_per_s:,.0f} tok/s, {c.gpus} GPUs (ranked below; plan it with "
                           "--hardware on that node type's record to serve it too)")
    lines += refused
    note = lines[0]
    chosen_cand = None if best.chosen is None else replace(best.chosen, notes=[*best.chosen.notes, note])
    return replace(best, chosen=chosen_cand, hardware=f"{best.hardware} (of a mixed cluster: {describe(node)})",
                   reasons=[*best.reasons, *lines])
