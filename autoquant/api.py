"""Library entry points that chain the stages: model -> checkpoints -> planner -> launch commands.

`plan` and `serve` (and any script) call these, so the chain is written once. Each stage stays
replaceable: the planner is pure, checkpoint resolution and command building are edges.
"""

from __future__ import annotations

from collections.abc import Callable

from autoquant.errors import AutoquantError
from autoquant.records import ModelSpec, Node, Plan, Workload


def plan_model(
    model: ModelSpec,
    node: Node,
    workload: Workload,
    *,
    engine: str | None = None,
    method: str | None = None,
    tp: int | None = None,
    pp: int | None = None,
    dp: int | None = None,
    kv_cache_dtype: str | None = None,
    max_model_len: int | None = None,
    max_num_seqs: int | None = None,
    checkpoint: str | None = None,
    allow_runtime_quantization: bool = False,
    calibration=None,
    offline: bool | None = None,
    resolve_checkpoints: bool = True,
    notify: Callable[[str], None] | None = None,
    memory_fraction: float | None = None,
    ruled_out: dict[str, str] | None = None,
    runtime_only: set[str] | None = None,
    predictor=None,
) -> Plan:
    """The plan for `model` on `node`: only (engine, method) pairs with a checkpoint that engine can load
    survive (unless `resolve_checkpoints` is False, e.g. for what-if planning); each chosen candidate names it.
    `runtime_only`: methods to serve by load-time quantization of the model's own weights only."""
    from autoquant.planner import plan

    checkpoints = None
    if resolve_checkpoints:
        checkpoints = available_checkpoints(model, node, method=method, engine=engine, tp=tp, checkpoint=checkpoint,
                                            offline=offline, notify=notify)
        for m in runtime_only or ():  # the user asked the engine to quantize at load time: no other checkpoint
            checkpoints[m] = []
    return plan(model, node, workload, engine=engine, method=method, tp=tp, pp=pp, dp=dp, kv_cache_dtype=kv_cache_dtype,
                checkpoints=checkpoints, allow_runtime_quantization=allow_runtime_quantization,
                calibration=calibration, max_model_len=max_model_len, max_num_seqs=max_num_seqs,
                memory_fraction=memory_fraction, ruled_out=ruled_out, predictor=predictor)


def available_checkpoints(
    model: ModelSpec,
    node: Node,
    *,
    method: str | None = None,
    engine: str | None = None,
    tp: int | None = None,
    checkpoint: str | None = None,
    offline: bool | None = None,
    notify: Callable[[str], None] | None = None,
) -> dict:
    """method -> the checkpoints the planner may use, best first, each with its per-engine verdicts (empty:
    the planner rejects the method with the way to make one)."""
    from autoquant.checkpoints import resolve_for_plan
    from autoquant.checkpoints.resolve import known_methods

    methods = [method] if method else known_methods()
    return resolve_for_plan(
        model, methods, node=node, client=None, offline=offline, checkpoint=checkpoint, engine=engine,
        tp=tp or 1, notify=notify,
    )


def attach_commands(plan: Plan, served_model: str, options=None, node: Node | None = None) -> Plan:
    """The plan with `command` (secrets redacted) on the chosen candidate and the alternatives, as `serve`
    would run them (a new record: the planner's is not changed).

    A candidate whose command cannot be built here (e.g. a GGUF not downloaded yet) keeps an empty
    command and gets a note saying why; the plan itself stays valid."""
    from dataclasses import replace

    from autoquant.facts import default_facts
    from autoquant.launchers.base import ServeOptions
    from autoquant.launchers.build import build, server_batch_cap
    from autoquant.launchers.llamacpp import threads_for

    options = options or ServeOptions()
    threads: list[int] = []  # llama.cpp's thread count, read once and only when a llama.cpp command is built

    def with_command(cand):
        cand = server_batch_cap(cand, pinned=False)  # what `serve` would run
        if not default_facts().engine(cand.engine).tensor_parallel and not threads:
            threads.append(threads_for(node))
        nodes = cand.nodes  # the planner's (a saved plan from before it said so is serve's to read)
        try:
            launch = build(cand, options, served_model, threads=threads[0] if threads else None)
            group = None
            if nodes > 1:  # what each node runs (launchers/multinode.py); `command` stays the engine's own line
                from autoquant.launchers.multinode import node_group, plan_notes, redacted

                group = redacted(node_group(cand, launch, options), launch)
                group = replace(group, notes=[*group.notes, *plan_notes(group)])
            notes = cand.notes
            if cand.replicas > 1:
                notes = [*notes, f"{cand.replicas} independent servers: run this on each of {cand.replicas} "
                                 + (f"groups of {nodes} nodes" if nodes > 1 else "nodes")
                                 + ", one load balancer (a Kubernetes Service: autoquant k8s) in front"]
            return replace(cand, command=launch.redacted_argv(), multi_node=group, notes=notes)
        except AutoquantError as exc:
            return replace(cand, command=[], notes=[*cand.notes, f"command not built: {exc}"])

    return replace(plan, chosen=with_command(plan.chosen) if plan.chosen else None,
                   alternatives=[with_command(c) for c in plan.alternatives])
