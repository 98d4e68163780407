"""Traffic profiling: a sample of requests -> a Workload (lengths, arrival rate, concurrency).

Reads the public trace formats a platform team is likely to have:
- Azure LLM inference trace CSV: `TIMESTAMP,ContextTokens,GeneratedTokens` (CRLF, 7 fractional digits);
- BurstGPT CSV: `Timestamp,Model,Request tokens,Response tokens,...` (seconds from start);
- JSONL with `timestamp` + `input_length`/`output_length` (Mooncake: ms; Qwen-Bailian: s) or
  `prompt_tokens`/`completion_tokens` (OpenAI usage style; `timestamp` in s).

A trace records arrivals, not how long each request stayed in flight, so concurrency needs a
service-time model. We replay the arrivals against an assumed per-request latency
(TTFT + output tokens x TPOT, flags with defaults below) and take the time-weighted distribution of
in-flight requests; `Workload.concurrency` is its p95 (size for the busy minutes, not the average).
The planner's own TPOT estimate can be fed back with `--assumed-tpot-ms` for a second pass.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from autoquant import jsonio
from autoquant.argtypes import max_number_chars
from autoquant.errors import InputError, shown
from autoquant.limits import bound, check_number, setting
from autoquant.records import ConcurrencyBin, Workload

# Defaults for the replay when the caller has no planner estimate yet. 30 ms/token is a typical
# interactive decode target (about 33 tok/s per user); 200 ms covers a prefill of a few thousand tokens.
DEFAULT_TPOT_MS = 30.0
DEFAULT_TTFT_MS = 200.0
CONCURRENCY_PERCENTILE = 95


@dataclass
class Request:
    arrival_s: float  # seconds since the first request
    input_tokens: int
    output_tokens: int


@dataclass
class TrafficProfile:
    source: str
    format: str
    requests: int
    duration_s: float
    arrival_rate_rps: float  # mean over the trace
    peak_rate_rps_60s: float  # busiest 60-second window
    isl: dict[str, float] = field(default_factory=dict)  # mean, p50, p90, p99, max
    osl: dict[str, float] = field(default_factory=dict)
    concurrency: dict[str, float] = field(default_factory=dict)  # mean, p50, p90, p95, p99, max (time-weighted)
    assumed_tpot_ms: float = DEFAULT_TPOT_MS
    assumed_ttft_ms: float = DEFAULT_TTFT_MS
    workload: Workload = field(default_factory=Workload)


def profile_file(
    path: str | Path, *, tpot_ms: float = DEFAULT_TPOT_MS, ttft_ms: float = DEFAULT_TTFT_MS
) -> TrafficProfile:
    fmt, requests = read_trace(path)
    return profile_requests(requests, source=str(path), fmt=fmt, tpot_ms=tpot_ms, ttft_ms=ttft_ms)


def read_trace(path: str | Path) -> tuple[str, list[Request]]:
    """(format, requests) of a trace file; one clear line for a file that cannot be read as one."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"no such traffic file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory: give a traffic file (CSV or JSONL trace)") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text trace (expected CSV or JSONL)") from None
    except OSError as exc:
        raise InputError(f"cannot read traffic file {path}: {exc.strerror or exc}") from None
    return parse_trace(text, name=str(path))


def parse_trace(text: str, *, name: str = "trace") -> tuple[str, list[Request]]:
    stripped = text.lstrip()
    if not stripped:
        raise InputError(f"{name} is empty")
    if stripped.startswith("{"):
        return "jsonl", _parse_jsonl(text, name)
    return _parse_csv(text, name)


