"""Edge: a GGUF file's header -> `ModelSpec` (architecture, KV geometry, quant type, exact params).

Reads metadata and tensor shapes from the header (memory-mapped: tensor data is never read), with
the `gguf` package's type tables. The metadata is mapped onto the config.json keys
`autoquant.modelspec` reads, so both formats share one parser; parameters then come from the
tensor shapes, not the formula.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoquant.errors import InputError
from autoquant.modelspec import from_hf_config
from autoquant.quantconfig import from_gguf_file_type
from autoquant.records import ModelSpec

GGUF_MAGIC = b"GGUF"

# llama.cpp architecture name -> HF model_type where they differ (the sliding/norm rules key on it).
ARCH_TO_MODEL_TYPE = {
    "gemma3": "gemma3_text",
    "qwen2moe": "qwen2_moe",
    "qwen3moe": "qwen3_moe",
    "deepseek2": "deepseek_v3",
    "phi3": "phi3",
    "command-r": "cohere",
}

# GGUF "<arch>.<key>" -> config.json key.
KEY_MAP = {
    "block_count": "num_hidden_layers",
    "embedding_length": "hidden_size",
    "feed_forward_length": "intermediate_size",
    "context_length": "max_position_embeddings",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.key_length": "head_dim",
    "attention.sliding_window": "sliding_window",
    "attention.kv_lora_rank": "kv_lora_rank",
    "attention.q_lora_rank": "q_lora_rank",
    "expert_count": "num_experts",
    "expert_used_count": "num_experts_per_tok",
    "expert_feed_forward_length": "moe_intermediate_size",
    "expert_shared_count": "n_shared_experts",
    "leading_dense_block_count": "first_k_dense_replace",
    "vocab_size": "vocab_size",
}


def is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def read_gguf(path: str | Path) -> ModelSpec:
    """ModelSpec of a .gguf file. Truncated or non-GGUF files raise InputError (one line)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such GGUF file: {path}")
    if not is_gguf(path):
        raise InputError(f"{path} is not a GGUF file (no 'GGUF' magic at the start)")
    header = read_header(path)
    tokens = header.meta.pop("tokenizer.ggml.tokens", None)
    meta = {k: v for k, v in header.meta.items() if not k.startswith("tokenizer.ggml.")}
    n_tokens = tokens.count if isinstance(tokens, SkippedArray) else (len(tokens) if tokens else None)
    return spec_from_gguf_metadata(meta, n_tokens, header.tensors, str(path), file_bytes=path.stat().st_size)


@dataclass
class SkippedArray:
    """A long metadata array (e.g. 262k tokenizer strings) walked over but not decoded."""

    count: int


@dataclass
class GGUFHeader:
    version: int
    meta: dict[str, Any]
    tensors: list[tuple[str, int, int]]  # (name, elements, bytes)
    data_end: int  # where the last tensor's data ends; beyond the file size -> truncated


# GGUF value types (gguf.GGUFValueType): struct format of the fixed-size ones.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_DECODE_ARRAY_MAX = 4096  # per-layer arrays are decoded; vocabularies are only counted


def read_header(path: Path) -> GGUFHeader:
    """Parse the GGUF header (metadata + tensor infos) without touching tensor data.

    gguf.GGUFReader builds numpy views of every field, which takes ~10 s for a 262k-token vocabulary
    on a small CPU; this walks the same layout (gguf-py/gguf/gguf_reader.py) and uses the gguf
    package only for its quantization block table (GGML_QUANT_SIZES).
    """
    import mmap

    import gguf

    size = path.stat().st_size
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        try:
            return _parse(buf, size, gguf.GGML_QUANT_SIZES)
        except (struct.error, IndexError, ValueError, UnicodeDecodeError, OverflowError) as exc:
            raise InputError(f"{path}: unreadable GGUF header, the file is truncated or corrupt "
                             f"({type(exc).__name__}: {str(exc)[:120]})") from exc


