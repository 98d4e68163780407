"""The decision: gate -> estimate -> fits -> meets SLOs -> meets the quality floor -> best objective.

Objectives (lower score wins; docs/planner.md section 5):
  cost        GPU-seconds per output token = GPUs / output tok/s (ranks exactly as $/Mtok at one price)
  throughput  -(output tok/s of the whole deployment)
  latency     end-to-end request time = TTFT + OSL x TPOT
  quality     the smallest quality delta (to quality.yaml planner_policy.quality_resolution), then cost
  balanced    (cost / best cost) x (latency / best latency) x W^(delta / floor): spending the whole quality
              floor must buy a W-fold (planner_policy.balanced_quality_weight) gain in cost x latency
Ties (scores within TIE_TOLERANCE of the best) go to the simpler plan: fewer GPUs, then no
quantization, then a measured quality delta, then the engine's `preference` (engines.yaml: vLLM first),
then the default KV-cache dtype.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields, replace

from autoquant.errors import InputError, RuleError
from autoquant.facts import Facts, default_facts
from autoquant.planner import candidates as cands
from autoquant.planner import facts, memory, quality
from autoquant.planner.calibration import Calibration, default_calibration
from autoquant.planner.candidates import Config
from autoquant.planner.hardware import Device, device_of
from autoquant.planner.perf import UnknownSpeed
from autoquant.planner.predictor import Predictor, PredictRequest
from autoquant.records import (
    Candidate,
    Checkpoint,
    Estimate,
    ModelSpec,
    Node,
    Plan,
    Rejection,
    Workload,
    to_dict,
)

TIE_TOLERANCE = 0.02
RESCORED = 8  # how many of the best candidates an outside predictor re-scores (each call ~10 ms warm)


def _score_cost(e: Estimate) -> float:
    return max(e.gpus, 1) / e.output_tokens_per_s if e.output_tokens_per_s > 0 else float("inf")


def _score_latency(e: Estimate, osl: int) -> float:
    return e.ttft_ms + osl * e.tpot_ms


def _quality_cost(e: Estimate, floor: float) -> float:
    """The quality term of `balanced`: the delta as a share of the floor (an unknown delta counts as the whole
    floor: it may be anywhere under it)."""
    delta = e.ppl_delta if e.ppl_delta is not None else floor
    return max(0.0, delta) / floor if floor > 0 else 0.0


def scores(feasible: list[Estimate], objective: str, osl: int, floor: float = 0.3,
           fx: Facts | None = None) -> list[float]:
    if objective == "cost":
        return [_score_cost(e) for e in feasible]
    if objective == "throughput":
        return [-e.output_tokens_per_s for e in feasible]
    if objective == "latency":
        return [_score_latency(e, osl) for e in feasible]
    if objective == "quality":
        # lexicographic: the delta in steps of the resolution first, the cost within one step
        step = float(quality.policy(fx)["quality_resolution"])
        costs = [_score_cost(e) for e in feasible]
        worst = max((c for c in costs if c != float("inf")), default=1.0) or 1.0
        return [round((e.ppl_delta if e.ppl_delta is not None else floor) / step) + min(c / worst, 1.0) * 0.5
                for e, c in zip(feasible, costs, strict=True)]
    weight = float(quality.policy(fx)["balanced_quality_weight"])
    costs = [_score_cost(e) for e in feasible]
    lats = [_score_latency(e, osl) for e in feasible]
    best_c, best_l = min(costs, default=1.0) or 1.0, min(lats, default=1.0) or 1.0
    return [(c / best_c) * (lat / best_l) * weight ** _quality_cost(e, floor)
            for e, c, lat in zip(feasible, costs, lats, strict=True)]


def _simplicity(e: Estimate, fx: Facts | None = None) -> tuple:
    quantized = bool(facts.methods(fx).get(e.method, {}).get("quantized", True))
    spec = facts.engine(e.engine, fx)
    default_kv = e.kv_cache_dtype == spec.kv_default
    engine_order = spec.preference
    return (max(e.gpus, 1), quantized, e.ppl_delta is None, engine_order, not default_kv, e.dp, e.replicas, e.nodes)


def rank(feasible: list[Estimate], objective: str, osl: int, fx: Facts | None = None,
         floor: float = 0.3) -> list[Estimate]:
    """Best first; among those within TIE_TOLERANCE of the best score, the simplest first."""
    if not feasible:
        return []
    sc = scores(feasible, objective, osl, floor, fx)
    order = sorted(range(len(feasible)), key=lambda i: sc[i])
    best = sc[order[0]]
    tol = abs(best) * TIE_TOLERANCE
    tied = [i for i in order if abs(sc[i] - best) <= tol]
    tied.sort(key=lambda i: (_simplicity(feasible[i], fx), sc[i]))
    rest = [i for i in order if i not in tied]
    return [feasible[i] for i in tied + rest]


def checkpoint_shapes(model: ModelSpec, ck: Checkpoint | None) -> ModelSpec:
    """The model whose shapes a checkpoint really has: a checkpoint that carries its own (e.g. padded) MLP width,
    read from its config or recorded in the registry, replaces the base model's for the shape rules and the
    memory estimate."""
    if ck is None or ck.status not in ("verified", "unverified") or not ck.intermediate_size \
            or ck.intermediate_size == model.intermediate_size:
        return model
    return replace(model, intermediate_size=int(ck.intermediate_size))


def engine_order(engine: str, checkpoints: Sequence[Checkpoint], fx: Facts | None = None) -> list[Checkpoint]:
    """The checkpoints of one method in the order this engine should try them: its own publisher's format
    first (engines.yaml preferred_producers: ModelOpt exports for TensorRT-LLM), then resolution's rank."""
    spec = facts.engine(engine, fx)
    return sorted(checkpoints, key=lambda ck: spec.producer_rank(ck.quant.producer if ck.quant else None))


