"""`python -m sglang.launch_server` command for a planned candidate (SGLang 0.5.x; docs/research/sglang.md).

Full option spellings always (`--tp-size`, not the `--tp` prefix argparse happens to accept); plain integers for
`--context-length` (SGLang's human-readable ints read `32K` differently from vLLM's). Readiness: GET /health is
503 until the warm-up request has run, then 200. The user's other vLLM flags are translated by the engine spec
(engines.yaml sglang.flags); build.check_launch refuses, with the flag's name, what SGLang cannot carry.
"""

from __future__ import annotations

import sys

from autoquant.errors import RuleError, UsageError
from autoquant.records import Candidate

from .base import LaunchSpec, ServeOptions, engine_binary, served_names

# SGLang's own spellings of options this launcher sets from the plan -> how to ask for them instead. Given as
# passthrough they would be appended after the planned value and win (argparse keeps the last), so the
# server would run a configuration the plan never costed (--tp-size 2 on a TP-1 plan).
_PLANNED = {
    "--model-path": "give the model as MODEL instead",
    "--tp-size": "pin it with --tensor-parallel-size instead",
    "--pp-size": "pin it with --pipeline-parallel-size instead",
    "--context-length": "pin it with --max-model-len instead",
    "--max-running-requests": "pin it with --max-num-seqs instead",
    "--mem-fraction-static": "pin it with --gpu-memory-utilization instead",
}


def build(
    candidate: Candidate,
    options: ServeOptions,
    model: str,
    version: str | None = None,
    detect_version: bool = True,
    **_: object,
) -> LaunchSpec:
    from .build import prepare, translated_passthrough

    spec, version = prepare("sglang", candidate, options, version, detect_version)
    ckpt = candidate.checkpoint
    _check_native_flags(options)
    names = served_names(options, model)
    if len(names) > 1:
        raise UsageError(f"--served-model-name {' '.join(names)}: SGLang serves one model name, give one "
                         f"(or pass --engine vllm to serve several)")
    host = options.host or "0.0.0.0"
    argv = [engine_binary("sglang", sys.executable), "-m", "sglang.launch_server",
            "--model-path", ckpt.repo if ckpt else model, "--host", host, "--port", str(options.port),
            "--served-model-name", names[0]]
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
    dtype = options.dtype or spec.flags["dtype_for_method"].get(candidate.method)
    if dtype:
        argv += ["--dtype", dtype]
    if options.gpu_memory_utilization is not None:
        argv += ["--mem-fraction-static", str(options.gpu_memory_utilization)]
    if options.unmapped_quantization:
        if options.unmapped_quantization not in _choices("--quantization"):
            raise UsageError(f"--quantization {options.unmapped_quantization} has no SGLang equivalent "
                             f"(pass --engine vllm to keep it)")
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


def _choices(name: str) -> tuple[str, ...]:
    """The declared choices of SGLang's option `name` (empty: any value, or no option list)."""
    from .flags import native_option_lists

    for ol in native_option_lists().get("sglang", ()):
        opt = ol.lookup(name)
        if opt is not None:
            return opt.choices
    return ()


def _check_native_flags(options: ServeOptions) -> None:
    """SGLang's own options given as such pass through verbatim: refuse, with the flag's name, one that would
    override the plan, and a value SGLang's choices lack (a flag both engines have, e.g. --attention-backend
    or --tokenizer-mode, takes different values in each)."""
    from .flags import classify_tokens, native_option_lists

    lists = native_option_lists().get("sglang", ())
    args, _ = classify_tokens(list(options.passthrough))
    for arg in args:
        if "sglang" not in arg.native_to:
            continue
        opt = next((o for o in (ol.lookup(arg.given) for ol in lists) if o is not None), None)
        if opt is None:
            continue
        if opt.name in _PLANNED:
            raise UsageError(f"{arg.given}: autoquant sets SGLang's {opt.name} from the plan; {_PLANNED[opt.name]}")
        if opt.takes_value and opt.choices:
            bad = next((v for v in arg.values if v not in opt.choices), None)
            if bad is not None:
                raise UsageError(f"{arg.given} {bad}: SGLang's {opt.name} takes {', '.join(opt.choices)} "
                                 f"(SGLang was chosen; pass --engine vllm to keep vLLM flags)")
