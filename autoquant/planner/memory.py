"""Memory model: weights with their real bits per weight, KV cache per token, overheads, capacity.

Per GPU (GB = 1e9 bytes) under tensor parallel (TP) and pipeline parallel (PP); for llama.cpp on CPU,
host RAM. The engine's own budget rule is applied: vLLM reserves `gpu_memory_utilization` of the
device for weights + activations + graphs + KV; TRT-LLM gives the KV cache a fraction of what is
free after the weights; llama.cpp keeps `--fit-target` MiB free per GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoquant.engines.shapes import kv_heads_per_gpu
from autoquant.engines.spec import EngineSpec
from autoquant.planner import facts
from autoquant.planner.facts import Facts
from autoquant.planner.hardware import Device
from autoquant.records import ModelSpec

GIB_GB = facts.GIB_GB


def bits_per_weight(method: str, model: ModelSpec, fx: Facts | None = None) -> float:
    """Stored bits per quantized weight, scales and zero points included (GGUF: whole-model measured bpw)."""
    m = facts.method(method, fx)
    if "bpw" in m:
        return float(m["bpw"])
    bits = float(m.get("bits", 16))
    group = m.get("group")
    if group is None:
        return bits
    width = model.hidden_size if group == "channel" else float(group)
    return bits + (float(m.get("scale_bits", 0)) + float(m.get("zero_bits", 0))) / width


def sixteen_bit_params(model: ModelSpec, method: str, fx: Facts | None = None) -> int:
    """Parameters the method leaves in 16-bit (embedding table, lm_head)."""
    keep = facts.method(method, fx).get("keeps_16bit", [])
    n = 0
    if "embedding" in keep:
        n += model.embedding_params
    if "lm_head" in keep:
        n += model.lm_head_params
    return n


def weight_bytes_total(model: ModelSpec, method: str, fx: Facts | None = None) -> float:
    """All weights of the model stored in `method`."""
    m = facts.method(method, fx)
    if "bpw" in m:  # GGUF: the measured whole-model figure already covers the higher-precision tensors
        return model.total_params * float(m["bpw"]) / 8
    keep = sixteen_bit_params(model, method, fx)
    quantized = model.total_params - keep
    return quantized * bits_per_weight(method, model, fx) / 8 + keep * 2.0


def weight_bytes_per_gpu(model: ModelSpec, method: str, tp: int, pp: int, fx: Facts | None = None) -> float:
    """Weights on the busiest GPU: layers split over PP stages, each split over TP; the first stage
    holds the embedding table and the last the lm_head (vLLM shards both over TP)."""
    m = facts.method(method, fx)
    if pp <= 1:
        return weight_bytes_total(model, method, fx) / tp
    total = weight_bytes_total(model, method, fx)
    embed_bits = 16.0 if "embedding" in m.get("keeps_16bit", []) else bits_per_weight(method, model, fx)
    edge = max(model.embedding_params, model.lm_head_params) * embed_bits / 8
    body = total - (model.embedding_params + model.lm_head_params) * embed_bits / 8
    return (body / pp + edge) / tp


def kv_bytes_per_token(model: ModelSpec, kv_bytes: float, tp: int = 1, pp: int = 1,
                       full_layers_only: bool = False) -> float:
    """KV-cache bytes one token adds on one GPU (all layers of its stage). MLA stores one latent of
    kv_lora_rank + rope per layer, replicated on every TP rank."""
    layers = model.num_layers
    if full_layers_only:
        layers -= model.sliding_window_layers
    per_stage = layers / pp
    if model.is_mla:
        return per_stage * ((model.kv_lora_rank or 0) + (model.qk_rope_head_dim or 0)) * kv_bytes
    return 2 * per_stage * kv_heads_per_gpu(model, tp) * model.head_dim * kv_bytes


def kv_bytes_per_request(model: ModelSpec, context: int, kv_bytes: float, tp: int = 1, pp: int = 1) -> float:
    """KV bytes of one request of `context` tokens on one GPU; sliding-window layers keep the window only."""
    sw = model.sliding_window_layers if model.sliding_window else 0
    if not sw:
        return kv_bytes_per_token(model, kv_bytes, tp, pp) * context
    per_layer_token = kv_bytes_per_token(model, kv_bytes, tp, pp) / (model.num_layers / pp)
    full = (model.num_layers - sw) / pp
    windowed = sw / pp
    return per_layer_token * (full * context + windowed * min(context, model.sliding_window or context))


@dataclass(frozen=True)
class Budget:
    """Per-GPU memory: what the engine may use and what it spends before the KV cache."""

    capacity_gb: float  # device memory the engine budgets against
    weights_gb: float
    overhead_gb: float  # CUDA context / non-torch + CUDA graphs + activations
    activations_gb: float
    kv_space_gb: float  # what is left for the KV cache
    max_num_seqs: int
    batched_tokens: int
    host_weights_gb: float = 0.0


def engine_batch_limits(engine: EngineSpec, device: Device) -> tuple[int, int]:
    """(max concurrent sequences, tokens per step) that the engine uses by default on this device."""
    return engine.batch_limits(device.memory_gb / GIB_GB, device.key)


def gpu_reserve_gb(engine: EngineSpec) -> float:
    """What a layer-splitting engine leaves free per GPU (llama-server --fit-target), in GB."""
    return float(engine.memory.get("gpu_reserve_mib", 0)) * 1024**2 / 1e9


def host_reserve_gb(engine: EngineSpec) -> float:
    """Host RAM the OS and the server process keep (engines.yaml memory.host_reserve_gib), in GB."""
    return float(engine.memory.get("host_reserve_gib", 0)) * GIB_GB


def activation_gb(model: ModelSpec, tp: int, batched_tokens: int, max_seqs: int, fx: Facts | None = None) -> float:
    """Peak activation memory of a step of `batched_tokens` tokens (vLLM's profile run), per GPU."""
    a = facts.overheads(fx)["activations"]
    dt, lb, copies = float(a["dtype_bytes"]), float(a["logits_bytes"]), float(a["hidden_copies"])
    inter = model.intermediate_size if not model.is_moe else max(model.moe_intermediate_size or 0,
                                                                  model.intermediate_size)
    mlp = batched_tokens * 2 * inter / tp * dt
    hidden = batched_tokens * copies * model.hidden_size * dt
    logits = max_seqs * model.vocab_size / tp * lb
    return (mlp + hidden + logits) / 1e9


def gpu_budget(engine: EngineSpec, model: ModelSpec, method: str, device: Device, tp: int, pp: int,
               n_gpu_layers: int | None = None, memory_fraction: float | None = None,
               fx: Facts | None = None) -> Budget:
    """Per-GPU budget under the engine's memory model (engines.yaml `memory.model`): `fraction_of_total`
    (vLLM, SGLang: a fraction of the GPU for weights + overhead + KV), `fraction_of_free` (TRT-LLM: the KV
    cache gets a fraction of what is free after weights and buffers), `llamacpp_fit` (a reserve per GPU;
    host or unified memory on CPU / Apple). `memory_fraction`: the user's pinned fraction, where the engine
    takes one (--gpu-memory-utilization)."""
    mem = engine.memory
    seqs, tokens = engine_batch_limits(engine, device)
    kind = str(mem.get("model", "fraction_of_total"))
    if kind == "llamacpp_fit":
        total_w = weight_bytes_total(model, method, fx) / 1e9
        if device.kind in ("cpu", "apple"):  # host (unified) memory: process reserve + the logits buffer
            logits = float(mem.get("logits_rows", 0)) * model.vocab_size * float(mem.get("logits_bytes", 4)) / 1e9
            reserve = host_reserve_gb(engine) + logits
            cap = device.memory_gb
            return Budget(cap, total_w, reserve, 0.0, cap - total_w - reserve, seqs, tokens)
        reserve = gpu_reserve_gb(engine)
        gpus = max(1, pp)
        frac = 1.0 if n_gpu_layers is None else n_gpu_layers / (model.num_layers + 1)
        on_gpu = total_w * frac / gpus
        cap = device.memory_gb
        return Budget(cap, on_gpu, reserve, 0.0, cap - on_gpu - reserve, seqs, tokens,
                      host_weights_gb=total_w * (1 - frac))
    non_torch = (float(mem.get("non_torch_gib", 0)) + float(mem.get("non_torch_gib_per_tp_peer", 0)) * (tp - 1)) * GIB_GB
    graphs = float(mem.get("cuda_graph_gib", 0)) * GIB_GB
    act = activation_gb(model, tp, tokens, seqs, fx)
    weights = weight_bytes_per_gpu(model, method, tp, pp, fx) / 1e9
    overhead = non_torch + graphs + act
    frac = float(memory_fraction if memory_fraction is not None else fraction_for(engine, device, tp))
    if kind == "fraction_of_free":
        cap = device.memory_gb
        kv = frac * (cap - weights - overhead)
    else:
        cap = device.memory_gb * frac
        # SGLang's fraction covers weights + KV only: activations and graphs live outside it
        kv = cap - weights - (0.0 if mem.get("overhead_outside_fraction") else overhead)
    return Budget(cap, weights, overhead, act, kv, seqs, tokens)


def fraction_for(engine: EngineSpec, device: Device, tp: int) -> float:
    """The engine's default memory fraction on this device: a constant, or the first row of
    `memory.fraction_rows` whose GPU memory (GiB) and TP bounds hold (SGLang sizes it by GPU memory)."""
    rows = engine.memory.get("fraction_rows")
    if rows:
        gib = device.memory_gb / GIB_GB
        for row in rows:
            if gib >= float(row.get("min_gib", 0)) and tp >= int(row.get("min_tp", 1)):
                return float(row["fraction"])
    return float(engine.memory.get("fraction", 0.9))


def max_requests(kv_space_gb: float, per_request_bytes: float, engine_cap: int) -> int:
    if kv_space_gb <= 0 or per_request_bytes <= 0:
        return 0
    return int(min(engine_cap, math.floor(kv_space_gb * 1e9 / per_request_bytes)))


def max_model_len(model: ModelSpec, kv_space_gb: float, kv_bytes: float, tp: int, pp: int) -> int:
    """The longest single request the KV space holds, capped at the model's context."""
    if kv_space_gb <= 0:
        return 0
    per_tok = kv_bytes_per_token(model, kv_bytes, tp, pp, full_layers_only=bool(model.sliding_window_layers))
    if per_tok <= 0:
        return model.max_context
    return int(min(model.max_context, kv_space_gb * 1e9 // per_tok))
