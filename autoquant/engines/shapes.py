"""Per-GPU shapes of a model's linear layers under tensor parallelism (what kernel shape rules check)."""

from __future__ import annotations

from collections.abc import Iterator

from autoquant.records import ModelSpec


def kv_heads_per_gpu(model: ModelSpec, tp: int) -> int:
    """KV heads each GPU stores: split over TP, replicated when TP exceeds the KV heads (vLLM)."""
    return max(1, model.num_kv_heads // tp)


def linear_shapes(model: ModelSpec, tp: int) -> Iterator[tuple[str, int, int, bool]]:
    """(name, input size, output size, row-parallel) per tensor-parallel partition of every linear layer.
    Row-parallel layers (o_proj, down_proj) split their input across ranks; column-parallel ones their output."""
    h, d = model.hidden_size, model.head_dim
    heads_tp = model.num_heads // tp
    kv_tp = kv_heads_per_gpu(model, tp)
    if not model.is_mla:
        yield "qkv_proj", h, (heads_tp + 2 * kv_tp) * d, False
        yield "o_proj", heads_tp * d, h, True
    dense_layers = model.num_layers if not model.is_moe else model.first_k_dense_layers
    if dense_layers:
        inter = model.intermediate_size // tp
        yield "gate_up_proj", h, 2 * inter, False
        yield "down_proj", inter, h, True
    if model.is_moe and model.shared_expert_intermediate_size:
        shared = model.shared_expert_intermediate_size // tp
        yield "shared_expert.gate_up_proj", h, 2 * shared, False
        yield "shared_expert.down_proj", shared, h, True
