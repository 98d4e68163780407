"""Ways out of a plan that chose nothing: the cheapest changes that get one, each estimated.

Each way out is the planner itself (`decide.plan`) run again on changed inputs, so its figures are the
planner's own:

  more_gpus / more_nodes   the same GPU, more of them: the smallest count on one node (up to overheads.yaml
                           ways_out.max_gpus_per_node) at which a configuration fits and meets the constraints,
                           then more such nodes (pipeline stages across nodes, up to max_nodes)
  any_checkpoint           every method as if its checkpoint existed (--any-checkpoint): what to make or pass,
                           and its quality against the floor; or, when no method's weights fit the GPU memory
                           at all, that dead end with the arithmetic
  cpu_offload              the layer-splitting engine (llama.cpp -ngl) with part of the layers in host RAM: its
                           speed, layers on the GPU, the host RAM it needs (timed on ways_out.assumed_host_cpu
                           when the node does not say how fast its RAM is)
  smaller_model            the largest smaller model of the family in the catalog (models.yaml) with a plan here
  relax_slo / relax_quality / relax_both
                           when the SLOs or the quality floor stop it: the values the nearest candidate meets
  unpin                    the plan without the user's engine / method / TP / PP / DP / KV-dtype pins

Cheapest first: the fewest GPUs (the hardware a user must add or rent), then the fewest GPU-seconds per
output token (it ranks as $/Mtok does at one price, and is known when the GPU has no price); a dead end, with
no estimate, last.

Pure: no I/O. The checkpoints of another model come through `checkpoints_for`, which the command layer gives.
Bounded: at most ways_out.max_replans re-plans (each 20-150 ms).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from autoquant.errors import AutoquantError
from autoquant.facts import Facts, default_facts
from autoquant.planner import candidates as cands
from autoquant.planner import facts, memory, quality
from autoquant.planner.decide import _cfg_label, _slo_reason, plan
from autoquant.planner.hardware import Device, device_of
from autoquant.records import Estimate, ModelSpec, Node, Plan, Workload
from autoquant.records.plan import Candidate, WayOut

PINS = ("engine", "method", "tp", "pp", "dp", "kv_cache_dtype")
SLOS = ("ttft_ms", "tpot_ms", "min_tps")
_FLAG = {"ttft_ms": "--ttft-ms", "tpot_ms": "--tpot-ms", "min_tps": "--min-tps", "kv_cache_dtype": "--kv-cache-dtype"}


class _Replans:
    """plan() on changed inputs, at most `left` times. A re-plan the rules refuse (a pin the new node cannot
    host) is None, as is one past the budget."""

    def __init__(self, left: int, fx: Facts) -> None:
        self.left = left
        self.fx = fx
        self.last: Plan | None = None

    def __call__(self, model: ModelSpec, node: Node, workload: Workload, **kwargs: Any) -> Plan | None:
        self.last = None
        if self.left <= 0:
            return None
        self.left -= 1
        try:
            self.last = plan(model, node, workload, facts=self.fx, **kwargs)
        except AutoquantError:
            return None
        return self.last


@dataclass(frozen=True)
class _Ctx:
    model: ModelSpec
    node: Node
    workload: Workload
    base: Plan
    kwargs: Mapping[str, Any]
    fx: Facts
    policy: Mapping[str, Any]
    device: Device
    replan: _Replans
    checkpoints_for: Callable[[ModelSpec], Mapping] | None


def ways_out(model: ModelSpec, node: Node, workload: Workload, base: Plan, *,
             checkpoints_for: Callable[[ModelSpec], Mapping] | None = None, fx: Facts | None = None,
             **kwargs: Any) -> list[WayOut]:
    """The ways out of `base` (the plan of `model` on `node` under `workload` with the planner keyword arguments
    `kwargs`), cheapest first; [] when `base` chose something. `checkpoints_for(spec)`: the checkpoints another
    model (a smaller one of the family) may use; None plans it as if every method had one."""
    if base.chosen is not None:
        return []
    fx = fx or default_facts()
    kwargs = {k: v for k, v in kwargs.items() if k != "facts"}
    policy = fx.overheads.get("ways_out") or {}
    try:
        device = device_of(node)
    except AutoquantError:
        return []
    c = _Ctx(model, node, workload, base, kwargs, fx, policy, device,
             _Replans(int(policy["max_replans"]), fx), checkpoints_for)
    found: list[WayOut] = [*_relaxations(c)]
    for way in (_unpin, _any_checkpoint, _cpu_offload, _more_gpus, _smaller_model):
        got = way(c)
        if got is not None:
            found.append(got)
    return sorted(found, key=_cheapest)


def with_ways_out(base: Plan, model: ModelSpec, node: Node, workload: Workload, *,
                  checkpoints_for: Callable[[ModelSpec], Mapping] | None = None, fx: Facts | None = None,
                  **kwargs: Any) -> Plan:
    """`base` with its ways out (a new record); `base` itself when it chose something."""
    if base.chosen is not None:
        return base
    return replace(base, ways_out=ways_out(model, node, workload, base, checkpoints_for=checkpoints_for, fx=fx,
                                           **kwargs))


def _cheapest(w: WayOut) -> tuple:
    """Ways out as they are, then those that need a constraint relaxed too, then dead ends; in each, the fewest
    GPUs, then the fewest GPU-seconds per output token."""
    e = w.estimate
    if e is None:
        return (2, 0, math.inf)
    per_token = max(e.gpus, 1) / e.output_tokens_per_s if e.output_tokens_per_s > 0 else math.inf
    return (1 if w.also_needs else 0, max(e.gpus, 1), per_token)


# ---------------------------------------------------------------------------------------------------- words

def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _quality_words(e: Estimate, floor: float | None) -> str:
    if e.ppl_delta is None:
        return "quality unknown"
    return f"+{e.ppl_delta:.3f} ppl" + (f" (floor {floor:g})" if floor is not None else "")


def _describe(e: Estimate, fx: Facts, floor: float | None = None) -> str:
    """'awq-int4 on vLLM TP=2, 43.1 tok/s (43.1 per request), TTFT 120 ms, TPOT 23.1 ms, +0.210 ppl, $0.85/Mtok'"""
    cost = (f"${e.cost_per_million_tokens:.2f}/Mtok" if e.cost_per_million_tokens is not None
            else f"$/Mtok unknown (no price for {e.gpu or 'this GPU'}: --gpu-hour-cost)")
    return (f"{_cfg_label(e, fx)}, {_num(e.output_tokens_per_s)} tok/s ({_num(e.per_request_tokens_per_s)} per "
            f"request), TTFT {_num(e.ttft_ms)} ms, TPOT {_num(e.tpot_ms)} ms, {_quality_words(e, floor)}, {cost}")


def _floor_of(p: Plan) -> float | None:
    value = p.workload.get("quality_floor")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _way(kind: str, change: str, summary: str, p: Plan, e: Candidate, notes: list[str] | None = None,
         model: str | None = None, host_ram_gb: float | None = None) -> WayOut:
    return WayOut(kind=kind, change=change, summary=summary, estimate=e, model=model or p.model,
                  hardware=p.hardware, gpus=max(e.gpus, 1), quality_floor=_floor_of(p),
                  host_ram_gb=None if host_ram_gb is None else round(host_ram_gb, 1), notes=list(notes or []))


def _round_out(x: float, up: bool) -> float:
    """x to two significant figures, rounded away from the SLO it must meet (up for a limit, down for a floor)."""
    if x <= 0:
        return x
    step = 10.0 ** (math.floor(math.log10(x)) - 1)
    n = round(x / step, 9)
    return round((math.ceil(n) if up else math.floor(n)) * step, 10)


# ---------------------------------------------------------------------------------------------- relaxations

def _needs(e: Estimate, w: Workload) -> float:
    """How far `e` is from the workload's SLOs: the largest ratio (figure / limit; floor / figure)."""
    ratios = [1.0]
    if w.ttft_ms:
        ratios.append(e.ttft_ms / w.ttft_ms)
    if w.tpot_ms:
        ratios.append(e.tpot_ms / w.tpot_ms)
    if w.min_tps:
        ratios.append(w.min_tps / e.per_request_tokens_per_s if e.per_request_tokens_per_s > 0 else math.inf)
    return max(ratios)


