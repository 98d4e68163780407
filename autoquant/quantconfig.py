"""Quantization metadata of a checkpoint -> `QuantSpec`, across the formats on the Hub.

Pure: dicts in, a record out. Precedence (reference/checkpoints.md A4): `hf_quant_config.json`
(ModelOpt) > `config.json["quantization_config"]` (or legacy `compression_config`; the text config's
for multimodal models) > `quantize_config.json` (AutoGPTQ) > `quant_config.json` (legacy AutoAWQ).
The keys read are the ones vLLM's quantization configs read (`AWQConfig.from_config`,
`GPTQConfig.from_config`, `CompressedTensorsConfig`, `Fp8Config`, `FBGEMMFp8Config`, `ModelOptFp8Config`).
GGUF: `from_gguf_file_type` maps the header's `general.file_type` to `gguf-<type>`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from autoquant.errors import InputError
from autoquant.modelspec import config_int
from autoquant.records import QuantSpec

# Integer weight-only bits -> method (GPTQ, and W4A16/W8A16 compressed-tensors: the same Marlin kernels).
INT_WEIGHT_ONLY = {4: "gptq-int4", 8: "gptq-int8"}

# ModelOpt quant_algo -> (method, weight_bits, weight_type, act_bits, group_size)
MODELOPT_ALGOS: dict[str, tuple[str, float, str, int | None, int | None]] = {
    "FP8": ("fp8", 8, "float", 8, None),
    "FP8_PER_CHANNEL_PER_TOKEN": ("fp8", 8, "float", 8, -1),
    "FP8_PB_WO": ("fp8-weight-only", 8, "float", None, None),
    "NVFP4": ("nvfp4", 4, "float", 4, 16),
    "W4A16_AWQ": ("awq-int4", 4, "int", None, 128),
    "W4A8_AWQ": ("other", 4, "int", 8, 128),
    "INT8_SQ": ("int8-sq", 8, "int", 8, -1),
    "W8A8_SQ_PER_CHANNEL": ("int8-sq", 8, "int", 8, -1),
    "W8A16": ("other", 8, "int", None, -1),
    "INT4_AWQ": ("awq-int4", 4, "int", None, 128),
    "MXFP4": ("other", 4, "float", None, 32),
    "NVFP4_AWQ": ("other", 4, "float", 4, 16),
}


def parse_quantization(
    config: Mapping[str, Any],
    hf_quant_config: Mapping[str, Any] | None = None,
    quantize_config: Mapping[str, Any] | None = None,
    quant_config: Mapping[str, Any] | None = None,
) -> QuantSpec | None:
    """The checkpoint's existing quantization, or None for an unquantized (bf16/fp16/fp32) checkpoint."""
    if hf_quant_config is not None:
        return _modelopt(_mapping(hf_quant_config, "hf_quant_config.json"), "hf_quant_config.json")
    qc = _embedded(config)
    if qc is not None:
        return _from_quantization_config(qc)
    if quantize_config is not None:
        return _gptq(_mapping(quantize_config, "quantize_config.json"), "quantize_config.json")
    if quant_config is not None:
        return _awq(_mapping(quant_config, "quant_config.json"), "quant_config.json")
    return None


