"""A bench report as JSON (schema autoquant.bench v1) and as text a person reads."""

from __future__ import annotations

import math
from typing import Any

from autoquant.bench.records import Report, Stats, Summary
from autoquant.output import table
from autoquant.records.serde import to_dict


def _finite(value: Any) -> Any:
    """JSON has no infinity: an unbounded rate is written "inf"."""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def to_json(report: Report) -> dict[str, Any]:
    data = _finite(to_dict(report))
    if report.requests is None:
        data.pop("requests")
    return data


def _ms(st: Stats | None, key: str) -> str:
    return "-" if st is None else f"{getattr(st, key):.1f}"


def level_rows(levels: list[Summary]) -> str:
    rows = []
    for s in levels:
        ok = f"{s.completed}/{s.requests}"
        slo = "" if s.slo_attainment is None else f"{s.slo_attainment:.0%}"
        rows.append((s.level.describe(), ok, _ms(s.ttft_ms, "p50"), _ms(s.ttft_ms, "p99"), _ms(s.tpot_ms, "p50"),
                     _ms(s.tpot_ms, "p99"), _ms(s.itl_ms, "p99"), _ms(s.e2e_ms, "p50"),
                     f"{s.output_throughput:.1f}", f"{s.request_throughput:.3g}", slo))
    return table(rows, headers=("load", "ok", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "ITL p99", "E2E p50",
                                "out tok/s", "req/s", "SLO met"))


def text(report: Report) -> str:
    srv = report.server
    version = f" {srv['version']}" if srv.get("version") else ""
    lines = [f"server: {srv['url']} ({srv['engine']}{version}), model {srv['model']}"]
    st = report.settings
    if st.traffic:
        lines.append(f"traffic: {st.traffic}")
    else:
        spread = f" +-{st.range_ratio:.0%}" if st.range_ratio else ""
        lines.append(f"requests: {st.isl} prompt / {st.osl} output tokens{spread}, {st.endpoint} endpoint, "
                     f"seed {st.seed}, warm-up {st.warmup} excluded")
    src = {s.tokens_from for s in report.levels if s.tokens_from}
    if src:
        how = {"usage": "the server's usage figures", "tokenizer": "counted with the server's tokenizer",
               "chunks": "counted as one per streamed chunk (no usage, no tokenizer)", "mixed": "mixed sources"}
        lines.append("output tokens: " + "; ".join(how.get(x, x) for x in sorted(src)))
    lines += ["", "latency in ms", level_rows(report.levels)]
    slo = st.slo
    if slo.any:
        parts = [f"{k} <= {v:g} ms" for k, v in (("TTFT", slo.ttft_ms), ("TPOT", slo.tpot_ms), ("E2E", slo.e2e_ms))
                 if v is not None]
        lines.append(f"SLO: {', '.join(parts)}; a level meets it when {st.slo_attainment:.0%} of its requests do")
        for s in report.levels:
            if s.goodput is not None:
                lines.append(f"  {s.level.describe()}: goodput {s.goodput:.3g} req/s")
    if report.max_meeting_slo is not None:
        best = report.max_meeting_slo
        what = "concurrency" if best["mode"] == "concurrency" else "request rate"
        if best["value"] is None:
            lines.append(f"find-max: even the first {what} tried misses the SLO")
        else:
            v = best["value"]
            lines.append(f"find-max: the largest {what} that meets the SLO is "
                         f"{int(v) if best['mode'] == 'concurrency' else f'{v:.3g} req/s'}")
    if report.comparison:
        lines += ["", "predicted vs measured"]
        rows = [(r["level"], r["metric"], _num(r["predicted"]), _num(r["measured"]),
                 "-" if r["ratio"] is None else f"x{r['ratio']:.2f}") for r in report.comparison]
        lines.append(table(rows, headers=("load", "metric", "predicted", "measured", "measured/predicted")))
    for w in report.warnings:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"