def _relax_slos(c: _Ctx, workload: Workload) -> tuple[Plan, dict[str, float]] | None:
    """The SLO values the candidate nearest to them meets, and the plan under them."""
    if all(getattr(workload, k) is None for k in SLOS):
        return None
    free = c.replan(c.model, c.node, replace(workload, ttft_ms=None, tpot_ms=None, min_tps=None), **c.kwargs)
    if free is None or free.chosen is None:
        return None
    nearest = min([free.chosen, *free.alternatives], key=lambda e: _needs(e, workload))
    relaxed: dict[str, float] = {}
    if workload.ttft_ms is not None and nearest.ttft_ms > workload.ttft_ms:
        relaxed["ttft_ms"] = _round_out(nearest.ttft_ms, up=True)
    if workload.tpot_ms is not None and nearest.tpot_ms > workload.tpot_ms:
        relaxed["tpot_ms"] = _round_out(nearest.tpot_ms, up=True)
    if workload.min_tps is not None and nearest.per_request_tokens_per_s < workload.min_tps:
        relaxed["min_tps"] = _round_out(nearest.per_request_tokens_per_s, up=False)
    if not relaxed:
        return None
    p = c.replan(c.model, c.node, replace(workload, **relaxed), **c.kwargs)
    return (p, relaxed) if p is not None and p.chosen is not None else None


