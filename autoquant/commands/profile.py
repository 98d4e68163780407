"""`autoquant profile TRAFFIC_FILE`: a workload profile from a traffic sample."""

from __future__ import annotations

import argparse
import math

from autoquant.output import key_values, print_json, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("traffic", metavar="TRAFFIC_FILE", help="CSV (Azure, BurstGPT) or JSONL (Mooncake) trace")
    parser.add_argument("--json", action="store_true", help="print the profile as JSON")
    parser.add_argument(
        "--assumed-tpot-ms", type=float, default=None,
        help="per-token decode time used to replay arrivals into concurrency (default 30)",
    )
    parser.add_argument(
        "--assumed-ttft-ms", type=float, default=None,
        help="time to first token used in the replay (default 200)",
    )


def run(args: argparse.Namespace) -> int:
    from autoquant.argtypes import in_range
    from autoquant.errors import UsageError
    from autoquant.probes.traffic import DEFAULT_TPOT_MS, DEFAULT_TTFT_MS, profile_file

    tpot = args.assumed_tpot_ms if args.assumed_tpot_ms is not None else DEFAULT_TPOT_MS
    ttft = args.assumed_ttft_ms if args.assumed_ttft_ms is not None else DEFAULT_TTFT_MS
    if not (math.isfinite(tpot) and math.isfinite(ttft)) or tpot <= 0 or ttft < 0:
        raise UsageError("--assumed-tpot-ms must be a number > 0 and --assumed-ttft-ms a number >= 0")
    in_range(tpot, "milliseconds", "--assumed-tpot-ms")
    in_range(ttft, "milliseconds", "--assumed-ttft-ms")
    prof = profile_file(args.traffic, tpot_ms=tpot, ttft_ms=ttft)
    if args.json:
        print_json(prof)
        return 0
    print(key_values([
        ("trace", f"{prof.source} ({prof.format}, {prof.requests} requests over {prof.duration_s:.0f} s)"),
        ("arrival rate", f"{prof.arrival_rate_rps:.3g} req/s mean, {prof.peak_rate_rps_60s:.3g} req/s busiest minute"),
        ("replay assumption", f"TTFT {ttft:g} ms + output tokens x {tpot:g} ms"),
    ]))
    print()
    rows = [
        ("input tokens", *(prof.isl[k] for k in ("mean", "p50", "p90", "p99", "max"))),
        ("output tokens", *(prof.osl[k] for k in ("mean", "p50", "p90", "p99", "max"))),
        ("in flight", *(prof.concurrency[k] for k in ("mean", "p50", "p90", "p99", "max"))),
    ]
    print(table(rows, headers=("", "mean", "p50", "p90", "p99", "max")))
    w = prof.workload
    print()
    print(f"workload: --concurrency {w.concurrency} (p95 in flight) --isl {w.isl} --osl {w.osl} "
          f"--max-model-len {w.max_model_len} (p99 of input+output)")
    return 0
