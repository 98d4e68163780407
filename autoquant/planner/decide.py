"""The decision: gate -> estimate -> fits -> meets SLOs -> meets the quality floor -> best objective.

Objectives (lower score wins; docs/planner.md):
  cost        GPU-seconds per output token = GPUs / output tok/s (ranks exactly as $/Mtok at one price)
  throughput  -(output tok/s of the whole deployment)
  latency     end-to-end request time = TTFT + OSL x TPOT
  balanced    (cost / best cost) x (latency / best latency): a 10% cheaper plan may be 10% slower
Ties (scores within TIE_TOLERANCE of the best) go to the simpler plan: fewer GPUs, then no
quantization, then a measured quality delta, then vLLM over TensorRT-LLM, then the default KV-cache dtype.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace

from autoquant.errors import InputError, RuleError
from autoquant.planner import candidates as cands
from autoquant.planner import facts, memory, quality
from autoquant.planner.calibration import Calibration, default_calibration
from autoquant.planner.candidates import Config
from autoquant.planner.hardware import Device, device_of
from autoquant.planner.perf import UnknownSpeed
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
# Rules whose reason does not depend on the method: one line per engine instead of one per method.
_ENGINE_LEVEL_RULES = {"apple-llamacpp-only", "cpu-llamacpp-only", "gguf-only-on-llamacpp", "vllm-gguf-plugin",
                       "trtllm-no-gguf", "trtllm-min-ampere"}


def _score_cost(e: Estimate) -> float:
    return max(e.gpus, 1) / e.output_tokens_per_s if e.output_tokens_per_s > 0 else float("inf")


def _score_latency(e: Estimate, osl: int) -> float:
    return e.ttft_ms + osl * e.tpot_ms


def scores(feasible: list[Estimate], objective: str, osl: int) -> list[float]:
    if objective == "cost":
        return [_score_cost(e) for e in feasible]
    if objective == "throughput":
        return [-e.output_tokens_per_s for e in feasible]
    if objective == "latency":
        return [_score_latency(e, osl) for e in feasible]
    costs = [_score_cost(e) for e in feasible]
    lats = [_score_latency(e, osl) for e in feasible]
    best_c, best_l = min(costs, default=1.0) or 1.0, min(lats, default=1.0) or 1.0
    return [(c / best_c) * (lat / best_l) for c, lat in zip(costs, lats, strict=True)]


def _simplicity(e: Estimate) -> tuple:
    quantized = bool(facts.methods().get(e.method, {}).get("quantized", True))
    engine_order = {"vllm": 0, "trtllm": 1, "llamacpp": 2}.get(e.engine, 3)
    default_kv = e.kv_cache_dtype in ("auto", "f16")
    return (max(e.gpus, 1), quantized, e.ppl_delta is None, engine_order, not default_kv)


def rank(feasible: list[Estimate], objective: str, osl: int) -> list[Estimate]:
    """Best first; among those within TIE_TOLERANCE of the best score, the simplest first."""
    if not feasible:
        return []
    sc = scores(feasible, objective, osl)
    order = sorted(range(len(feasible)), key=lambda i: sc[i])
    best = sc[order[0]]
    tol = abs(best) * TIE_TOLERANCE
    tied = [i for i in order if abs(sc[i] - best) <= tol]
    tied.sort(key=lambda i: (_simplicity(feasible[i]), sc[i]))
    rest = [i for i in order if i not in tied]
    return [feasible[i] for i in tied + rest]


def checkpoint_model(model: ModelSpec, method: str,
                     checkpoints: Mapping[str, Checkpoint | None] | None) -> ModelSpec:
    """The model whose shapes a method's checkpoint really has: a verified checkpoint that carries its own
    (e.g. padded) MLP width replaces the base model's for the shape rules and the memory estimate."""
    ck = (checkpoints or {}).get(method)
    if ck is None or ck.status != "verified" or not ck.intermediate_size \
            or ck.intermediate_size == model.intermediate_size:
        return model
    return replace(model, intermediate_size=int(ck.intermediate_size))


# Engines that cannot use a runtime-quantization "checkpoint" (the base BF16 weights + a load-time flag).
_NO_RUNTIME_QUANT = {
    "trtllm": "TensorRT-LLM does not quantize at load time; it needs a pre-quantized FP8 checkpoint "
              "(ModelOpt/llm-compressor)",
}


