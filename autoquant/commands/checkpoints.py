"""`autoquant checkpoints MODEL`: the pre-quantized checkpoints that exist for a model, verified.

A table per method (repo, revision or file, source, verified, reason), then the one the planner would use
on this node (when the planner can run here). `--json` prints the same as records.
"""

from __future__ import annotations

import argparse

from autoquant.commands._options import add_hardware_options
from autoquant.errors import AutoquantError, escape_controls
from autoquant.output import human_bytes, print_json, say, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="base model: Hugging Face id (org/name), local folder or catalog id")
    parser.add_argument("--method", action="append", metavar="M",
                        help="only this method (repeat or comma-separate): awq-int4, gptq-int4, fp8, int8-sq, "
                             "nvfp4, gguf-q4_k_m, ...")
    parser.add_argument("--checkpoint", metavar="PATH_OR_REPO", help="verify this checkpoint only")
    parser.add_argument("--engine", help="verify loadability and kernels for this engine")
    parser.add_argument("--tp", type=int, default=None, help="tensor-parallel size for the kernel shape rules")
    parser.add_argument("--search-dir", action="append", default=[], metavar="DIR",
                        help="also look for checkpoints in this folder (also AUTOQUANT_CHECKPOINT_DIRS)")
    parser.add_argument("--offline", action="store_true", help="do not use the Hub (as HF_HUB_OFFLINE=1)")
    parser.add_argument("--no-plan", action="store_true", help="list only; do not ask the planner")
    parser.add_argument("--json", action="store_true", help="print records as JSON")
    add_hardware_options(parser)


def split_methods(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [m.strip() for v in values for m in v.split(",") if m.strip()]


def load_base(model: str, offline: bool):
    """The base ModelSpec (None when it cannot be described; dimensions are then not compared)."""
    try:
        from autoquant.probes.model import load_model

        return load_model(model, offline=offline)
    except AutoquantError as exc:
        say(f"note: cannot describe {model} ({exc}); dimensions not compared")
        return None


def run(args: argparse.Namespace) -> int:
    from autoquant.checkpoints import Resolver, Target, capability_of, validate_methods
    from autoquant.checkpoints.hub import HubSettings

    methods = validate_methods(split_methods(args.method))
    if args.tp is not None and args.tp < 1:
        from autoquant.errors import UsageError

        raise UsageError(f"--tp must be at least 1, not {args.tp}")
    settings = HubSettings.from_env()
    offline = args.offline or settings.offline
    node = _node(args)
    base = load_base(args.model, offline)
    model_id = base.id if base is not None and "/" in base.id else args.model
    resolver = Resolver(settings=settings, offline=offline, local_dirs=args.search_dir)
    target = Target(engine=args.engine, tp=args.tp or 1, capability=capability_of(node))
    res = resolver.resolve(model_id, base, methods, target, args.checkpoint)
    chosen_plan = None if args.no_plan or base is None or node is None else _plan(base, node, res, args)
    if args.json:
        print_json({"model": res.model, "offline": res.offline, "notices": res.notices,
                    "target": {"engine": target.engine, "tp": target.tp, "capability": target.capability},
                    "candidates": res.candidates, "chosen": res.chosen, "planner": chosen_plan})
        return 0
    rows = []
    for method, cands in res.candidates.items():
        if not cands:
            rows.append([method, "-", "-", "-", "no", "none found"])
        for c in cands:
            where = ",".join(c.files[:1]) + (f" (+{len(c.files) - 1})" if len(c.files) > 1 else "") if c.files \
                else (c.revision[:12] if c.revision else "-")
            mark = "yes" if c.verified else ("flagged" if c.status == "unverified" else "no")
            rows.append([method, c.repo, where, c.source, mark, _reason(c)])
    print(table(rows, ["method", "repo", "revision/file", "source", "verified", "reason"]))
    picked = [(m, c) for m, c in res.chosen.items() if c is not None]
    # repos come from the user's MODEL: a newline in it must not start a line of its own (as in the table)
    if picked:
        print()
        print(escape_controls("would use per method: " + "; ".join(f"{m} -> {c.repo}" for m, c in picked)))
    if chosen_plan:
        print(escape_controls(f"planner on this node: {chosen_plan['engine']} {chosen_plan['method']} "
                              f"TP={chosen_plan['tp']} -> {chosen_plan['checkpoint'] or 'no checkpoint'}"))
    return 0


def _reason(c) -> str:
    size = f" [{human_bytes(c.size_bytes)}]" if c.size_bytes else ""
    return c.reason + size


def _node(args: argparse.Namespace):
    if getattr(args, "hardware", None) or getattr(args, "gpu", None):
        from autoquant.commands._options import resolve_node

        return resolve_node(args)
    if args.no_plan:
        return None
    try:  # this node, without the slow CPU measurements
        from autoquant.probes.hardware import probe

        return probe(measure=False)
    except Exception as exc:  # noqa: BLE001 - listing still works without a node
        say(f"note: could not probe this node ({exc}); kernel capability not checked")
        return None


def _plan(base, node, res, args) -> dict | None:
    try:
        from autoquant.planner import plan
    except ImportError:
        return None
    try:
        p = plan(base, node, engine=args.engine, tp=args.tp, checkpoints=res.chosen)
    except AutoquantError as exc:
        say(f"note: planner: {exc}")
        return None
    if p.chosen is None:
        return None
    ck = p.chosen.checkpoint
    return {"engine": p.chosen.engine, "method": p.chosen.method, "tp": p.chosen.tp,
            "checkpoint": ck.repo if ck else None}
