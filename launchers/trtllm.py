"""`trtllm-serve` command for a planned candidate.

Legacy snake_case spellings (`--tp_size`, `--max_seq_len`, ...) are emitted: they are valid from 1.0 to 1.4
(engine-flags.md 2.1). What has no CLI flag in 1.0 (KV-cache dtype, model dtype) goes into the
`--extra_llm_api_options` YAML, which trtllm-serve merges over its CLI values (YAML wins), so the YAML repeats
the free-memory fraction whenever it carries a `kv_cache_config`. The user's other flags are translated by
the engine's spec (engines.yaml trtllm.flags), which build.py checks before any launcher runs.
"""

from __future__ import annotations

import os

from autoquant.errors import UsageError
from autoquant.paths import autoquant_cache_dir
from autoquant.records import Candidate

from .base import LaunchSpec, ServeOptions, engine_binary


def kv_free_fraction() -> float:
    """KvCacheConfig.free_gpu_memory_fraction default (llm_args.py): the engine spec's memory fraction."""
    from autoquant.facts import default_facts

    return float(default_facts().engine("trtllm").memory["fraction"])


def build(
    candidate: Candidate,
    options: ServeOptions,
    model: str,
    version: str | None = None,
    run_dir: str | None = None,
    detect_version: bool = True,
    **_: object,
) -> LaunchSpec:
    from .build import prepare, translated_passthrough

    spec, version = prepare("trtllm", candidate, options, version, detect_version)
    ckpt = candidate.checkpoint
    argv = [engine_binary("trtllm"), "serve", ckpt.repo if ckpt else model]
    if options.unmapped_quantization:
        raise UsageError(f"--quantization {options.unmapped_quantization} has no TensorRT-LLM equivalent")
    argv += ["--backend", "pytorch", "--host", options.host or "0.0.0.0", "--port", str(options.port)]
    if options.served_model_name:
        argv += ["--served_model_name", options.served_model_name[0]]
    if candidate.tp > 1:
        argv += ["--tp_size", str(candidate.tp)]
    if candidate.pp > 1:
        argv += ["--pp_size", str(candidate.pp)]
    if candidate.max_num_seqs:
        argv += ["--max_batch_size", str(candidate.max_num_seqs)]
    if candidate.max_model_len:
        argv += ["--max_seq_len", str(candidate.max_model_len)]
    if ckpt and ckpt.tokenizer:
        argv += ["--tokenizer", ckpt.tokenizer]

    extra: dict = {}
    kv_dtype = candidate.kv_cache_dtype or spec.kv_default
    kv_dtype = spec.kv_from_vllm.get(kv_dtype, kv_dtype)  # build.py checked it against the spec
    if kv_dtype != spec.kv_default:
        extra["kv_cache_config"] = {"dtype": kv_dtype, "free_gpu_memory_fraction": kv_free_fraction()}
    if options.dtype and options.dtype != "auto":
        extra["dtype"] = options.dtype

    passthrough, notes = translated_passthrough(spec, options, version)
    argv += passthrough
    files: dict[str, str] = {}
    if extra:
        if "--extra_llm_api_options" in options.passthrough:
            raise UsageError("--extra_llm_api_options given while autoquant also needs one: merge "
                             f"{extra} into your file and drop --kv-cache-dtype/--dtype")
        import yaml  # only when an extra-options file is written

        path = os.path.join(run_dir or _default_run_dir(), f"trtllm-extra-{options.port}.yaml")
        files[path] = yaml.safe_dump(extra, sort_keys=True)
        argv += ["--extra_llm_api_options", path]
    return LaunchSpec(
        engine="trtllm", argv=argv, version=version, flavor="trtllm-serve", host=options.host or "0.0.0.0",
        port=options.port, ready_path="/health", files=files, notes=notes,
    )


def _default_run_dir() -> str:
    return os.environ.get("AUTOQUANT_RUN_DIR") or str(autoquant_cache_dir(os.environ, "run"))
