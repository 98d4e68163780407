"""Candidates: enumerate engine x method x TP x PP x KV dtype (x llama.cpp offload), gate them with the
rules, and evaluate each one (memory, speed, quality, cost) into an `Estimate`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

from autoquant.engines.compat import compat
from autoquant.planner import facts, memory, perf, quality, usefulness
from autoquant.planner.calibration import Calibration
from autoquant.planner.facts import Facts
from autoquant.planner.hardware import Device
from autoquant.records import Estimate, Memory, ModelSpec, QuantSpec, Rejection, Workload

TP_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True)
class Config:
    engine: str
    method: str
    tp: int = 1
    pp: int = 1
    kv_cache_dtype: str = "auto"
    n_gpu_layers: int | None = None  # llama.cpp: None = all layers on the GPU(s) (or none on CPU)
    gpus: int = 1  # llama.cpp layer split over this many GPUs
    dp: int = 1  # replicas of the TP x PP group in one server (engines.yaml data_parallel)
    replicas: int = 1  # independent servers, each on its own node(s), sharing the traffic (behind one Service)

    @property
    def label(self) -> str:
        return self.label_for()

    def label_for(self, fx: Facts | None = None) -> str:
        par = f" TP={self.tp}" + (f" PP={self.pp}" if self.pp > 1 else "") + (f" DP={self.dp}" if self.dp > 1 else "")
        if not facts.engine(self.engine, fx).tensor_parallel:
            par = f" {self.gpus} GPU" if self.gpus > 1 else ""
            if self.n_gpu_layers is not None:
                par += f" -ngl {self.n_gpu_layers}"
        if self.replicas > 1:
            par += f" x{self.replicas} servers"
        return f"{self.method} on {facts.engine_label(self.engine, fx)}{par}"


def all_methods(fx: Facts | None = None) -> list[str]:
    return list(facts.methods(fx))


def _default_kv(engine: str, fx: Facts | None = None) -> str:
    return facts.engine(engine, fx).kv_default


def engine_kv(engine: str, kv_cache_dtype: str, fx: Facts | None = None) -> str:
    """A KV-cache dtype in the engine's own terms (vLLM's `auto` is llama.cpp's `f16`)."""
    return facts.engine(engine, fx).kv_from_vllm.get(kv_cache_dtype, kv_cache_dtype)


def tp_options(device: Device) -> list[int]:
    if device.kind != "cuda":
        return [1]
    return [t for t in TP_SIZES if t <= device.count]


def node_counts(nodes: int) -> list[int]:
    """The node counts one server is planned on: 1, 2, 4, ... and all `nodes` (13 counts at 4096 nodes, so the
    enumeration grows with log N, not N)."""
    counts = [1]
    while counts[-1] * 2 <= nodes:
        counts.append(counts[-1] * 2)
    return counts if counts[-1] == nodes else [*counts, nodes]


def pp_options(device: Device, model: ModelSpec | None = None) -> list[int]:
    """PP sizes: one stage per node over 1, 2, 4, ... nodes (stages beyond the model's layers are not planned)."""
    if device.kind != "cuda":
        return [1]
    layers = model.num_layers if model is not None else device.nodes
    return [p for p in node_counts(device.nodes) if p <= max(1, layers)]