def _parse(buf: Any, size: int, quant_sizes: dict[Any, tuple[int, int]]) -> GGUFHeader:
    pos = 4
    (version,) = struct.unpack_from("<I", buf, pos)
    if version not in (2, 3):
        raise ValueError(f"unsupported GGUF version {version} (big-endian or a future format)")
    n_tensors, n_kv = struct.unpack_from("<QQ", buf, pos + 4)
    pos += 20

    def string(at: int) -> tuple[str, int]:
        (length,) = struct.unpack_from("<Q", buf, at)
        end = at + 8 + length
        if end > size:
            raise ValueError("string runs past the end of the file")
        return bytes(buf[at + 8:end]).decode("utf-8"), end

    def value(vtype: int, at: int) -> tuple[Any, int]:
        if vtype in _SCALARS:
            fmt = _SCALARS[vtype]
            return struct.unpack_from(fmt, buf, at)[0], at + struct.calcsize(fmt)
        if vtype == _STRING:
            return string(at)
        if vtype == _ARRAY:
            item_type, count = struct.unpack_from("<IQ", buf, at)
            at += 12
            if count > _DECODE_ARRAY_MAX:
                if item_type in _SCALARS:
                    at += count * struct.calcsize(_SCALARS[item_type])
                else:
                    for _ in range(count):
                        at = value(item_type, at)[1]
                if at > size:
                    raise ValueError("array runs past the end of the file")
                return SkippedArray(count), at
            items = []
            for _ in range(count):
                item, at = value(item_type, at)
                items.append(item)
            return items, at
        raise ValueError(f"unknown GGUF value type {vtype}")

    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key, pos = string(pos)
        (vtype,) = struct.unpack_from("<I", buf, pos)
        meta[key], pos = value(vtype, pos + 4)

    infos = []
    for _ in range(n_tensors):
        name, pos = string(pos)
        (n_dims,) = struct.unpack_from("<I", buf, pos)
        dims = struct.unpack_from(f"<{n_dims}Q", buf, pos + 4)
        ggml_type, offset = struct.unpack_from("<IQ", buf, pos + 4 + 8 * n_dims)
        pos += 4 + 8 * n_dims + 12
        elements = math.prod(dims)
        block, type_size = quant_sizes[_ggml_type(ggml_type)]
        infos.append((name, elements, elements // block * type_size, offset))
    alignment = int(meta.get("general.alignment", 32))
    data_start = -(-pos // alignment) * alignment
    data_end = data_start + max((off + nbytes for _, _, nbytes, off in infos), default=0)
    if data_end > size:
        raise ValueError(f"tensor data ends at byte {data_end} but the file has {size}")
    return GGUFHeader(version, meta, [(n, e, b) for n, e, b, _ in infos], data_end)


def _ggml_type(value: int) -> Any:
    import gguf

    return gguf.GGMLQuantizationType(value)


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
    config: dict[str, Any] = {"architectures": [arch], "model_type": ARCH_TO_MODEL_TYPE.get(arch, arch)}
    for suffix, key in KEY_MAP.items():
        value = meta.get(f"{arch}.{suffix}")
        if isinstance(value, list):  # per-layer arrays (e.g. heads per layer): the widest layer sizes it
            value = max(value) if value else None
        if value is not None:
            config[key] = value
    rope_dim = meta.get(f"{arch}.rope.dimension_count")
    if config.get("kv_lora_rank") and rope_dim:
        config["qk_rope_head_dim"] = rope_dim
        key_length = config.pop("head_dim", None)
        if key_length:
            config["qk_nope_head_dim"] = int(key_length) - int(rope_dim)
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
        spec.quantization = from_gguf_file_type(int(file_type), weight_bits=bits)
    return spec


def _gguf_key(config_key: str) -> str:
    return next((k for k, v in KEY_MAP.items() if v == config_key), config_key)