def _checkpoint_rejection(cfg: Config, model: ModelSpec, checkpoints: Mapping[str, Checkpoint | None] | None,
                          allow_runtime: bool) -> tuple[Rejection | None, Checkpoint | None]:
    if checkpoints is None or cfg.method not in checkpoints:
        return None, None
    ck = checkpoints[cfg.method]
    if ck is not None and ck.runtime_quantization and cfg.engine != "vllm":
        return Rejection(cfg.engine, cfg.method, _NO_RUNTIME_QUANT.get(cfg.engine, f"{facts.engine_label(cfg.engine)} "
                         "does not quantize at load time; it needs a pre-quantized checkpoint"),
                         cfg.tp, cfg.pp, "checkpoint"), None
    if ck is not None:
        return None, ck
    if cfg.method == "fp8" and cfg.engine == "vllm":
        if allow_runtime:
            return None, Checkpoint(repo=model.id, method="fp8", source="base", verified=True,
                                    reason="vLLM quantizes the BF16 weights to FP8 at load time",
                                    runtime_quantization=True, status="verified", base=model.id)
        return Rejection(cfg.engine, cfg.method,
                         f"no FP8 checkpoint found for {model.id}: vLLM can quantize BF16 weights to FP8 at load "
                         "time: pass --allow-runtime-quantization", cfg.tp, cfg.pp, "checkpoint"), None
    from autoquant.checkpoints.recipes import how_to_make

    how = how_to_make(cfg.method, model.id)
    label = facts.method_label(cfg.method).split(" (")[0]
    return Rejection(cfg.engine, cfg.method, f"no {label} checkpoint found for {model.id}: {how}",
                     cfg.tp, cfg.pp, "checkpoint"), None


def _fit_reason(e: Estimate, workload: Workload, host_ram_gb: float | None) -> str:
    m = e.memory
    if m.host_weights_gb > 0 and (host_ram_gb is None
                                  or m.host_weights_gb + memory.llamacpp_host_reserve_gb() > host_ram_gb):
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


def kv_quality_unmeasured(kv_cache_dtype: str) -> bool:
    """A quantized KV cache whose perplexity cost quality.yaml does not give."""
    return kv_cache_dtype not in ("auto", "f16") and quality.kv_cache_delta(kv_cache_dtype) is None


def _slo_reason(e: Estimate, workload: Workload) -> str | None:
    if workload.ttft_ms is not None and e.ttft_ms > workload.ttft_ms:
        queued = (f" ({e.max_num_seqs} of {e.concurrency} requests run at once; the rest wait in the queue)"
                  if 0 < e.max_num_seqs < e.concurrency else "")
        return f"misses the TTFT SLO: {e.ttft_ms:.0f} ms > {workload.ttft_ms:g} ms{queued}"
    if workload.tpot_ms is not None and e.tpot_ms > workload.tpot_ms:
        return f"misses the TPOT SLO: {e.tpot_ms:.1f} ms > {workload.tpot_ms:g} ms"
    if workload.min_tps is not None and e.per_request_tokens_per_s < workload.min_tps:
        return (f"misses the per-request speed SLO: {e.per_request_tokens_per_s:.1f} tok/s < "
                f"{workload.min_tps:g} tok/s")
    return None


def _evaluate_with_kv_fallback(cfg: Config, model: ModelSpec, device: Device, workload: Workload,
                               cal: Calibration, kv_pinned: bool, max_num_seqs: int | None = None) -> list[Estimate]:
    """The default KV dtype first; the engine's quantized KV cache (vLLM/TRT-LLM fp8, llama.cpp q8_0) only
    when the default cannot run every request at once. When the default does not fit at all, the fallback
    replaces it; when the default fits but queues, the fallback (more at once, less KV precision) is a
    second candidate and the ranking decides. quality.yaml has no perplexity figure for a quantized KV
    cache, so with a user-set quality floor the fallback is not taken, and the estimate says so."""
    est = cands.evaluate(cfg, model, device, workload, cal, max_num_seqs)
    kv_limited = est.max_concurrency < est.concurrency and (max_num_seqs is None or est.max_concurrency < max_num_seqs)
    if kv_pinned or not (not est.memory.fits or kv_limited):
        return [est]
    alt = cands.fallback_kv(cfg)
    if not alt:
        return [est]
    alt_cfg = Config(cfg.engine, cfg.method, cfg.tp, cfg.pp, alt, cfg.n_gpu_layers, cfg.gpus)
    rej = cands.gate(alt_cfg, model, device)
    if rej is not None:
        est.notes.append(f"KV cache {alt} not possible: {rej.reason}")
        return [est]
    alt_est = cands.evaluate(alt_cfg, model, device, workload, cal, max_num_seqs)
    held = "would hold it" if alt_est.max_concurrency >= alt_est.concurrency else "would hold more"
    if not alt_est.memory.fits:
        est.notes.append(f"KV cache {alt} tried too: room for {alt_est.max_concurrency} requests")
    elif kv_quality_unmeasured(alt) and user_floor(workload):
        est.notes.append(f"KV cache {alt} {held} (room for {alt_est.max_concurrency} requests), but "
                         f"quality.yaml has no perplexity figure for a {alt} KV cache and a quality floor "
                         "is set, so the default KV dtype is kept")
    else:
        alt_est.notes.append(f"KV cache {alt}: the default KV dtype "
                             + ("does not hold the workload" if not est.memory.fits else
                                f"runs {est.max_concurrency} of {est.concurrency} requests at once"))
        if kv_quality_unmeasured(alt):
            alt_est.notes.append(f"quality not measured for a {alt} KV cache (quality.yaml has no "
                                 "figure; no quality floor set, so it is kept)")
        return [alt_est] if not est.memory.fits else [est, alt_est]
    return [est]


