"""`autoquant explain MODEL [workload] [hardware]`: the regime, the crossover batch, why the winner wins,
and which change (more users, a tighter quality floor, more GPUs) would flip the decision."""

from __future__ import annotations

import argparse
import json

from autoquant.commands.plan import add_arguments as add_plan_arguments
from autoquant.commands.plan import load_inputs, plan_kwargs, with_ways_out
from autoquant.records import to_dict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_plan_arguments(parser)
    parser.add_argument("--recipes", action="store_true",
                        help="only say how to make each checkpoint the plan found none of")


def run(args: argparse.Namespace) -> int:
    from autoquant.planner import plan
    from autoquant.planner.explain import explain, recipes

    model, node, workload, calibration = load_inputs(args)
    if args.recipes:
        result = plan(model, node, workload, **plan_kwargs(args, calibration, model, node))
        lines = recipes(result)
        if args.json:
            print(json.dumps({"recipes": [line.removeprefix("  - ") for line in lines[1:]]}, indent=2))
        else:
            print("\n".join(lines))
        return 0
    kwargs = plan_kwargs(args, calibration, model, node)
    result, lines = explain(model, node, workload, **kwargs)
    if result.chosen is None:
        result = with_ways_out(result, args, model, node, workload, kwargs)
        if result.ways_out:
            lines += ["Ways out (cheapest first: fewest GPUs, then GPU-seconds per output token):",
                      *(f"  - {w.summary}" for w in result.ways_out)]
    if args.json:
        print(json.dumps({"plan": to_dict(result), "explanation": lines}, indent=2))
    else:
        print("\n".join(lines))
    return 0 if result.chosen is not None else 1
