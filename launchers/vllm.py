"""`vllm serve` command for a planned candidate (flags per engine-flags.md section 1, gated on the version)."""

from __future__ import annotations

from autoquant.data import load
from autoquant.errors import RuleError, UsageError
from autoquant.records import Candidate

from . import versions
from .base import LaunchSpec, ServeOptions, engine_binary, served_names
from .flags import flag_names


def build(
    candidate: Candidate,
    options: ServeOptions,
    model: str,
    version: str | None = None,
    detect_version: bool = True,
) -> LaunchSpec:
    if version is None and detect_version:
        version = versions.engine_version("vllm")
    rules = load("engines_flags")["vllm"]
    ckpt = candidate.checkpoint
    user_flags = set(flag_names(options.passthrough))
    removed = rules["removed_flags"]
    for flag in user_flags & set(removed):
        since, why = removed[flag]["since"], removed[flag]["why"]
        if versions.at_least(version, since):
            raise UsageError(f"{flag} is not a vLLM {version or 'current'} flag: {why}")

    is_gguf = candidate.method.startswith("gguf-") or bool(ckpt and ckpt.quant and ckpt.quant.container == "gguf")
    argv = [engine_binary("vllm", "vllm"), "serve", _model_arg(candidate, model, is_gguf)]
    notes: list[str] = []

    def add(flag: str, *values) -> None:
        if flag not in user_flags:
            argv.extend([flag, *[str(v) for v in values]])

    if ckpt and ckpt.revision and not is_gguf:
        add("--revision", ckpt.revision)
    if is_gguf:
        ok, reason = versions.check_vllm_gguf(version)
        if not ok:
            raise RuleError(reason)
        tokenizer = ckpt.tokenizer if ckpt else None
        if not tokenizer and "--tokenizer" not in user_flags:
            raise RuleError("vLLM needs the base model's tokenizer for a GGUF file: pass --tokenizer <base HF repo>")
        if tokenizer:
            add("--tokenizer", tokenizer)
    add("--served-model-name", *served_names(options, model))
    if options.host:
        add("--host", options.host)
    add("--port", options.port)
    if candidate.tp > 1:
        add("--tensor-parallel-size", candidate.tp)
    if candidate.pp > 1:
        add("--pipeline-parallel-size", candidate.pp)
    if candidate.max_model_len:
        add("--max-model-len", candidate.max_model_len)
    if candidate.max_num_seqs:
        add("--max-num-seqs", candidate.max_num_seqs)
    if candidate.kv_cache_dtype and candidate.kv_cache_dtype != "auto":
        add("--kv-cache-dtype", candidate.kv_cache_dtype)
    if options.gpu_memory_utilization is not None:
        add("--gpu-memory-utilization", options.gpu_memory_utilization)
    dtype = options.dtype or rules["dtype_for_method"].get(candidate.method)
    if dtype:
        add("--dtype", dtype)
    quantization = _quantization_flag(candidate, options)
    if quantization:
        add("--quantization", quantization)
    elif ckpt and ckpt.quant:
        notes.append(f"pre-quantized checkpoint ({ckpt.quant.quant_method}): vLLM reads its quantization_config")
    argv.extend(options.passthrough)

    env: dict[str, str] = {}
    secrets: list[str] = []
    if options.api_key:
        env["VLLM_API_KEY"] = options.api_key  # vllm/envs.py: same as --api-key, kept off the command line
        secrets.append(options.api_key)
    return LaunchSpec(
        engine="vllm", argv=argv, env=env, version=version, flavor="vllm serve", host=options.host or "0.0.0.0",
        port=options.port, ready_path="/health", secrets=secrets, notes=notes,
    )


def _model_arg(candidate: Candidate, model: str, is_gguf: bool) -> str:
    ckpt = candidate.checkpoint
    if ckpt is None:
        return model
    if is_gguf:
        if ckpt.files and (ckpt.files[0].startswith("/") or ckpt.source in ("local", "package", "cache")):
            return ckpt.files[0]
        quant = candidate.method.removeprefix("gguf-").upper()
        return f"{ckpt.repo}:{quant}"  # vllm-gguf-plugin form repo:QUANT
    return ckpt.repo


def _quantization_flag(candidate: Candidate, options: ServeOptions) -> str | None:
    """Never for a pre-quantized checkpoint (vLLM reads its config and rejects a mismatch);
    `fp8` only when vLLM quantizes BF16/FP16 weights at load time."""
    if options.unmapped_quantization:
        return options.unmapped_quantization
    ckpt = candidate.checkpoint
    if ckpt and ckpt.runtime_quantization:
        if candidate.method != "fp8":
            raise RuleError(f"vLLM runtime quantization is only wired for fp8, not {candidate.method}")
        return "fp8"
    return None
