"""`autoquant calibrate URL --model M --engine E --method M` (or `--plan plan.json`): measure the server a few
times and store the result as this node's calibration for that engine and method (prefill and decode).

Each run of each load level is one sample: measured speed against the speed model's *uncalibrated* figure for
the same load, so calibrating again never compounds. The factor applies from `min_samples` runs (overheads.yaml
`measured_calibration`, 3), hence `--runs 3` by default. `plan`, `estimate` and `explain` then say
"decode x0.87, calibrated from 3 runs on this node". Records: <cache>/calibration and $AUTOQUANT_CALIBRATION_DIR.
"""

from __future__ import annotations

import argparse
import sys

from autoquant.argtypes import bounded
from autoquant.commands import bench as bench_cmd


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="the server, e.g. http://127.0.0.1:8000/v1")
    bench_cmd.add_load_options(parser)
    parser.set_defaults(isl=256, osl=128, requests=None)
    parser.add_argument("--runs", type=bounded("requests", integer=True), default=3,
                        help="times each load level is measured; each run is one sample (default 3)")
    bench_cmd.add_target_options(parser)
    parser.add_argument("--calibration", metavar="FILE", help="efficiency factors that override the defaults")
    parser.add_argument("--json", action="store_true", help="print the bench report as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from autoquant.bench.predicted import target_from_args
    from autoquant.bench.run import bench
    from autoquant.errors import UsageError

    bench_cmd.require_aiohttp()
    for name, value in (("ttft_ms", None), ("tpot_ms", None), ("e2e_ms", None), ("slo_attainment", None),
                        ("find_max", False)):
        setattr(args, name, value)
    target = target_from_args(args, args.plan)
    if target is None:
        raise UsageError("say what the server runs: --model MODEL --engine E --method M, or --plan plan.json")
    settings = bench_cmd.settings_from(args)
    settings = dataclasses.replace(settings, levels=tuple(lv for lv in settings.levels for _ in range(args.runs)))
    trace = bench_cmd.load_trace(args.traffic) if args.traffic else None
    progress = not args.no_progress and not args.json and sys.stderr.isatty()
    result = bench(settings, trace=trace, progress=progress, headers=bench_cmd.headers_from(args.api_key_env))
    result, notes = bench_cmd.attach_predictions(result, target, args, calibrate=True)
    bench_cmd.show(result, notes, args.json)
    return 0