def profile_requests(
    requests: list[Request],
    *,
    source: str = "trace",
    fmt: str = "",
    tpot_ms: float = DEFAULT_TPOT_MS,
    ttft_ms: float = DEFAULT_TTFT_MS,
) -> TrafficProfile:
    if not requests:
        raise InputError(f"{source} holds no requests")
    requests = sorted(requests, key=lambda r: r.arrival_s)
    t0 = requests[0].arrival_s
    arrivals = [r.arrival_s - t0 for r in requests]
    isl = [r.input_tokens for r in requests]
    osl = [r.output_tokens for r in requests]
    finish = [a + (ttft_ms + o * tpot_ms) / 1000.0 for a, o in zip(arrivals, osl, strict=True)]
    duration = max(arrivals[-1], 1e-9)
    conc = _in_flight_distribution(arrivals, finish)
    conc_stats = _weighted_stats(conc)
    isl_stats, osl_stats = _stats(isl), _stats(osl)
    total_p99 = _percentile(sorted(i + o for i, o in zip(isl, osl, strict=True)), 99)
    workload = Workload(
        concurrency=max(1, int(math.ceil(conc_stats["p95"]))),
        concurrency_distribution=[ConcurrencyBin(c, round(f, 6)) for c, f in conc],
        isl=max(1, round(isl_stats["mean"])),
        osl=max(1, round(osl_stats["mean"])),
        isl_p99=int(isl_stats["p99"]),
        osl_p99=int(osl_stats["p99"]),
        max_model_len=int(math.ceil(total_p99 / 256.0) * 256),
        arrival_rate_rps=round(len(requests) / duration, 4) if len(requests) > 1 else None,
        source=f"traffic:{source}",
    )
    return TrafficProfile(
        source=source,
        format=fmt,
        requests=len(requests),
        duration_s=round(duration, 3),
        arrival_rate_rps=round(len(requests) / duration, 4) if len(requests) > 1 else 0.0,
        peak_rate_rps_60s=round(_peak_window_rate(arrivals, 60.0), 4),
        isl=isl_stats,
        osl=osl_stats,
        concurrency=conc_stats,
        assumed_tpot_ms=tpot_ms,
        assumed_ttft_ms=ttft_ms,
        workload=workload,
    )


# ---------------------------------------------------------------------------------------------
# parsing


_CSV_COLUMNS = {
    # format name: (timestamp column, input column, output column, timestamp kind)
    "azure": ("TIMESTAMP", "ContextTokens", "GeneratedTokens", "datetime"),
    "burstgpt": ("Timestamp", "Request tokens", "Response tokens", "seconds"),
    "generic-csv": ("timestamp", "input_tokens", "output_tokens", "seconds"),
}


def _parse_csv(text: str, name: str) -> tuple[str, list[Request]]:
    # A trace row may carry a prompt as text: the csv module's default 128 KiB field limit is too small.
    csv.field_size_limit(setting("csv", "max_field_chars"))
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey=_EXTRA)
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise InputError(f"{name}: line 1: {exc}") from None
    fmt = next((f for f, cols in _CSV_COLUMNS.items() if set(cols[:3]) <= set(header)), None)
    if fmt is None:
        known = "; ".join(",".join(cols[:3]) for cols in _CSV_COLUMNS.values())
        raise InputError(f"{name}: unrecognised CSV header {','.join(header)!r} (expected columns {known})")
    ts_col, in_col, out_col, kind = _CSV_COLUMNS[fmt]
    requests = []
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:  # a field over the limit, a NUL byte, a quote left open
            raise InputError(f"{name}: line {reader.line_num}: {exc}") from None
        line_no = reader.line_num
        if _EXTRA in row:
            raise InputError(f"{name}: line {line_no} has {len(header) + len(row[_EXTRA])} fields, the header "
                             f"{len(header)}")
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if not any(row.values()):
            continue
        try:
            ts = _parse_timestamp(row[ts_col], kind)
            requests.append(Request(ts, _nonneg_int(row[in_col]), _nonneg_int(row[out_col])))
        except (ValueError, KeyError, InputError) as exc:
            raise InputError(f"{name}: line {line_no}: {exc}") from None
    return fmt, _rebase(requests)


