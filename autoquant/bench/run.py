"""`bench` as a library call: connect, warm up, run each load level (or search for the largest that meets the
SLOs), summarize. `autoquant.bench.bench(Settings(url=...))` returns the Report the command prints."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Sequence
from datetime import datetime, timezone

from autoquant.bench import client, metrics, schedule
from autoquant.bench.records import Level, Report, RequestResult, RequestSpec, Settings, Summary
from autoquant.errors import EngineError, UsageError
from autoquant.servers import Server, connect, tokenize

# With no --requests and no --duration: enough requests for a p90 to mean something, a few per worker.
MIN_REQUESTS = 16
PER_WORKER = 4
OPEN_LOOP_SECONDS = 30  # an open loop with no bound sends this many seconds of arrivals
DURATION_POOL_CAP = 20000  # --duration alone: at most this many prompts made ahead


def metric_names() -> dict:
    from autoquant.data import load

    return (load("bench_metrics") or {}).get("metrics") or {}


def policy() -> dict:
    from autoquant.data import load

    raw = load("bench_metrics") or {}
    return {"slo_attainment": float(raw.get("slo_attainment", 0.9)),
            "schedule_lag_warn_ms": float(raw.get("schedule_lag_warn_ms", 50))}


def tokens_per_word(server: Server) -> float | None:
    """How many tokens the server's tokenizer makes of one word of the synthetic prompts (None: no tokenizer)."""
    if not server.has_tokenizer:
        return None
    import numpy as np

    text = schedule.words_prompt(400, np.random.default_rng(12345))
    try:
        return max(0.2, len(tokenize(server, text, add_special=False)) / 400)
    except EngineError:
        return None


def request_count(settings: Settings, level: Level) -> int:
    if settings.requests:
        return settings.requests
    if level.mode == "concurrency":
        n = max(MIN_REQUESTS, PER_WORKER * int(level.value))
        return min(DURATION_POOL_CAP, int(level.value) * 200) if settings.duration_s else n
    if level.value == math.inf:
        return MIN_REQUESTS
    seconds = settings.duration_s or OPEN_LOOP_SECONDS
    return max(MIN_REQUESTS if not settings.duration_s else 1, min(DURATION_POOL_CAP, math.ceil(level.value * seconds)))


def specs_for(settings: Settings, level: Level, trace: Sequence[tuple[float, int, int]] | None, tpw: float,
              seed: int) -> list[RequestSpec]:
    if level.mode == "replay":
        return schedule.replay(trace or (), level.value, seed, tpw, settings.requests)
    n = request_count(settings, level)
    specs = schedule.synthetic(n, settings.isl, settings.osl, settings.range_ratio, seed, tpw)
    if level.mode == "rate":
        specs = schedule.at_times(specs, schedule.arrivals(n, level.value, level.burstiness, seed))
    return specs


class Bench:
    """One benchmark session against one server: levels are run on demand (find-max asks for more)."""

    def __init__(self, settings: Settings, server: Server, trace=None, progress: bool = True) -> None:
        self.settings, self.server, self.trace = settings, server, trace
        self.progress = progress
        self.tpw = tokens_per_word(server) or 1.0
        self.summaries: list[Summary] = []
        self.records: list[list[RequestResult]] = []
        self._level_no = 0

    def _recount(self, results: list[RequestResult], texts: dict[int, str]) -> list[RequestResult]:
        if not self.server.has_tokenizer:
            return results
        out = []
        for r in results:
            if r.ok and r.tokens_from == "chunks" and r.index in texts:
                try:
                    n = len(tokenize(self.server, texts[r.index], add_special=False))
                except EngineError:
                    n = 0
                if n:
                    r = dataclasses.replace(r, output_tokens=n, tokens_from="tokenizer")
            out.append(r)
        return out

    def run_level(self, level: Level, seed_offset: int = 0) -> Summary:
        s = self.settings
        specs = specs_for(s, level, self.trace, self.tpw, s.seed + seed_offset + 7919 * self._level_no)
        self._level_no += 1
        if not specs:
            raise UsageError("nothing to send: the traffic file has no requests, or --requests is 0")
        bar = _bar(len(specs), level.describe(), self.progress)
        texts: dict[int, str] = {}

        def done(r: RequestResult) -> None:
            if bar is not None:
                bar.update(1)

        try:
            results, wall = asyncio.run(_run(self.server, s, level, specs, done, texts))
        finally:
            if bar is not None:
                bar.close()
        results = self._recount(results, texts)
        summary = metrics.summarize(level, results, wall, s.slo, s.slo_attainment)
        self.summaries.append(summary)
        self.records.append(results)
        return summary

    def warm_up(self) -> None:
        n = self.settings.warmup
        if n <= 0:
            return
        level = Level("concurrency", float(min(n, 4)))
        warm = dataclasses.replace(self.settings, requests=n, duration_s=None, osl=min(self.settings.osl, 16),
                                   range_ratio=0.0)
        specs = specs_for(warm, level, None, self.tpw, self.settings.seed + 104729)
        results, _ = asyncio.run(_run(self.server, warm, level, specs, None, {}))
        if results and not any(r.ok for r in results):
            raise EngineError(f"every warm-up request failed ({results[0].error_kind}: {results[0].error}); "
                              "is the model name right (--model) and the server ready?")


