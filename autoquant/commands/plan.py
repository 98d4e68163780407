"""`autoquant plan MODEL [workload] [hardware] [--json]`: the decision, its alternatives, every rejection.

A thin adapter over `autoquant.planner.plan`; `estimate` and `explain` share its options.
"""

from __future__ import annotations

import argparse

from autoquant.argtypes import bounded
from autoquant.commands._options import (
    add_hardware_options,
    add_predictor_option,
    add_workload_options,
    resolve_node,
    resolve_predictor,
    resolve_workload,
)
from autoquant.output import print_json, say, table
from autoquant.records import Estimate, Plan


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="Hugging Face id (org/name), local directory, or .gguf file")
    parser.add_argument("--offline", action="store_true", help="do not contact the Hub: local, cache, catalog only")
    parser.add_argument("--json", action="store_true", help="print the record as JSON")
    parser.add_argument("--calibration", metavar="FILE", help="efficiency factors that override the defaults")
    parser.add_argument("--uncalibrated", action="store_true",
                        help="ignore this node's measurements (autoquant calibrate): the speed model alone")
    add_predictor_option(parser)


def add_pin_options(parser: argparse.ArgumentParser, required: bool = False) -> None:
    g = parser.add_argument_group("pin part of the configuration")
    g.add_argument("--engine", required=required, default=None)
    g.add_argument("--method", required=required, default=None,
                   help="bf16, fp16, fp8, fp8-weight-only, int8-sq, awq-int4, gptq-int4, nvfp4, gguf-<type>")
    g.add_argument("--tp", type=bounded("gpus_per_node", integer=True), default=None, help="tensor-parallel size")
    g.add_argument("--pp", type=bounded("nodes", integer=True), default=None, help="pipeline-parallel size (nodes)")
    g.add_argument("--dp", type=bounded("gpus_per_node", integer=True), default=None,
                   help="data-parallel replicas in one server (vLLM --data-parallel-size, SGLang --dp-size)")
    g.add_argument("--kv-cache-dtype", default=None, help="auto, fp8 (vLLM/TRT-LLM); f16, q8_0 (llama.cpp)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_pin_options(parser)
    parser.add_argument("--allow-runtime-quantization", action="store_true",
                        help="let vLLM quantize BF16 weights to FP8 at load time when no FP8 checkpoint exists")
    parser.add_argument("--checkpoint", metavar="REPO|PATH", default=None,
                        help="use this checkpoint (HF repo, local directory or .gguf file) for its method")
    parser.add_argument("--any-checkpoint", action="store_true",
                        help="what-if: plan as if every method had a checkpoint (skip checkpoint resolution)")
    add_hardware_options(parser)
    add_workload_options(parser)


def load_inputs(args: argparse.Namespace):
    """(ModelSpec, Node, Workload, Calibration) from the command line."""
    from autoquant.measurements import node_calibration
    from autoquant.probes.model import load_model

    workload = resolve_workload(args)
    node = resolve_node(args)
    model = load_model(args.model, offline=True if getattr(args, "offline", False) else None)
    calibration = node_calibration(node, model.id, getattr(args, "calibration", None),
                                   notify=say,
                                   use_measured=not getattr(args, "uncalibrated", False))
    return model, node, workload, calibration


def plan_kwargs(args: argparse.Namespace, calibration, model=None, node=None) -> dict:
    """Keyword arguments for planner.plan; with `model` and `node`, the checkpoints it may use too."""
    from autoquant.launchers.build import SERVER_FLAVORS

    if args.engine in SERVER_FLAVORS:  # a server, not an engine: `ollama` runs llama.cpp's GGUF
        from autoquant.facts import default_facts

        engine = SERVER_FLAVORS[args.engine]
        label = default_facts().engine(engine).label
        say(f"--engine {args.engine}: it runs {label}, so this is {label}'s plan (`autoquant ollama MODEL` "
            "writes it as a Modelfile)")
        args.engine = engine
    kwargs = dict(engine=args.engine, method=args.method, tp=args.tp, pp=args.pp, dp=getattr(args, "dp", None),
                  kv_cache_dtype=args.kv_cache_dtype,
                  allow_runtime_quantization=bool(getattr(args, "allow_runtime_quantization", False)),
                  calibration=calibration, predictor=resolve_predictor(args))
    if model is not None and node is not None and not getattr(args, "any_checkpoint", False):
        from autoquant.api import available_checkpoints

        kwargs["checkpoints"] = available_checkpoints(
            model, node, method=args.method, engine=args.engine, tp=args.tp,
            checkpoint=getattr(args, "checkpoint", None),
            offline=True if getattr(args, "offline", False) else None,
            notify=say,
        )
    return kwargs


def checkpoints_for(args: argparse.Namespace, model, node):
    """What the ways out plan a model with when the pins no longer hold (a smaller one of the family, or this one
    without --engine/--method/--tp): its checkpoints for every method and engine, resolved as this command
    resolves the asked model's, quietly (the notes were said once); None with --any-checkpoint."""
    if getattr(args, "any_checkpoint", False):
        return None
    from autoquant.api import available_checkpoints

    def resolve(spec):
        mine = getattr(args, "checkpoint", None) if spec.id == model.id else None  # --checkpoint is the asked model's
        return available_checkpoints(spec, node, checkpoint=mine,
                                     offline=True if getattr(args, "offline", False) else None,
                                     notify=lambda _line: None)

    return resolve


def with_ways_out(result: Plan, args: argparse.Namespace, model, node, workload, kwargs: dict) -> Plan:
    """The plan with the ways out of it when it chose nothing (autoquant.planner.ways_out)."""
    from autoquant.planner.ways_out import with_ways_out as add

    return add(result, model, node, workload, checkpoints_for=checkpoints_for(args, model, node), **kwargs)


def run(args: argparse.Namespace) -> int:
    from autoquant.api import attach_commands
    from autoquant.planner import plan

    model, node, workload, calibration = load_inputs(args)
    kwargs = plan_kwargs(args, calibration, model, node)
    result = plan(model, node, workload, **kwargs)
    result = with_ways_out(result, args, model, node, workload, kwargs)
    result = attach_commands(result, args.model, node=node)
    if args.json:
        print_json(result)
    else:
        print(render(result))
    return 0 if result.chosen is not None else 1


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def estimate_rows(e: Estimate) -> list[tuple[str, str]]:
    m = e.memory
    per_server = e.gpus // max(1, e.replicas)
    par = f"TP={e.tp} PP={e.pp}" + (f" DP={e.dp} (replicas in one server; {per_server} GPUs)" if e.dp > 1 else "") \
        if e.engine != "llamacpp" else (
        f"{per_server} GPU(s)" + (f", -ngl {e.n_gpu_layers}" if e.n_gpu_layers is not None else ""))
    par += f" over {e.nodes} nodes" if e.nodes > 1 else ""
    if e.replicas > 1:
        par += (f"; x{e.replicas} independent servers (one per node{' group' if e.nodes > 1 else ''}, behind one "
                f"Service), {e.gpus} GPUs in all")
    return [
        ("engine / method", f"{e.engine} / {e.method} (kernel {e.kernel})"),
        ("parallelism", par),
        ("KV-cache dtype", e.kv_cache_dtype),
        ("memory per GPU", f"weights {m.weights_gb:.1f} GB + KV {m.kv_cache_gb:.1f} GB + overhead "
                           f"{m.overhead_gb:.1f} GB = {m.total_gb:.1f} of {m.capacity_gb:.1f} GB "
                           f"({'fits' if m.fits else 'does NOT fit'})"),
        ("limits", f"max concurrency {e.max_concurrency} at this context; max model len {e.max_model_len}; "
                   f"--max-num-seqs {e.max_num_seqs}" + (" per replica" if e.dp > 1 else "")),
        *[("queueing", n) for n in e.notes if " requests run at once " in n],
        ("TTFT / TPOT", f"{_fmt(e.ttft_ms, 0)} ms / {_fmt(e.tpot_ms, 1)} ms"),
        ("throughput", f"{_fmt(e.output_tokens_per_s, 0)} output tok/s at concurrency {e.concurrency} "
                       f"({_fmt(e.per_request_tokens_per_s, 1)} per request); {_fmt(e.output_tokens_per_s_at_max, 0)} "
                       f"at max concurrency"),
        ("quality", "unknown" if e.ppl_delta is None else f"+{e.ppl_delta:.3f} ppl"
         + (f" (+-{e.ppl_delta_uncertainty:.3f})" if e.ppl_delta_uncertainty else "")),
        ("cost", "unknown (give --gpu-hour-cost)" if e.cost_per_million_tokens is None
         else f"${e.cost_per_million_tokens:.3f} per million output tokens"),
        ("regime", f"{e.regime}" + (f" (crossover batch B* = {e.crossover_batch:.0f})" if e.crossover_batch else "")),
        *[("warning", w) for w in e.warnings],
    ]


_SAME_WEIGHTS = ("bf16", "fp16")  # 16-bit twins: identical bytes, kernels and quality in the cost model


def collapse_unquantized(alternatives: list) -> list[tuple]:
    """Table rows for the alternatives; a bf16 row and an fp16 row with identical figures (same engine, TP,
    PP, KV dtype, speed, quality, cost) become one 'bf16/fp16' row. --json keeps both."""
    out: list[tuple] = []
    index: dict[tuple, int] = {}
    for a in alternatives:
        row = (a.engine, a.method, a.tp, a.pp, a.dp, a.kv_cache_dtype, round(a.ttft_ms), round(a.tpot_ms, 1),
               round(a.output_tokens_per_s), a.gpus, None if a.ppl_delta is None else round(a.ppl_delta, 3),
               None if a.cost_per_million_tokens is None else round(a.cost_per_million_tokens, 3))
        if a.method in _SAME_WEIGHTS:
            key = (row[0], *row[2:])
            if key in index:
                j = index.pop(key)
                out[j] = (out[j][0], "/".join(_SAME_WEIGHTS), *out[j][2:])
                continue
            index[key] = len(out)
        out.append(row)
    return out


MAX_SHOWN = 5  # alternatives in the default output; all of them, and every rejection, are in --json
MAX_LINES = 40  # the default output fits one screen


def render(p: Plan) -> str:
    """One screen: the choice, the command, the best alternatives and the rejections grouped by reason."""
    from autoquant.output import key_values
    from autoquant.planner.summary import group_rejections

    w = p.workload
    mml = f", max model len {w['max_model_len']}" if w.get("max_model_len") else ""
    lines = [f"model     {p.model}", f"hardware  {p.hardware}",
             f"workload  concurrency {w.get('concurrency') or 'max'}, ISL {w.get('isl')}, OSL {w.get('osl')}{mml}, "
             f"quality floor {w.get('quality_floor')} ({w.get('quality_floor_from')}), objective {w.get('objective')}",
             ""]
    if p.chosen is None:
        lines.append("chosen: none -- no configuration fits, meets the SLOs and the quality floor")
    else:
        lines.append("chosen")
        lines.append(key_values(compact_rows(p.chosen)))
        lines.extend(f"  * {r}" for r in p.reasons if not r.startswith("regime at"))  # the regime row says it
        ckpt = p.chosen.checkpoint
        if ckpt is not None:
            where = ckpt.repo + (f" ({', '.join(ckpt.files)})" if ckpt.files else "")
            lines.append(f"checkpoint  {where} [{ckpt.status or ckpt.source}]")
        if p.chosen.multi_node is not None:
            lines.extend(node_group_lines(p.chosen.multi_node))
        elif p.chosen.command:
            import shlex

            lines.append(f"command     {shlex.join(p.chosen.command)}")
            lines.extend(f"note        {n}" for n in p.chosen.notes if n.endswith("in front"))
        else:
            lines.extend(f"command     ({n})" for n in p.chosen.notes if n.startswith("command not built"))
    if p.alternatives:
        rows = collapse_unquantized(p.alternatives)
        shown = rows[:MAX_SHOWN]
        more = len(rows) - len(shown)
        lines += ["", "alternatives (ranked)" + (f"; {more} more in --json" if more > 0 else "")]
        lines.append(table([(i + 1, *row) for i, row in enumerate(shown)],
                           ["#", "engine", "method", "tp", "pp", "dp", "kv", "ttft_ms", "tpot_ms", "tok/s", "gpus",
                            "ppl+", "$/Mtok"]))
    ways = ways_out_lines(p)
    if p.rejected:
        grouped = group_rejections(p.rejected, p.model)
        room = max(3, MAX_LINES - "\n".join(lines).count("\n") - 3 - len(ways))
        if len(grouped) > room:
            grouped = [*grouped[:room - 1], f"{len(grouped) - room + 1} more reasons (the engines' rules for this "
                       f"GPU): `autoquant explain {p.model}` lists them"]
        lines += ["", f"rejected ({len(p.rejected)}, by reason; each in full in --json)"]
        lines.extend(f"  - {g}" for g in grouped)
    lines += ways
    return "\n".join(lines)


def node_group_lines(group) -> list[str]:
    """A server over several nodes: how it runs, then each node's commands and the notes on them."""
    from autoquant.launchers.multinode import command_lines

    how = {"ray": "vLLM on a Ray cluster", "mp": "vLLM's multiprocessing mode", "sglang": "SGLang's --nnodes/--node-rank",
           "mpi": "one MPI world"}.get(group.backend, group.backend)
    lines = [f"nodes       {group.nodes} per server ({how}): on each node, in order"]
    lines += [f"{label.ljust(10)}  {line}" for label, line in command_lines(group)]
    lines += [f"note        {n}" for n in group.notes]
    return lines


def ways_out_lines(p: Plan) -> list[str]:
    """The ways out of a plan that chose nothing, one line each, cheapest first (their order in the record)."""
    if not p.ways_out:
        return []
    return ["", "ways out (cheapest first: fewest GPUs, then GPU-seconds per output token; each in full in --json)",
            *(f"  {i}. {w.summary}" for i, w in enumerate(p.ways_out, 1))]


def compact_rows(e: Estimate) -> list[tuple[str, str]]:
    """estimate_rows with the engine, method, parallelism and KV dtype on one line."""
    rows = estimate_rows(e)
    head = dict(rows[:3])
    config = (f"{head['engine / method']}; {head['parallelism']}; KV {head['KV-cache dtype']}")
    return [("configuration", config), *rows[3:]]