def _embedded(config: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if not isinstance(config, Mapping):
        raise InputError(f"config.json must be a JSON object, got {type(config).__name__}")
    for source in (config, config.get("text_config") or {}):
        if not isinstance(source, Mapping):
            continue
        for key in ("quantization_config", "compression_config"):
            value = source.get(key)
            if value is not None:
                return _mapping(value, f"config.json {key}")
    return None


def _from_quantization_config(qc: Mapping[str, Any]) -> QuantSpec:
    where = "config.json quantization_config"
    method = str(qc.get("quant_method") or "").lower()
    if not method and "config_groups" in qc:
        method = "compressed-tensors"  # legacy compression_config without quant_method
    if not method and ("w_bit" in qc or "q_group_size" in qc):
        method = "awq"
    parser = PARSERS.get(method)
    if parser is None:
        return _other(qc, method or "unknown")
    return parser(qc, where)


# ---------------------------------------------------------------------------------------------- formats


def _modelopt(data: Mapping[str, Any], where: str) -> QuantSpec:
    # hf_quant_config.json nests under "quantization"; inline (ModelOpt >= 0.31) is flat.
    q = _mapping(data.get("quantization", data), where)
    algo = str(q.get("quant_algo") or "").upper()
    if not algo:
        raise InputError(f"{where}: no quant_algo: not a ModelOpt quantization config")
    method, bits, wtype, act, group = MODELOPT_ALGOS.get(algo, ("other", 0, "int", None, None))
    producer = data.get("producer")
    kv = q.get("kv_cache_quant_algo")
    return QuantSpec(
        method=method,
        quant_method="modelopt",
        weight_bits=float(bits),
        weight_type=wtype,
        act_bits=act,
        group_size=config_int(q.get("group_size"), "group_size", where) or group,
        kv_cache=str(kv).lower() if kv else None,
        ignore=_str_list(q.get("exclude_modules") or q.get("ignore"), "exclude_modules", where),
        format=algo,
        producer="modelopt" if not isinstance(producer, Mapping) else str(producer.get("name") or "modelopt"),
    )


def _awq(qc: Mapping[str, Any], where: str) -> QuantSpec:
    bits = _req_int(qc, ("bits", "w_bit"), where)
    version = qc.get("version")
    return QuantSpec(
        method="awq-int4" if bits == 4 else "other",
        quant_method="awq",
        weight_bits=float(bits),
        weight_type="int",
        group_size=config_int(_first(qc, ("group_size", "q_group_size")), "group_size", where),
        zero_point=_opt_bool(qc.get("zero_point"), "zero_point", where),
        symmetric=None if qc.get("zero_point") is None else not bool(qc.get("zero_point")),
        ignore=_str_list(qc.get("modules_to_not_convert"), "modules_to_not_convert", where),
        format=str(version).lower() if version else None,
        producer="autoawq",
    )


def _gptq(qc: Mapping[str, Any], where: str) -> QuantSpec:
    bits = _req_int(qc, ("bits",), where)
    method = INT_WEIGHT_ONLY.get(bits, "other")
    fmt = qc.get("checkpoint_format") or qc.get("format")
    return QuantSpec(
        method=method,
        quant_method="gptq",
        weight_bits=float(bits),
        weight_type="int",
        group_size=config_int(qc.get("group_size"), "group_size", where),
        symmetric=_opt_bool(qc.get("sym"), "sym", where),
        act_order=_opt_bool(qc.get("desc_act"), "desc_act", where),
        ignore=_str_list(qc.get("modules_to_not_convert"), "modules_to_not_convert", where),
        format=str(fmt) if fmt else "gptq",
        producer=_gptq_producer(qc),
    )


def _gptq_producer(qc: Mapping[str, Any]) -> str:
    meta = qc.get("meta")
    if isinstance(meta, Mapping):
        quantizer = meta.get("quantizer")
        names = quantizer if isinstance(quantizer, list) else [quantizer]
        for name in names:
            if isinstance(name, str) and name:
                return name.split(":")[0]  # "gptqmodel:1.7.0" -> gptqmodel
    return "autogptq"


def _fp8(qc: Mapping[str, Any], where: str) -> QuantSpec:
    scheme = qc.get("activation_scheme")
    block = qc.get("weight_block_size")
    if block is not None and (not isinstance(block, list) or not all(isinstance(b, int) for b in block)):
        raise InputError(f"{where}: weight_block_size must be a list of integers, got {block!r}")
    return QuantSpec(
        method="fp8",
        quant_method="fp8",
        weight_bits=8.0,
        weight_type="float",
        act_bits=8,
        group_size=None if block else -1,
        symmetric=True,
        dynamic_act=None if scheme is None else str(scheme).lower() == "dynamic",
        weight_block_size=list(block) if block else None,
        ignore=_str_list(qc.get("ignored_layers") or qc.get("modules_to_not_convert"), "ignored_layers", where),
        format=str(qc.get("fmt")) if qc.get("fmt") else None,
    )


def _fbgemm_fp8(qc: Mapping[str, Any], where: str) -> QuantSpec:
    # Per-channel FP8 weights, dynamic per-token FP8 activations (vLLM FBGEMMFp8Config).
    return QuantSpec(
        method="fp8",
        quant_method="fbgemm_fp8",
        weight_bits=8.0,
        weight_type="float",
        act_bits=8,
        group_size=-1,
        symmetric=True,
        dynamic_act=True,
        ignore=_str_list(qc.get("modules_to_not_convert"), "modules_to_not_convert", where),
        producer="fbgemm",
    )


def _auto_round(qc: Mapping[str, Any], where: str) -> QuantSpec:
    bits = _req_int(qc, ("bits",), where)
    packing = str(qc.get("packing_format") or qc.get("backend") or "auto_round:auto_gptq")
    awq = "awq" in packing.lower()
    method = ("awq-int4" if bits == 4 else "other") if awq else INT_WEIGHT_ONLY.get(bits, "other")
    return QuantSpec(
        method=method,
        quant_method=str(qc.get("quant_method")),
        weight_bits=float(bits),
        weight_type="int",
        group_size=config_int(qc.get("group_size"), "group_size", where),
        symmetric=_opt_bool(qc.get("sym"), "sym", where),
        format=packing,
        producer="auto-round",
    )


def _compressed_tensors(qc: Mapping[str, Any], where: str) -> QuantSpec:
    groups = _mapping(qc.get("config_groups") or {}, f"{where} config_groups")
    if not groups:
        raise InputError(f"{where}: compressed-tensors config has no config_groups")
    # The scheme that targets Linear layers decides; otherwise the first group.
    group = next((g for g in groups.values() if isinstance(g, Mapping) and "Linear" in (g.get("targets") or [])),
                 next(iter(groups.values())))
    group = _mapping(group, f"{where} config_groups group")
    weights = _mapping(group.get("weights") or {}, f"{where} weights")
    acts = group.get("input_activations")
    acts = _mapping(acts, f"{where} input_activations") if acts else None
    if not weights:
        raise InputError(f"{where}: compressed-tensors group has no weights scheme")
    bits = _req_int(weights, ("num_bits",), f"{where} weights")
    wtype = str(weights.get("type") or "int").lower()
    act_bits = config_int(acts.get("num_bits"), "num_bits", where) if acts else None
    act_type = str(acts.get("type") or "int").lower() if acts else None
    fmt = str(qc.get("format") or "")
    strategy = str(weights.get("strategy") or "")
    block = weights.get("block_structure")

    if wtype == "float" and bits == 4:
        method = "nvfp4"
    elif wtype == "float" and bits == 8:
        method = "fp8" if act_bits == 8 and act_type == "float" else ("fp8-weight-only" if act_bits is None else "other")
    elif wtype == "int" and bits == 8 and act_bits == 8 and act_type == "int":
        method = "int8-sq"
    elif wtype == "int" and act_bits is None and bits in (4, 8):
        method = INT_WEIGHT_ONLY[bits]
    else:
        method = "other"

    group_size = config_int(weights.get("group_size"), "group_size", where)
    if strategy in ("channel",) and group_size is None:
        group_size = -1
    kv = qc.get("kv_cache_scheme")
    kv_name = None
    if isinstance(kv, Mapping) and kv.get("num_bits"):
        kv_name = f"{'fp' if str(kv.get('type')) == 'float' else 'int'}{kv.get('num_bits')}"
    actorder = weights.get("actorder")
    return QuantSpec(
        method=method,
        quant_method="compressed-tensors",
        weight_bits=float(bits),
        weight_type=wtype,
        act_bits=act_bits,
        group_size=group_size,
        symmetric=_opt_bool(weights.get("symmetric"), "symmetric", where),
        act_order=None if actorder is None else actorder not in (False, "none", "None", "static"),
        dynamic_act=_opt_bool(acts.get("dynamic"), "dynamic", where) if acts else None,
        weight_block_size=list(block) if strategy == "block" and isinstance(block, list) else None,
        weight_strategy=strategy or None,
        kv_cache=kv_name,
        ignore=_str_list(qc.get("ignore"), "ignore", where),
        format=fmt or None,
        producer="llm-compressor",
    )


def _bitsandbytes(qc: Mapping[str, Any], where: str) -> QuantSpec:
    four = bool(qc.get("load_in_4bit") or qc.get("_load_in_4bit"))
    return QuantSpec(
        method="other",
        quant_method="bitsandbytes",
        weight_bits=4.0 if four else 8.0,
        weight_type=str(qc.get("bnb_4bit_quant_type") or "int") if four else "int",
        ignore=_str_list(qc.get("llm_int8_skip_modules"), "llm_int8_skip_modules", where),
        producer="bitsandbytes",
    )


def _other(qc: Mapping[str, Any], quant_method: str) -> QuantSpec:
    """A scheme autoquant has no method for (exl2, hqq, mxfp4, ...): kept, never planned as a known method."""
    bits = qc.get("bits", qc.get("num_bits", qc.get("w_bit")))
    known = isinstance(bits, (int, float)) and not isinstance(bits, bool) and math.isfinite(bits) and 0 < bits <= 64
    return QuantSpec(
        method="other",
        quant_method=quant_method,
        weight_bits=float(bits) if known else 0.0,  # 0: unknown (a scheme we do not plan, so only a label)
    )


PARSERS: dict[str, Callable[[Mapping[str, Any], str], QuantSpec]] = {
    "awq": _awq,
    "awq_marlin": _awq,
    "gptq": _gptq,
    "gptq_marlin": _gptq,
    "fp8": _fp8,
    "fbgemm_fp8": _fbgemm_fp8,
    "compressed-tensors": _compressed_tensors,
    "compressed_tensors": _compressed_tensors,
    "modelopt": _modelopt,
    "modelopt_fp4": _modelopt,
    "intel/auto-round": _auto_round,
    "auto-round": _auto_round,
    "auto_round": _auto_round,
    "bitsandbytes": _bitsandbytes,
}


# ---------------------------------------------------------------------------------------------- GGUF


def gguf_type_name(file_type: int) -> str:
    """llama.cpp's name for a `general.file_type` value (gguf.LlamaFileType), e.g. 15 -> 'Q4_K_M'."""
    from autoquant.gguf.types import file_type_name  # a table: no `gguf` package, no numpy

    try:
        name = file_type_name(int(file_type))
    except (TypeError, ValueError):
        name = None
    if name is None:
        raise InputError(f"GGUF general.file_type {file_type!r} is not a llama.cpp file type")
    return name


def nominal_gguf_bits(type_name: str) -> float:
    """Bits per weight of the file type's main tensor type, from gguf.GGML_QUANT_SIZES (block, bytes)
    as tabulated in autoquant.gguf.types."""
    from autoquant.gguf.types import GGML_TYPE_BY_NAME

    parts = type_name.upper().split("_")
    candidates = [type_name.upper(), "_".join(parts[:-1]), "_".join(parts[:-1] + ["S"])]
    for name in candidates:
        size = GGML_TYPE_BY_NAME.get(name)
        if size is not None:
            block, nbytes = size
            return 8.0 * nbytes / block
    return 0.0


GGUF_FLOAT_BITS = {"F32": 32, "F16": 16, "BF16": 16}  # unquantized GGUF types: IEEE / bfloat widths


def gguf_quant_spec(gtype: str, *, weight_bits: float | None = None) -> QuantSpec:
    """QuantSpec of a GGUF type name ("q4_k_m", "ud-q4_k_xl", "F16"): the project's one GGUF QuantSpec.
    `weight_bits`: measured from the tensors when known (mixes are above nominal); else the nominal size."""
    name = gtype.upper()
    plain = name.removeprefix("UD-")
    is_float = plain in GGUF_FLOAT_BITS
    bits = weight_bits or float(GGUF_FLOAT_BITS.get(plain) or nominal_gguf_bits(plain))
    return QuantSpec(
        method=f"gguf-{gtype.lower()}",
        quant_method="gguf",
        weight_bits=round(float(bits), 3),
        weight_type="float" if is_float else "int",
        format=name,
        producer="llama.cpp",
        container="gguf",
    )


def from_gguf_file_type(file_type: int, *, weight_bits: float | None = None) -> QuantSpec:
    """QuantSpec of a GGUF file from its header's `general.file_type`."""
    return gguf_quant_spec(gguf_type_name(file_type), weight_bits=weight_bits)


# ---------------------------------------------------------------------------------------------- helpers


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _first(qc: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    return next((qc[k] for k in keys if qc.get(k) is not None), None)


def _req_int(qc: Mapping[str, Any], keys: tuple[str, ...], where: str) -> int:
    value = _first(qc, keys)
    if value is None:
        raise InputError(f"{where}: missing '{keys[0]}' (bits per weight)")
    result = config_int(value, keys[0], where)
    assert result is not None
    return result


def _opt_bool(value: Any, key: str, where: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InputError(f"{where}: '{key}' must be true or false, got {value!r}")
    return value


def _str_list(value: Any, key: str, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError(f"{where}: '{key}' must be a list, got {type(value).__name__}")
    return [str(v) for v in value]
