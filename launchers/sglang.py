"""`python -m sglang.launch_server` command for a planned candidate (SGLang 0.5.x; docs/research/sglang.md).

Full option spellings always (`--tp-size`, not the `--tp` prefix argparse happens to accept); plain integers for
`--context-length` (SGLang's human-readable ints read `32K` differently from vLLM's). Readiness: GET /health is
503 until the warm-up request has run, then 200. The user's other vLLM flags are translated by the engine spec
(engines.yaml sglang.flags); build.check_launch refuses, with the flag's name, what SGLang cannot carry.
"""

from __future__ import annotations

from autoquant.errors import RuleError, UsageError
from autoquant.records import Candidate

from .base import SAFE_PATH_ENV, LaunchSpec, ServeOptions, engine_binary, safe_path_notes, served_names


# SGLang's own spellings of options this launcher sets from the plan -> how to ask for them instead. Given as
# passthrough they would be appended after the planned value and win (argparse keeps the last), so the
# server would run a configuration the plan never costed (--tp-size 2 on a TP-1 plan).
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
    names = served_names(options, model)
    if len(names) > 1:
        raise UsageError(f"--served-model-name {' '.join(names)}: SGLang serves one model name, give one "
                         f"(or pass --engine vllm to serve several)")
    host = options.host or "0.0.0.0"
    argv = [engine_binary("sglang"), "-m", "sglang.launch_server",
            "--model-path", ckpt.repo if ckpt else model, "--host", host, "--port", str(options.port),
            "--served-model-name", names[0]]
    if ckpt and ckpt.revision:
        argv += ["--revision", ckpt.revision]
    if candidate.tp > 1:
        argv += ["--tp-size", str(candidate.tp)]
    if candidate.pp > 1:
        argv += ["--pp-size", str(candidate.pp)]
    if candidate.dp > 1:
        argv += [spec.data_parallel_flag or "--dp-size", str(candidate.dp)]
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
    notes = safe_path_notes(argv[0])
    if ckpt and ckpt.quant and not ckpt.runtime_quantization:
        notes.append(f"pre-quantized checkpoint ({ckpt.quant.quant_method}): SGLang reads its quantization config")
    secrets: list[str] = []
    if options.api_key:
        argv += ["--api-key", options.api_key]  # no environment spelling in SGLang 0.5; redacted wherever printed
        secrets.append(options.api_key)
    passthrough, dropped = translated_passthrough(spec, options, version)
    argv += passthrough
    # /v1/models, where readiness looks for the served name, is behind --api-key; /health is not
    headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
    return LaunchSpec(
        engine="sglang", argv=argv, version=version, flavor="sglang.launch_server", host=host, port=options.port,
        # `python -m` would import modules from the working directory first (base.SAFE_PATH_ENV)
        env=dict(SAFE_PATH_ENV), ready_path="/health", ready_headers=headers, served_names=names,
        secrets=secrets, notes=notes + dropped,
    )


def _choices(name: str) -> tuple[str, ...]:
    """The declared choices of SGLang's option `name` (empty: any value, or no option list)."""
    from .flags import native_option_lists

    for ol in native_option_lists().get("sglang", ()):
        opt = ol.lookup(name)
        if opt is not None:
            return opt.choices
    return ()


