"""`autoquant estimate MODEL --engine E --method M [--tp N] [--pp N] [workload] [hardware] --json`.

Evaluates one fixed configuration; a configuration the rules rule out is an error (exit 2) whose one
line is the rule's reason.
"""

from __future__ import annotations

import argparse

from autoquant.commands._options import add_hardware_options, add_workload_options, resolve_predictor
from autoquant.commands.plan import add_model_argument, add_pin_options, estimate_rows, load_inputs
from autoquant.output import key_values, print_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_pin_options(parser, required=True)
    parser.add_argument("--n-gpu-layers", type=int, default=None, help="llama.cpp: layers on the GPU (-ngl)")
    add_hardware_options(parser)
    add_workload_options(parser)


def run(args: argparse.Namespace) -> int:
    from autoquant.planner import estimate

    model, node, workload, calibration = load_inputs(args)
    result = estimate(model, node, workload, engine=args.engine, method=args.method, tp=args.tp or 1,
                      pp=args.pp or 1, dp=args.dp or 1, kv_cache_dtype=args.kv_cache_dtype, n_gpu_layers=args.n_gpu_layers,
                      calibration=calibration, predictor=resolve_predictor(args))
    if args.json:
        print_json(result)
    else:
        print(key_values(estimate_rows(result)))
        for note in result.notes:
            if " requests run at once " not in note:  # shown as the "queueing" row
                print(f"note: {note}")
    return 0
