"""`autoquant bench URL`: measure an OpenAI-compatible server (vLLM, TensorRT-LLM, SGLang, llama.cpp).

Closed loop (`--concurrency 1,4,16`) or open loop (`--request-rate 2,4 --burstiness 1`), synthetic lengths or a
replayed trace (`--traffic`), TTFT / TPOT / ITL / E2E percentiles, throughput and goodput, errors by kind;
`--find-max` searches the largest load that meets the SLOs; `--plan plan.json` compares with the prediction;
`--calibrate` stores the measurements as this node's calibration. Needs the `bench` extra (aiohttp).
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from autoquant.argtypes import bounded, in_range, positive_float, positive_int
from autoquant.errors import InputError, UsageError

API_KEY_ENV = "OPENAI_API_KEY"


def _list(convert, what: str, allow_inf: bool = False):
    def parse(text: str) -> list:
        out = []
        for part in str(text).split(","):
            part = part.strip()
            if allow_inf and part.lower() == "inf":
                out.append(math.inf)
                continue
            out.append(convert(part, what))
        if not out:
            raise argparse.ArgumentTypeError(f"{what}: give at least one value")
        return out
    return parse


def _count(bound: str):
    """A positive integer within limits.yaml bound `bound`, for _list's (text, what) calls."""
    def parse(text: str, what: str) -> int:
        return in_range(positive_int(text, what), bound, what)
    return parse


def _fraction(text: str) -> float:
    v = positive_float(text, "--slo-attainment")
    if v > 1:
        raise argparse.ArgumentTypeError("--slo-attainment is a fraction in (0, 1], e.g. 0.9")
    return v


