"""Contract: every `python -m sglang.launch_server` command the launcher emits parses with SGLang's own parser.

SGLang pins its own torch, so it is not installed whole anywhere: scripts/sglang-env.sh puts sglang (with
--no-deps) into .sglang-parser, read by .venv-vllm's Python (vLLM's torch serves its imports). Run with

    scripts/vllm-env.sh && scripts/sglang-env.sh
    AUTOQUANT_SGLANG_PYTHON=.venv-vllm/bin/python AUTOQUANT_SGLANG_PATH=.sglang-parser \\
        .venv/bin/python -m pytest -m sglang tests/launchers/test_sglang_contract.py

AUTOQUANT_SGLANG_PYTHON names the interpreter (default: AUTOQUANT_VLLM_PYTHON, else this one),
AUTOQUANT_SGLANG_PATH the folder put on its PYTHONPATH; with neither, the test runs only where this Python can
import sglang. scripts/sglang_contract.py builds SGLang's real parser and parses each argv. SGLang's argparse
accepts unambiguous prefixes (`--tp 2`); the helper also reports any option not spelled in full, because
autoquant promises full spellings. All argvs go to one helper run (SGLang's import takes seconds).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoquant.data import load
from autoquant.launchers import sglang as sglang_launcher
from autoquant.launchers.base import ServeOptions
from autoquant.launchers.flags import split_passthrough
from autoquant.records import Checkpoint, QuantSpec, Workload

pytestmark = pytest.mark.sglang

ROOT = Path(__file__).parents[2]
HELPER = ROOT / "scripts" / "sglang_contract.py"
VERSION = "0.5.23"
MACHINES = ["H100-SXM:8", "A100-80GB-SXM:4", "L40S:1"]
METHODS = ["bf16", "fp8", "awq-int4", "gptq-int4"]
MODELS = ["meta-llama__Llama-3.1-8B-Instruct", "meta-llama__Llama-3.1-70B-Instruct", "Qwen__Qwen3-30B-A3B",
          "Qwen__Qwen2.5-7B-Instruct", "mistralai__Mixtral-8x7B-Instruct-v0.1"]
WORKLOADS = [Workload(), Workload(concurrency=64, max_model_len=8192)]
QUANTS = {
    "fp8": QuantSpec(method="fp8", quant_method="compressed-tensors", weight_bits=8, weight_type="float", act_bits=8),
    "awq-int4": QuantSpec(method="awq-int4", quant_method="awq", weight_bits=4, group_size=128, zero_point=True),
    "gptq-int4": QuantSpec(method="gptq-int4", quant_method="gptq", weight_bits=4, group_size=128),
}
# vLLM flags users pass, each set built on one planned candidate (translated, dropped or native)
PASSTHROUGH = [
    ["--trust-remote-code", "--revision", "main", "--tokenizer", "org/tok", "--chat-template", "t.jinja"],
    ["--enable-prefix-caching", "--enable-chunked-prefill", "--max-num-batched-tokens", "8192"],
    ["--enforce-eager", "--seed", "0", "--download-dir", "/models"],
    ["--enable-auto-tool-choice", "--tool-call-parser", "llama3", "--reasoning-parser", "qwen3"],
    ["--tool-call-parser=hermes", "--disable-log-requests", "--disable-log-stats"],
    ["--enable-lora", "--lora-modules", "a=/adapters/a", "b=/adapters/b", "--max-lora-rank", "64",
     "--max-loras", "4"],
    ["--data-parallel-size", "2", "--uvicorn-log-level", "warning", "--enable-log-requests"],
    ["--max_num_batched_tokens", "4096", "--trust-remote-code"],  # vLLM's underscore spelling
    ["--served-model-name", "chat", "--api-key", "sk-test", "--gpu-memory-utilization", "0.85", "--dtype", "half",
     "--host", "127.0.0.1", "--port", "30000"],
    ["-tp", "2", "--max-model-len", "16384", "--max-num-seqs", "32", "--kv-cache-dtype", "fp8"],
    # SGLang's own options, given as such
    ["--disable-radix-cache", "--schedule-policy", "lpm", "--attention-backend", "fa3", "--load-format", "safetensors"],
]
# --enforce-eager translates to SGLang's --disable-cuda-graph: deprecated since 0.5.14, still accepted in 0.5.23
ALLOWED_DEPRECATED = {"--disable-cuda-graph"}
WRONG = [  # what SGLang's real parser (or the full-spelling check) must reject
    ["--model-path", "m", "--tp", "2"],  # a prefix: argparse takes it, autoquant's contract does not
    ["--model-path", "m", "--tp=2"],
    ["--model-path", "m", "--mem-frac", "0.8"],
    ["--model-path", "m", "--tp_size", "2"],  # no underscore spellings in SGLang (unlike vLLM)
    ["--model-path", "m", "--context-length", "32K"],  # vLLM's 32K is not SGLang's human-readable int
    ["--model-path", "m", "--kv-cache-dtype", "fp8"],  # vLLM's name for fp8_e4m3
    ["--model-path", "m", "--tool-call-parser", "llama3_json"],
    ["--tp-size", "2"],  # --model-path is required
]
RIGHT = ["--model-path", "m", "--tp-size", "2", "--context-length", "32768"]


def _sglang_env() -> tuple[str, dict[str, str]] | None:
    python = os.environ.get("AUTOQUANT_SGLANG_PYTHON")
    path = os.environ.get("AUTOQUANT_SGLANG_PATH")
    if not python and not path:
        if importlib.util.find_spec("sglang") is None:
            return None
        return sys.executable, dict(os.environ)
    python = python or os.environ.get("AUTOQUANT_VLLM_PYTHON") or sys.executable
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = str((ROOT / path).resolve() if not os.path.isabs(path) else path)
    return python, env


def _helper(argvs: list[list[str]]) -> dict:
    found = _sglang_env()
    if found is None:
        pytest.skip("SGLang's parser is not available: run scripts/sglang-env.sh and set "
                    "AUTOQUANT_SGLANG_PYTHON=.venv-vllm/bin/python AUTOQUANT_SGLANG_PATH=.sglang-parser")
    python, env = found
    if not os.path.exists(python):
        pytest.fail(f"AUTOQUANT_SGLANG_PYTHON={python} does not exist")
    if env.get("PYTHONPATH") and os.environ.get("AUTOQUANT_SGLANG_PATH") and not os.path.isdir(env["PYTHONPATH"]):
        pytest.fail(f"AUTOQUANT_SGLANG_PATH={env['PYTHONPATH']} is not a folder: run scripts/sglang-env.sh")
    out = subprocess.run([python, str(HELPER)], input=json.dumps(argvs), capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def _args(argv: list[str]) -> list[str]:
    """What follows `python -m sglang.launch_server`."""
    assert argv[1:3] == ["-m", "sglang.launch_server"], argv[:3]
    return argv[3:]


def _variants(cand, model_id: str):
    """The planned candidate, and the checkpoints the planner would have chosen for its method."""
    yield cand
    if cand.method == "fp8":
        yield dataclasses.replace(cand, checkpoint=Checkpoint(repo=model_id, method="fp8", source="base",
                                                              runtime_quantization=True))
    if cand.method in QUANTS:
        yield dataclasses.replace(cand, checkpoint=Checkpoint(repo=f"{model_id}-{cand.method.upper()}",
                                                              method=cand.method, quant=QUANTS[cand.method],
                                                              verified=True))


def _planned(model, node) -> list[tuple[object, str, ServeOptions, list[str]]]:
    """(candidate, model id, options, argv) for every SGLang candidate of the spread."""
    from autoquant.planner import plan

    out = []
    for name in MODELS:
        spec, model_id = model(name), name.replace("__", "/")
        for machine in MACHINES:
            for workload in WORKLOADS:
                for method in METHODS:
                    p = plan(spec, node(machine), workload, engine="sglang", method=method)
                    for cand in [p.chosen, *p.alternatives] if p.chosen else []:
                        assert cand.engine == "sglang"
                        for i, variant in enumerate(_variants(cand, model_id)):
                            opts = ServeOptions(host="0.0.0.0", port=8000)
                            if i == 1:
                                opts = ServeOptions(api_key="sk-x", gpu_memory_utilization=0.88)
                            argv = sglang_launcher.build(variant, opts, model_id, version=VERSION).argv
                            out.append((variant, model_id, opts, argv))
    return out


def _passthrough(model, node) -> list[tuple[list[str], list[str]]]:
    from autoquant.planner import plan

    spec, gpus = model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:8")
    out = []
    for tokens in PASSTHROUGH:
        pins, opts = split_passthrough(tokens)
        kwargs = {"tp": 2, **pins.as_kwargs(), "engine": "sglang"}  # the pins plan, as serve does
        p = plan(spec, gpus, Workload(), **kwargs)
        assert p.chosen is not None, tokens
        pinned = {k: getattr(pins, k) for k in ("tp", "pp", "kv_cache_dtype", "max_model_len", "max_num_seqs")
                  if getattr(pins, k) is not None}
        chosen = dataclasses.replace(p.chosen, **pinned)  # serve carries the pinned values (_apply_pins)
        out.append((tokens, sglang_launcher.build(chosen, opts, "meta-llama/Llama-3.1-8B-Instruct",
                                                  version=VERSION).argv))
    return out


@pytest.fixture(scope="module")
def contract(model, node):
    planned = _planned(model, node)
    passthrough = _passthrough(model, node)
    argvs = [_args(a) for *_, a in planned] + [_args(a) for _, a in passthrough] + WRONG + [RIGHT]
    result = _helper(argvs)
    assert len(result["results"]) == len(argvs)
    by_argv = {tuple(a): r for a, r in zip(argvs, result["results"], strict=True)}
    return {"planned": planned, "passthrough": passthrough, "version": result["version"],
            "option_strings": result["option_strings"], "by_argv": by_argv}


def test_every_planned_command_parses(contract):
    planned = contract["planned"]
    assert len(planned) >= 150, "the spread should yield many SGLang candidates"
    methods = {c.method for c, *_ in planned}
    assert methods == set(METHODS)
    assert {c.tp for c, *_ in planned} >= {1, 2, 4, 8} and "fp8_e4m3" in {c.kv_cache_dtype for c, *_ in planned}
    failures = []
    for cand, model_id, opts, argv in planned:
        res = contract["by_argv"][tuple(_args(argv))]
        shown = " ".join(argv[3:])
        if not res["ok"]:
            failures.append(f"{shown}\n  -> {res['error']}")
            continue
        args = res["args"]
        want = {
            "model_path": cand.checkpoint.repo if cand.checkpoint else model_id,
            "served_model_name": model_id,
            "tp_size": cand.tp if cand.tp > 1 else None,
            "pp_size": cand.pp if cand.pp > 1 else None,
            "context_length": cand.max_model_len,
            "max_running_requests": cand.max_num_seqs,
            "kv_cache_dtype": {"fp8": "fp8_e4m3"}.get(cand.kv_cache_dtype, cand.kv_cache_dtype)
            if cand.kv_cache_dtype not in (None, "auto") else None,
            "quantization": "fp8" if cand.checkpoint and cand.checkpoint.runtime_quantization else None,
            "mem_fraction_static": opts.gpu_memory_utilization,
            "api_key": opts.api_key,
        }
        wrong = {k: (args.get(k), v) for k, v in want.items() if args.get(k) != v}
        if wrong:
            failures.append(f"{shown}\n  -> SGLang read (got, planned): {wrong}")
        if res["deprecated"]:
            failures.append(f"{shown}\n  -> deprecated options: {res['deprecated']}")
    assert not failures, f"{len(failures)} of {len(planned)} commands rejected:\n" + "\n".join(failures[:10])


def test_vllm_passthrough_commands_parse(contract):
    failures = []
    for tokens, argv in contract["passthrough"]:
        res = contract["by_argv"][tuple(_args(argv))]
        if not res["ok"]:
            failures.append(f"{' '.join(tokens)}\n  {' '.join(argv[3:])}\n  -> {res['error']}")
        elif set(res["deprecated"]) - ALLOWED_DEPRECATED:
            failures.append(f"{' '.join(tokens)}\n  -> deprecated options: {res['deprecated']}")
    assert not failures, "\n".join(failures)
    read = [contract["by_argv"][tuple(_args(a))]["args"] for _, a in contract["passthrough"]]
    assert read[2]["random_seed"] == 0 and read[2]["disable_cuda_graph"] is True
    assert read[5]["lora_paths"] == ["a=/adapters/a", "b=/adapters/b"] and read[5]["max_loras_per_batch"] == 4
    assert read[6]["dp_size"] == 2 and read[6]["log_level_http"] == "warning" and read[6]["log_requests"] is True
    assert read[7]["chunked_prefill_size"] == 4096
    assert (read[8]["served_model_name"], read[8]["mem_fraction_static"], read[8]["port"]) == ("chat", 0.85, 30000)
    assert (read[9]["tp_size"], read[9]["context_length"], read[9]["kv_cache_dtype"]) == (2, 16384, "fp8_e4m3")
    assert read[9]["max_running_requests"] == 32
    assert read[10]["attention_backend"] == "fa3" and read[10]["disable_radix_cache"] is True


def test_the_parser_is_real(contract):
    """The helper rejects what SGLang rejects, and abbreviations SGLang would take (else the tests above prove
    nothing)."""
    results = [contract["by_argv"][tuple(a)] for a in WRONG]
    assert [r["ok"] for r in results] == [False] * len(WRONG), [(a, r) for a, r in zip(WRONG, results, strict=True)]
    assert results[0]["error"] == "not a full option string: --tp (read as --tp-size)"
    assert "not a full option string: --tp=2" in results[1]["error"]
    assert "unrecognized arguments: --tp_size" in results[3]["error"]
    assert "--context-length" in results[4]["error"] and "invalid choice: 'fp8'" in results[5]["error"]
    right = contract["by_argv"][tuple(RIGHT)]
    assert right["ok"] and right["args"] == {"model_path": "m", "tp_size": 2, "context_length": 32768}


def test_option_list_matches_the_real_parser(contract):
    """engine_options/sglang-<version>.yaml is generated by reading the wheel's source; the real parser agrees."""
    if contract["version"] != VERSION:
        pytest.skip(f"SGLang {contract['version']} installed; the option list checked is {VERSION}")
    data = load(f"engine_options/sglang-{VERSION}")
    listed = {s for name, e in data["options"].items() for s in [name, *((e or {}).get("aliases") or ())]}
    assert set(contract["option_strings"]) - {"-h", "--help"} == listed