def _parse_jsonl(text: str, name: str) -> list[Request]:
    requests = []
    raw_ts = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        obj = jsonio.loads(line, f"{name}: line {line_no}")
        if not isinstance(obj, dict):
            raise InputError(f"{name}: line {line_no} is not a JSON object")
        try:
            ts = _finite_seconds(obj["timestamp"])
            inp = obj.get("input_length", obj.get("prompt_tokens"))
            out = obj.get("output_length", obj.get("completion_tokens"))
            if inp is None or out is None:
                raise KeyError("input_length/output_length (or prompt_tokens/completion_tokens)")
            requests.append(Request(ts, _nonneg_int(inp), _nonneg_int(out)))
            raw_ts.append(ts)
        except KeyError as exc:
            raise InputError(f"{name}: line {line_no} lacks {exc.args[0]}") from None
        except (TypeError, ValueError, InputError) as exc:
            raise InputError(f"{name}: line {line_no}: {exc}") from None
    # Mooncake traces count milliseconds; Qwen-Bailian and OpenAI-style logs count seconds. A span of
    # more than a day in "seconds" with integer stamps is milliseconds in practice.
    if raw_ts and (max(raw_ts) - min(raw_ts)) > 86_400 and all(float(t).is_integer() for t in raw_ts):
        for r in requests:
            r.arrival_s /= 1000.0
    return _rebase(requests)


_EXTRA = "\0extra"  # DictReader's key for fields beyond the header's


def _parse_timestamp(value: str, kind: str) -> float:
    if kind == "seconds":
        return _finite_seconds(value)
    # Azure writes 7 fractional digits, one more than datetime.fromisoformat takes before 3.11.
    base, _, frac = value.partition(".")
    dt = datetime.fromisoformat(base.replace("T", " "))
    return dt.timestamp() + (float("0." + frac) if frac.isdigit() else 0.0)


def _finite_seconds(value) -> float:
    """A timestamp: a finite number (or numeric text) within the timestamp bound (ms stamps are larger)."""
    number = _number(value, "timestamp")
    lo, hi = bound("timestamp_s")
    if not lo <= number <= hi * 1000:  # Mooncake stamps count milliseconds
        raise ValueError(f"timestamp {value!r} is outside {lo:g}..{hi * 1000:g}")
    return number


def _nonneg_int(value) -> int:
    number = _number(value, "token count")
    if number < 0:
        raise ValueError(f"negative token count {value!r}")
    return int(check_number(int(number), "tokens", "token count", integer=True))


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or len(str(value)) > max_number_chars():
        raise ValueError(f"{what} must be a number, got {shown(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return number


def _rebase(requests: list[Request]) -> list[Request]:
    if requests:
        t0 = min(r.arrival_s for r in requests)
        for r in requests:
            r.arrival_s -= t0
    return requests


# ---------------------------------------------------------------------------------------------
# statistics


def _in_flight_distribution(arrivals: list[float], finish: list[float]) -> list[tuple[int, float]]:
    """Time-weighted share of the trace spent at each number of in-flight requests."""
    events = sorted([(a, 1) for a in arrivals] + [(f, -1) for f in finish])
    time_at: dict[int, float] = {}
    level, last = 0, events[0][0]
    for t, delta in events:
        if t > last:
            time_at[level] = time_at.get(level, 0.0) + (t - last)
            last = t
        level += delta
    total = sum(time_at.values()) or 1.0
    return sorted((c, dt / total) for c, dt in time_at.items() if dt > 0)


def _weighted_stats(dist: list[tuple[int, float]]) -> dict[str, float]:
    out = {"mean": round(sum(c * f for c, f in dist), 3), "max": float(max((c for c, _ in dist), default=0))}
    for q in (50, 90, 95, 99):
        acc = 0.0
        value = dist[-1][0] if dist else 0
        for c, f in dist:
            acc += f
            if acc >= q / 100.0 - 1e-12:
                value = c
                break
        out[f"p{q}"] = float(value)
    return out


def _stats(values: list[int]) -> dict[str, float]:
    s = sorted(values)
    return {
        "mean": round(sum(s) / len(s), 2),
        "p50": _percentile(s, 50),
        "p90": _percentile(s, 90),
        "p99": _percentile(s, 99),
        "max": float(s[-1]),
    }


def _percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def _peak_window_rate(arrivals: list[float], window: float) -> float:
    best, j = 0, 0
    for i, t in enumerate(arrivals):
        while arrivals[j] < t - window:
            j += 1
        best = max(best, i - j + 1)
    span = min(window, max(arrivals[-1] - arrivals[0], 1e-9))
    return best / span