def _relax_floor(c: _Ctx, workload: Workload) -> tuple[Plan, float] | None:
    """The quality floor the candidate of least quality loss meets (when the floor is what stops every
    candidate), and the plan under it."""
    floor, _ = quality.quality_floor(workload, c.fx)
    free = c.replan(c.model, c.node, replace(workload, max_ppl_delta=math.inf), **c.kwargs)
    if free is None or free.chosen is None:
        return None
    known = [e for e in (free.chosen, *free.alternatives) if e.ppl_delta is not None]
    if not known:
        return None
    least = min(known, key=lambda e: e.ppl_delta)
    if least.ppl_delta <= floor:
        return None  # the floor is not what stops it
    new = _round_out(least.ppl_delta, up=True)
    p = c.replan(c.model, c.node, replace(workload, max_ppl_delta=new), **c.kwargs)
    return (p, new) if p is not None and p.chosen is not None else None


def _slo_words(relaxed: Mapping[str, float], workload: Workload) -> str:
    return ", ".join(f"{_FLAG[k]} {v:g} (asked {getattr(workload, k):g})" for k, v in relaxed.items())


def _relaxations(c: _Ctx) -> list[WayOut]:
    """When the SLOs or the quality floor, not the memory, stop every candidate: the values that get a plan."""
    out: list[WayOut] = []
    w = c.workload
    floor, floor_from = quality.quality_floor(w, c.fx)
    slo = _relax_slos(c, w)
    if slo is not None:
        p, relaxed = slo
        change = " ".join(f"{_FLAG[k]} {v:g}" for k, v in relaxed.items())
        out.append(_way("relax_slo", change, f"relax the SLO: {_slo_words(relaxed, w)}: "
                        f"{_describe(p.chosen, c.fx, _floor_of(p))}", p, p.chosen))
    was = f"asked {floor:g}" if floor_from.startswith("--max-ppl-delta") else f"the {floor:g} floor of {floor_from}"
    q = _relax_floor(c, w)
    if q is not None:
        p, new = q
        out.append(_way("relax_quality", f"--max-ppl-delta {new:g}",
                        f"accept more quality loss: --max-ppl-delta {new:g} ({was}): "
                        f"{_describe(p.chosen, c.fx, _floor_of(p))}", p, p.chosen))
    if slo is None and q is None and any(getattr(w, k) is not None for k in SLOS):
        q = _relax_floor(c, replace(w, ttft_ms=None, tpot_ms=None, min_tps=None))
        both = _relax_slos(c, replace(w, max_ppl_delta=q[1])) if q is not None else None
        if both is not None:
            p, relaxed = both
            change = " ".join([*(f"{_FLAG[k]} {v:g}" for k, v in relaxed.items()), f"--max-ppl-delta {q[1]:g}"])
            out.append(_way("relax_both", change,
                            f"relax the SLO and the quality floor: {_slo_words(relaxed, w)}, --max-ppl-delta "
                            f"{q[1]:g} ({was}): {_describe(p.chosen, c.fx, _floor_of(p))}",
                            p, p.chosen))
    return out


def _unpin(c: _Ctx) -> WayOut | None:
    pins = {k: c.kwargs.get(k) for k in PINS if c.kwargs.get(k) is not None}
    if not pins:
        return None
    kw = {**c.kwargs, **dict.fromkeys(pins)}
    if c.kwargs.get("checkpoints") is not None and c.checkpoints_for is not None:
        try:  # the pins narrowed checkpoint resolution: every method's, for every engine
            kw["checkpoints"] = c.checkpoints_for(c.model)
        except AutoquantError:
            return None
    p = c.replan(c.model, c.node, c.workload, **kw)
    if p is None or p.chosen is None:
        return None
    dropped = " ".join(f"{_FLAG.get(k, '--' + k)} {v}" for k, v in pins.items())
    return _way("unpin", f"drop {dropped}", f"without {dropped}: {_describe(p.chosen, c.fx, _floor_of(p))}",
                p, p.chosen)


# ----------------------------------------------------------------------------------------- any checkpoint

def _offloads(e: Estimate) -> bool:
    return e.n_gpu_layers is not None or e.memory.host_weights_gb > 0


def _smallest_weights(c: _Ctx) -> tuple[str, float] | None:
    """(method, GB) of the smallest weights any engine here may run (under the pins): a lower bound on the GPU
    memory a plan needs, whatever the checkpoint."""
    engine, method = c.kwargs.get("engine"), c.kwargs.get("method")
    engines = [engine] if engine else list(facts.engine_ids(c.fx))
    best: tuple[str, float] | None = None
    for meth in [method] if method else list(facts.methods(c.fx)):
        if not any(cands.gate(cands.Config(eng, meth), c.model, c.device, fx=c.fx) is None for eng in engines):
            continue
        gb = memory.weight_bytes_total(c.model, meth, c.fx) / 1e9
        if best is None or gb < best[1]:
            best = (meth, gb)
    return best


def _checkpoint_words(c: _Ctx, e: Estimate) -> tuple[str, str]:
    """(the change, how to get the checkpoint `e` needs), from the base plan's rejection of that engine and
    method."""
    label = facts.method_label(e.method, c.fx).split(" (")[0]
    engine = facts.engine_label(e.engine, c.fx)
    why = next((r for r in c.base.rejected if r.rule == "checkpoint" and r.engine == e.engine
                and r.method == e.method), None)
    if why is not None and "--allow-runtime-quantization" in why.reason:
        return "--allow-runtime-quantization", f"pass --allow-runtime-quantization ({engine} quantizes to {label} at load)"
    made = f"`autoquant explain {c.base.model} --recipes` says how"
    if why is not None and why.scope == "config":
        return f"make a {e.method} checkpoint", f"make the {label} checkpoint in a format {engine} loads ({made})"
    return f"make a {e.method} checkpoint", f"make the {label} checkpoint (none found; {made})"


def _any_checkpoint(c: _Ctx) -> WayOut | None:
    """The method the planner takes, fully on the GPUs, when every method has a checkpoint; or the dead end
    when not even the smallest weights fit the GPU memory."""
    if c.kwargs.get("checkpoints") is not None:
        p = c.replan(c.model, c.node, c.workload, **{**c.kwargs, "checkpoints": None})
        e = next((e for e in ([p.chosen, *p.alternatives] if p and p.chosen else []) if not _offloads(e)), None)
        if p is not None and e is not None:
            change, how = _checkpoint_words(c, e)
            return _way("any_checkpoint", change, f"{how}: {_describe(e, c.fx, _floor_of(p))}", p, e,
                        notes=["planned as with --any-checkpoint"])
    smallest = _smallest_weights(c)
    total = c.device.memory_gb * c.device.count * c.device.nodes
    if smallest is None or smallest[1] <= total or c.device.kind != "cuda":
        return None
    if c.kwargs.get("method"):
        return None  # fewer bits means another method: the re-plan without the user's pins says what it gets
    meth, gb = smallest
    under = f" under --engine {c.kwargs['engine']}" if c.kwargs.get("engine") else ""
    return WayOut(kind="any_checkpoint", change="", model=c.base.model, hardware=c.base.hardware,
                  gpus=c.device.count * c.device.nodes,
                  summary=f"fewer bits alone is no way out on {c.base.hardware}{under}: the smallest weights of the "
                          f"methods autoquant plans here ({meth}) are {gb:.1f} GB, more than its {total:.1f} GB of "
                          "GPU memory")


# ------------------------------------------------------------------------------------------------ offload

def _assumed_host(c: _Ctx):
    from autoquant.catalog import cpus

    name = c.policy.get("assumed_host_cpu")
    if not name:
        return None
    try:
        return cpus.lookup(str(name))
    except AutoquantError:
        return None


def _cpu_offload(c: _Ctx) -> WayOut | None:
    """Part of the layers in host RAM on the engine that splits a model by layers (engines.yaml: no tensor
    parallelism, the llamacpp_fit memory model), as if its GGUF file existed."""
    if c.device.kind != "cuda":
        return None
    layered = [eid for eid, spec in facts.engines(c.fx).items()
               if not spec.tensor_parallel and spec.memory.get("model") == "llamacpp_fit"]
    if not layered:
        return None
    eng = layered[0]
    spec = facts.engine(eng, c.fx)
    node = copy.deepcopy(c.node)
    notes: list[str] = []
    assumed = None
    if not node.cpu.memory_bandwidth_gbps:
        assumed = _assumed_host(c)
        if assumed is None or not assumed.memory_bandwidth_gbps:
            return None
        node.cpu.memory_bandwidth_gbps = float(assumed.memory_bandwidth_gbps)
        node.cpu.memory_bandwidth_source = "assumed"
        notes.append(f"this node's CPU memory bandwidth is unknown: timed at {assumed.memory_bandwidth_gbps:g} GB/s, "
                     f"an assumed {assumed.name} host ({assumed.derivation or 'cpus.yaml'}); give --cpu-bandwidth "
                     "GBPS or plan on the machine")
    if not node.cpu.matmul_gflops:
        notes.append("the CPU's GEMM rate is unknown: TTFT counts the CPU layers' memory time only (a lower bound)")
    ram = c.node.usable_ram_bytes()
    # RAM enough for any placement, so the plan says how much it needs; the line compares it with this node's
    node.ram_total_bytes = int(memory.weight_bytes_total(c.model, "bf16", c.fx) * 2 + 64e9)
    node.cgroup = replace(node.cgroup, memory_limit_bytes=None)
    pinned = c.kwargs.get("method")
    method = pinned if pinned and cands.gate(cands.Config(eng, pinned), c.model, c.device, fx=c.fx) is None else None
    kw = {**c.kwargs, "engine": eng, "method": method, "tp": None, "pp": None, "dp": None, "kv_cache_dtype": None,
          "checkpoints": None}
    # a way out only when the engine's best placement offloads: one that fits the GPUs whole is any_checkpoint's
    p = c.replan(c.model, node, c.workload, **kw)
    missed = None
    if (p is None or p.chosen is None) and any(getattr(c.workload, k) is not None for k in SLOS):
        p = c.replan(c.model, node, replace(c.workload, ttft_ms=None, tpot_ms=None, min_tps=None), **kw)
        missed = _slo_reason(p.chosen, c.workload) if p is not None and p.chosen is not None else None
    if p is None or p.chosen is None or not _offloads(p.chosen):
        return None
    e = p.chosen
    need = e.memory.host_weights_gb + memory.host_reserve_gb(spec)
    if ram is None:
        ram_words = "this node's RAM is unknown"
    elif ram / 1e9 < need:
        ram_words = f"this node has {ram / 1e9:.0f} GB: too little"
    else:
        ram_words = f"{ram / 1e9:.0f} GB here"
    label = facts.method_label(e.method, c.fx).split(" (")[0]
    found = c.kwargs.get("checkpoints")
    bw = f" at an assumed {assumed.memory_bandwidth_gbps:g} GB/s CPU bandwidth" if assumed is not None else ""
    slo = f"; it {missed}" if missed else ""
    # the context the GPU's KV room leaves, and whether the file exists, belong on the line: both limit it
    context = f", context {e.max_model_len:,} tokens" if e.max_model_len else ""
    missing = f"; no {label} file found (make one: `autoquant explain {c.base.model} --recipes`)" \
        if found is not None and e.method in found and not found[e.method] else ""
    summary = (f"CPU offload: {label} on {spec.label}, {e.n_gpu_layers} of {c.model.num_layers} layers on the GPU, "
               f"{e.memory.host_weights_gb:.1f} GB of weights in host RAM (needs {need:.0f} GB of RAM; {ram_words}): "
               f"{_num(e.output_tokens_per_s)} tok/s, TPOT {_num(e.tpot_ms)} ms, TTFT {_num(e.ttft_ms)} ms{bw}"
               f"{context}, {_quality_words(e, _floor_of(p))}{slo}{missing}")
    return replace(_way("cpu_offload", f"--engine {eng} --method {e.method}", summary, p, e, notes=notes,
                        host_ram_gb=need), also_needs=missed or "")


# -------------------------------------------------------------------------------------------- more GPUs

def _node_with(node: Node, gpus: int, nodes: int) -> Node:
    """`node` with `gpus` GPUs of its first GPU's kind on each of `nodes` nodes, linked as the catalog says such
    a board is (catalog.gpus.synthetic_topology)."""
    from autoquant.catalog.gpus import lookup, synthetic_topology

    first = node.gpus[0]
    out = copy.deepcopy(node)
    out.gpus = [replace(copy.deepcopy(first), index=i, physical_index=i, uuid=None) for i in range(gpus)]
    out.topology, out.nvlink_domains, _ = synthetic_topology(lookup(first.catalog_key or first.name), gpus)
    out.nodes = nodes
    out.cuda_visible_devices = None
    return out


def _more_gpus(c: _Ctx) -> WayOut | None:
    """The smallest count of this GPU at which the planner chooses something: more on this node up to one
    board's worth, then more nodes of a full board. Counts below what the smallest weights need are skipped."""
    d = c.device
    if d.kind != "cuda" or not c.node.gpus or any(g.mig_enabled for g in c.node.gpus):
        return None
    per_node = max(d.count, int(c.policy["max_gpus_per_node"]))
    smallest = _smallest_weights(c)
    least = math.ceil(smallest[1] / d.memory_gb) if smallest and d.memory_gb > 0 else 1
    full: Plan | None = c.base if d.count >= per_node else None  # the plan of a full node
    if per_node * d.nodes >= least:
        for n in range(d.count + 1, per_node + 1):
            if n * d.nodes < least:
                continue
            if (got := _on(c, n, d.nodes)) is not None:
                return got
            full = c.replan.last
        # Pipeline stages across nodes add memory, not speed: more nodes only when a full node lacks memory (no
        # configuration that fits there was turned away by an SLO or the quality floor)
        if full is None or any(r.rule in ("slo", "quality") for r in full.rejected):
            return None
    for k in range(d.nodes + 1, int(c.policy["max_nodes"]) + 1):
        if per_node * k < least:
            continue
        if c.replan.left <= 0:
            return None
        if (got := _on(c, per_node, k)) is not None:
            return got
    return None


def _on(c: _Ctx, gpus: int, nodes: int) -> WayOut | None:
    """The way out on `nodes` nodes of `gpus` GPUs of this kind, if the planner chooses something there."""
    p = c.replan(c.model, _node_with(c.node, gpus, nodes), c.workload, **c.kwargs)
    if p is None or p.chosen is None:
        return None
    change = f"--gpu {c.device.key}:{gpus}" + (f" --nodes {nodes}" if nodes > 1 else "")
    return _way("more_gpus" if nodes == c.device.nodes else "more_nodes", change,
                f"{p.hardware} ({change}): {_describe(p.chosen, c.fx, _floor_of(p))}", p, p.chosen)


# ------------------------------------------------------------------------------------------ smaller model

_VARIANTS = ("instruct", "-it", "chat")


def _variant(ids: tuple[str, ...], asked: str) -> str:
    """The id of a catalog entry of the same kind as the asked model's (instruction-tuned or base)."""
    tuned = any(v in asked.lower() for v in _VARIANTS)
    same = [i for i in ids if any(v in i.lower() for v in _VARIANTS) == tuned]
    return (same or list(ids))[0]


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.lower(), b.lower(), strict=False):
        if x != y:
            break
        n += 1
    return n


def _smaller_models(model: ModelSpec) -> list[ModelSpec]:
    """Catalog models of the same family and publisher with fewer parameters, largest first, one per size."""
    from autoquant.catalog import models as catalog

    fam = quality.family(model.id)
    if fam is None:
        return []
    found: dict[int, tuple[int, ModelSpec]] = {}
    for cid in catalog.known_ids():
        org = cid.split("/")[0].lower()
        if quality.family(cid) != fam or org not in model.id.lower():
            continue
        entry = catalog.find(cid)
        if entry is None:
            continue
        try:
            spec = catalog.spec_from_catalog(_variant(entry.ids, model.id))
        except AutoquantError:
            continue
        if spec.total_params >= model.total_params or (spec.num_layers, spec.hidden_size) == \
                (model.num_layers, model.hidden_size):
            continue
        size = round(spec.total_params / 1e8)  # one per size (0.1B): Llama-3.1-8B and Llama-3-8B are one
        score = _common_prefix(spec.id, model.id)
        if size not in found or score > found[size][0]:
            found[size] = (score, spec)
    return [s for _, (_, s) in sorted(found.items(), reverse=True)]


def _smaller_model(c: _Ctx) -> WayOut | None:
    for spec in _smaller_models(c.model)[:int(c.policy["smaller_models"])]:
        checkpoints, notes = None, []
        if c.checkpoints_for is not None and c.kwargs.get("checkpoints") is not None:
            try:
                checkpoints = c.checkpoints_for(spec)
            except AutoquantError as exc:
                notes.append(f"its checkpoints could not be resolved ({exc}): planned as if every method had one")
        else:
            notes.append("planned as if every method had a checkpoint")
        p = c.replan(spec, c.node, c.workload, **{**c.kwargs, "checkpoints": checkpoints})
        if p is None or p.chosen is None:
            continue
        return _way("smaller_model", f"serve {spec.id}",
                    f"a smaller model of the family, {spec.id} ({spec.total_params / 1e9:.1f}B): "
                    f"{_describe(p.chosen, c.fx, _floor_of(p))}" + ("" if checkpoints is not None else
                                                                     " (as if its checkpoint existed)"),
                    p, p.chosen, notes=notes, model=spec.id)
    return None
