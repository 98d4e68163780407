"""`vllm serve` command for a planned candidate (flags per engine-flags.md section 1, gated on the version).

Every flag the user gave goes through verbatim, in order (the drop-in contract); autoquant adds only what the
plan decides and the user did not give (`--tensor-parallel-size`, `--max-num-seqs`, ...). The one exception:
`--api-key` travels as VLLM_API_KEY (vllm/envs.py, same effect), so the secret is not on the command line.
"""

from __future__ import annotations

import os

from autoquant.errors import RuleError, UsageError
from autoquant.records import Candidate

from . import versions
from .base import LaunchSpec, ServeOptions, engine_binary, served_names
from .flags import classify_tokens


def build(
    candidate: Candidate,
    options: ServeOptions,
    model: str,
    version: str | None = None,
    detect_version: bool = True,
    **_: object,
) -> LaunchSpec:
    from .build import prepare

    spec, version = prepare("vllm", candidate, options, version, detect_version)
    rules = spec.flags
    ckpt = candidate.checkpoint
    user_tokens = list(options.user_args or options.passthrough)
    user_args, _bare = classify_tokens(user_tokens)
    user_flags = {a.name for a in user_args} | {a.given for a in user_args}  # canonical and as typed
    removed = rules["removed"]
    for arg in user_args:
        if arg.given in removed and versions.at_least(version, removed[arg.given]["since"]):
            raise UsageError(f"{arg.given} is not a vLLM {version or 'current'} flag: {removed[arg.given]['why']}")

    is_gguf = candidate.method.startswith("gguf-") or bool(ckpt and ckpt.quant and ckpt.quant.container == "gguf")
    argv = [engine_binary("vllm"), "serve", _model_arg(candidate, model, is_gguf)]
    decided: list[str] = []
    notes: list[str] = []

    def add(flag: str, *values) -> None:
        if flag not in user_flags:
            decided.extend([flag, *[str(v) for v in values]])

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
    if candidate.tp > 1:
        add("--tensor-parallel-size", candidate.tp)
    if candidate.pp > 1:
        add("--pipeline-parallel-size", candidate.pp)
    if candidate.dp > 1:
        add(spec.data_parallel_flag or "--data-parallel-size", candidate.dp)
    if candidate.nodes > 1 and spec.multi_node_backends:
        # one server over several nodes: vLLM's default way (engines.yaml multi_node, Ray), unless the user
        # chose one (launchers/multinode.py adds a multiprocessing group's per-node flags); without it vLLM
        # 0.33 refuses a world larger than one node's GPUs
        add("--distributed-executor-backend", spec.multi_node_backends[0])
    if candidate.max_model_len:
        add("--max-model-len", candidate.max_model_len)
    if candidate.max_num_seqs:
        add("--max-num-seqs", candidate.max_num_seqs)
    if candidate.kv_cache_dtype and candidate.kv_cache_dtype != "auto":
        add("--kv-cache-dtype", candidate.kv_cache_dtype)
    dtype = rules["dtype_for_method"].get(candidate.method)
    if dtype:
        add("--dtype", dtype)
    quantization = _quantization_flag(candidate)
    if quantization:
        add("--quantization", quantization)
    elif ckpt and ckpt.quant:
        notes.append(f"pre-quantized checkpoint ({ckpt.quant.quant_method}): vLLM reads its quantization_config")

    env: dict[str, str] = {}
    secrets: list[str] = []
    passed = user_tokens
    if options.api_key:
        env["VLLM_API_KEY"] = options.api_key  # vllm/envs.py: same as --api-key, kept off the command line
        secrets.append(options.api_key)
        passed = [t for a in user_args if a.name != "--api-key" for t in a.tokens]
    argv += decided + passed
    # /health answers without the key; /v1/models, which readiness reads for the served name, wants it
    # (--api-key, or VLLM_API_KEY in the environment vLLM inherits).
    key = options.api_key or os.environ.get("VLLM_API_KEY")
    return LaunchSpec(
        engine="vllm", argv=argv, env=env, version=version, flavor="vllm serve", host=options.host or "0.0.0.0",
        port=options.port, ready_path="/health", secrets=secrets, notes=notes,
        served_names=served_names(options, model),
        ready_headers={"Authorization": f"Bearer {key}"} if key else {},
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


def _quantization_flag(candidate: Candidate) -> str | None:
    """Never for a pre-quantized checkpoint (vLLM reads its config and rejects a mismatch); the engine's
    load-time flag (engines.yaml quantize_at_load) when it quantizes BF16/FP16 weights itself."""
    from autoquant.facts import default_facts

    ckpt = candidate.checkpoint
    if ckpt and ckpt.runtime_quantization:
        entry = default_facts().engine("vllm").quantize_at_load.get(candidate.method)
        if entry is None:
            raise RuleError(f"vLLM does not quantize {candidate.method} at load time")
        return str(entry["flag"][1])
    return None