def _ratio(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--range-ratio {text!r}: a number in [0, 1)") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"--range-ratio {text!r}: a number in [0, 1)")
    return v


def add_load_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("load")
    g.add_argument("--concurrency", type=_list(_count("concurrency"), "--concurrency"), default=None, metavar="N[,N...]",
                   help="closed loop: requests in flight (a list sweeps; default 1)")
    g.add_argument("--request-rate", type=_list(positive_float, "--request-rate", allow_inf=True), default=None,
                   metavar="R[,R...]", help="open loop: requests per second (inf: all at once)")
    g.add_argument("--burstiness", type=positive_float, default=1.0,
                   help="open-loop arrivals: gamma shape (1 = Poisson, <1 burstier, >1 steadier)")
    g.add_argument("--max-concurrency", type=bounded("concurrency", integer=True), default=None,
                   help="open loop: at most this many in flight (the rest wait)")
    g.add_argument("--isl", type=bounded("tokens", integer=True), default=512, help="prompt tokens per request (default 512)")
    g.add_argument("--osl", type=bounded("tokens", integer=True), default=256, help="output tokens per request (default 256)")
    g.add_argument("--range-ratio", type=_ratio, default=0.0,
                   help="draw lengths uniformly in [x(1-r), x(1+r)] (default 0: fixed)")
    g.add_argument("--traffic", metavar="FILE", help="replay a trace (every format `profile` reads)")
    g.add_argument("--time-scale", type=positive_float, default=1.0,
                   help="replay: multiply the trace's times by this (0.5 plays it twice as fast)")
    g.add_argument("--requests", type=bounded("requests", integer=True), default=None,
                   help="requests per level (default: 4 per worker, at least 16; an open loop 30 s of arrivals)")
    g.add_argument("--duration", type=bounded("seconds"), default=None, metavar="SECONDS",
                   help="stop sending after this long per level")
    g.add_argument("--warmup", type=int, default=2, help="requests sent first and left out (default 2)")
    g.add_argument("--seed", type=int, default=0, help="seed of the prompts and arrivals (default 0)")
    g.add_argument("--timeout", type=bounded("seconds"), default=600.0, help="seconds one request may take")
    g.add_argument("--endpoint", choices=("completions", "chat"), default="completions",
                   help="/v1/completions (default) or /v1/chat/completions")
    g.add_argument("--no-ignore-eos", dest="ignore_eos", action="store_false",
                   help="let requests stop at end-of-sequence (default: ask for exactly --osl where the server can)")
    g.add_argument("--model", default=None,
                   help="the model the server runs, as the planner knows it (a HF id), for --plan/--calibrate")
    g.add_argument("--served-model-name", default=None,
                   help="model name to put in requests (default: the first one /v1/models lists)")
    g.add_argument("--api-key-env", default=API_KEY_ENV, metavar="VAR",
                   help=f"environment variable holding a bearer token (default {API_KEY_ENV}; never printed)")


def add_slo_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("SLOs (goodput, --find-max)")
    g.add_argument("--ttft-ms", type=bounded("milliseconds"), default=None)
    g.add_argument("--tpot-ms", type=bounded("milliseconds"), default=None)
    g.add_argument("--e2e-ms", type=bounded("milliseconds"), default=None)
    g.add_argument("--slo-attainment", type=_fraction, default=None,
                   help="share of requests that must meet every SLO for a level to pass (default 0.9)")


def add_target_options(parser: argparse.ArgumentParser) -> None:
    from autoquant.commands._options import add_hardware_options

    g = parser.add_argument_group("what the server runs (for --plan comparison and calibration)")
    g.add_argument("--plan", metavar="PLAN_JSON", help="a plan from `autoquant plan --json`: compare with it")
    g.add_argument("--engine", default=None, help="the engine the server runs (with --method and --model)")
    g.add_argument("--method", default=None, help="its quantization method, e.g. gguf-q4_k_m, awq-int4")
    g.add_argument("--tp", type=bounded("gpus_per_node", integer=True), default=None, help="its tensor-parallel size")
    g.add_argument("--kv-cache-dtype", default=None)
    add_hardware_options(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="the server, e.g. http://127.0.0.1:8000/v1")
    add_load_options(parser)
    add_slo_options(parser)
    parser.add_argument("--find-max", action="store_true",
                        help="search the largest concurrency (or rate) that meets the SLOs, from the first given")
    add_target_options(parser)
    parser.add_argument("--calibrate", action="store_true",
                        help="store the measurements as this node's calibration (needs --plan or --engine/--method)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--output", metavar="FILE", help="also write the JSON report to FILE")
    parser.add_argument("--save-requests", action="store_true", help="keep every request's record in the JSON")
    parser.add_argument("--plot", metavar="DIR", help="write PNG plots to DIR (needs matplotlib)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def settings_from(args: argparse.Namespace):
    from autoquant.bench.records import SLO, Level, Settings
    from autoquant.bench.run import policy

    if args.concurrency and args.request_rate:
        raise UsageError("give --concurrency (closed loop) or --request-rate (open loop), not both")
    if args.traffic and (args.concurrency or args.request_rate):
        raise UsageError("--traffic replays the trace's own arrival times: leave out --concurrency/--request-rate")
    if args.warmup < 0:
        raise UsageError("--warmup must be >= 0")
    in_range(args.warmup, "requests", "--warmup")
    if args.find_max and args.traffic:
        raise UsageError("--find-max searches over --concurrency or --request-rate, not a replayed trace")
    if args.traffic:
        levels = (Level("replay", args.time_scale),)
    elif args.request_rate:
        levels = tuple(Level("rate", r, args.burstiness) for r in args.request_rate)
    else:
        levels = tuple(Level("concurrency", float(c)) for c in (args.concurrency or [1]))
    if args.find_max and len(levels) > 1:
        raise UsageError("--find-max starts from one --concurrency (or --request-rate) value, not a list")
    if args.find_max and levels[0].value == math.inf:
        raise UsageError("--find-max needs a finite starting --request-rate")
    return Settings(
        url=args.url, model=args.served_model_name or "", endpoint=args.endpoint, levels=levels, isl=args.isl, osl=args.osl,
        range_ratio=args.range_ratio, traffic=args.traffic, requests=args.requests, duration_s=args.duration,
        warmup=args.warmup, seed=args.seed, timeout_s=args.timeout,
        slo=SLO(args.ttft_ms, args.tpot_ms, args.e2e_ms), find_max=args.find_max,
        slo_attainment=args.slo_attainment or policy()["slo_attainment"], max_concurrency=args.max_concurrency,
        ignore_eos=args.ignore_eos,
    )


def load_trace(path: str):
    from autoquant.probes.traffic import read_trace

    _, requests = read_trace(path)
    return [(r.arrival_s, r.isl, r.osl) for r in requests]


def headers_from(env_var: str) -> dict[str, str]:
    token = os.environ.get(env_var or API_KEY_ENV)
    return {"Authorization": f"Bearer {token}"} if token else {}


def require_aiohttp() -> None:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise UsageError("bench needs aiohttp: pip install 'autoquant[bench]'") from None


def run(args: argparse.Namespace) -> int:
    from autoquant.bench import report as rep
    from autoquant.bench.predicted import target_from_args
    from autoquant.bench.run import bench

    require_aiohttp()
    settings = settings_from(args)
    target = target_from_args(args, args.plan)
    if args.calibrate and target is None:
        raise UsageError("--calibrate needs to know what the server runs: --plan plan.json, or --model, --engine "
                         "and --method")
    trace = load_trace(args.traffic) if args.traffic else None
    progress = not args.no_progress and not args.json and sys.stderr.isatty()
    result = bench(settings, trace=trace, progress=progress, headers=headers_from(args.api_key_env),
                   keep_requests=args.save_requests)
    notes: list[str] = []
    if target is not None:
        result, notes = attach_predictions(result, target, args, calibrate=args.calibrate)
    if args.plot:
        from autoquant.bench.plots import write

        for p in write(result, args.plot):
            notes.append(f"plot: {p}")
    if args.output:
        import json

        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                json.dump(rep.to_json(result), fh, indent=2)
        except OSError as exc:
            raise InputError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    show(result, notes, args.json)
    return 0


def show(result, notes: list[str], as_json: bool) -> None:
    """The report (JSON or text) on stdout; the notes after it (on stderr with --json, to keep stdout JSON)."""
    from autoquant.bench import report as rep
    from autoquant.output import print_json

    if as_json:
        print_json(rep.to_json(result))
    else:
        print(rep.text(result))
    for n in notes:
        print(n, file=sys.stderr if as_json else sys.stdout)


def attach_predictions(result, target, args, calibrate: bool):
    """The report with predicted-vs-measured rows; with `calibrate`, the samples stored. (report, notes)."""
    import dataclasses
    from datetime import datetime, timezone

    from autoquant.bench import compare
    from autoquant.bench.predicted import estimates
    from autoquant.commands._options import resolve_node
    from autoquant.measurements import measured_on, node_calibration, save_samples
    from autoquant.output import say
    from autoquant.planner.measured import fingerprint
    from autoquant.probes.model import load_model

    notes: list[str] = []
    node = resolve_node(args)
    model = load_model(target.model)
    calibrated = node_calibration(node, target.model, getattr(args, "calibration", None), notify=say)
    preds = estimates(target, model, node, result.levels, calibrated)
    rows = []
    for s, p in zip(result.levels, preds, strict=True):
        if p is not None:
            rows += compare.rows(s, p)
    result = dataclasses.replace(result, comparison=rows)
    if calibrate:
        raw = estimates(target, model, node, result.levels,
                        node_calibration(node, target.model, use_measured=False))
        fp = fingerprint(node)
        if not fp:
            raise InputError("this node has no fingerprint to calibrate (no GPU and an unknown CPU model)")
        taken = datetime.now(timezone.utc).isoformat(timespec="seconds")
        server = " ".join(x for x in (result.server.get("engine"), result.server.get("version")) if x)
        samples = []
        for i, (s, p) in enumerate(zip(result.levels, raw, strict=True)):
            if p is not None:
                samples += compare.samples(s, p, target.model, taken, server, f"{taken}:{os.getpid()}:{i}")
        if not samples:
            raise InputError("no completed request to calibrate from")
        paths = save_samples(fp, target.engine, target.method, samples, hardware=_hardware(node))
        notes.append(f"calibration: {len(samples)} samples for {target.engine} {target.method} on {fp} saved to "
                     + ", ".join(str(p) for p in paths))
        m = measured_on(node, target.model, notify=say)
        for line in m.notes(target.engine, target.method):
            notes.append(f"calibration: {line}")
    return result, notes


def _hardware(node) -> str:
    from autoquant.planner.hardware import device_of

    return device_of(node).describe()
