"""`autoquant ollama [MODEL] [plan options] [-o FILE]`: the plan, as an Ollama Modelfile.

    autoquant ollama                                  # the demo model (Gemma 3 270M Q4_K_M) -> ./Modelfile
    autoquant ollama bartowski/Llama-3.2-1B-Instruct-GGUF --gpu RTX4090 -o Llama.Modelfile
    autoquant ollama model.gguf --max-model-len 8192 -o -   # the Modelfile on stdout

Ollama runs GGUF files through llama.cpp, so this plans llama.cpp (the engine pinned, a GGUF method) with the
same options as `autoquant plan`, resolves the GGUF as `autoquant serve` does, and writes the plan's context,
threads and GPU layers as PARAMETER lines (launchers/ollama.py), checked against Ollama's Modelfile syntax
(autoquant/data/ollama-modelfile.yaml). Then it prints the `ollama create` and `ollama run` commands.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from autoquant.commands._options import (
    add_hardware_options,
    add_predictor_option,
    add_workload_options,
    nonempty,
    resolve_node,
    resolve_workload,
)
from autoquant.errors import RuleError, UsageError
from autoquant.output import say

DEFAULT_OUTPUT = "Modelfile"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = "autoquant ollama [MODEL] [plan options] [-o FILE] [--name NAME]"
    parser.add_argument("model", metavar="MODEL", nargs="?", default=None, type=nonempty,
                        help="HF id, GGUF repo, local directory or .gguf file (none: the demo model)")
    parser.add_argument("-o", "--output", metavar="FILE", default=DEFAULT_OUTPUT, type=nonempty,
                        help=f"where to write the Modelfile (default ./{DEFAULT_OUTPUT}; - for stdout)")
    parser.add_argument("--name", type=nonempty, default=None,
                        help="the Ollama model name in the printed commands (default: from MODEL)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing Modelfile that autoquant did not write")
    g = parser.add_argument_group("pin part of the configuration (the engine is llama.cpp)")
    g.add_argument("--method", type=nonempty, default=None, help="a GGUF type: gguf-q4_k_m, gguf-q8_0, ...")
    g.add_argument("--kv-cache-dtype", type=nonempty, default=None, help="f16, q8_0 or q4_0 (Ollama's KV cache types)")
    g.add_argument("--checkpoint", metavar="REPO|PATH", type=nonempty, default=None,
                   help="use this GGUF (HF repo or .gguf file)")
    add_predictor_option(parser)
    add_hardware_options(parser)
    add_workload_options(parser)


def run(args: argparse.Namespace) -> int:
    from autoquant import modelfile as mf
    from autoquant.launchers import ollama
    from autoquant.launchers.build import SERVER_FLAVORS
    from autoquant.launchers.flags import Pins

    if args.method is not None and not args.method.startswith("gguf-"):
        raise UsageError(f"--method {args.method}: Ollama runs GGUF files: pin a GGUF type (gguf-q4_k_m, "
                         "gguf-q8_0, ...) or leave it to the plan")
    if args.name is not None:
        ollama.name_for(args.name, args.name)  # checked before any planning
    target = None if args.output == "-" else args.output
    if target is not None:
        _check_target(target, args.force)
    args.allow_runtime_quantization = False
    pins = Pins(engine=SERVER_FLAVORS[ollama.FLAVOR], method=args.method, kv_cache_dtype=args.kv_cache_dtype)
    plan, model, threads = _plan(args, pins)
    chosen = plan.chosen
    name = ollama.name_for(model, args.name)  # the name `serve --engine ollama` gives it
    made = ollama.modelfile(chosen, model, name, threads, _layers(chosen, model), plan_line=_plan_line(plan))
    for note in made.notes:
        say(note)
    file = target or DEFAULT_OUTPUT
    default_parallel = (mf.syntax()["server"]["parallel_env"], "1")
    server_env = [f"{k}={v}" for k, v in made.server_env if (k, v) != default_parallel]
    # the server's own defaults fit the plan unless it runs several requests at once or a quantized KV cache
    commands = ([" ".join([*server_env, "ollama serve"])] if server_env else []) + [
        f"ollama create {shlex.quote(name)} -f {shlex.quote(file)}", f"ollama run {shlex.quote(name)}"]
    if target is None:
        sys.stdout.write(made.text)
        sys.stdout.flush()
        say(f"save it as {file} and run: {'; '.join(commands)}")
        return 0
    from autoquant.paths import write_atomic

    write_atomic(target, made.text)
    print(f"wrote {target} (FROM {made.source})")
    print("\n".join(commands))
    return 0


def _check_target(path: str, force: bool) -> None:
    """A file there that autoquant did not write (a hand-made Modelfile) is kept unless --force."""
    from autoquant.launchers.ollama import MARK

    if os.path.isdir(path):
        raise UsageError(f"-o {path} is a directory: give a file name (e.g. {os.path.join(path, DEFAULT_OUTPUT)})")
    if force or not os.path.exists(path):
        return
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
    except OSError as exc:
        raise UsageError(f"cannot read {path} to check it: {exc.strerror or exc}") from None
    if not first.startswith(f"# {MARK}"):
        raise UsageError(f"{path} exists and autoquant did not write it: pass --force to replace it, or -o another "
                         "file (- for stdout)")


def _threads(node) -> int | None:
    """A described machine's threads, from its record; None when it has no core count (`--gpu NAME`): they
    are not this machine's, so num_thread is left to Ollama, which counts the cores where it runs."""
    from autoquant.launchers.llamacpp import threads_for

    return threads_for(node) if node.cpu and node.cpu.physical_cores else None


def _plan(args: argparse.Namespace, pins):
    """(plan, model, threads): serve's planning with llama.cpp pinned; no MODEL plans the demo as serve does."""
    from autoquant.commands.serve import _first_reason, plan_demo, plan_with_planner
    from autoquant.launchers.llamacpp import DEMO_BASE_MODEL, threads_for

    described = bool(getattr(args, "hardware", None) or getattr(args, "gpu", None))
    if args.model is None:
        plan, _ = plan_demo(args, pins)
        model = DEMO_BASE_MODEL
        # the demo's node is probed inside plan_demo; this machine's threads are read cheaply, a described
        # node's from its record
        threads = _threads(resolve_node(args)) if described else threads_for()
    else:
        model = args.model
        workload = resolve_workload(args)
        node = resolve_node(args)
        plan = plan_with_planner(model, node, workload, pins, args)
        threads = _threads(node) if described else threads_for(node)
    if plan.chosen is None:
        raise RuleError(f"nothing can run {model} on llama.cpp here, so not on Ollama either: "
                        f"{_first_reason(plan, pins)}")
    return plan, model, threads


def _layers(candidate, model: str) -> int | None:
    """The model's blocks, for num_gpu 'all layers' when its GGUF is not here to read (an hf.co reference)."""
    from autoquant.errors import AutoquantError
    from autoquant.launchers.llamacpp import gguf_source

    if gguf_source(candidate, model)[1] is None:
        return None  # the GGUF's own header says
    from autoquant.probes.model import load_model

    try:
        return load_model(model).num_layers
    except AutoquantError:
        return None


def _plan_line(plan) -> str:
    c = plan.chosen
    speed = (f"; autoquant's estimate for llama.cpp: {c.output_tokens_per_s:.0f} tok/s at concurrency "
             f"{c.concurrency}, TTFT {c.ttft_ms:.0f} ms") if c.output_tokens_per_s else ""
    return f"plan: {plan.hardware}{speed}"