def dp_options(device: Device, tp: int, pp: int, has_dp: bool) -> list[int]:
    """Replica counts for a TP x PP group on one node: 1, and where the engine runs replicas in one server,
    every count that fills the node (2, 4, ... up to GPUs / TP). Replicas across nodes are separate servers
    (replica_options)."""
    if not has_dp or device.kind != "cuda" or pp > 1:
        return [1]
    return [1] + [d for d in range(2, device.count // tp + 1) if device.count % (d * tp) == 0]


def replica_options(config: Config, device: Device, fx: Facts | None = None) -> list[int]:
    """Independent servers over the nodes: one, and as many as the nodes hold (each server on its own
    nodes_spanned nodes). Not --data-parallel-size across nodes: vLLM 0.33 refuses external data parallel for
    dense models, so each replica is its own server and a Service balances them."""
    if device.kind != "cuda" or device.nodes <= 1:
        return [1]
    most = device.nodes // nodes_spanned(config, device, fx)
    return [1, most] if most > 1 else [1]


def nodes_spanned(config: Config, device: Device, fx: Facts | None = None) -> int:
    """The nodes one server of this configuration needs: its GPUs (TP x PP x DP, or llama.cpp's layer split)
    over the GPUs of one node, rounded up."""
    if device.kind != "cuda":
        return 1
    spec = facts.engine(config.engine, fx)
    gpus = config.tp * config.pp * config.dp if spec.tensor_parallel else config.gpus
    return max(1, math.ceil(gpus / max(1, device.count)))


def gate(config: Config, model: ModelSpec, device: Device, subject: QuantSpec | str | None = None,
         fx: Facts | None = None) -> Rejection | None:
    """The first rule that rules this configuration out, as a Rejection; None when it may run. `subject`: the
    checkpoint's QuantSpec when one is known (its format and its own bits/group are then checked too)."""
    spec = facts.engine(config.engine, fx)
    if spec.tensor_parallel and device.kind == "cuda":
        if config.tp > device.count:
            return Rejection(config.engine, config.method,
                             f"TP={config.tp} needs {config.tp} GPUs per node, this node has {device.count}",
                             config.tp, config.pp, "tp-gpus", scope="config")
        # pipeline stages may share a node (vLLM/SGLang/TRT-LLM all take PP inside one); the planner's own
        # enumeration puts one stage per node (pp_options)
        if config.tp * config.pp > device.count * device.nodes:
            return Rejection(config.engine, config.method,
                             f"TP={config.tp} x PP={config.pp} needs {config.tp * config.pp} GPUs, "
                             f"{device.count * device.nodes} here", config.tp, config.pp, "pp-nodes", scope="config")
    spans = nodes_spanned(config, device, fx)
    if spans > 1 and not spec.spans_nodes:
        return Rejection(config.engine, config.method, f"{config.label_for(fx)} spans {spans} nodes: "
                         f"{spec.no_multi_node}", config.tp, config.pp, "multi-node", scope="engine")
    if config.replicas > 1 and config.replicas * spans > max(1, device.nodes):
        return Rejection(config.engine, config.method,
                         f"{config.replicas} servers of {spans} node(s) each need {config.replicas * spans} nodes, "
                         f"{device.nodes} given (--nodes)", config.tp, config.pp, "replica-nodes", scope="config")
    if config.dp > 1:
        if not spec.data_parallel_flag:
            return Rejection(config.engine, config.method, spec.no_data_parallel, config.tp, config.pp,
                             "data-parallel", scope="engine")
        if device.kind != "cuda" or config.dp * config.tp * config.pp > device.count:
            return Rejection(config.engine, config.method,
                             f"DP={config.dp} x TP={config.tp} x PP={config.pp} needs "
                             f"{config.dp * config.tp * config.pp} GPUs on one node, this node has {device.count}",
                             config.tp, config.pp, "dp-gpus", scope="config")
    v = compat(spec, subject or config.method, device, config.tp, model=model, kv_cache_dtype=config.kv_cache_dtype)
    if not v.ok:
        return Rejection(config.engine, config.method, v.reason or "ruled out", config.tp, config.pp, v.rule,
                         scope=v.scope)
    return None


def kernel_of(config: Config, model: ModelSpec, device: Device, subject: QuantSpec | str | None = None,
              fx: Facts | None = None) -> str:
    """The kernel id (kernels.yaml) the engine runs this configuration with."""
    spec = facts.engine(config.engine, fx)
    return compat(spec, subject or config.method, device, config.tp, model=model).kernel


def gpu_price(device: Device, workload: Workload, fx: Facts | None = None) -> float | None:
    if workload.gpu_hour_cost is not None:
        return float(workload.gpu_hour_cost)
    return facts.prices(fx).get(device.key)


def _llamacpp_layer_bytes(model: ModelSpec, method: str, fx: Facts | None = None) -> float:
    return memory.weight_bytes_total(model, method, fx) / (model.num_layers + 1)


def llamacpp_offload(model: ModelSpec, method: str, device: Device, gpus: int, context_tokens: int,
                     kv_bytes: float, concurrency: int, engine: str = "llamacpp", fx: Facts | None = None) -> int | None:
    """-ngl for llama.cpp on CUDA: None when every layer fits on the GPUs, else the layers that fit."""
    reserve = memory.gpu_reserve_gb(facts.engine(engine, fx))
    total = memory.weight_bytes_total(model, method, fx) / 1e9
    kv = memory.kv_bytes_per_request(model, context_tokens, kv_bytes) * concurrency / 1e9
    room = device.memory_gb * gpus - reserve * gpus
    if total + kv <= room:
        return None
    per_layer = _llamacpp_layer_bytes(model, method, fx) / 1e9
    kv_layer = kv / model.num_layers
    layers = int(max(0, room) // (per_layer + kv_layer))
    return min(layers, model.num_layers)


def llamacpp_layers(model: ModelSpec, method: str, device: Device, gpus: int, workload: Workload, kv: str,
                    requests: int, fx: Facts | None = None) -> int | None:
    """-ngl that leaves room on the GPU(s) for the KV cache of `requests` requests at the workload's context
    (None: every layer fits). The planner tries C requests and one; `estimate` takes one (the rest queue)."""
    context = workload.max_model_len or (workload.isl + workload.osl)
    return llamacpp_offload(model, method, device, gpus, context, facts.kv_dtype_bytes(fx).get(kv, 2.0), requests,
                            fx=fx)


def request_contexts(workload: Workload, paged: bool) -> tuple[int, int]:
    """(the longest request the KV cache must hold once, the context one running request takes). On a paged
    engine a request holds its own length: ISL + OSL at its end (the profile's means; a request mid-decode holds
    less, which leaves room for the longer ones); --max-model-len only bounds the longest. On a slot engine each
    request takes a slot of the longest length."""
    typical = workload.isl + workload.osl
    longest = workload.max_model_len or typical
    return longest, (min(typical, longest) if paged else longest)


def running_at_once(concurrency: int | None, kv_room: int, engine_cap: int, max_num_seqs: int | None) -> int:
    """M, the requests the engine runs at once: all C when the KV cache (and a pinned --max-num-seqs / -np /
    max_batch_size) holds them, else as many as it does; the rest queue. `concurrency=None` ("max"): as many
    as fit, up to the engine's default batch cap (vLLM --max-num-seqs, TRT-LLM max_batch_size)."""
    cap = engine_cap if concurrency is None else concurrency
    if max_num_seqs is not None:
        cap = min(cap, max_num_seqs)
    return max(0, min(cap, kv_room))


def evaluate(config: Config, model: ModelSpec, device: Device, workload: Workload,
             calibration: Calibration, max_num_seqs: int | None = None, subject: QuantSpec | str | None = None,
             memory_fraction: float | None = None, fx: Facts | None = None) -> Estimate:
    """Memory, speed, quality and cost of one configuration at the workload's concurrency. When the KV cache
    (or a pinned `max_num_seqs`) holds fewer than the workload's C requests, the engine runs M at a time and
    the rest queue (perf.queued, docs/planner.md "Queueing beyond capacity"). With DP replicas the server
    balances requests over them: each replica runs ceil(C / DP) and the deployment DP times its output. With
    independent servers (config.replicas, one per node or group of nodes) the same arithmetic holds one level up:
    each server takes ceil(C / replicas) of the users, and the deployment adds their output."""
    if config.replicas > 1:
        return _evaluate_replicas(config, model, device, workload, calibration, max_num_seqs, subject,
                                  memory_fraction, fx)
    if config.dp <= 1:
        return _evaluate_group(config, model, device, workload, calibration, max_num_seqs, subject,
                               memory_fraction, fx)
    dp = config.dp
    one = _evaluate_group(replace(config, dp=1), model, device, _split(workload, dp), calibration,
                          max_num_seqs, subject, memory_fraction, fx)
    conc = workload.concurrency if workload.concurrency is not None else one.concurrency * dp
    share = conc / (one.concurrency * dp)  # uneven split: the last replica runs fewer
    out_tps = one.output_tokens_per_s * dp * share
    cost = None if one.cost_per_million_tokens is None else one.cost_per_million_tokens / share
    flag = facts.engine(config.engine, fx).data_parallel_flag
    note = (f"{dp} replicas of TP={config.tp} ({flag} {dp}: one server balances requests over them), "
            f"{one.concurrency} requests each; memory figures are per GPU, max_num_seqs per replica")
    return replace(one, dp=dp, gpus=one.gpus * dp, concurrency=conc, output_tokens_per_s=round(out_tps, 2),
                   output_tokens_per_s_at_max=round(one.output_tokens_per_s_at_max * dp, 2),
                   max_concurrency=one.max_concurrency * dp, max_running=one.max_running * dp,
                   cost_per_million_tokens=None if cost is None else round(cost, 4), notes=[*one.notes, note])


def _split(workload: Workload, n: int) -> Workload:
    each = None if workload.concurrency is None else max(1, math.ceil(workload.concurrency / n))
    return replace(workload, concurrency=each)


def _evaluate_replicas(config: Config, model: ModelSpec, device: Device, workload: Workload,
                       calibration: Calibration, max_num_seqs: int | None, subject: QuantSpec | str | None,
                       memory_fraction: float | None, fx: Facts | None) -> Estimate:
    """`replicas` independent servers, each the configuration without replicas at its share of the users: the
    same TTFT, TPOT and memory per GPU as one server at that share; GPUs, output and capacity times `replicas`."""
    r = config.replicas
    one = evaluate(replace(config, replicas=1), model, device, _split(workload, r), calibration, max_num_seqs,
                   subject, memory_fraction, fx)
    conc = workload.concurrency if workload.concurrency is not None else one.concurrency * r
    share = conc / (one.concurrency * r)  # uneven split: the last server runs fewer
    cost = None if one.cost_per_million_tokens is None else one.cost_per_million_tokens / share
    note = (f"{r} independent servers of {one.gpus} GPU(s) on {one.nodes} node(s) each (one per node"
            + ("" if one.nodes == 1 else " group") + f"), behind one Service, {one.concurrency} requests each; "
            "TTFT/TPOT and memory are one server's, throughput and GPUs all of them")
    return replace(one, replicas=r, gpus=one.gpus * r, concurrency=conc,
                   output_tokens_per_s=round(one.output_tokens_per_s * r * share, 2),
                   output_tokens_per_s_at_max=round(one.output_tokens_per_s_at_max * r, 2),
                   max_concurrency=one.max_concurrency * r, max_running=one.max_running * r,
                   cost_per_million_tokens=None if cost is None else round(cost, 4), notes=[*one.notes, note])


def setup_for(config: Config, model: ModelSpec, device: Device, calibration: Calibration,
              subject: QuantSpec | str | None = None, fx: Facts | None = None) -> perf.Setup:
    """What the speed model needs of one configuration: its kernel's efficiencies on this GPU with the engine's
    fitted factors. An engine with no fitted figures of its own is calibrated as the engine it names
    (engines.yaml calibration_as); per-GPU figures only for GPUs (a CPU node's key names no catalog entry)."""
    spec = facts.engine(config.engine, fx)
    layered = not spec.tensor_parallel
    kernel = kernel_of(config, model, device, subject, fx)
    cal_engine = spec.calibration_as
    gpu = device.key if device.kind != "cpu" else None
    gpu_fraction = 1.0
    if layered and config.n_gpu_layers is not None and device.kind == "cuda":
        gpu_fraction = config.n_gpu_layers / (model.num_layers + 1)
    return perf.Setup(
        model=model, method=config.method, engine=config.engine, device=device,
        tp=1 if layered else config.tp, pp=1 if layered else config.pp,
        kv_bytes=facts.kv_dtype_bytes(fx).get(config.kv_cache_dtype, 2.0),
        eff=calibration.efficiency(kernel, gpu, cal_engine),
        cpu_eff=calibration.efficiency("llamacpp-cpu", None, cal_engine),
        gpu_fraction=gpu_fraction, overhead_ms=calibration.overhead_ms(cal_engine, gpu),
        layer_overhead_us=calibration.layer_overhead_us(cal_engine, gpu),
        math=facts.math_precision(config.method, device.capability, fx), facts=fx,
        decode_factor=calibration.measured.speed_factor(config.engine, config.method, "decode"),
        prefill_factor=calibration.measured.speed_factor(config.engine, config.method, "prefill"),
        nodes=1 if layered else nodes_spanned(replace(config, dp=1), device, fx),
    )


def _evaluate_group(config: Config, model: ModelSpec, device: Device, workload: Workload,
                    calibration: Calibration, max_num_seqs: int | None = None,
                    subject: QuantSpec | str | None = None, memory_fraction: float | None = None,
                    fx: Facts | None = None) -> Estimate:
    """One TP x PP group (one replica) at the workload's concurrency."""
    notes: list[str] = list(device.notes)
    kv_bytes = facts.kv_dtype_bytes(fx).get(config.kv_cache_dtype, 2.0)
    engine = config.engine
    spec = facts.engine(engine, fx)
    longest, context = request_contexts(workload, spec.kv_paged)
    layered = not spec.tensor_parallel  # llama.cpp: layers split over GPUs (or offloaded), no TP
    kernel = kernel_of(config, model, device, subject, fx)
    math_p = facts.math_precision(config.method, device.capability, fx)
    gpus = config.gpus if layered else config.tp * config.pp
    mem_tp, mem_pp = (1, max(1, config.gpus)) if layered else (config.tp, config.pp)

    budget = memory.gpu_budget(spec, model, config.method, device, mem_tp, mem_pp, config.n_gpu_layers,
                               memory_fraction, fx)
    kv_tp, kv_pp = (1, 1) if layered else (config.tp, config.pp)
    per_req = memory.kv_bytes_per_request(model, context, kv_bytes, kv_tp, kv_pp)
    per_longest = memory.kv_bytes_per_request(model, longest, kv_bytes, kv_tp, kv_pp)
    if layered and device.kind == "cuda" and config.gpus > 1:
        per_req /= config.gpus
        per_longest /= config.gpus
    # Paged engines: the KV room holds requests at their own length, and the longest must fit once (vLLM checks
    # that max_model_len tokens fit at start-up); slot engines give each request a slot of the longest length.
    max_conc = memory.max_requests(budget.kv_space_gb, per_req, 10**9) \
        if budget.kv_space_gb * 1e9 >= per_longest else 0
    at_max_conc = max(1, running_at_once(None, max_conc, budget.max_num_seqs, max_num_seqs))
    conc = workload.concurrency if workload.concurrency is not None else at_max_conc
    # Feasible when weights + overhead fit and the KV cache holds one request at the needed context;
    # beyond M the engine's scheduler queues (it does not fail).
    running = max(1, running_at_once(conc, max_conc, budget.max_num_seqs, max_num_seqs))
    peak = max((b.concurrency for b in workload.concurrency_distribution), default=0)
    if peak and max_num_seqs is None:  # a traffic profile: admit its peak, not the engine's default cap
        at_max_conc = max(running, min(at_max_conc, peak))
    kv_gb = running * per_req / 1e9
    total = budget.weights_gb + budget.overhead_gb + kv_gb
    fits = budget.kv_space_gb > 0 and max_conc >= 1
    if budget.host_weights_gb > 0:  # llama.cpp partial offload: the rest of the weights live in host RAM
        reserve = memory.host_reserve_gb(spec)
        host = device.host_ram_gb
        if host is None or budget.host_weights_gb + reserve > host:
            fits = False
            notes.append(f"host RAM: {budget.host_weights_gb:.1f} GB of weights stay in RAM, "
                         + ("RAM size unknown" if host is None else f"{host:.1f} GB there"))
    mem = Memory(
        weights_gb=round(budget.weights_gb, 3), kv_cache_gb=round(kv_gb, 3), overhead_gb=round(budget.overhead_gb, 3),
        total_gb=round(total, 3), fits=fits, capacity_gb=round(budget.capacity_gb, 3),
        kv_bytes_per_token=memory.kv_bytes_per_token(model, kv_bytes, kv_tp, kv_pp),
        activations_gb=round(budget.activations_gb, 3), host_weights_gb=round(budget.host_weights_gb, 3),
    )
    mml = memory.max_model_len(model, budget.kv_space_gb, kv_bytes, kv_tp, kv_pp)
    if workload.max_model_len:  # the bound the user (or the traffic profile) gave, if the memory holds it
        mml = min(mml, workload.max_model_len)
    elif not spec.kv_paged and running > 1:  # each slot gets its share of n_ctx
        mml = memory.max_model_len(model, budget.kv_space_gb / running, kv_bytes, kv_tp, kv_pp)

    setup = setup_for(config, model, device, calibration, subject, fx)
    eff = setup.eff
    if spec.calibration_note:
        notes.append(spec.calibration_note)
    notes += calibration.measured.notes(config.engine, config.method)
    if not device.bandwidth_gbps:
        notes.append("no memory bandwidth figure for this device: speed unknown")
    if not device.peak(math_p):
        notes.append(f"no {math_p} compute figure for {device.key}: prefill/TTFT counts memory time only (a lower bound)")
    sp = perf.speed(setup, running, workload.isl, workload.osl, budget.batched_tokens)
    if running < conc:
        sp, wait = perf.queued(sp, conc, running, workload.osl)
        limit = "KV room" if max_num_seqs is None or max_conc < max_num_seqs else "--max-num-seqs"
        notes.append(f"{running} of {conc} requests run at once ({limit}); the rest queue ~{wait:.1f} s "
                     f"(Little's law: TTFT includes the wait, output {sp.output_tps:.0f} tok/s)")
    at_max = perf.speed(setup, at_max_conc, workload.isl, workload.osl, budget.batched_tokens).output_tps \
        if max_conc >= 1 else 0.0
    q = quality.ppl_delta(config.method, model.total_params, model.id, fx)
    if q.ppl_delta is None:
        notes.append(q.source)
    kv_delta = quality.kv_cache_delta(config.kv_cache_dtype, fx)  # None today: quality.yaml has no KV figure
    ppl = q.ppl_delta + kv_delta if q.ppl_delta is not None and kv_delta else q.ppl_delta
    price = gpu_price(device, workload, fx)
    cost = None
    if price is not None and sp.output_tps > 0:
        cost = max(1, gpus) * price / (sp.output_tps * 3600) * 1e6
    bpw = memory.bits_per_weight(config.method, model, fx)
    if layered and config.n_gpu_layers is not None:
        notes.append(f"partial offload: {config.n_gpu_layers} of {model.num_layers} layers on GPU, "
                     f"{budget.host_weights_gb:.1f} GB of weights in host RAM")
    spans = nodes_spanned(config, device, fx)
    if spans > 1:
        notes.append(f"one server over {spans} nodes: {min(config.pp, spans) - 1} of its {config.pp - 1} PP "
                     f"hop(s) cross the fabric, {device.fabric.describe()}")
    return Estimate(
        engine=engine, method=config.method, tp=config.tp, pp=config.pp, memory=mem,
        max_concurrency=max_conc, concurrency=conc, ttft_ms=round(sp.ttft_ms, 3), tpot_ms=round(sp.tpot_ms, 3),
        output_tokens_per_s=round(sp.output_tps, 2), per_request_tokens_per_s=round(sp.per_request_tps, 2),
        ppl_delta=ppl, cost_per_million_tokens=None if cost is None else round(cost, 4),
        regime=sp.regime, kernel=kernel, kv_cache_dtype=config.kv_cache_dtype, max_model_len=mml,
        max_num_seqs=running, gpus=max(1, gpus) if device.kind == "cuda" else (1 if device.kind == "apple" else 0),
        gpu=device.key, n_gpu_layers=config.n_gpu_layers if layered else None,
        output_tokens_per_s_at_max=round(at_max, 2), max_running=at_max_conc if max_conc >= 1 else 0,
        ppl_delta_uncertainty=q.uncertainty,
        crossover_batch=None if (c := perf.crossover_batch(device, math_p, bpw, eff)) is None else round(c, 1),
        notes=notes, ppl_source=q.source, nodes=spans,
        warnings=usefulness.warnings(sp.ttft_ms, sp.per_request_tps, model, spec.calibration_as,
                                     device.key if device.kind != "cpu" else None, workload.isl, conc, calibration, fx),
    )


def enumerate_configs(model: ModelSpec, device: Device, workload: Workload,
                      engine: str | None = None, method: str | None = None, tp: int | None = None,
                      pp: int | None = None, kv_cache_dtype: str | None = None,
                      fx: Facts | None = None, dp: int | None = None) -> Iterator[Config]:
    """Every configuration to consider (pins narrow the space). KV-cache fp8/q8_0 is a separate
    candidate only where the default KV dtype cannot hold the workload (see docs/planner.md)."""
    engines = [engine] if engine else list(facts.engine_ids(fx))
    methods = [method] if method else all_methods(fx)
    for eng in engines:
        kvs = [engine_kv(eng, kv_cache_dtype, fx)] if kv_cache_dtype else [_default_kv(eng, fx)]
        for meth in methods:
            if not facts.engine(eng, fx).tensor_parallel:
                if not meth.startswith("gguf-"):
                    yield Config(eng, meth, kv_cache_dtype=kvs[0])
                    continue
                yield from _layered_configs(eng, model, device, workload, meth, kvs, tp, fx)
                continue
            tps = [tp] if tp else tp_options(device)
            pps = [pp] if pp else pp_options(device, model)
            has_dp = facts.engine(eng, fx).data_parallel_flag is not None
            for t in tps:
                for p in pps:
                    for d in [dp] if dp else dp_options(device, t, p, has_dp):
                        for r in replica_options(Config(eng, meth, t, p, dp=d), device, fx):
                            for kv in kvs:
                                yield Config(eng, meth, t, p, kv, dp=d, replicas=r)


def _layered_configs(eng: str, model: ModelSpec, device: Device, workload: Workload, meth: str, kvs: list[str],
                     tp: int | None = None, fx: Facts | None = None) -> Iterator[Config]:
    conc = workload.concurrency or 1
    for kv in kvs:
        if device.kind != "cuda":
            yield Config(eng, meth, kv_cache_dtype=kv)
            continue
        # a TP pin means "this many GPUs" to llama.cpp (it splits the model across them)
        for g in ([tp] if tp else sorted({1, device.count})):
            # Layers on the GPU(s) for the KV of all C requests, and for one: with fewer slots (-np) the
            # rest queue, which may beat moving layers to the CPU; both are candidates, the ranking decides.
            ngls = [llamacpp_layers(model, meth, device, g, workload, kv, conc, fx)]
            if conc > 1:
                ngls.append(llamacpp_layers(model, meth, device, g, workload, kv, 1, fx))
            for ngl in dict.fromkeys(ngls):
                cfg = Config(eng, meth, kv_cache_dtype=kv, n_gpu_layers=ngl, gpus=g)
                for r in replica_options(cfg, device, fx):
                    yield replace(cfg, replicas=r)


def fallback_kv(config: Config, fx: Facts | None = None) -> str | None:
    """The engine's quantized KV cache, tried when its default cannot hold the workload."""
    spec = facts.engine(config.engine, fx)
    return spec.kv_fallback if config.kv_cache_dtype == spec.kv_default else None

