"""Speed model: a roofline per engine step, with continuous batching, TP all-reduces and PP stages.

One engine step processes B decode tokens plus P prefill tokens (continuous batching mixes them):
    time = max(bytes / (BW x eff_decode), flops / (peak x eff_prefill)) + TP communication + step overhead
bytes = weights read once per step (MoE: only the experts the step's tokens touch) + the KV cache the
decode tokens attend over; flops = 2 x active params x tokens + attention. In steady state at
concurrency C there are two kinds of step: pure decode steps of C tokens, and steps that carry new
requests' prefill beside the others' decodes; TTFT is the wait for the step in progress plus the prefill
step, TPOT one over the steps per second of the mix (speed).
Derivations and the numbers behind them: docs/planner.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from autoquant.planner import facts, memory
from autoquant.planner.calibration import Efficiency
from autoquant.planner.facts import Facts
from autoquant.planner.hardware import Device
from autoquant.records import ModelSpec


@dataclass(frozen=True)
class Setup:
    """Everything a step-time evaluation needs that does not change with the batch."""

    model: ModelSpec
    method: str
    engine: str
    device: Device
    tp: int
    pp: int
    kv_bytes: float  # bytes per KV element
    eff: Efficiency
    cpu_eff: Efficiency | None = None  # llama.cpp hybrid: the CPU part
    gpu_fraction: float = 1.0  # llama.cpp hybrid: share of layers on the GPU
    overhead_ms: float = 0.0
    layer_overhead_us: float = 0.0  # fixed time per layer per step (launch gaps, small kernels): does not shrink with TP
    math: str = "fp16"
    facts: Facts | None = None  # the planner's facts (None: the packaged ones)
    # this node's measured speed / the model's (planner.measured): decode steps and steps that carry prefill
    decode_factor: float = 1.0
    prefill_factor: float = 1.0
    nodes: int = 1  # nodes the TP x PP group spans: nodes - 1 of its PP hops cross the fabric (device.fabric)


@dataclass(frozen=True)
class Step:
    seconds: float
    mem_s: float
    comp_s: float
    comm_s: float


def _moe_layers_and_expert(model: ModelSpec) -> tuple[int, int]:
    """(number of MoE layers, parameters per routed expert)."""
    if not model.is_moe or not model.num_experts or not model.experts_per_token:
        return 0, 0
    expert = 3 * model.hidden_size * (model.moe_intermediate_size or model.intermediate_size)
    spare = model.total_params - model.active_params
    per_layer = (model.num_experts - model.experts_per_token) * expert
    return (round(spare / per_layer) if per_layer > 0 else 0), expert


def expected_experts(num_experts: int, top_k: int, tokens: float) -> float:
    """Distinct experts B tokens touch per layer, routing independent and uniform: E(1 - (1 - k/E)^B)."""
    if tokens <= 0:
        return 0.0
    return num_experts * (1 - (1 - top_k / num_experts) ** tokens)


def weight_bytes_read(s: Setup, tokens: float) -> float:
    """Weight bytes one GPU reads in a step of `tokens` tokens (embedding rows are negligible)."""
    m = s.model
    per_gpu = memory.weight_bytes_per_gpu(m, s.method, s.tp, s.pp, s.facts)
    bpw = memory.bits_per_weight(s.method, m, s.facts)
    keep16 = "embedding" in facts.method(s.method, s.facts).get("keeps_16bit", [])
    embed_bytes = 0.0 if m.tie_word_embeddings else m.embedding_params * (2.0 if keep16 else bpw / 8)
    per_gpu -= embed_bytes / (s.tp * s.pp)
    layers, expert = _moe_layers_and_expert(m)
    if layers and expert:
        all_experts = layers * (m.num_experts or 0) * expert * bpw / 8 / (s.tp * s.pp)
        touched = expected_experts(m.num_experts or 0, m.experts_per_token or 0, tokens) / (m.num_experts or 1)
        per_gpu -= all_experts * (1 - touched)
    return max(per_gpu, 0.0)


def compute_params(m: ModelSpec) -> tuple[float, float]:
    """(body parameters each token multiplies through, lm_head parameters)."""
    logits = m.vocab_size * m.hidden_size
    body = m.active_params - m.embedding_params - m.lm_head_params
    return float(body), float(logits)


def attention_flops_per_token(m: ModelSpec, context: float) -> float:
    """QK^T and PV for one query token over `context` keys: 4 x layers x context x heads x head_dim."""
    head = m.head_dim
    if m.is_mla:
        head = (m.kv_lora_rank or 0) + (m.qk_rope_head_dim or 0)  # absorbed MLA attends over the latent
    return 4.0 * m.num_layers * context * m.num_heads * head


def _link_gbps(s: Setup) -> tuple[float, float]:
    """(per-direction GB/s for TP all-reduce, per-call latency in seconds)."""
    comm = facts.overheads(s.facts)["communication"]
    eff = float(comm["link_efficiency"])
    if s.device.nvlink_gbps and s.tp <= s.device.nvlink_domain:
        return s.device.nvlink_gbps / 2 * eff, float(comm["allreduce_latency_us"]) * 1e-6
    if not s.device.pcie_gbps:
        raise UnknownSpeed(f"speed unknown at TP={s.tp}: the GPU catalog gives {s.device.key} neither NVLink nor a "
                           "PCIe bandwidth (pcie_gbps / pcie_gen) for the all-reduces")
    return s.device.pcie_gbps / 2 * eff, float(comm["allreduce_latency_us_pcie"]) * 1e-6


def comm_seconds(s: Setup, tokens: float) -> float:
    """Two all-reduces per layer per step (after attention and after the MLP), ring algorithm."""
    if s.tp <= 1 or tokens <= 0:
        return 0.0
    gbps, latency = _link_gbps(s)
    msg = tokens * s.model.hidden_size * 2.0
    per_call = latency + 2 * (s.tp - 1) / s.tp * msg / (gbps * 1e9)
    return 2 * (s.model.num_layers / s.pp) * per_call


def _roofline(weight_bytes: float, kv_bytes: float, flops: float, bw_gbps: float | None,
              peak_tflops: float | None, eff: Efficiency, attn_flops: float = 0.0,
              attn_peak_tflops: float | None = None, prefill_share: float = 1.0) -> tuple[float, float, float]:
    """(memory time, compute time, busy time) of one step. The GEMMs (weights vs their FLOPs) and the attention
    kernels (KV-cache reads vs attention FLOPs) run one after the other, so each is its own roofline and the
    step is their sum: a compute-bound prefill GEMM does not hide the decode tokens' KV reads. Attention FLOPs
    run at the attention kernel's efficiency (FlashAttention) of the 16-bit peak; where the engine's figure is
    whole-model (llama.cpp pp512, `attention_compute` None) the caller has put them into `flops`. On top comes
    the engine's non-GEMM work on the prompt tokens (norms, activations, rope, quantize/dequantize, in
    compute-bound steps): their GEMM time x (1/compute_factor - 1), `prefill_share` being the prompt tokens'
    share of the step's GEMM work. A decode token's non-GEMM work is memory traffic the bandwidth efficiency
    and the step overhead already hold. docs/planner.md 3."""
    bw = bw_gbps * 1e9 * eff.decode_bandwidth if bw_gbps else 0.0
    w_mem = weight_bytes / bw if bw else 0.0
    kv_mem = kv_bytes / bw if bw else 0.0
    gemm = flops / (peak_tflops * 1e12 * eff.prefill_compute) if peak_tflops else 0.0
    attn = attn_flops / (attn_peak_tflops * 1e12 * eff.attention_compute) \
        if attn_flops and attn_peak_tflops and eff.attention_compute else 0.0
    busy = max(w_mem, gemm) + max(kv_mem, attn) + gemm * prefill_share * (1 / eff.compute_factor - 1)
    return w_mem + kv_mem, gemm + attn, busy


def batch_slowdown(points: tuple[tuple[float, float], ...], batch: float) -> float:
    """Weight-streaming time of a B-slot decode step / that of a 1-slot step, B / speedup(B), from an engine's
    measured batched-decode points (interpolated in log B; beyond the last point its B/speedup holds).
    1.0 when no points are known or B <= 1."""
    if not points or batch <= 1:
        return 1.0
    pts = [(1.0, 1.0), *[p for p in points if p[0] > 1]]
    for (b0, s0), (b1, s1) in zip(pts, pts[1:], strict=False):
        if batch <= b1:
            t = math.log(batch / b0) / math.log(b1 / b0)
            return batch / math.exp(math.log(s0) + t * (math.log(s1) - math.log(s0)))
    b, sp = pts[-1]
    return b / sp


def stage_step(s: Setup, decode_tokens: float, decode_context: float, prefill_tokens: float,
               prefill_context: float) -> Step:
    """Time of one step on one PP stage (all of its TP ranks in parallel)."""
    if not s.device.bandwidth_gbps:
        raise UnknownSpeed(f"speed unknown: no memory bandwidth figure for {s.device.label or s.device.key} "
                           "(run `autoquant probe` on the machine to measure it)")
    m = s.model
    shard = s.tp * s.pp
    tokens = decode_tokens + prefill_tokens
    kv = memory.kv_bytes_per_request(m, int(max(decode_context, 1)), s.kv_bytes, s.tp, s.pp)
    weights = weight_bytes_read(s, tokens) * batch_slowdown(s.eff.batch_speedup, decode_tokens)
    kv_read = decode_tokens * kv
    body, logits = compute_params(m)
    flops = (2 * body * tokens + 2 * logits * decode_tokens) / shard
    attn = (decode_tokens * attention_flops_per_token(m, decode_context)
            + prefill_tokens * attention_flops_per_token(m, prefill_context / 2)) / shard
    if s.eff.attention_compute is None:  # whole-model figure (llama.cpp): attention is inside it
        flops, attn = flops + attn, 0.0
    peak = s.device.peak(s.math)
    attn_peak = s.device.peak("fp16")  # attention runs in 16-bit whatever the weights' format
    share = prefill_tokens / tokens if tokens > 0 else 0.0
    if s.gpu_fraction >= 1.0 or s.device.kind != "cuda":
        mem, comp, busy = _roofline(weights, kv_read, flops, s.device.bandwidth_gbps, peak, s.eff, attn, attn_peak,
                                    share)
    else:  # llama.cpp partial offload: GPU layers, then CPU layers, one after the other
        f = s.gpu_fraction
        gm, gc, gb = _roofline(weights * f, kv_read * f, flops * f, s.device.bandwidth_gbps, peak, s.eff, attn * f,
                               attn_peak)
        if not s.device.cpu.memory_bandwidth_gbps:
            raise UnknownSpeed("speed unknown: the CPU layers of a partial offload need the CPU's memory "
                               "bandwidth (run `autoquant probe` on the machine to measure it)")
        cpu_peak = (s.device.cpu.matmul_gflops or 0) / 1000 or None
        cm, cc, cb = _roofline(weights * (1 - f), kv_read * (1 - f), flops * (1 - f),
                               s.device.cpu.memory_bandwidth_gbps, cpu_peak, s.cpu_eff or s.eff)
        mem, comp, busy = gm + cm, gc + cc, gb + cb
    comm = comm_seconds(s, tokens)
    fixed = s.overhead_ms / 1000 + s.layer_overhead_us * m.num_layers / s.pp / 1e6
    return Step(busy + comm + fixed, mem, comp, comm)


def pipeline_step(s: Setup, decode_tokens: float, decode_context: float, prefill_tokens: float,
                  prefill_context: float, requests: float | None = None) -> Step:
    """Latency of one step through all PP stages. With PP > 1 the batch is split into microbatches, at most
    one per stage and at least one request each: a lone request (one prompt, one decode token) cannot be
    split, so it crosses the stages one after another with its whole batch, and PP then adds memory, not
    speed (vLLM schedules a request's next chunk only after the last one returned). `requests`: the requests
    in the step (default: the decode tokens, plus one prompt)."""
    if s.pp <= 1:
        return stage_step(s, decode_tokens, decode_context, prefill_tokens, prefill_context)
    if requests is None:
        requests = decode_tokens + (1.0 if prefill_tokens > 0 else 0.0)
    m = max(1, min(s.pp, int(requests)))  # microbatches in flight
    micro = stage_step(s, decode_tokens / m, decode_context, prefill_tokens / m, prefill_context)
    hops = pp_hops_seconds(s, (decode_tokens + prefill_tokens) / m)
    total = s.pp * micro.seconds + hops
    return Step(total, micro.mem_s * s.pp, micro.comp_s * s.pp, micro.comm_s * s.pp + hops)


def hop_seconds(s: Setup, tokens: float, across_nodes: bool) -> float:
    """One PP hop of a micro-batch of `tokens`: latency + the hidden states and residual (overheads.yaml
    pp_hop_tensors x tokens x hidden x 2 B), sent as TP slices, one per rank on its own link. Across nodes: the
    fabric's per-node GB/s over its rails, min(TP, rails) of them in use; inside a node: each rank's NVLink (or
    PCIe) at the link efficiency, with the all-reduce latency."""
    comm = facts.overheads(s.facts)["communication"]
    nbytes = float(comm["pp_hop_tensors"]) * tokens * s.model.hidden_size * 2.0
    if across_nodes:
        f = s.device.fabric
        rate = f.node_gbps * min(s.tp, f.rails) / f.rails
        return f.latency_us * 1e-6 + nbytes / (rate * 1e9)
    link, latency = _link_gbps(replace(s, tp=1)) if (s.device.nvlink_gbps or s.device.pcie_gbps) \
        else (0.0, 0.0)
    return latency + (nbytes / (link * s.tp * 1e9) if link else 0.0)


def pp_hops_seconds(s: Setup, tokens: float) -> float:
    """The PP - 1 hops of one micro-batch through the pipeline: nodes - 1 of them between nodes (stages packed
    onto nodes in order), the rest inside a node."""
    across = max(0, min(s.pp - 1, s.nodes - 1))
    inside = s.pp - 1 - across
    return across * hop_seconds(s, tokens, True) + (inside * hop_seconds(s, tokens, False) if inside else 0.0)


class UnknownSpeed(ValueError):
    """The device figures needed to time a step are missing."""


@dataclass(frozen=True)
class Speed:
    ttft_ms: float
    tpot_ms: float
    per_request_tps: float
    output_tps: float
    regime: str
    compute_to_memory: float


def regime_of(ratio: float, fx: Facts | None = None) -> str:
    """bandwidth_bound when compute is under half the memory time, compute_bound when it exceeds it
    (thresholds: overheads.yaml `regime`, autoquant's policy)."""
    r = facts.overheads(fx)["regime"]
    if ratio < float(r["bandwidth_bound_below"]):
        return "bandwidth_bound"
    if ratio >= float(r["compute_bound_from"]):
        return "compute_bound"
    return "transitional"


def speed(s: Setup, concurrency: int, isl: int, osl: int, batched_tokens: int) -> Speed:
    """Steady state of a closed loop of C users sending ISL-in / OSL-out requests to a continuous-batching
    engine, with two kinds of engine step: decode steps (C tokens) and the steps that carry new requests'
    prefill beside the running decodes (chunked prefill within the step token budget: vLLM
    --max-num-batched-tokens, TRT-LLM --max_num_tokens, SGLang --chunked-prefill-size).

    Requests arrive at rate lambda = C / cycle (cycle = TTFT + (OSL - 1) x TPOT: Little's law). A new request
    waits for the step in progress (mean residual of the step mix), then its prefill runs in one step (or
    ceil(tokens / budget) chunks) together with the prompts of the others that arrived during the same step,
    k = 1 + lambda x (mean length of the step it arrived in), and at least enough that every prompt of the
    loop is served within one request's OSL - 1 decode steps (beyond that prompts queue: the wait is then half
    the interval between prefill steps). A running request gets one token per step, the others' prefill steps
    included, so TPOT = (others' prefill steps x their time + decode steps x theirs) / (OSL - 1). Solved by
    fixed-point iteration from lambda = C / (OSL x decode step). docs/planner.md "TTFT under load"."""
    c = max(1, concurrency)
    osl = max(1, osl)
    isl = max(1, isl)
    ctx = isl + osl / 2
    budget = batched_tokens or isl * c
    decode = pipeline_step(s, c, ctx, 0.0, isl)
    t_d = decode.seconds / s.decode_factor
    if t_d <= 0:
        raise UnknownSpeed("speed unknown: no memory bandwidth figure for the device that runs it "
                           "(for CPU layers, run `autoquant probe` on the machine to measure it)")
    if c == 1:  # one user: nothing else runs while it prefills, nothing else prefills while it decodes
        chunks = max(1, math.ceil(isl / budget))
        prefill = pipeline_step(s, 0, ctx, isl / chunks, isl)
        ttft, tpot, phi = chunks * prefill.seconds / s.prefill_factor, t_d, 0.0
        cycle = ttft + (osl - 1) * tpot
    else:
        lam = c / (osl * t_d)
        resid, chunks, k = t_d / 2, 1, 1.0
        for _ in range(16):
            others = lam * (c - 1) / c  # the other users' arrival rate
            # prompts that share a prefill step: those that arrived during the same step, and at least enough
            # that every user's prompt is served within the others' OSL - 1 steps (beyond that they queue)
            k_min = c * chunks / (osl - 1 + chunks)
            k = min(float(c), max(1 + 2 * others * resid, k_min))
            chunks = max(1, math.ceil(k * isl / max(1.0, budget - (c - k))))
            prefill = pipeline_step(s, c - k, ctx, k * isl / chunks, isl, requests=c)
            t_p = prefill.seconds / s.prefill_factor
            others_steps = min(osl - 1.0, (c / k - 1) * chunks)  # the others' prefill steps in my decode
            tpot = (others_steps * t_p + (osl - 1 - others_steps) * t_d) / (osl - 1) if osl > 1 else t_d
            phi = others_steps / (osl - 1) if osl > 1 else 0.0
            # mean remaining time of the step in progress at a random arrival: E[T^2] / (2 E[T]) over the mix
            resid = ((1 - phi) * t_d ** 2 + phi * t_p ** 2) / (2 * ((1 - phi) * t_d + phi * t_p))
            interval = k * (chunks * t_p + (osl - 1) * tpot) / c  # between prefill groups
            wait = max(resid, interval / 2) if k_min >= 1 + 2 * others * resid else resid
            ttft = wait + chunks * t_p
            cycle = ttft + (osl - 1) * tpot
            lam = c / cycle
    if tpot <= 0 or ttft <= 0 or cycle <= 0:
        raise UnknownSpeed("speed unknown: no memory bandwidth figure for the device that runs it "
                           "(for CPU layers, run `autoquant probe` on the machine to measure it)")
    mem = (1 - phi) * decode.mem_s + phi * prefill.mem_s
    comp = (1 - phi) * decode.comp_s + phi * prefill.comp_s
    ratio = comp / mem if mem > 0 else float("inf")
    return Speed(ttft * 1000, tpot * 1000, 1 / tpot, c * osl / cycle, regime_of(ratio, s.facts), ratio)


def crossover_batch(device: Device, math_precision: str, bpw: float, eff: Efficiency) -> float | None:
    """B* where a decode step's GEMM time equals its weight-read time:
    2 N B / (peak eff_c) = N (bpw/8) / (BW eff_b)  =>  B* = (peak eff_c) / (BW eff_b) x (bpw/8) / 2."""
    peak = device.peak(math_precision)
    if not peak or not device.bandwidth_gbps:
        return None
    return (peak * 1e12 * eff.prefill_compute) / (device.bandwidth_gbps * 1e9 * eff.decode_bandwidth) * (bpw / 8) / 2


def queued(sp: Speed, concurrency: int, running: int, osl: int) -> tuple[Speed, float]:
    """(speed, wait in s) of a closed loop of `concurrency` users on an engine that runs `running` requests at
    once and queues the rest (vLLM max_num_seqs / KV blocks, TRT-LLM max_batch_size, llama.cpp -np slots).

    `sp` is the steady state at batch M = running. A request's service time is T = TTFT_M + OSL x TPOT_M;
    Little's law gives the throughput X = M / T requests/s, and a closed loop of C users cycles every C / X,
    so each waits W = C / X - T = T x (C/M - 1) before it starts: TTFT = TTFT_M + W, TPOT = TPOT_M."""
    if running <= 0 or concurrency <= running:
        return sp, 0.0
    service = sp.ttft_ms / 1000 + max(1, osl) * sp.tpot_ms / 1000
    requests_per_s = running / service
    wait = service * (concurrency / running - 1)
    return Speed(ttft_ms=sp.ttft_ms + wait * 1000, tpot_ms=sp.tpot_ms, per_request_tps=sp.per_request_tps,
                 output_tps=requests_per_s * max(1, osl), regime=sp.regime,
                 compute_to_memory=sp.compute_to_memory), wait
