"""`python -m sglang.launch_server` command for a planned candidate (SGLang 0.5.x; docs/research/sglang.md).

Full option spellings always (`--tp-size`, not the `--tp` prefix argparse happens to accept); plain integers for
`--context-length` (SGLang's human-readable ints read `32K` differently from vLLM's). Readiness: GET /health is
503 until the warm-up request has run, then 200. The user's other vLLM flags are translated by the engine spec
(engines.yaml sglang.flags); build.check_launch refuses, with the flag's name, what SGLang cannot carry.
"""

from __future__ import annotations

import sys

from autoquant.errors import RuleError
from autoquant.records import Candidate

from . import versions
from .base import LaunchSpec, ServeOptions, engine_binary, served_names


def build(
    candidate: Candidate,
    options: ServeOptions,
    model: str,
    version: str | None = None,
    detect_version: bool = True,
    **_: object,
) -> LaunchSpec:
    from autoquant.facts import default_facts

    from .build import check_launch, translated_passthrough

    if version is None and detect_version:
        version = versions.engine_version("sglang")
    spec = default_facts().engine("sglang")
    check_launch(spec, candidate, options, version)
    ckpt = candidate.checkpoint
    host = options.host or "0.0.0.0"
    argv = [engine_binary("sglang", sys.executable), "-m", "sglang.launch_server",
            "--model-path", ckpt.repo if ckpt else model, "--host", host, "--port", str(options.port),
            "--served-model-name", served_names(options, model)[0]]
    if ckpt and ckpt.revision:
        argv += ["--revision", ckpt.revision]
    if candidate.tp > 1:
        argv += ["--tp-size", str(candidate.tp)]
    if candidate.pp > 1:
        argv += ["--pp-size", str(candidate.pp)]
    if candidate.max_model_len:
        argv += ["--context-length", str(candidate.max_model_len)]
    if candidate.max_num_seqs:
        argv += ["--max-running-requests", str(candidate.max_num_seqs)]
    kv = candidate.kv_cache_dtype or spec.kv_default
    kv = spec.kv_from_vllm.get(kv, kv)
    if kv != spec.kv_default:
        argv += ["--kv-cache-dtype", kv]
    dtype = options.dtype or default_facts().engine("vllm").flags["dtype_for_method"].get(candidate.method)
    if dtype:
        argv += ["--dtype", dtype]
    if options.gpu_memory_utilization is not None:
        argv += ["--mem-fraction-static", str(options.gpu_memory_utilization)]
    if options.unmapped_quantization:
        argv += ["--quantization", options.unmapped_quantization]
    elif ckpt and ckpt.runtime_quantization:
        entry = spec.quantize_at_load.get(candidate.method)
        if entry is None:
            raise RuleError(f"SGLang does not quantize {candidate.method} at load time")
        argv += list(entry["flag"])
    notes: list[str] = []
    if ckpt and ckpt.quant and not ckpt.runtime_quantization:
        notes.append(f"pre-quantized checkpoint ({ckpt.quant.quant_method}): SGLang reads its quantization config")
    secrets: list[str] = []
    if options.api_key:
        argv += ["--api-key", options.api_key]  # no environment spelling in SGLang 0.5; redacted wherever printed
        secrets.append(options.api_key)
    passthrough, dropped = translated_passthrough(spec, options, version)
    argv += passthrough
    return LaunchSpec(
        engine="sglang", argv=argv, version=version, flavor="sglang.launch_server", host=host, port=options.port,
        ready_path="/health", secrets=secrets, notes=notes + dropped,
    )