def _as_list(entry: Checkpoint | Sequence[Checkpoint] | None) -> list[Checkpoint]:
    if entry is None:
        return []
    return [entry] if isinstance(entry, Checkpoint) else list(entry)


_MISSING_WITH_RUNTIME = ("no {label} checkpoint found for {model}: {engine} can quantize BF16 weights to {label} at "
                         "load time: pass --allow-runtime-quantization")


def choose_checkpoint(cfg: Config, model: ModelSpec, device: Device,
                      checkpoints: Mapping[str, Checkpoint | Sequence[Checkpoint] | None],
                      allow_runtime: bool, fx: Facts | None = None) -> tuple[Rejection | None, Checkpoint | None, ModelSpec]:
    """The first checkpoint of cfg.method that cfg.engine can load here (compat on its format, its own bits and
    group, and its own shapes), or the rejection that says why none can and how to make one."""
    spec = facts.engine(cfg.engine, fx)
    listed = _as_list(checkpoints.get(cfg.method))
    refused: list[str] = []
    for ck in engine_order(cfg.engine, listed, fx):
        if ck.runtime_quantization and not spec.quantizes_at_load(cfg.method):
            refused.append(spec.no_quantize_at_load)
            continue
        subject = ck.quant if ck.quant is not None and not ck.runtime_quantization else cfg.method
        if ck.quant is not None and subject is ck.quant and ck.quant.method != cfg.method:
            subject = replace(ck.quant, method=cfg.method)  # FP8 weights served as fp8-weight-only (FP8 Marlin)
        shapes = checkpoint_shapes(model, ck)
        rej = cands.gate(cfg, shapes, device, subject, fx)
        if rej is None:
            return None, ck, shapes
        refused.append(f"{ck.repo}: {rej.reason}")
    label = facts.method_label(cfg.method, fx).split(" (")[0]
    if not listed and spec.quantizes_at_load(cfg.method) and model.quantization is None:
        if allow_runtime:
            ck = Checkpoint(repo=model.id, method=cfg.method, source="base", verified=True,
                            reason=f"{spec.label} quantizes the BF16 weights to {label} at load time",
                            runtime_quantization=True, status="verified", base=model.id)
            return None, ck, model
        return Rejection(cfg.engine, cfg.method, _MISSING_WITH_RUNTIME.format(label=label, model=model.id,
                         engine=spec.label), cfg.tp, cfg.pp, "checkpoint", scope="method"), None, model
    from autoquant.checkpoints.recipes import how_to_make

    how = how_to_make(cfg.method, model.id, spec.preferred_producers[0] if spec.preferred_producers else None)
    if allow_runtime and not spec.quantizes_at_load(cfg.method) \
            and any(s.quantizes_at_load(cfg.method) for s in facts.engines(fx).values()):
        how = f"{spec.no_quantize_at_load}; {how}"
    if refused:
        why = "; ".join(dict.fromkeys(refused))
        return Rejection(cfg.engine, cfg.method, f"no {label} checkpoint {spec.label} can load here ({why}): {how}",
                         cfg.tp, cfg.pp, "checkpoint", scope="config"), None, model
    return Rejection(cfg.engine, cfg.method, f"no {label} checkpoint found for {model.id}: {how}",
                     cfg.tp, cfg.pp, "checkpoint", scope="method"), None, model


