"""Edge: a GGUF file on disk -> `ModelSpec` (architecture, KV geometry, quant type, exact params).

The header is read by the core reader (`autoquant.gguf.read_header`); its metadata is mapped onto the
config.json keys `autoquant.modelspec` reads (`autoquant.gguf.KEY_MAP`), so both formats share one
parser; parameters then come from the tensor shapes, not the formula.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoquant.catalog.models import model_type_of_gguf
from autoquant.errors import InputError
from autoquant.gguf import KEY_MAP, GGUFError, SkippedArray, read_header
from autoquant.modelspec import config_int, from_hf_config
from autoquant.quantconfig import from_gguf_file_type
from autoquant.records import ModelSpec


def read_gguf(path: str | Path) -> ModelSpec:
    """ModelSpec of a .gguf file. Truncated or non-GGUF files raise InputError (one line)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such GGUF file: {path}")
    try:
        header = read_header(path, tensors=True)
    except GGUFError as exc:
        raise InputError(str(exc)) from None
    tokens = header.meta.get("tokenizer.ggml.tokens")  # a shared, cached record: read, never mutate
    meta = {k: v for k, v in header.meta.items() if not k.startswith("tokenizer.ggml.")}
    n_tokens = tokens.count if isinstance(tokens, SkippedArray) else (len(tokens) if tokens else None)
    return spec_from_gguf_metadata(meta, n_tokens, header.tensors, str(path), file_bytes=path.stat().st_size)


def spec_from_gguf_metadata(
    meta: dict[str, Any],
    n_tokens: int | None,
    tensors: list[tuple[str, int, int]],
    model_id: str,
    file_bytes: int | None = None,
) -> ModelSpec:
    """Pure part: GGUF metadata + (name, elements, bytes) per tensor -> ModelSpec."""
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise InputError(f"{model_id}: GGUF has no general.architecture")
    config: dict[str, Any] = {"architectures": [arch], "model_type": model_type_of_gguf(arch)}
    for suffix, key in KEY_MAP.items():
        value = meta.get(f"{arch}.{suffix}")
        if isinstance(value, list):  # per-layer arrays (e.g. heads per layer): the widest layer sizes it
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise InputError(f"{model_id}: GGUF {arch}.{suffix} must hold numbers")
            value = max(value) if value else None
        if value is not None:
            config[key] = value
    rope_dim = meta.get(f"{arch}.rope.dimension_count")
    if config.get("kv_lora_rank") and rope_dim:
        config["qk_rope_head_dim"] = rope_dim
        key_length = config.pop("head_dim", None)
        if key_length:
            where = f"{model_id}: GGUF"
            config["qk_nope_head_dim"] = (config_int(key_length, "head_dim", where) or 0) - \
                (config_int(rope_dim, "qk_rope_head_dim", where) or 0)
        value_length = meta.get(f"{arch}.attention.value_length")
        if value_length:
            config["v_head_dim"] = value_length
    if "vocab_size" not in config:
        if not n_tokens:
            raise InputError(f"{model_id}: GGUF has neither {arch}.vocab_size nor tokenizer.ggml.tokens")
        config["vocab_size"] = n_tokens
    names = {name for name, _, _ in tensors}
    config["tie_word_embeddings"] = "output.weight" not in names
    for required in ("num_hidden_layers", "hidden_size", "num_attention_heads"):
        if required not in config:
            raise InputError(f"{model_id}: GGUF metadata lacks {arch}.{_gguf_key(required)}")

    spec = from_hf_config(config, model_id, "gguf")
    total = sum(n for _, n, _ in tensors)
    if total:
        # Exact counts from the tensors; MoE active = all but the unrouted share of the expert tensors.
        experts = sum(n for name, n, _ in tensors if "_exps." in name)
        share = (spec.experts_per_token or 0) / spec.num_experts if spec.num_experts else 1.0
        spec.total_params = total
        spec.active_params = total - int(round(experts * (1 - share)))
        spec.embedding_params = sum(n for name, n, _ in tensors if name == "token_embd.weight")
        spec.lm_head_params = sum(n for name, n, _ in tensors if name == "output.weight")
        spec.params_source = "gguf"
    tensor_bytes = sum(b for _, _, b in tensors)
    spec.checkpoint_bytes = file_bytes if file_bytes else tensor_bytes or None
    file_type = meta.get("general.file_type")
    if file_type is not None:
        bits = 8.0 * tensor_bytes / total if total and tensor_bytes else None
        spec.quantization = from_gguf_file_type(config_int(file_type, "general.file_type", model_id) or 0,
                                                weight_bits=bits)
    return spec


def _gguf_key(config_key: str) -> str:
    return next((k for k, v in KEY_MAP.items() if v == config_key), config_key)
