"""Contract: every `vllm serve` command the launcher emits parses with the installed vLLM's own parser.

vLLM lives in its own virtual environment (it pins torch); AUTOQUANT_VLLM_PYTHON names that interpreter
(or the current one when it can import vllm). scripts/vllm_contract.py runs there: it builds vLLM's real
serve parser (a parser-only CUDA platform on machines without a GPU, docs/serve.md) and parses each argv.
--quantization and --kv-cache-dtype are accepted as any string at parse time, so their values are checked
against vLLM's QUANTIZATION_METHODS and CacheDType too.
"""

from __future__ import annotations

import pytest

from autoquant.launchers import vllm as vllm_launcher
from autoquant.launchers.base import ServeOptions
from autoquant.launchers.flags import split_passthrough
from autoquant.records import Checkpoint, QuantSpec

pytestmark = pytest.mark.vllm

MACHINES = ["H100-SXM:8", "A100-PCIe:2", "L40S:4", "RTX4090:1"]


def _emitted_commands() -> list[list[str]]:
    """Commands for every vLLM candidate the planner ranks on the fixture machines for the catalog models."""
    from autoquant.catalog.gpus import synthetic_node
    from autoquant.catalog.models import known_ids, spec_from_catalog
    from autoquant.checkpoints import resolve_for_plan
    from autoquant.checkpoints.resolve import known_methods
    from autoquant.planner import plan
    from autoquant.records import Workload

    commands: list[list[str]] = []
    models = known_ids()
    for machine in MACHINES:
        node = synthetic_node(machine)
        for model_id in models:
            spec = spec_from_catalog(model_id)
            ckpts = resolve_for_plan(spec, known_methods(), node=node, client=None, offline=True,
                                     notify=lambda _m: None)
            for workload in (Workload(), Workload(concurrency=64, max_model_len=8192)):
                p = plan(spec, node, workload, checkpoints=ckpts, allow_runtime_quantization=True)
                for cand in [p.chosen, *p.alternatives] if p.chosen else []:
                    if cand.engine != "vllm" or cand.method.startswith("gguf-"):
                        continue
                    opts = ServeOptions(host="0.0.0.0", port=8000)
                    commands.append(vllm_launcher.build(cand, opts, model_id, version="0.33.0").argv)
    return commands


def _hand_made(candidate) -> list[list[str]]:
    """Paths the fixture plans may not reach: runtime FP8, user passthrough, GGUF, api key, dtype, util."""
    awq = Checkpoint(repo="org/m-AWQ", method="awq-int4",
                     quant=QuantSpec(method="awq-int4", quant_method="awq", weight_bits=4))
    rt = Checkpoint(repo="org/m", method="fp8", runtime_quantization=True)
    gguf = Checkpoint(repo="unsloth/Qwen3-0.6B-GGUF", method="gguf-q4_k_m", files=["Qwen3-0.6B-Q4_K_M.gguf"],
                      tokenizer="Qwen/Qwen3-0.6B",
                      quant=QuantSpec(method="gguf-q4_k_m", quant_method="gguf", weight_bits=4.9, container="gguf"))
    _p, opts = split_passthrough(["--enable-prefix-caching", "--block-size", "16", "--served-model-name", "a", "b",
                                  "--gpu-memory-utilization", "0.9", "--dtype", "half", "--trust-remote-code"])
    out = [
        vllm_launcher.build(candidate(method="awq-int4", tp=2, pp=2, kv="fp8_e4m3", checkpoint=awq), opts, "m",
                            version="0.33.0").argv,
        vllm_launcher.build(candidate(method="fp8", checkpoint=rt), ServeOptions(api_key="x"), "m",
                            version="0.33.0").argv,
        vllm_launcher.build(candidate(method="bf16", kv="fp8"), ServeOptions(host="127.0.0.1"), "m",
                            version="0.33.0").argv,
    ]
    # GGUF needs the plugin for serving; its command line is still vLLM's parser's business
    out.append(vllm_launcher.build(candidate(method="gguf-q4_k_m", checkpoint=gguf), ServeOptions(), "Qwen/Qwen3-0.6B",
                                   version="0.23.0").argv)
    return out


def test_every_emitted_command_parses(vllm_parse, candidate):
    commands = _emitted_commands()
    assert len(commands) >= 4 * 10, "the fixture machines should yield many vLLM candidates"
    commands += _hand_made(candidate)
    result = vllm_parse(commands)
    methods, kv_dtypes = set(result["quantization_methods"]), set(result["kv_cache_dtypes"])
    failures = []
    for argv, res in zip(commands, result["results"], strict=True):
        if not res["ok"]:
            failures.append(f"{' '.join(argv)}\n  -> {res['error']}")
            continue
        q = res["args"].get("quantization")
        if q is not None and q not in methods:
            failures.append(f"{' '.join(argv)}\n  -> --quantization {q} not in vLLM {result['version']}")
        kv = res["args"].get("kv_cache_dtype")
        if kv is not None and kv not in kv_dtypes:
            failures.append(f"{' '.join(argv)}\n  -> --kv-cache-dtype {kv} not in CacheDType")
        assert res["args"].get("swap_space") is None
    assert not failures, f"{len(failures)} of {len(commands)} commands rejected:\n" + "\n".join(failures[:10])


def test_the_parser_is_real(vllm_parse):
    """The helper rejects what vLLM rejects (else the test above proves nothing)."""
    result = vllm_parse([["vllm", "serve", "m", "--swap-space", "4"], ["vllm", "serve", "m", "-tp", "two"],
                         ["vllm", "serve", "m", "--dtype", "fp7"], ["vllm", "serve", "m", "-tp", "2"]])
    oks = [r["ok"] for r in result["results"]]
    assert oks == [False, False, False, True]
    assert result["results"][3]["args"]["tensor_parallel_size"] == 2