def _fit_reason(e: Estimate, workload: Workload, host_ram_gb: float | None, fx: Facts | None = None) -> str:
    m = e.memory
    if m.host_weights_gb > 0 and (host_ram_gb is None
                                  or m.host_weights_gb + memory.host_reserve_gb(facts.engine(e.engine, fx)) > host_ram_gb):
        return (f"does not fit: host RAM: {m.host_weights_gb:.1f} GB of weights stay in RAM, "
                + ("RAM size unknown" if host_ram_gb is None else f"{host_ram_gb:.1f} GB there"))
    if m.weights_gb + m.overhead_gb >= m.capacity_gb:
        return (f"does not fit: weights {m.weights_gb:.1f} GB + overhead {m.overhead_gb:.1f} GB per GPU exceed "
                f"the {m.capacity_gb:.1f} GB the engine may use")
    kv = [n for n in e.notes if n.startswith("KV cache ")]
    return (f"does not fit: the KV cache cannot hold one request of "
            f"{workload.max_model_len or workload.isl + workload.osl} tokens (it needs {m.kv_cache_gb:.2f} GB per "
            f"GPU, {max(0.0, m.capacity_gb - m.weights_gb - m.overhead_gb):.2f} GB left after weights and overhead)"
            + (f"; {kv[0]}" if kv else ""))


def user_floor(workload: Workload) -> bool:
    """Did the user set a quality floor (--use-case or --max-ppl-delta)? Without one, an unmeasured quality
    delta is kept with a note instead of rejected."""
    return workload.max_ppl_delta is not None or workload.use_case is not None


def kv_quality_unmeasured(kv_cache_dtype: str, fx: Facts | None = None) -> bool:
    """A quantized KV cache whose perplexity cost quality.yaml does not give."""
    return kv_cache_dtype not in ("auto", "f16") and quality.kv_cache_delta(kv_cache_dtype, fx) is None


def running_in_all(e: Estimate) -> int:
    """Requests the whole deployment runs at once: max_num_seqs is per engine core (per DP rank, per server)."""
    return e.max_num_seqs * max(1, e.dp) * max(1, e.replicas)


def _slo_reason(e: Estimate, workload: Workload) -> str | None:
    if workload.ttft_ms is not None and e.ttft_ms > workload.ttft_ms:
        running = running_in_all(e)
        queued = (f" ({running} of {e.concurrency} requests run at once; the rest wait in the queue)"
                  if 0 < running < e.concurrency else "")
        return f"misses the TTFT SLO: {e.ttft_ms:.0f} ms > {workload.ttft_ms:g} ms{queued}"
    if workload.tpot_ms is not None and e.tpot_ms > workload.tpot_ms:
        return f"misses the TPOT SLO: {e.tpot_ms:.1f} ms > {workload.tpot_ms:g} ms"
    if workload.min_tps is not None and e.per_request_tokens_per_s < workload.min_tps:
        return (f"misses the per-request speed SLO: {e.per_request_tokens_per_s:.1f} tok/s < "
                f"{workload.min_tps:g} tok/s")
    return None


def _evaluate_with_kv_fallback(cfg: Config, model: ModelSpec, device: Device, workload: Workload,
                               cal: Calibration, kv_pinned: bool, max_num_seqs: int | None = None,
                               subject=None, memory_fraction: float | None = None,
                               fx: Facts | None = None) -> list[Estimate]:
    """The default KV dtype first; the engine's quantized KV cache (vLLM/TRT-LLM fp8, llama.cpp q8_0) only
    when the default cannot run every request at once. When the default does not fit at all, the fallback
    replaces it; when the default fits but queues, the fallback (more at once, less KV precision) is a
    second candidate and the ranking decides. quality.yaml has no perplexity figure for a quantized KV
    cache, so with a user-set quality floor the fallback is not taken, and the estimate says so."""
    est = cands.evaluate(cfg, model, device, workload, cal, max_num_seqs, subject, memory_fraction, fx)
    kv_limited = est.max_concurrency < est.concurrency and (max_num_seqs is None or est.max_concurrency < max_num_seqs)
    if kv_pinned or not (not est.memory.fits or kv_limited):
        return [est]
    alt = cands.fallback_kv(cfg, fx)
    if not alt:
        return [est]
    alt_cfg = replace(cfg, kv_cache_dtype=alt)
    rej = cands.gate(alt_cfg, model, device, subject, fx)
    if rej is not None:
        est.notes.append(f"KV cache {alt} not possible: {rej.reason}")
        return [est]
    alt_est = cands.evaluate(alt_cfg, model, device, workload, cal, max_num_seqs, subject, memory_fraction, fx)
    held = "would hold it" if alt_est.max_concurrency >= alt_est.concurrency else "would hold more"
    if not alt_est.memory.fits:
        est.notes.append(f"KV cache {alt} tried too: room for {alt_est.max_concurrency} requests")
    elif kv_quality_unmeasured(alt, fx) and user_floor(workload):
        est.notes.append(f"KV cache {alt} {held} (room for {alt_est.max_concurrency} requests), but "
                         f"autoquant has no perplexity figure for a {alt} KV cache and a quality floor "
                         "is set, so the default KV dtype is kept")
    else:
        alt_est.notes.append(f"KV cache {alt}: the default KV dtype "
                             + ("does not hold the workload" if not est.memory.fits else
                                f"runs {est.max_concurrency} of {est.concurrency} requests at once"))
        if kv_quality_unmeasured(alt, fx):
            alt_est.notes.append(f"quality not measured for a {alt} KV cache (autoquant has no "
                                 "figure; no quality floor set, so it is kept)")
        return [alt_est] if not est.memory.fits else [est, alt_est]
    return [est]


