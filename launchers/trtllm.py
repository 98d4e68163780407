"""`trtllm-serve` command for a planned candidate.

Legacy snake_case spellings (`--tp_size`, `--max_seq_len`, ...) are emitted: they are valid from 1.0 to 1.4
(engine-flags.md 2.1). What has no CLI flag in 1.0 (KV-cache dtype, model dtype) goes into the
`--extra_llm_api_options` YAML, which trtllm-serve merges over its CLI values (YAML wins), so the YAML repeats
the free-memory fraction whenever it carries a `kv_cache_config`.
"""

from __future__ import annotations

import os

import yaml

from autoquant.data import load
from autoquant.errors import RuleError, UsageError
from autoquant.paths import autoquant_cache_dir
from autoquant.records import Candidate

from . import versions
from .base import LaunchSpec, ServeOptions, engine_binary


def kv_free_fraction() -> float:
    """KvCacheConfig.free_gpu_memory_fraction default (llm_args.py), from engines.yaml (the planner's figure)."""
    return float(load("engines")["engines"]["trtllm"]["kv_cache_free_gpu_memory_fraction"])


def build(
    candidate: Candidate,
    options: ServeOptions,
    model: str,
    version: str | None = None,
    run_dir: str | None = None,
    detect_version: bool = True,
) -> LaunchSpec:
    if version is None and detect_version:
        version = versions.engine_version("trtllm")
    rules = load("engines_flags")["trtllm"]
    ckpt = candidate.checkpoint
    argv = [engine_binary("trtllm", "trtllm-serve"), "serve", ckpt.repo if ckpt else model]
    if ckpt and ckpt.runtime_quantization:
        raise RuleError("TensorRT-LLM's PyTorch backend does not quantize at load time: use a ModelOpt checkpoint")
    if options.unmapped_quantization:
        raise UsageError(f"--quantization {options.unmapped_quantization} has no TensorRT-LLM equivalent")
    if options.api_key:
        raise UsageError("--api-key has no trtllm-serve equivalent (put an authenticating proxy in front)")
    if options.gpu_memory_utilization is not None:
        raise UsageError(
            "--gpu-memory-utilization has no trtllm-serve equivalent (its --kv_cache_free_gpu_memory_fraction "
            "is a fraction of the memory left after the weights; pass that instead)"
        )
    argv += ["--backend", "pytorch", "--host", options.host or "0.0.0.0", "--port", str(options.port)]
    if options.served_model_name:
        ok, reason = versions.check_trtllm_served_model_name(version)
        if not ok:
            raise UsageError(f"--served-model-name: {reason}")
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
    kv_dtype = candidate.kv_cache_dtype or "auto"
    if kv_dtype not in ("auto", "fp8_e4m3"):
        if kv_dtype not in rules["kv_cache_dtypes"]:
            raise UsageError(f"--kv-cache-dtype {kv_dtype} has no TensorRT-LLM equivalent "
                             f"(it takes {', '.join(rules['kv_cache_dtypes'])})")
    if kv_dtype == "fp8_e4m3":
        kv_dtype = "fp8"  # TensorRT-LLM's fp8 KV cache is e4m3
    if kv_dtype != "auto":
        extra["kv_cache_config"] = {"dtype": kv_dtype, "free_gpu_memory_fraction": kv_free_fraction()}
    if options.dtype and options.dtype != "auto":
        extra["dtype"] = options.dtype

    argv += _translate_passthrough(options.passthrough, rules)
    files: dict[str, str] = {}
    if extra:
        if "--extra_llm_api_options" in options.passthrough:
            raise UsageError("--extra_llm_api_options given while autoquant also needs one: merge "
                             f"{extra} into your file and drop --kv-cache-dtype/--dtype")
        path = os.path.join(run_dir or _default_run_dir(), f"trtllm-extra-{options.port}.yaml")
        files[path] = yaml.safe_dump(extra, sort_keys=True)
        argv += ["--extra_llm_api_options", path]
    return LaunchSpec(
        engine="trtllm", argv=argv, version=version, flavor="trtllm-serve", host=options.host or "0.0.0.0",
        port=options.port, ready_path="/health", files=files,
    )


def _translate_passthrough(passthrough: list[str], rules: dict) -> list[str]:
    native = set(rules["native_options"])
    translate = rules["translate"]
    out: list[str] = []
    for token in passthrough:
        name, eq, value = token.partition("=")
        if not token.startswith("-"):
            out.append(token)  # a value of the previous flag
        elif name in native:
            out.append(token)
        elif name in translate:
            out.append(f"{translate[name]}={value}" if eq else translate[name])
        else:
            raise UsageError(f"{name} has no trtllm-serve equivalent (TensorRT-LLM was chosen; pass --engine vllm "
                             "to keep vLLM flags, or use trtllm-serve's own option)")
    return out


def _default_run_dir() -> str:
    return os.environ.get("AUTOQUANT_RUN_DIR") or str(autoquant_cache_dir(os.environ, "run"))
