"""PNG plots of a bench report (matplotlib, the `bench` extra): latency percentiles against load, throughput
against load, and predicted against measured when the report has a comparison."""

from __future__ import annotations

from pathlib import Path

from autoquant.bench.records import Report
from autoquant.errors import UsageError


def write(report: Report, directory: str | Path) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'autoquant[bench]'") from None
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    levels = sorted(report.levels, key=lambda s: s.level.value)
    xs = [s.level.value for s in levels]
    mode = levels[0].level.mode if levels else "concurrency"
    xlabel = {"concurrency": "concurrency", "rate": "request rate (req/s)", "replay": "time scale"}[mode]
    paths = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, name in zip(axes, ("ttft_ms", "tpot_ms"), strict=True):
        for q in ("p50", "p90", "p99"):
            ys = [getattr(getattr(s, name), q) if getattr(s, name) else float("nan") for s in levels]
            ax.plot(xs, ys, marker="o", label=q)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{name[:-3].upper()} (ms)")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(f"{report.server['model']} latency vs load")
    fig.tight_layout()
    paths.append(out / "latency_vs_load.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, [s.output_throughput for s in levels], marker="o", label="output tok/s")
    ax.plot(xs, [s.total_token_throughput for s in levels], marker="s", label="total tok/s")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("tokens/s")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(out / "throughput_vs_load.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    rows = [r for r in report.comparison if r["predicted"] and r["measured"]]
    if rows:
        fig, ax = plt.subplots(figsize=(6, 5))
        for metric in sorted({r["metric"] for r in rows}):
            pts = [(r["predicted"], r["measured"]) for r in rows if r["metric"] == metric]
            ax.scatter([p for p, _ in pts], [m for _, m in pts], label=metric)
        lo = min(min(r["predicted"], r["measured"]) for r in rows)
        hi = max(max(r["predicted"], r["measured"]) for r in rows)
        ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", label="measured = predicted")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("predicted")
        ax.set_ylabel("measured")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(out / "predicted_vs_measured.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths
