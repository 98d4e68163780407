"""`autoquant explain`: the plan's reasoning in words, and what change would flip it.

Pure: re-plans counterfactuals (more users, fewer users, a tighter quality floor, twice the GPUs) with
the same planner; each re-plan is milliseconds.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from autoquant.planner import facts, memory, perf
from autoquant.planner.calibration import Calibration, default_calibration
from autoquant.planner.decide import _cfg_label, plan, running_in_all
from autoquant.planner.hardware import device_of
from autoquant.records import Estimate, ModelSpec, Node, Plan, Workload

# Precisions whose crossover batch we report: (label, math precision, method whose storage it uses)
_CROSSOVERS = (("BF16/FP16 (W16A16)", "fp16", "bf16"), ("INT4 weight-only (W4A16, Marlin)", "fp16", "awq-int4"),
               ("FP8 W8A8", "fp8", "fp8"), ("INT8 W8A8", "int8", "int8-sq"))


def crossover_table(model: ModelSpec, node: Node, calibration: Calibration | None = None,
                    engine: str = "vllm") -> list[tuple[str, float, float]]:
    """(precision, B* at 100% efficiency, B* with `engine`'s kernel efficiency factors) for this GPU."""
    from autoquant.engines.compat import compat

    spec = facts.engine(engine)
    cal = calibration or default_calibration()
    device = device_of(node)
    out = []
    for label, math_p, method in _CROSSOVERS:
        if not device.peak(math_p) or not device.bandwidth_gbps:
            continue
        bpw = memory.bits_per_weight(method, model)
        ideal = perf.crossover_batch(device, math_p, bpw, perf.Efficiency(1.0, 1.0))
        verdict = compat(spec, method, device)
        if not verdict.ok:
            continue
        real = perf.crossover_batch(device, math_p, bpw, cal.efficiency(verdict.kernel, device.key, spec.calibration_as))
        if ideal is not None and real is not None:
            out.append((label, ideal, real))
    return out


def _more_gpus(node: Node) -> Node | None:
    if not node.gpus:
        return None
    bigger = copy.deepcopy(node)
    n = len(node.gpus)
    for g in node.gpus:
        bigger.gpus.append(replace(copy.deepcopy(g), index=g.index + n, physical_index=(g.physical_index or g.index) + n))
    if node.nvlink_domains and len(node.nvlink_domains) == 1 and len(node.nvlink_domains[0]) == n:
        # one domain spanning the node: how far NVLink reaches at 2n GPUs is the catalog's (board size, bridges)
        from autoquant.catalog.gpus import lookup, synthetic_topology

        first = node.gpus[0]
        bigger.nvlink_domains = synthetic_topology(lookup(first.catalog_key or first.name), 2 * n)[1]
    else:
        bigger.nvlink_domains = [*node.nvlink_domains, *[[i + n for i in d] for d in node.nvlink_domains]]
    bigger.topology = []
    return bigger


def _same(a: Estimate | None, b: Estimate | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.engine, a.method, a.tp, a.pp, a.kv_cache_dtype, a.replicas) == \
        (b.engine, b.method, b.tp, b.pp, b.kv_cache_dtype, b.replicas)


def _label(e: Estimate | None) -> str:
    return _cfg_label(e) if e is not None else "nothing feasible"


def flips(model: ModelSpec, node: Node, workload: Workload, base: Plan, **kwargs) -> list[str]:
    """Sentences saying which change of workload or hardware would change the decision."""
    out: list[str] = []
    chosen = base.chosen
    conc = workload.concurrency or (chosen.concurrency if chosen else 1)
    for factor in (2, 4, 8, 16, 32):
        w = replace(workload, concurrency=conc * factor)
        p = plan(model, node, w, **kwargs)
        if not _same(p.chosen, chosen):
            out.append(f"more users: at {conc * factor} concurrent requests ({factor}x) the choice becomes "
                       f"{_label(p.chosen)}")
            break
    else:
        out.append(f"more users: the choice holds up to {conc * 32} concurrent requests (32x)"
                   + (f"; beyond {running_in_all(chosen)} at once the rest queue (KV room)"
                      if chosen is not None and 0 < running_in_all(chosen) < conc * 32 else ""))
    if conc > 1:
        w = replace(workload, concurrency=max(1, conc // 8))
        p = plan(model, node, w, **kwargs)
        if not _same(p.chosen, chosen):
            out.append(f"fewer users: at {max(1, conc // 8)} concurrent requests the choice becomes {_label(p.chosen)}")
    if chosen is not None and chosen.ppl_delta and chosen.ppl_delta > 0:
        tighter = round(chosen.ppl_delta * 0.9, 4)
        p = plan(model, node, replace(workload, max_ppl_delta=tighter), **kwargs)
        out.append(f"a tighter quality floor: at max ppl delta {tighter:g} (just under this plan's "
                   f"+{chosen.ppl_delta:.3f}) the choice becomes {_label(p.chosen)}")
    elif chosen is not None:
        out.append("a tighter quality floor changes nothing: the chosen plan is unquantized")
    bigger = _more_gpus(node)
    if bigger is not None:
        p = plan(model, bigger, workload, **kwargs)
        n = len(node.gpus)
        if _same(p.chosen, chosen):
            out.append(f"{n} more GPU(s) ({2 * n} in all): the choice stays {_label(chosen)}")
        else:
            out.append(f"{n} more GPU(s) ({2 * n} in all): the choice becomes {_label(p.chosen)}")
    return out


def explain(model: ModelSpec, node: Node, workload: Workload | None = None, **kwargs) -> tuple[Plan, list[str]]:
    """(the plan, the explanation as paragraphs)."""
    workload = workload or Workload()
    base = plan(model, node, workload, **kwargs)
    device = device_of(node)
    cal = kwargs.get("calibration")
    lines: list[str] = []
    chosen = base.chosen
    if chosen is None:
        lines.append(f"No configuration of {model.id} on {device.describe()} fits, meets the SLOs and the quality "
                     "floor. The closest misses:")
        lines.extend(f"  - {r.engine} {r.method}: {r.reason}" for r in base.rejected)
        return base, lines
    lines.append(f"Choice: {_cfg_label(chosen)} ({chosen.kernel} kernel, KV cache {chosen.kv_cache_dtype}) on "
                 f"{device.describe()}.")
    kind = {"bandwidth_bound": "bandwidth-bound: each step is paced by reading the weights and KV cache, so "
                               "fewer bytes per weight speed it up",
            "compute_bound": "compute-bound: the tensor cores are the limit, so a lower-precision math "
                             "(FP8/INT8 W8A8) speeds it up and weight-only INT4 does not",
            "transitional": "transitional: weight reads and tensor-core time are of the same order"}
    lines.append(f"Regime: at concurrency {chosen.concurrency} ({workload.isl} in / {workload.osl} out tokens) a "
                 f"step is {kind.get(chosen.regime, chosen.regime)}.")
    engine = chosen.engine
    table = crossover_table(model, node, cal, engine)
    if not table:  # llama.cpp's GGUF kernels: the tensor-core precisions are vLLM's
        engine = "vllm"
        table = crossover_table(model, node, cal, engine)
    if table:
        parts = [f"{label}: B* = {real:.0f} (ideal {ideal:.0f})" for label, ideal, real in table]
        lines.append(f"Crossover batch on {device.key} with {facts.engine_label(engine)}'s kernels "
                     "(B* = peak x eff_c / (BW x eff_b) x bytes per weight / 2): "
                     + "; ".join(parts) + ". Below about B*/2 a step is bandwidth-bound, above B* compute-bound.")
    lines.append("Why it wins: " + "; ".join(base.reasons) + ".")
    lines.append(f"Predicted: TTFT {chosen.ttft_ms:.0f} ms, TPOT {chosen.tpot_ms:.1f} ms, "
                 f"{chosen.per_request_tokens_per_s:.0f} tok/s per request, {chosen.output_tokens_per_s:.0f} tok/s "
                 f"in all, {chosen.memory.total_gb:.1f} of {chosen.memory.capacity_gb:.1f} GB per GPU"
                 + (f", ${chosen.cost_per_million_tokens:.2f} per million output tokens"
                    if chosen.cost_per_million_tokens is not None else "") + f" (figures by {chosen.predictor}).")
    lines.extend(f"Caveat: {w}." for w in chosen.warnings)
    if 0 < (running := running_in_all(chosen)) < chosen.concurrency:
        lines.append(f"Queueing: {running} of {chosen.concurrency} requests run at once; the rest wait "
                     f"in the queue (the TTFT above includes that wait, Little's law).")
    lines.append("What would flip it:")
    lines.extend(f"  - {s}" for s in flips(model, node, workload, base, **kwargs))
    lines.extend(rejections(base))
    return base, lines


def rejections(p: Plan) -> list[str]:
    """Every rejection in full, one line each."""
    if not p.rejected:
        return []
    return [f"Rejected ({len(p.rejected)}):", *(f"  - {r.reason if r.reason.startswith(r.method) else f'{r.method} on {r.engine}: {r.reason}'}"
                                                for r in p.rejected)]


def recipes(p: Plan, fx=None) -> list[str]:
    """How to make each checkpoint the plan found none of (`explain --recipes`): the recipe the rejection quotes
    (checkpoints.recipes.how_to_make, with the engine's preferred producer), one line per recipe, the engines it
    serves merged, and one line for every GGUF type."""
    from autoquant.checkpoints.recipes import how_to_make

    by_how: dict[str, list[str]] = {}  # recipe -> "method for engine", in plan order
    gguf: list[str] = []
    for r in p.rejected:
        if r.rule != "checkpoint" or r.scope != "method":  # scope method: none exists (config: none loads here)
            continue
        if r.method.startswith("gguf-"):  # one recipe for every type: only the type name differs
            gguf.append(r.method.removeprefix("gguf-").upper())
            continue
        spec = facts.engine(r.engine, fx)
        how = how_to_make(r.method, p.model, spec.preferred_producers[0] if spec.preferred_producers else None)
        by_how.setdefault(how, []).append(f"{r.method} for {spec.label}")
    lines = []
    for how, whos in by_how.items():
        method = whos[0].split(" for ")[0]
        engines = ", ".join(dict.fromkeys(w.split(" for ")[1] for w in whos))
        lines.append(f"  - {method} for {engines}: {how}")
    if gguf:
        lines.append(f"  - GGUF <TYPE> ({', '.join(dict.fromkeys(gguf))}) for llama.cpp: "
                     f"{how_to_make('gguf-<type>', p.model)}")
    return (["How to make the missing checkpoints:", *lines] if lines
            else ["Every method planned has a checkpoint (or was ruled out for another reason)."])