def plan(model: ModelSpec, node: Node, workload: Workload | None = None, *, engine: str | None = None,
         method: str | None = None, tp: int | None = None, pp: int | None = None,
         kv_cache_dtype: str | None = None, checkpoints: Mapping[str, Checkpoint | None] | None = None,
         allow_runtime_quantization: bool = False, calibration: Calibration | None = None,
         max_model_len: int | None = None, max_num_seqs: int | None = None) -> Plan:
    """Choose engine + method + kernel + TP/PP + KV dtype for `model` on `node` under `workload`.

    `max_model_len` / `max_num_seqs` are pins from engine flags the user gave (serve): the context every
    request must reach, and a cap on concurrent requests."""
    workload = _pinned_workload(workload or Workload(), max_model_len)
    cal = calibration or default_calibration()
    device = device_of(node)
    _validate_parallel_pins(device, tp, pp)
    floor, floor_from = quality.quality_floor(workload)
    has_floor = user_floor(workload)
    _validate_pins(engine, method, kv_cache_dtype)
    rejected: list[Rejection] = []
    feasible: list[Estimate] = []
    ckpts: dict[int, Checkpoint | None] = {}
    seen_engine_rules: set[tuple[str, str]] = set()
    engine_rule_methods: dict[tuple[str, str], list[str]] = {}  # (engine, rule) -> the methods it rejected
    seen_method_rules: set[tuple[str, str, str]] = set()
    for cfg in cands.enumerate_configs(model, device, workload, engine, method, tp, pp, kv_cache_dtype):
        cfg_model = checkpoint_model(model, cfg.method, checkpoints)
        rej = cands.gate(cfg, cfg_model, device)
        if rej is not None:
            if rej.rule in _ENGINE_LEVEL_RULES:
                listed = engine_rule_methods.setdefault((rej.engine, rej.rule), [])
                if rej.method not in listed:
                    listed.append(rej.method)
                if (rej.engine, rej.rule) in seen_engine_rules:
                    continue
                seen_engine_rules.add((rej.engine, rej.rule))
                rej = Rejection(rej.engine, "gguf-*" if "gguf" in rej.rule else "*", rej.reason, None, None, rej.rule)
            elif rej.rule and rej.rule not in ("tp-gpus", "pp-nodes", "tp-heads", "marlin", "kv-dtype"):
                key = (rej.engine, rej.method, rej.rule)
                if key in seen_method_rules:
                    continue
                seen_method_rules.add(key)
                rej = Rejection(rej.engine, rej.method, rej.reason, None, None, rej.rule)
            rejected.append(rej)
            continue
        rej, ck = _checkpoint_rejection(cfg, model, checkpoints, allow_runtime_quantization)
        if rej is not None:
            key = (rej.engine, rej.method, "checkpoint")
            if key not in seen_method_rules:
                seen_method_rules.add(key)
                rejected.append(Rejection(rej.engine, rej.method, rej.reason, None, None, "checkpoint"))
            continue
        try:
            ests = _evaluate_with_kv_fallback(cfg, cfg_model, device, workload, cal, kv_cache_dtype is not None,
                                              max_num_seqs)
        except UnknownSpeed as exc:
            rejected.append(Rejection(cfg.engine, cfg.method, f"{cfg.label}: {exc}", cfg.tp, cfg.pp, "speed"))
            continue
        for est in ests:
            if cfg_model is not model:
                est.notes.append(f"shapes from the verified checkpoint {checkpoints[cfg.method].repo} "  # type: ignore[index,union-attr]
                                 f"(MLP width {cfg_model.intermediate_size}, base {model.intermediate_size})")
            _admit(est, workload, floor, floor_from, has_floor, ck, ckpts, feasible, rejected, device.host_ram_gb)
    rejected = [_name_methods(r, engine_rule_methods) for r in rejected]
    ranked = rank(feasible, workload.objective, workload.osl)
    chosen = [_candidate(e, ckpts.get(id(e))) for e in ranked]
    reasons = why_chosen(ranked, workload, floor, floor_from)
    wl = to_dict(workload)
    wl["quality_floor"] = floor
    wl["quality_floor_from"] = floor_from
    return Plan(model=model.id, hardware=device.describe(), chosen=chosen[0] if chosen else None,
                alternatives=chosen[1:], rejected=rejected, workload=wl, reasons=reasons)


