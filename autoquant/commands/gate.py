"""What `serve --gate-on` and `serve --bench` do once the engine is ready: validate it against a reference,
measure it against the plan. Each returns lines to print; neither raises (a gate that cannot run fails)."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

from autoquant.errors import AutoquantError


def gate(args: argparse.Namespace, url: str) -> tuple[bool, list[str]]:
    """(passed, lines): the served engine at `url` validated against --gate-on on --dataset."""
    from autoquant.commands.validate import check, describe
    from autoquant.servers import connect

    opts = SimpleNamespace(dataset=args.dataset, use_case=args.use_case, max_ppl_delta=args.max_ppl_delta,
                           max_kl=args.max_kl, window=args.gate_window, max_windows=args.gate_max_windows,
                           top_k=args.gate_top_k)
    try:
        result = check(connect(args.gate_on), connect(url), opts, progress=False)
    except AutoquantError as exc:
        return False, [f"cannot validate: {exc}", "FAIL: stopping the engine (it was not shown to be good enough)"]
    lines = describe(result)
    if not result.verdict.passed:
        lines.append("stopping the engine")
    return result.verdict.passed, lines


def bench_served(url: str, candidate, plan, args: argparse.Namespace) -> list[str]:
    """The served engine measured at the plan's workload, row by row against the prediction."""
    from autoquant.bench import compare, report
    from autoquant.bench.records import Level, Settings
    from autoquant.bench.run import bench

    wl = plan.workload or {}
    conc = max(1, int(candidate.concurrency or wl.get("concurrency") or 1))
    settings = Settings(url=url, levels=(Level("concurrency", float(conc)),), isl=int(wl.get("isl") or 512),
                        osl=int(wl.get("osl") or 256), warmup=1, requests=max(4, 2 * conc))
    try:
        result = bench(settings)
    except AutoquantError as exc:
        return [f"could not measure: {exc}"]
    s = result.levels[0]
    rows = compare.rows(s, candidate)
    lines = report.level_rows(result.levels).splitlines()
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"x{r['ratio']:.2f}"
        pred = "-" if r["predicted"] is None else f"{r['predicted']:.4g}"
        meas = "-" if r["measured"] is None else f"{r['measured']:.4g}"
        lines.append(f"{r['metric']}: predicted {pred} {r['unit']}, measured {meas} (measured/predicted {ratio})")
    lines += [f"warning: {w}" for w in result.warnings]
    lines.append("to calibrate the planner with such runs: autoquant calibrate "
                 f"{url} --model MODEL --engine {candidate.engine} --method {candidate.method}")
    return lines