def plan(model: ModelSpec, node: Node, workload: Workload | None = None, *, engine: str | None = None,
         method: str | None = None, tp: int | None = None, pp: int | None = None,
         kv_cache_dtype: str | None = None,
         checkpoints: Mapping[str, Checkpoint | Sequence[Checkpoint] | None] | None = None,
         allow_runtime_quantization: bool = False, calibration: Calibration | None = None,
         max_model_len: int | None = None, max_num_seqs: int | None = None, memory_fraction: float | None = None,
         ruled_out: Mapping[str, str] | None = None, facts: Facts | None = None, dp: int | None = None,
         predictor: Predictor | None = None) -> Plan:
    """Choose engine + method + kernel + TP/PP + KV dtype for `model` on `node` under `workload`.

    `checkpoints`: method -> the checkpoints that can be had for it, best first (None: plan as if every method
    had one); each candidate (engine, method) takes the first its engine can load. `max_model_len` /
    `max_num_seqs` / `memory_fraction` are pins from engine flags the user gave (serve): the context every
    request must reach, a cap on concurrent requests, the engine's memory fraction (--gpu-memory-utilization).
    `ruled_out`: engine -> why it may not serve (a flag the user gave that it cannot honour). `facts`: the
    engines, methods, overheads, prices and quality data to plan with (None: the packaged ones). `dp`: a pinned
    replica count (vLLM --data-parallel-size); None lets the planner compare replicas with one wide group.
    `predictor`: an outside performance model (autoquant/predictors/, e.g. AIConfigurator): it re-scores the
    best candidates it covers, which are then ranked on its figures (Estimate.predictor says whose they are)."""
    if node.others:  # a mixed cluster: each node type planned on its own, the objective picks (planner/cluster.py)
        from autoquant.planner.cluster import plan_mixed

        return plan_mixed(plan, model, node, workload or Workload(), dict(
            engine=engine, method=method, tp=tp, pp=pp, kv_cache_dtype=kv_cache_dtype, checkpoints=checkpoints,
            allow_runtime_quantization=allow_runtime_quantization, calibration=calibration,
            max_model_len=max_model_len, max_num_seqs=max_num_seqs, memory_fraction=memory_fraction,
            ruled_out=ruled_out, facts=facts, dp=dp, predictor=predictor))
    fx = facts or default_facts()
    workload = _pinned_workload(workload or Workload(), max_model_len)
    cal = calibration or default_calibration()
    device = device_of(node)
    _validate_parallel_pins(device, tp, pp, dp)
    floor, floor_from = quality.quality_floor(workload, fx)
    has_floor = user_floor(workload)
    _validate_pins(engine, method, kv_cache_dtype, fx)
    rejected: list[Rejection] = []
    feasible: list[Estimate] = []
    ckpts: dict[int, Checkpoint | None] = {}
    over_floor: list[tuple[Estimate, Checkpoint | None, Rejection]] = []  # above the default floor only
    seen = _Seen()
    for eng, why in (ruled_out or {}).items():
        rejected.append(Rejection(eng, "*", why, None, None, "flag", scope="engine"))
    ruled_single: set[Config] = set()  # one server ruled out (a rule, or its weights do not fit): so are its replicas
    for cfg in cands.enumerate_configs(model, device, workload, engine, method, tp, pp, kv_cache_dtype, fx, dp):
        if cfg.engine in (ruled_out or {}):
            continue
        if cfg.replicas > 1 and replace(cfg, replicas=1) in ruled_single:
            continue
        rej = cands.gate(cfg, model, device, fx=fx)
        ck, cfg_model = None, model
        # a shape rule on the base model's shapes may hold for a checkpoint's own (padded) ones: checked there
        # (a method the mapping does not name was not resolved: planned as if its checkpoint exists)
        if checkpoints is not None and cfg.method in checkpoints and (rej is None or rej.rule in _SHAPE_RULES):
            rej, ck, cfg_model = choose_checkpoint(cfg, model, device, checkpoints, allow_runtime_quantization, fx)
        if rej is not None:
            ruled_single.add(cfg)
            _reject(rej, rejected, seen)
            continue
        try:
            ests = _evaluate_with_kv_fallback(cfg, cfg_model, device, workload, cal, kv_cache_dtype is not None,
                                              max_num_seqs, _subject(ck, cfg.method), memory_fraction, fx)
        except UnknownSpeed as exc:
            rejected.append(Rejection(cfg.engine, cfg.method, f"{cfg.label_for(fx)}: {exc}", cfg.tp, cfg.pp, "speed"))
            continue
        if not any(e.memory.fits for e in ests):
            ruled_single.add(cfg)
        for est in ests:
            if cfg_model is not model and ck is not None:
                est.notes.append(f"shapes from the verified checkpoint {ck.repo} "
                                 f"(MLP width {cfg_model.intermediate_size}, base {model.intermediate_size})")
            _admit(est, workload, floor, floor_from, has_floor, ck, ckpts, feasible, rejected, device.host_ram_gb,
                   over_floor, fx)
    pins = [f"--{n} {v}" for n, v in (("engine", engine), ("method", method), ("kv-cache-dtype", kv_cache_dtype))
            if v is not None]
    _default_floor_yields(pins, over_floor, feasible, rejected, ckpts, floor, floor_from)
    rejected = [_name_methods(r, seen.methods, fx) for r in rejected]
    if predictor is not None and feasible:
        feasible = rescore(feasible, predictor, model, workload, ckpts, rejected, fx, floor)
    ranked = rank(feasible, workload.objective, workload.osl, fx, floor)
    chosen = [_candidate(e, ckpts.get(id(e))) for e in ranked]
    reasons = why_chosen(ranked, workload, floor, floor_from, fx)
    wl = to_dict(workload)
    wl["quality_floor"] = floor
    wl["quality_floor_from"] = floor_from
    return Plan(model=model.id, hardware=device.describe(), chosen=chosen[0] if chosen else None,
                alternatives=chosen[1:], rejected=rejected, workload=wl, reasons=reasons)


