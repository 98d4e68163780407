"""Hugging Face `config.json` -> `ModelSpec`: architecture, KV geometry and a parameter count.

Pure: a dict in, a record out. The keys read are the ones vLLM reads
(`vllm/transformers_utils/model_arch_config_convertor.py`, `config.py::_get_and_verify_max_len`):
the first present key wins, in vLLM's order. Parameters are counted from the architecture
(embeddings, attention, MLP or experts, norms, lm_head), so a model is sized without its weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autoquant.errors import InputError, shown
from autoquant.limits import bound, check_number
from autoquant.records import ModelSpec

# First present wins (vLLM's order).
KV_HEAD_KEYS = ("n_head_kv", "num_kv_heads", "num_key_value_heads", "multi_query_group_num", "num_attention_groups")
EXPERT_KEYS = ("num_experts", "moe_num_experts", "n_routed_experts", "num_local_experts")
# vLLM takes the minimum over all of these that are present.
CONTEXT_KEYS = (
    "max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
    "max_target_positions", "max_sequence_length", "max_seq_length", "seq_len",
)
# MLP with two matrices (up, down) instead of the gated three (gate, up, down).
UNGATED_MODEL_TYPES = frozenset({
    "gpt2", "gpt_neox", "gpt_bigcode", "gptj", "falcon", "phi", "opt", "bloom", "starcoder2", "mpt",
})
# Qwen2-family attention always carries q/k/v biases (no `attention_bias` key in their configs).
QKV_BIAS_MODEL_TYPES = frozenset({"qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl"})
# Per-head RMSNorm on q and k (Qwen3, Gemma 3, OLMo 2 style).
QK_NORM_MODEL_TYPES = frozenset({"qwen3", "qwen3_moe", "gemma3", "gemma3_text"})
# Gemma 2/3 decoder layers have four norms (pre/post attention, pre/post feed-forward).
FOUR_NORM_MODEL_TYPES = frozenset({"gemma2", "gemma3", "gemma3_text"})
SLIDING = "sliding_attention"
# config.json integer key -> its sane range in limits.yaml: checked wherever the key is read (config_int), so
# a NaN, a negative head count or 10^12 layers is one clear error before any per-layer loop.
KEY_BOUNDS = {
    **dict.fromkeys(("hidden_size", "n_embd", "d_model"), "hidden_size"),
    **dict.fromkeys(("num_hidden_layers", "n_layer", "num_layers"), "layers"),
    **dict.fromkeys(("num_attention_heads", "n_head"), "heads"),
    **dict.fromkeys((*KV_HEAD_KEYS, "num_key_value_heads"), "kv_heads"),
    **dict.fromkeys(("head_dim", "hidden_size_per_head", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim"),
                    "head_dim"),
    "vocab_size": "vocab_size",
    **dict.fromkeys(("intermediate_size", "ffn_hidden_size", "n_inner", "moe_intermediate_size",
                     "shared_expert_intermediate_size"), "intermediate_size"),
    **dict.fromkeys((*EXPERT_KEYS, "num_experts"), "experts"),
    **dict.fromkeys(("num_experts_per_tok", "moe_top_k", "num_experts_per_token", "n_shared_experts",
                     "first_k_dense_replace", "moe_layer_freq", "decoder_sparse_step", "num_nextn_predict_layers"),
                    "expert_count_small"),
    **dict.fromkeys(("kv_lora_rank", "q_lora_rank"), "lora_rank"),
    **dict.fromkeys(("bits", "w_bit", "num_bits"), "quant_bits"),
    **dict.fromkeys(("group_size", "q_group_size"), "quant_group_size"),
    **dict.fromkeys(("vision.hidden_size", "vision.num_hidden_layers", "vision.intermediate_size",
                     "vision.patch_size", "vision.image_size", "vision.num_channels"), "vision_size"),
}


@dataclass(frozen=True)
class ParamCount:
    total: int
    active: int
    embedding: int
    lm_head: int
    vision: int = 0
    mtp: int = 0  # DeepSeek multi-token-prediction layers: in the checkpoint, not in `total`


def text_config(config: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """The language-model part of a config, and whether the model is multimodal (vLLM's hf_text_config)."""
    sub = config_mapping(config.get("text_config"), "text_config", "config.json")
    vision = config_mapping(config.get("vision_config"), "vision_config", "config.json")
    if sub:
        # Top-level keys (torch_dtype, tie_word_embeddings...) apply unless the text config overrides them.
        merged = {k: v for k, v in config.items() if k not in ("text_config", "vision_config")}
        merged.update(sub)
        return merged, True
    return config, bool(vision)


def first_present(config: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return None


def from_hf_config(config: Mapping[str, Any], model_id: str, source: str) -> ModelSpec:
    """A `ModelSpec` from a Hugging Face config dict. Missing or mistyped required keys -> InputError."""
    if not isinstance(config, Mapping):
        raise InputError(f"{model_id}: config.json must be a JSON object, got {type(config).__name__}")
    text, multimodal = text_config(config)
    where = f"{model_id}: config.json"
    hidden = _int(text, "hidden_size", where, alt=("n_embd", "d_model"))
    layers = _int(text, "num_hidden_layers", where, alt=("n_layer", "num_layers"))
    heads = _int(text, "num_attention_heads", where, alt=("n_head",))
    vocab = _int(text, "vocab_size", where)
    kv_heads = config_int(first_present(text, KV_HEAD_KEYS), "num_key_value_heads", where) or heads
    head_dim = config_int(first_present(text, ("head_dim", "hidden_size_per_head")), "head_dim", where)
    if not head_dim:
        if text.get("kv_lora_rank") and text.get("qk_rope_head_dim") is not None:
            # MLA: the q/k head width (nope + rope); KV size comes from kv_bytes_per_token, not this
            head_dim = (config_int(text.get("qk_nope_head_dim"), "qk_nope_head_dim", where) or 0) + \
                config_int(text["qk_rope_head_dim"], "qk_rope_head_dim", where)
        else:
            head_dim = hidden // heads
        if head_dim < 1:
            raise InputError(f"{where}: {heads} attention heads over hidden_size {hidden} leave no head width")
    num_experts = config_int(first_present(text, EXPERT_KEYS), "num_experts", where) or None
    intermediate = config_int(first_present(text, ("intermediate_size", "ffn_hidden_size", "n_inner")),
                           "intermediate_size", where) or 4 * hidden
    moe_inter = None
    if num_experts:
        # Mixtral has no moe_intermediate_size: its intermediate_size is the per-expert width.
        moe_inter = config_int(text.get("moe_intermediate_size"), "moe_intermediate_size", where) or intermediate
    shared = config_int(text.get("n_shared_experts"), "n_shared_experts", where)
    shared_inter = config_int(text.get("shared_expert_intermediate_size"), "shared_expert_intermediate_size", where)
    if shared_inter and not shared:
        shared = 1
    if shared and not shared_inter and moe_inter:
        shared_inter = shared * moe_inter  # DeepSeek: n_shared experts of moe width, fused as one MLP

    sliding_window, sliding_layers = _sliding(text, layers)
    max_context = max_context_of(text)
    if sliding_window is not None and sliding_window >= max_context:
        sliding_layers = 0  # a window no shorter than the context caps nothing

    model_type = text.get("model_type") or config.get("model_type") or "unknown"
    if not isinstance(model_type, str):
        raise InputError(f"{where}: 'model_type' must be a string, got {shown(model_type)}")
    architectures = config.get("architectures") or text.get("architectures") or [model_type]
    if isinstance(architectures, str):
        architectures = [architectures]
    architectures = config_list(architectures, "architectures", where, str) or [model_type]
    experts_per_token = config_int(first_present(text, ("num_experts_per_tok", "moe_top_k", "num_experts_per_token")),
                                   "num_experts_per_tok", where) if num_experts else None
    if experts_per_token and num_experts and experts_per_token > num_experts:
        raise InputError(f"{where}: {experts_per_token} experts per token out of {num_experts} experts")
    tie = bool(_first_bool(text, "tie_word_embeddings", default=_tie_default(model_type)))
    spec = ModelSpec(
        id=model_id,
        source=source,
        architecture=str(architectures[0]),
        model_type=model_type,
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate,
        vocab_size=vocab,
        total_params=0,
        active_params=0,
        tie_word_embeddings=tie,
        max_context=max_context,
        sliding_window=sliding_window,
        sliding_window_layers=sliding_layers,
        native_dtype=_dtype(config, text),
        num_experts=num_experts,
        experts_per_token=experts_per_token,
        moe_intermediate_size=moe_inter,
        num_shared_experts=shared,
        shared_expert_intermediate_size=shared_inter,
        first_k_dense_layers=(config_int(text.get("first_k_dense_replace"), "first_k_dense_replace", where) or 0)
        if num_experts else 0,
        kv_lora_rank=config_int(text.get("kv_lora_rank"), "kv_lora_rank", where),
        q_lora_rank=config_int(text.get("q_lora_rank"), "q_lora_rank", where),
        qk_rope_head_dim=config_int(text.get("qk_rope_head_dim"), "qk_rope_head_dim", where),
        qk_nope_head_dim=config_int(text.get("qk_nope_head_dim"), "qk_nope_head_dim", where),
        v_head_dim=config_int(text.get("v_head_dim"), "v_head_dim", where),
        multimodal=multimodal,
    )
    counted = count_params(spec, text, config.get("vision_config") if multimodal else None, where)
    spec.total_params = counted.total
    spec.active_params = counted.active
    spec.embedding_params = counted.embedding
    spec.lm_head_params = counted.lm_head
    spec.vision_params = counted.vision
    spec.mtp_params = counted.mtp
    return spec


# ---------------------------------------------------------------------------------------------- context


def max_context_of(text: Mapping[str, Any]) -> int:
    """vLLM's derived max model length: min over the context keys, then YaRN/dynamic rope scaling.

    Llama-3 ("llama3") and LongRoPE ("su"/"longrope") already state the extended length in
    max_position_embeddings, and Gemma 3's "linear" factor is folded into it too, so only
    YaRN/dynamic scaling from an `original_max_position_embeddings` base is applied.
    """
    # Values beyond the context bound are "unlimited" markers (tokenizer-style 1e30), not lengths.
    lo, hi = bound("context_tokens")
    values = [v for v in (text.get(k) for k in CONTEXT_KEYS)
              if isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi]
    length = min(values) if values else 2048  # vLLM's default when no key is present
    rope = text.get("rope_scaling") or text.get("rope_parameters")
    if isinstance(rope, Mapping):
        rope_type = rope.get("rope_type") or rope.get("type")
        factor = rope.get("factor")
        original = rope.get("original_max_position_embeddings")
        if rope_type in ("yarn", "dynamic") and isinstance(factor, (int, float)) and isinstance(original, int):
            where = "config.json: rope_scaling"
            check_number(factor, "rope_factor", f"{where}.factor")
            check_number(original, "context_tokens", f"{where}.original_max_position_embeddings", integer=True)
            length = max(length, min(int(original * factor), int(hi)))
    return int(length)


def _sliding(text: Mapping[str, Any], layers: int) -> tuple[int | None, int]:
    """(window, number of layers capped at it) from layer_types / Gemma patterns / a plain window."""
    window = text.get("sliding_window")
    if window is None:
        window = text.get("sliding_window_size")
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        return None, 0
    if text.get("use_sliding_window") is False:
        return None, 0  # Qwen2 configs state a window but do not use it
    layer_types = text.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        return window, sum(1 for t in layer_types[:layers] if t == SLIDING)
    model_type = text.get("model_type")
    if model_type == "gemma2":
        return window, (layers + 1) // 2  # layers 0, 2, 4... are local (HF Gemma2: not layer_idx % 2)
    pattern = text.get("sliding_window_pattern")
    if model_type in ("gemma3", "gemma3_text") and not isinstance(pattern, int):
        pattern = 6  # Gemma 3: 5 local : 1 global
    if isinstance(pattern, int) and pattern > 0:
        return window, layers - layers // pattern  # layer i is global when (i + 1) % pattern == 0
    return window, layers  # Mistral-7B-v0.1 style: every layer is windowed


# ---------------------------------------------------------------------------------------------- params


def count_params(spec: ModelSpec, text: Mapping[str, Any], vision: Mapping[str, Any] | None = None,
                 where: str = "config.json") -> ParamCount:
    """Parameters from the architecture. MoE: `active` counts the top-k routed plus the shared experts."""
    h, L, V = spec.hidden_size, spec.num_layers, spec.vocab_size
    embedding = V * h
    lm_head = 0 if spec.tie_word_embeddings else V * h
    attn = _attention_params(spec, text)
    norms = (4 if spec.model_type in FOUR_NORM_MODEL_TYPES else 2) * h
    gated = spec.model_type not in UNGATED_MODEL_TYPES
    dense_mlp = (3 if gated else 2) * h * spec.intermediate_size

    moe_layers = _moe_layer_indices(spec, text, where) if spec.is_moe else set()
    total = active = 0
    for i in range(L):
        layer = attn + norms
        if i in moe_layers:
            experts = spec.num_experts or 0
            expert = 3 * h * (spec.moe_intermediate_size or 0)
            router = h * experts
            shared = 3 * h * (spec.shared_expert_intermediate_size or 0)
            if spec.shared_expert_intermediate_size and spec.model_type.startswith("qwen"):
                shared += h  # Qwen-MoE's shared_expert_gate
            top_k = spec.experts_per_token or experts
            total += layer + experts * expert + router + shared
            active += layer + top_k * expert + router + shared
        else:
            total += layer + dense_mlp
            active += layer + dense_mlp
    final_norm = h
    body_total = total + embedding + lm_head + final_norm
    body_active = active + embedding + lm_head + final_norm
    vision_params = vision_params_of(vision, h, where) if vision else 0
    mtp = _mtp_params(spec, text, attn, norms, where)
    return ParamCount(
        total=body_total + vision_params,
        active=body_active + vision_params,
        embedding=embedding,
        lm_head=lm_head,
        vision=vision_params,
        mtp=mtp,
    )


def _attention_params(spec: ModelSpec, text: Mapping[str, Any]) -> int:
    h, n, d = spec.hidden_size, spec.num_heads, spec.head_dim
    if spec.is_mla:
        rope = spec.qk_rope_head_dim or 0
        nope = spec.qk_nope_head_dim if spec.qk_nope_head_dim is not None else d
        v = spec.v_head_dim if spec.v_head_dim is not None else d
        q_dim = n * (nope + rope)
        if spec.q_lora_rank:
            q = h * spec.q_lora_rank + spec.q_lora_rank + spec.q_lora_rank * q_dim  # q_a, q_a_layernorm, q_b
        else:
            q = h * q_dim
        kv_a = h * ((spec.kv_lora_rank or 0) + rope) + (spec.kv_lora_rank or 0)  # kv_a_proj_with_mqa + norm
        kv_b = (spec.kv_lora_rank or 0) * n * (nope + v)
        o = n * v * h
        return q + kv_a + kv_b + o
    q_out, kv_out = n * d, spec.num_kv_heads * d
    params = h * q_out + 2 * h * kv_out + q_out * h
    if text.get("attention_bias") or spec.model_type in QKV_BIAS_MODEL_TYPES:
        params += q_out + 2 * kv_out
        if text.get("attention_bias") and spec.model_type not in QKV_BIAS_MODEL_TYPES:
            params += h  # o_proj bias too (Llama-style attention_bias=True)
    if spec.model_type in QK_NORM_MODEL_TYPES:
        params += 2 * d
    return params


def _moe_layer_indices(spec: ModelSpec, text: Mapping[str, Any], where: str = "config.json") -> set[int]:
    """Which decoder layers carry experts (DeepSeek first_k_dense/moe_layer_freq, Qwen sparse step)."""
    L = spec.num_layers
    first_dense = spec.first_k_dense_layers
    freq = config_int(text.get("moe_layer_freq"), "moe_layer_freq", where) or 1
    step = config_int(text.get("decoder_sparse_step"), "decoder_sparse_step", where) or 1
    mlp_only = set(config_list(text.get("mlp_only_layers"), "mlp_only_layers", where, int))
    layers = set()
    for i in range(L):
        if i < first_dense or (i - first_dense) % max(freq, 1):
            continue
        if (i + 1) % max(step, 1) or i in mlp_only:
            continue
        layers.add(i)
    return layers


def _mtp_params(spec: ModelSpec, text: Mapping[str, Any], attn: int, norms: int, where: str = "config.json") -> int:
    """DeepSeek-V3 multi-token prediction: one MoE decoder layer + eh_proj + 3 norms each (own embed/head)."""
    n = config_int(text.get("num_nextn_predict_layers"), "num_nextn_predict_layers", where) or 0
    if not n:
        return 0
    h = spec.hidden_size
    expert = 3 * h * (spec.moe_intermediate_size or spec.intermediate_size)
    experts = (spec.num_experts or 0) * expert + h * (spec.num_experts or 0)
    shared = 3 * h * (spec.shared_expert_intermediate_size or 0)
    layer = attn + norms + experts + shared
    extra = 2 * h * h + 3 * h + 2 * spec.vocab_size * h  # eh_proj, enorm/hnorm/shared_head.norm, embed + head
    return n * (layer + extra)


def vision_params_of(vision: Mapping[str, Any], text_hidden: int, where: str = "config.json") -> int:
    """A SigLIP/ViT-style vision tower + a linear projector into the text width (Gemma 3, LLaVA-like)."""
    def get(key: str) -> int:
        return config_int(vision.get(key), f"vision.{key}", f"{where}: vision_config") or 0

    h = get("hidden_size")
    layers = get("num_hidden_layers")
    inter = get("intermediate_size") or 4 * h
    if not h or not layers:
        return 0
    patch = get("patch_size") or 14
    image = get("image_size") or 224
    channels = get("num_channels") or 3
    per_layer = 4 * (h * h + h) + (h * inter + inter) + (inter * h + h) + 2 * 2 * h  # attn, mlp, 2 LayerNorms
    patch_embed = channels * patch * patch * h + h
    positions = (image // patch) ** 2 * h
    post_norm = 2 * h
    projector = h * text_hidden + h  # Gemma 3: mm_input_projection + mm_soft_emb_norm
    return layers * per_layer + patch_embed + positions + post_norm + projector


def kv_bytes_per_token(spec: ModelSpec, dtype_bytes: float = 2.0) -> float:
    """KV-cache bytes per token at full context over all layers (MLA: one latent of rank + rope per layer)."""
    if spec.is_mla:
        return spec.num_layers * ((spec.kv_lora_rank or 0) + (spec.qk_rope_head_dim or 0)) * dtype_bytes
    return 2 * spec.num_layers * spec.num_kv_heads * spec.head_dim * dtype_bytes


# ---------------------------------------------------------------------------------------------- helpers


def _int(config: Mapping[str, Any], key: str, where: str, alt: tuple[str, ...] = ()) -> int:
    for k in (key, *alt):
        if config.get(k) is not None:
            raw = config[k]
            if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw <= 0:
                raise InputError(f"{where}: '{k}' must be a positive integer, got {raw!r}")
            return config_int(raw, k, where)
    raise InputError(f"{where} has no '{key}': not a decoder language model config, or a truncated file")


def config_int(value: Any, key: str, where: str) -> int | None:
    """A config.json integer (1.0 is 1; true, "8", 1.5 or NaN are errors), None when absent, within the
    sane range KEY_BOUNDS gives its key (limits.yaml)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and (not math.isfinite(value) or not value.is_integer())):
        raise InputError(f"{where}: '{key}' must be an integer, got {shown(value)}")
    number = int(value)
    if key in KEY_BOUNDS:
        check_number(number, KEY_BOUNDS[key], f"{where}: '{key}'", integer=True)
    return number


def config_list(value: Any, key: str, where: str, item: type) -> list:
    """A config.json list whose items are all `item` (None: empty)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, item) and not isinstance(v, bool) for v in value):
        raise InputError(f"{where}: '{key}' must be a list of {item.__name__}s, got {shown(value)}")
    return value


def config_mapping(value: Any, key: str, where: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InputError(f"{where}: '{key}' must be an object, got {shown(value)}")
    return value



def _first_bool(config: Mapping[str, Any], key: str, default: bool) -> bool:
    value = config.get(key)
    return default if value is None else bool(value)


def _tie_default(model_type: str) -> bool:
    # When the key is absent the transformers config class default applies: Gemma ties (and its
    # configs omit the key); Llama, Mistral, Qwen, DeepSeek... default to untied.
    return model_type.startswith("gemma")


def _dtype(config: Mapping[str, Any], text: Mapping[str, Any]) -> str:
    for source in (text, config):
        for key in ("torch_dtype", "dtype"):
            value = source.get(key)
            if isinstance(value, str) and value:
                return value.removeprefix("torch.")
    return "bfloat16"
