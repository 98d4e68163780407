"""`autoquant model-info MODEL [--json] [--offline]`: the ModelSpec of a HF id, local dir or GGUF file."""

from __future__ import annotations

import argparse

from autoquant.modelspec import kv_bytes_per_token
from autoquant.output import human_bytes, key_values, print_json
from autoquant.records import ModelSpec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="Hugging Face id (org/name), local directory, or .gguf file")
    parser.add_argument("--json", action="store_true", help="print the ModelSpec record as JSON")
    parser.add_argument("--offline", action="store_true",
                        help="do not contact the Hub (also when HF_HUB_OFFLINE=1): local, cache, catalog only")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")


def run(args: argparse.Namespace) -> int:
    from autoquant.probes.model import load_model

    spec = load_model(args.model, offline=True if args.offline else None, revision=args.revision)
    if args.json:
        print_json(spec)
    else:
        print(key_values(rows(spec)))
    return 0


def rows(spec: ModelSpec) -> list[tuple[str, object]]:
    """The readable table: one fact per row."""
    out: list[tuple[str, object]] = [
        ("model", spec.id),
        ("source", spec.source),
        ("architecture", f"{spec.architecture} ({spec.model_type})"),
        ("parameters", _params(spec.total_params, spec.published_params, spec.params_source)),
    ]
    if spec.is_moe:
        out.append(("active parameters", _params(spec.active_params, spec.published_active_params, spec.params_source)))
    if spec.vision_params:
        out.append(("vision tower", f"{_billions(spec.vision_params)} (included above)"))
    if spec.mtp_params:
        out.append(("MTP layers", f"{_billions(spec.mtp_params)} in the checkpoint, not counted above"))
    out += [
        ("embedding / lm_head", f"{_billions(spec.embedding_params)} / "
                                f"{'tied' if spec.tie_word_embeddings else _billions(spec.lm_head_params)}"),
        ("layers", spec.num_layers),
        ("hidden size", spec.hidden_size),
        ("attention heads", f"{spec.num_heads} query, {spec.num_kv_heads} KV, head dim {spec.head_dim}"
                            + _attention_kind(spec)),
        ("intermediate size", spec.intermediate_size),
        ("vocab size", spec.vocab_size),
        ("context", spec.max_context),
        ("sliding window", f"{spec.sliding_window} on {spec.sliding_window_layers} of {spec.num_layers} layers"
                           if spec.sliding_window and spec.sliding_window_layers else "none"),
        ("native dtype", spec.native_dtype),
    ]
    if spec.is_moe:
        shared = f", {spec.num_shared_experts} shared" if spec.num_shared_experts else ""
        dense = f", first {spec.first_k_dense_layers} layers dense" if spec.first_k_dense_layers else ""
        out.append(("MoE", f"{spec.num_experts} experts, top-{spec.experts_per_token}, "
                           f"expert width {spec.moe_intermediate_size}{shared}{dense}"))
    if spec.is_mla:
        out.append(("MLA", f"kv_lora_rank {spec.kv_lora_rank}, q_lora_rank {spec.q_lora_rank}, "
                           f"rope {spec.qk_rope_head_dim}, nope {spec.qk_nope_head_dim}, v {spec.v_head_dim}"))
    if spec.multimodal:
        out.append(("multimodal", True))
    out.append(("quantization", _quant(spec)))
    if spec.checkpoint_bytes:
        out.append(("checkpoint size", f"{human_bytes(spec.checkpoint_bytes)} ({spec.checkpoint_bytes / 1e9:.2f} GB)"))
    kv = kv_bytes_per_token(spec, 2.0)
    out.append(("KV cache per token", f"{kv / 1024:.1f} KiB at bf16 (all layers, full attention)"))
    return out


def _params(count: int, published: int | None, source: str) -> str:
    text = f"{_billions(count)} ({source})"
    if published:
        text += f"; published {_billions(published)} ({(count / published - 1) * 100:+.1f}%)"
    return text


def _billions(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _attention_kind(spec: ModelSpec) -> str:
    if spec.is_mla:
        return " (MLA)"
    if spec.num_kv_heads == 1:
        return " (MQA)"
    if spec.num_kv_heads < spec.num_heads:
        return f" (GQA, {spec.num_heads // spec.num_kv_heads} queries per KV head)"
    return " (MHA)"


def _quant(spec: ModelSpec) -> str:
    q = spec.quantization
    if q is None:
        return f"none ({spec.native_dtype})"
    parts = [q.method if q.method == q.quant_method else f"{q.method} ({q.quant_method})",
             f"{q.weight_bits:g}-bit {q.weight_type} weights"]
    if q.act_bits:
        parts.append(f"{q.act_bits}-bit activations" + (" (dynamic)" if q.dynamic_act else ""))
    if q.group_size:
        parts.append("per channel" if q.group_size == -1 else f"group {q.group_size}")
    if q.weight_block_size:
        parts.append(f"block {'x'.join(map(str, q.weight_block_size))}")
    if q.act_order:
        parts.append("act-order")
    if q.kv_cache:
        parts.append(f"KV {q.kv_cache}")
    if q.format:
        parts.append(f"format {q.format}")
    if q.producer:
        parts.append(f"by {q.producer}")
    return ", ".join(parts)