def _admit(est: Estimate, workload: Workload, floor: float, floor_from: str, has_floor: bool,
           ck: Checkpoint | None, ckpts: dict[int, Checkpoint | None], feasible: list[Estimate],
           rejected: list[Rejection], host_ram_gb: float | None = None) -> None:
    """fits -> meets the SLOs -> meets the quality floor: into `feasible`, or a Rejection saying why not."""
    why, rule = None, ""
    if not est.memory.fits:
        why, rule = _fit_reason(est, workload, host_ram_gb), "memory"
    elif (slo := _slo_reason(est, workload)) is not None:
        why, rule = slo, "slo"
    elif est.ppl_delta is None and has_floor:
        why, rule = f"quality unknown: {est.ppl_source or 'no perplexity figure'}", "quality"
    elif est.ppl_delta is None:
        est.notes.append("quality not measured: no perplexity figure, kept because no quality floor is set "
                         "(--use-case / --max-ppl-delta)")
    elif has_floor and kv_quality_unmeasured(est.kv_cache_dtype):
        why, rule = (f"quality: a {est.kv_cache_dtype} KV cache has no perplexity figure in quality.yaml and a "
                     f"quality floor is set ({floor_from})", "quality")
    elif est.ppl_delta > floor:
        why, rule = (f"quality: +{est.ppl_delta:.3f} ppl exceeds the {floor:g} floor ({floor_from})",
                     "quality")
    if why is not None:
        rejected.append(Rejection(est.engine, est.method, f"{_cfg_label(est)}: {why}", est.tp, est.pp, rule))
        return
    ckpts[id(est)] = ck
    feasible.append(est)


def _name_methods(rej: Rejection, listed: Mapping[tuple[str, str], list[str]]) -> Rejection:
    """'llama.cpp loads GGUF files only' names the methods it turned away (the GGUF rules on vLLM and
    TRT-LLM keep the 'gguf-*' pattern: every GGUF type, twelve of them)."""
    methods = listed.get((rej.engine, rej.rule))
    if rej.rule != "gguf-only-on-llamacpp" or not methods:
        return rej
    names = ", ".join(methods)
    return Rejection(rej.engine, names, f"{names} on {facts.engine_label(rej.engine)}: {rej.reason}", None, None,
                     rej.rule)


def _pinned_workload(workload: Workload, max_model_len: int | None) -> Workload:
    """A pinned --max-model-len is the context every request must reach. (A pinned --max-num-seqs does not
    change the workload: it caps the requests run at once, and the rest queue.)"""
    if max_model_len is None:
        return workload
    return replace(workload, max_model_len=max_model_len)


def _cfg_label(e: Estimate) -> str:
    if e.engine == "llamacpp":
        extra = f" on {e.gpus} GPUs" if e.gpus > 1 else ""
        extra += f" -ngl {e.n_gpu_layers}" if e.n_gpu_layers is not None else ""
        kv = f" kv={e.kv_cache_dtype}" if e.kv_cache_dtype != "f16" else ""
        return f"{e.method} on llama.cpp{extra}{kv}"
    kv = f" kv={e.kv_cache_dtype}" if e.kv_cache_dtype not in ("auto", "f16") else ""
    par = f" TP={e.tp}" + (f" PP={e.pp}" if e.pp > 1 else "")
    return f"{e.method} on {facts.engine_label(e.engine)}{par}{kv}"


