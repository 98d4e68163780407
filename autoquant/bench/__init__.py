"""Benchmark an OpenAI-compatible server: `bench(Settings(url=...))` returns a Report.

Pure: records (what was asked, one request's outcome, a level's summary), metrics (the figures, as `vllm
bench serve` defines them), schedule (prompts, arrivals, the --find-max search), compare (predicted vs
measured, calibration samples). Edges: client (aiohttp streaming), run (the session), predicted (the planner's
figures for what the server runs), report and plots (output). Importing this package imports no HTTP stack.
"""

from autoquant.bench.records import SLO, Level, Report, RequestResult, Settings, Summary


def bench(settings: Settings, **kwargs) -> Report:
    from autoquant.bench.run import bench as _bench

    return _bench(settings, **kwargs)


__all__ = ["SLO", "Level", "Report", "RequestResult", "Settings", "Summary", "bench"]