_SHAPE_RULES = ("marlin_types", "marlin_shapes", "machete")


def rescore(feasible: list[Estimate], predictor: Predictor, model: ModelSpec, workload: Workload,
            ckpts: dict[int, Checkpoint | None], rejected: list[Rejection], fx: Facts | None = None,
            floor: float = 0.3) -> list[Estimate]:
    """The RESCORED best candidates with the predictor's figures where it covers them (one replica at its share
    of the users; replicas add their output). A re-scored candidate that now misses an SLO is rejected."""
    top = {id(e) for e in rank(feasible, workload.objective, workload.osl, fx, floor)[:RESCORED]}
    out: list[Estimate] = []
    for e in feasible:
        fig = None
        # one node only: a server over several nodes crosses the fabric, which the predictor does not model
        if id(e) in top and e.gpu and e.gpu != "cpu" and e.nodes == 1:
            servers = max(1, e.dp) * max(1, e.replicas)  # engine cores in all: DP ranks x independent servers
            each = max(1, -(-e.concurrency // servers))
            fig = predictor(PredictRequest(model=model, gpu=e.gpu, engine=e.engine, method=e.method,
                                           kv_cache_dtype=e.kv_cache_dtype, tp=e.tp, pp=e.pp, concurrency=each,
                                           isl=workload.isl, osl=workload.osl))
        if fig is None or fig.tpot_ms <= 0 or fig.output_tokens_per_s <= 0:
            out.append(e)
            continue
        tps = fig.output_tokens_per_s * e.concurrency / each  # every server at `each` users
        cost = None if e.cost_per_million_tokens is None else \
            round(e.cost_per_million_tokens * e.output_tokens_per_s / tps, 4)
        new = replace(e, ttft_ms=round(fig.ttft_ms, 3), tpot_ms=round(fig.tpot_ms, 3),
                      per_request_tokens_per_s=round(1000 / fig.tpot_ms, 2), output_tokens_per_s=round(tps, 2),
                      cost_per_million_tokens=cost, predictor=fig.source,
                      notes=[*e.notes, f"speed figures by {fig.source}; autoquant's own model gave TTFT "
                             f"{e.ttft_ms:.0f} ms, TPOT {e.tpot_ms:.1f} ms, {e.output_tokens_per_s:.0f} tok/s"])
        slo = _slo_reason(new, workload)
        if slo is not None:
            rejected.append(Rejection(new.engine, new.method, f"{_cfg_label(new, fx)}: {slo} ({fig.source})",
                                      new.tp, new.pp, "slo"))
            continue
        ckpts[id(new)] = ckpts.get(id(e))
        out.append(new)
    return out


def _subject(ck: Checkpoint | None, method: str):
    if ck is None or ck.quant is None or ck.runtime_quantization:
        return method
    return ck.quant if ck.quant.method == method else replace(ck.quant, method=method)


class _Seen:
    """Rejections already listed: an engine-level rule once per engine, a method-level one once per method."""

    def __init__(self) -> None:
        self.keys: set[tuple[str, ...]] = set()
        self.methods: dict[tuple[str, str], list[str]] = {}  # (engine, rule) -> the methods it rejected


def _reject(rej: Rejection, rejected: list[Rejection], seen: _Seen) -> None:
    if rej.scope == "engine":
        listed = seen.methods.setdefault((rej.engine, rej.rule), [])
        if rej.method not in listed:
            listed.append(rej.method)
        if (rej.engine, rej.rule) in seen.keys:
            return
        seen.keys.add((rej.engine, rej.rule))
        method = "gguf-*" if rej.method.startswith("gguf-") and "gguf" in rej.rule else "*"
        rej = replace(rej, method=method, tp=None, pp=None)
    elif rej.scope == "method" or rej.rule == "checkpoint":
        key = (rej.engine, rej.method, rej.rule, rej.reason if rej.rule == "checkpoint" else "")
        if key in seen.keys:
            return
        seen.keys.add(key)
        rej = replace(rej, tp=None, pp=None)
    rejected.append(rej)


def _admit(est: Estimate, workload: Workload, floor: float, floor_from: str, has_floor: bool,
           ck: Checkpoint | None, ckpts: dict[int, Checkpoint | None], feasible: list[Estimate],
           rejected: list[Rejection], host_ram_gb: float | None = None,
           over_floor: list | None = None, fx: Facts | None = None) -> None:
    """fits -> meets the SLOs -> meets the quality floor: into `feasible`, or a Rejection saying why not. One
    that misses only the default floor (no --use-case / --max-ppl-delta) goes to `over_floor` with its
    rejection: a pin may yet let it through (_default_floor_yields)."""
    why, rule = None, ""
    if not est.memory.fits:
        why, rule = _fit_reason(est, workload, host_ram_gb, fx), "memory"
    elif (slo := _slo_reason(est, workload)) is not None:
        why, rule = slo, "slo"
    elif est.ppl_delta is None and has_floor:
        why, rule = f"quality unknown: {est.ppl_source or 'no perplexity figure'}", "quality"
    elif est.ppl_delta is None:
        est.notes.append("quality not measured: no perplexity figure, kept because no quality floor is set "
                         "(--use-case / --max-ppl-delta)")
    elif has_floor and kv_quality_unmeasured(est.kv_cache_dtype, fx):
        why, rule = (f"quality: a {est.kv_cache_dtype} KV cache has no perplexity figure and a "
                     f"quality floor is set ({floor_from})", "quality")
    elif est.ppl_delta > floor and not has_floor and over_floor is not None:
        over_floor.append((est, ck, Rejection(est.engine, est.method, f"{_cfg_label(est, fx)}: quality: "
                                              f"+{est.ppl_delta:.3f} ppl exceeds the {floor:g} floor ({floor_from})",
                                              est.tp, est.pp, "quality")))
        return
    elif est.ppl_delta > floor:
        why, rule = (f"quality: +{est.ppl_delta:.3f} ppl exceeds the {floor:g} floor ({floor_from})",
                     "quality")
    if why is not None:
        rejected.append(Rejection(est.engine, est.method, f"{_cfg_label(est, fx)}: {why}", est.tp, est.pp, rule))
        return
    ckpts[id(est)] = ck
    feasible.append(est)


def _default_floor_yields(pins: list[str], over_floor: list, feasible: list[Estimate], rejected: list[Rejection],
                          ckpts: dict[int, Checkpoint | None], floor: float, floor_from: str) -> None:
    """The default floor is autoquant's guess, not the user's: when the user pinned the engine, method or KV
    dtype and nothing those pins allow meets it, it yields (each such candidate carries a warning) rather than
    refuse what was asked for. Otherwise, and always under a floor the user set, it rejects."""
    if pins and not feasible and over_floor:
        for est, ck, _ in over_floor:
            est.warnings.append(f"quality +{est.ppl_delta:.3f} ppl is above the default {floor:g} floor "
                                f"({floor_from}); kept because {' '.join(pins)} leaves nothing under it "
                                "(set --use-case or --max-ppl-delta to enforce a floor)")
            ckpts[id(est)] = ck
            feasible.append(est)
        return
    rejected.extend(rej for _, _, rej in over_floor)


def _name_methods(rej: Rejection, listed: Mapping[tuple[str, str], list[str]], fx: Facts | None = None) -> Rejection:
    """'llama.cpp loads GGUF files only' names the methods it turned away (the GGUF rules on vLLM and
    TRT-LLM keep the 'gguf-*' pattern: every GGUF type, twelve of them)."""
    methods = listed.get((rej.engine, rej.rule))
    if rej.rule != "gguf-only-on-llamacpp" or not methods:
        return rej
    names = ", ".join(methods)
    return Rejection(rej.engine, names, f"{names} on {facts.engine_label(rej.engine, fx)}: {rej.reason}", None, None,
                     rej.rule)


def _pinned_workload(workload: Workload, max_model_len: int | None) -> Workload:
    """A pinned --max-model-len is the context every request must reach. (A pinned --max-num-seqs does not
    change the workload: it caps the requests run at once, and the rest queue.)"""
    if max_model_len is None:
        return workload
    return replace(workload, max_model_len=max_model_len)


def _cfg_label(e: Estimate, fx: Facts | None = None) -> str:
    spec = facts.engine(e.engine, fx)
    kv = f" kv={e.kv_cache_dtype}" if e.kv_cache_dtype != spec.kv_default else ""
    if not spec.tensor_parallel:
        per_server = e.gpus // max(1, e.replicas)
        extra = f" on {per_server} GPUs" if per_server > 1 else ""
        extra += f" -ngl {e.n_gpu_layers}" if e.n_gpu_layers is not None else ""
        return f"{e.method} on {spec.label}{extra}{_servers(e)}{kv}"
    par = f" TP={e.tp}" + (f" PP={e.pp}" if e.pp > 1 else "") + (f" DP={e.dp}" if e.dp > 1 else "")
    return f"{e.method} on {facts.engine_label(e.engine, fx)}{par}{_servers(e)}{kv}"


def _servers(e: Estimate) -> str:
    """' over 2 nodes', ' x4 servers' (independent replicas, one per node): where an estimate is not one node."""
    out = f" over {e.nodes} nodes" if e.nodes > 1 else ""
    return out + (f" x{e.replicas} servers" if e.replicas > 1 else "")


def _candidate(e: Estimate, checkpoint: Checkpoint | None) -> Candidate:
    return Candidate(**{f.name: getattr(e, f.name) for f in fields(e)}, checkpoint=checkpoint)


def _times(r: float) -> str:
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def _runner_up(best: Estimate, second: Estimate, objective: str, osl: int, floor: float,
               fx: Facts | None = None) -> str:
    """How the runner-up compares, in the objective's own terms ("1.31x the cost per token")."""
    label = _cfg_label(second, fx)
    sc = scores([best, second], objective, osl, floor, fx)
    if sc[0] == sc[1] or abs(sc[1] - sc[0]) <= abs(sc[0]) * TIE_TOLERANCE:
        label = f"{label} (a tie within {TIE_TOLERANCE:.0%}: the simpler, then the better score wins)"
    cost = _score_cost(second) / _score_cost(best) if _score_cost(best) not in (0, float("inf")) else None
    lat = _score_latency(second, osl) / _score_latency(best, osl) if _score_latency(best, osl) > 0 else None
    q = "" if second.ppl_delta is None else f"+{second.ppl_delta:.3f} ppl"
    if objective == "cost" and cost is not None:
        return f"runner-up {label} costs {_times(cost)} as much per output token"
    if objective == "throughput" and best.output_tokens_per_s > 0:
        return (f"runner-up {label} gives {_times(second.output_tokens_per_s / best.output_tokens_per_s)} the "
                "throughput")
    if objective == "latency" and lat is not None:
        return f"runner-up {label} takes {_times(lat)} as long per request"
    if objective == "quality":
        if best.ppl_delta is not None and second.ppl_delta is not None and second.ppl_delta != best.ppl_delta:
            return f"runner-up {label} has {q} (against +{best.ppl_delta:.3f})"
        return f"runner-up {label} has the same quality at {_times(cost or 1.0)} the cost"
    parts = [f"{_times(cost)} the cost per token" if cost is not None else "",
             f"{_times(lat)} the latency" if lat is not None else "",
             f"quality {q or 'unknown'}"]
    return f"runner-up {label}: " + ", ".join(p for p in parts if p)


def why_chosen(ranked: list[Estimate], workload: Workload, floor: float, floor_from: str,
               fx: Facts | None = None) -> list[str]:
    if not ranked:
        return ["no configuration fits, meets the SLOs and the quality floor; see the rejections"]
    best = ranked[0]
    weight = quality.policy(fx)["balanced_quality_weight"]
    how = {"balanced": f"cost x latency x quality, where using the whole {floor:g} ppl floor weighs {weight}x",
           "quality": "the best quality, then the lowest cost", "cost": "the lowest cost per output token",
           "latency": "the shortest request (TTFT + OSL x TPOT)", "throughput": "the most output tokens/s"}
    out = [f"{_cfg_label(best, fx)} is the best of {len(ranked)} feasible configuration(s) for objective "
           f"'{workload.objective}' ({how.get(workload.objective, workload.objective)})"]
    if len(ranked) > 1:
        out.append(_runner_up(best, ranked[1], workload.objective, workload.osl, floor, fx))
    out.append(f"regime at concurrency {best.concurrency}: {best.regime.replace('_', '-')}")
    if best.ppl_delta is None:
        out.append("quality not measured (no perplexity figure); no quality floor was set")
    elif best.ppl_delta > floor:
        out.append(f"quality +{best.ppl_delta:.3f} ppl is above the default {floor:g} floor ({floor_from}): "
                   "kept because of the pins (see the warning)")
    else:
        out.append(f"quality +{best.ppl_delta:.3f} ppl within the {floor:g} floor ({floor_from})")
    return out


def _validate_parallel_pins(device, tp: int | None, pp: int | None, dp: int | None = None) -> None:
    """A TP/PP/DP pin the node cannot host is the user's error, not a plan without that pin."""
    gpus = device.count if device.kind == "cuda" else 0
    if dp and dp > 1 and dp * (tp or 1) * (pp or 1) > gpus:
        raise RuleError(f"DP={dp} x TP={tp or 1} needs {dp * (tp or 1) * (pp or 1)} GPUs on one node, this node has "
                        f"{gpus}" + ("" if gpus else " (no CUDA GPU)"))
    if tp and tp > 1 and tp > gpus:
        raise RuleError(f"TP={tp} needs {tp} GPUs, this node has {gpus}" + ("" if gpus else " (no CUDA GPU)"))
    nodes = max(1, device.nodes)
    if pp and pp > 1 and (tp or 1) * pp > gpus * nodes:
        raise RuleError(f"TP={tp or 1} x PP={pp} needs {(tp or 1) * pp} GPUs, {gpus * nodes} given "
                        f"({nodes} node(s) of {gpus}; --nodes)")


def _validate_pins(engine: str | None, method: str | None, kv: str | None, fx: Facts | None = None) -> None:
    if engine is not None and engine not in facts.engine_ids(fx):
        raise RuleError(f"unknown engine {engine!r}; choose one of {', '.join(facts.engine_ids(fx))}")
    if method is not None and method not in facts.methods(fx):
        raise RuleError(f"unknown method {method!r}; choose one of {', '.join(facts.methods(fx))}")
    spellings = {k for spec in facts.engines(fx).values() for k in spec.kv_from_vllm}
    if kv is not None and kv not in facts.kv_dtype_bytes(fx) and kv not in spellings:
        raise RuleError(f"unknown KV-cache dtype {kv!r}; choose one of {', '.join(facts.kv_dtype_bytes(fx))}")


def estimate(model: ModelSpec, node: Node, workload: Workload | None = None, *, engine: str, method: str,
             tp: int = 1, pp: int = 1, kv_cache_dtype: str | None = None, n_gpu_layers: int | None = None,
             calibration: Calibration | None = None, facts: Facts | None = None, dp: int = 1,
             predictor: Predictor | None = None, replicas: int = 1) -> Estimate:
    """Evaluate one fixed configuration; RuleError (with the rule's reason) when the rules rule it out.
    `replicas`: independent servers of it, each on its own node(s) of `node.nodes`, sharing the users."""
    fx = facts or default_facts()
    workload = workload or Workload()
    _validate_pins(engine, method, kv_cache_dtype, fx)
    device = device_of(node)
    spec = fx.engine(engine)
    kv = cands.engine_kv(engine, kv_cache_dtype, fx) if kv_cache_dtype else spec.kv_default
    if not spec.tensor_parallel:
        gpus = max(1, tp * pp) if device.kind == "cuda" else 1
        if device.kind == "cuda" and gpus > device.count:
            raise RuleError(f"{gpus} GPUs asked, this node has {device.count}")
        cfg = Config(engine, method, 1, 1, kv, n_gpu_layers, gpus, replicas=replicas)
        if device.kind == "cuda" and n_gpu_layers is None:
            # As many layers on the GPU(s) as leave room for one request's KV: the slots (-np) the rest of
            # the KV holds run at once, the other requests queue (moving layers to the CPU is slower).
            cfg = Config(engine, method, 1, 1, kv,
                         cands.llamacpp_layers(model, method, device, gpus, workload, kv, 1, fx), gpus,
                         replicas=replicas)
    else:
        cfg = Config(engine, method, tp, pp, kv, dp=dp, replicas=replicas)
    if dp > 1 and not spec.tensor_parallel:
        raise RuleError(spec.no_data_parallel)
    rej = cands.gate(cfg, model, device, fx=fx)  # TP/PP against the node: the tp-gpus / pp-nodes rules too
    if rej is not None:
        raise RuleError(rej.reason)
    try:
        est = cands.evaluate(cfg, model, device, workload, calibration or default_calibration(), fx=fx)
    except UnknownSpeed as exc:
        raise InputError(str(exc)) from None
    if predictor is None:
        return est
    # one fixed configuration: the predictor's figures where it covers it, even if they miss an SLO
    got = rescore([est], predictor, model, replace(workload, ttft_ms=None, tpot_ms=None, min_tps=None), {}, [], fx)
    return got[0] if got else est