async def _run(server: Server, s: Settings, level: Level, specs, done, texts):
    return await client.run_level(server, s.endpoint, level, specs, ignore_eos=s.ignore_eos,
                                  timeout_s=s.timeout_s, duration_s=s.duration_s,
                                  max_concurrency=s.max_concurrency, texts=texts, on_done=done)


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="req", leave=False, dynamic_ncols=True)


def bench(settings: Settings, *, server: Server | None = None, trace=None, progress: bool = False,
          headers: dict[str, str] | None = None,
          keep_requests: bool = False) -> Report:
    """Run the benchmark `settings` describes; the Report (see records.Report)."""
    server = server or connect(settings.url, timeout_s=min(settings.timeout_s, 60.0), headers=headers)
    if settings.model:
        server = dataclasses.replace(server, model=settings.model)
    pol = policy()
    b = Bench(settings, server, trace, progress)
    warnings: list[str] = []
    if not server.has_tokenizer:
        warnings.append(f"{server.kind} server has no tokenizer endpoint: prompt lengths are approximate "
                        "(one token per word assumed); output tokens come from usage or are counted per chunk")
    b.warm_up()
    best = None
    if settings.find_max:
        if not settings.slo.any:
            raise UsageError("--find-max needs an SLO: --ttft-ms, --tpot-ms or --e2e-ms")
        first = settings.levels[0]
        integer = first.mode == "concurrency"
        limit = 1024.0 if integer else 10000.0
        value, _ = schedule.find_max(lambda x: bool(b.run_level(dataclasses.replace(first, value=x)).meets_slo),
                                     first.value, integer, max(limit, first.value))
        if value is not None:
            idx = next(i for i, s in enumerate(b.summaries) if s.level.value == value)
            best = {"mode": first.mode, "value": value, "level": idx}
        else:
            best = {"mode": first.mode, "value": None, "level": None}
    else:
        for level in settings.levels:
            b.run_level(level)
    for s in b.summaries:
        if s.schedule_lag_p99_ms is not None and s.schedule_lag_p99_ms > pol["schedule_lag_warn_ms"]:
            warnings.append(f"{s.level.describe()}: requests went out up to {s.schedule_lag_p99_ms:.0f} ms late "
                            "(p99): the client set the pace, not the server; run fewer in flight or on a bigger "
                            "machine")
        if s.short_outputs:
            eos = ("the server does not honour ignore_eos, so answers end where the model stops"
                   if server.kind == "llama-cpp-python" and settings.ignore_eos else "the server stopped them")
            warnings.append(f"{s.level.describe()}: {s.short_outputs} of {s.completed} answers are shorter than the "
                            f"{settings.osl} tokens asked ({eos}); throughput counts the tokens really sent")
        if s.failed:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(s.errors.items()))
            warnings.append(f"{s.level.describe()}: {s.failed} of {s.requests} requests failed ({kinds})")
    return Report(settings=settings, server=server.identity(), levels=b.summaries,
                  started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), max_meeting_slo=best,
                  warnings=warnings, metric_names=metric_names(), requests=b.records if keep_requests else None)