def _candidate(e: Estimate, checkpoint: Checkpoint | None) -> Candidate:
    return Candidate(**{f.name: getattr(e, f.name) for f in fields(e)}, checkpoint=checkpoint)


def why_chosen(ranked: list[Estimate], workload: Workload, floor: float, floor_from: str) -> list[str]:
    if not ranked:
        return ["no configuration fits, meets the SLOs and the quality floor; see the rejections"]
    best = ranked[0]
    out = [f"{_cfg_label(best)} is the best of {len(ranked)} feasible configuration(s) for objective "
           f"'{workload.objective}'"]
    if len(ranked) > 1:
        second = ranked[1]
        sc = scores([best, second], workload.objective, workload.osl)
        if sc[0] != 0 and sc[1] != sc[0]:
            out.append(f"runner-up {_cfg_label(second)} scores {abs(sc[1] / sc[0] - 1) * 100:.0f}% worse")
        else:
            out.append(f"runner-up {_cfg_label(second)} ties; the simpler plan wins")
    out.append(f"regime at concurrency {best.concurrency}: {best.regime}"
               + (f" (crossover batch B* = {best.crossover_batch:.0f} for {best.method} on {best.gpu})"
                  if best.crossover_batch else ""))
    if best.ppl_delta is None:
        out.append("quality not measured (no perplexity figure); no quality floor was set")
    else:
        out.append(f"quality +{best.ppl_delta:.3f} ppl within the {floor:g} floor ({floor_from})")
    return out


def _validate_parallel_pins(device, tp: int | None, pp: int | None) -> None:
    """A TP/PP pin the node cannot host is the user's error, not a plan without that pin."""
    gpus = device.count if device.kind == "cuda" else 0
    if tp and tp > 1 and tp > gpus:
        raise RuleError(f"TP={tp} needs {tp} GPUs, this node has {gpus}" + ("" if gpus else " (no CUDA GPU)"))
    if pp and pp > max(1, device.nodes):
        raise RuleError(f"PP={pp} spans {pp} nodes, {max(1, device.nodes)} given (--nodes)")


def _validate_pins(engine: str | None, method: str | None, kv: str | None) -> None:
    if engine is not None and engine not in cands.ENGINES:
        raise RuleError(f"unknown engine {engine!r}; choose one of {', '.join(cands.ENGINES)}")
    if method is not None and method not in facts.methods():
        raise RuleError(f"unknown method {method!r}; choose one of {', '.join(facts.methods())}")
    if kv is not None and kv not in facts.kv_dtype_bytes():
        raise RuleError(f"unknown KV-cache dtype {kv!r}; choose one of {', '.join(facts.kv_dtype_bytes())}")


def estimate(model: ModelSpec, node: Node, workload: Workload | None = None, *, engine: str, method: str,
             tp: int = 1, pp: int = 1, kv_cache_dtype: str | None = None, n_gpu_layers: int | None = None,
             calibration: Calibration | None = None) -> Estimate:
    """Evaluate one fixed configuration; RuleError (with the rule's reason) when the rules rule it out."""
    workload = workload or Workload()
    _validate_pins(engine, method, kv_cache_dtype)
    device = device_of(node)
    kv = kv_cache_dtype or ("f16" if engine == "llamacpp" else "auto")
    if engine == "llamacpp":
        gpus = max(1, tp * pp) if device.kind == "cuda" else 1
        if device.kind == "cuda" and gpus > device.count:
            raise RuleError(f"{gpus} GPUs asked, this node has {device.count}")
        cfg = Config(engine, method, 1, 1, kv, n_gpu_layers, gpus)
        if device.kind == "cuda" and n_gpu_layers is None:
            # As many layers on the GPU(s) as leave room for one request's KV: the slots (-np) the rest of
            # the KV holds run at once, the other requests queue (moving layers to the CPU is slower).
            cfg = Config(engine, method, 1, 1, kv, cands.llamacpp_layers(model, method, device, gpus, workload, kv, 1),
                         gpus)
    else:
        cfg = Config(engine, method, tp, pp, kv)
    rej = cands.gate(cfg, model, device)  # TP/PP against the node: candidates.gate's tp-gpus / pp-nodes rules
    if rej is not None:
        raise RuleError(rej.reason)
    try:
        return cands.evaluate(cfg, model, device, workload, calibration or default_calibration())
    except UnknownSpeed as exc:
        raise InputError(str(exc)) from None
