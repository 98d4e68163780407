"""Accuracy of the planner's cost model against published measurements and NVIDIA's kernel database.

Rows: benchmarks/published/measurements.yaml (vendor tables, engine PRs, papers) and
benchmarks/published/aiconfigurator.yaml (AIConfigurator 0.12.0 SILICON: measured kernels, H100/H200, vLLM
and TensorRT-LLM; "static" rows time one batch's prefill and its decode steps, "agg" rows a continuous-batching
server). Serving rows are predicted with `autoquant.planner.estimate` (the code behind `autoquant estimate`);
static rows with the same speed model's prefill step and decode step (perf.pipeline_step). Each row is one
phase: throughput (tokens/s of a loaded server), ttft (time to first token, prefill tokens/s) or decode
(time per output token, one stream's tokens/s). The report gives the median absolute percentage error (MdAPE)
per engine and phase, the ordering agreement of pairs of rows on the same hardware from the same source, and
vLLM / TensorRT-LLM TPOT against AIConfigurator's on H100. Then it fits, per GPU class (hopper-hbm, ...), each
kernel's decode bandwidth efficiency and each engine's compute factor and step overhead, on a deterministic
train split (every other row of each source, by id; a source weighs sqrt(its rows)), and reports the error on
the held-out rest; the fitted factors go to autoquant/data/calibration.yaml and the report to
benchmarks/results/accuracy.md.

    python benchmarks/accuracy.py            # report + write calibration.yaml and accuracy.md
    python benchmarks/accuracy.py --dry-run  # report only
"""

from __future__ import annotations

import argparse
import datetime
import functools
import math
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoquant.catalog.gpus import synthetic_node  # noqa: E402
from autoquant.catalog.models import spec_from_catalog  # noqa: E402
from autoquant.errors import AutoquantError  # noqa: E402
from autoquant.planner import candidates, estimate, facts, perf  # noqa: E402
from autoquant.planner.calibration import Calibration, _catalog_key, gpu_class  # noqa: E402
from autoquant.planner.hardware import device_of  # noqa: E402
from autoquant.records import Workload  # noqa: E402

MEASUREMENTS = ROOT / "benchmarks" / "published" / "measurements.yaml"
AIC = ROOT / "benchmarks" / "published" / "aiconfigurator.yaml"
CALIBRATION = ROOT / "autoquant" / "data" / "calibration.yaml"
REPORT = ROOT / "benchmarks" / "results" / "accuracy.md"
# Search bound 0.9: a factor of 1.0 (all of peak DRAM bandwidth) is not physical; the fit only reached it by
# absorbing errors of other terms (the highest published decode figure in kernels.yaml is 0.72).
GRID = [0.05, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85,
        0.9]
OVERHEAD_GRID = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
LAYER_GRID = [0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 60.0]  # microseconds per layer per step
FACTOR_GRID = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
# Engines whose compute efficiency is GEMM figure x a fitted engine factor (one per engine and GPU class).
# llama.cpp's kernel figures are llama-bench pp512, i.e. whole-model already: its prefill is fitted per kernel.
FACTOR_ENGINES = ("vllm", "trtllm")
PHASES = ("throughput", "ttft", "decode")
# AIConfigurator names -> autoquant's (the rows autoquant models: dynamic-scale FP8 is what vLLM's fp8 runs)
AIC_SYSTEMS = {"h100_sxm": "H100-SXM", "h200_sxm": "H200"}
AIC_QUANT = {"bfloat16": "bf16", "fp8": "fp8"}
AIC_KV = {"bfloat16": "auto", "fp8": "fp8"}
AIC_MODELS = {"Llama-3.1-8B": "meta-llama/Llama-3.1-8B", "Llama-3.1-70B": "meta-llama/Llama-3.1-70B"}
# the AIConfigurator versions of the backends (the file's rows say so too)
AIC_ENGINES = ("vllm", "trtllm", "sglang")


@dataclass
class Row:
    id: str
    source: str
    engine: str
    method: str
    gpu: str
    gpu_count: int
    model: str
    metric: str
    value: float
    isl: int
    osl: int
    concurrency: int | None
    tp: int
    pp: int
    mode: str = "serving"  # serving: a server under load (estimate); static: one batch (AIConfigurator static)
    kv: str | None = None

    @property
    def phase(self) -> str:
        if self.metric in ("ttft_ms", "prefill_tokens_per_s"):
            return "ttft"
        if self.metric in ("tpot_ms", "per_request_tokens_per_s", "decode_tokens_per_s"):
            return "decode"
        return "throughput"


def load_rows() -> tuple[list[Row], list[tuple[str, str]]]:
    data = yaml.safe_load(MEASUREMENTS.read_text())
    rows, skipped = [], []
    for m in data["measurements"]:
        conc = None if str(m.get("concurrency")) == "max" else int(m.get("concurrency") or 1)
        row = Row(m["id"], m["source"]["url"], m["engine"], m["method"], m["gpu"], int(m.get("gpu_count") or 1),
                  m["model"], m["metric"], float(m["value"]), int(m.get("isl") or 0), int(m.get("osl") or 0), conc,
                  int(m.get("tp") or 1), int(m.get("pp") or 1))
        why = _unmodelled(row)
        if why:
            skipped.append((row.id, why))
        else:
            rows.append(row)
    aic, aic_skipped = load_aic_rows()
    return rows + aic, skipped + aic_skipped


def _unmodelled(row: Row) -> str | None:
    if row.gpu == "cpu":
        return "CPU row: the source gives no measured memory bandwidth for the CPU"
    if row.method not in facts.methods():
        return f"method {row.method} is not modelled"
    if row.engine not in facts.engine_ids():
        return f"engine {row.engine} is not one autoquant launches"
    if row.metric == "prefill_tokens_per_s" and not _has_peak(row):
        return f"prefill row on {row.gpu}: the GPU catalog has no TFLOPS figure for it"
    return None


def load_aic_rows() -> tuple[list[Row], list[tuple[str, str]]]:
    """AIConfigurator rows as Rows: static rows give a TTFT (the batch's prefill) and a TPOT (its decode
    steps); agg rows a TTFT, a TPOT and the server's output tokens/s. fp8_static rows (static activation
    scales) and OOM rows are left out."""
    if not AIC.exists():
        return [], []
    data = yaml.safe_load(AIC.read_text())
    rows, skipped = [], []
    for r in data.get("rows") or []:
        base = (f"aic-{r['system']}-{r['backend']}-{r['model']}-{r['gemm_quant']}-kv{r['kv_dtype']}-tp{r['tp']}"
                f"-b{r['batch']}-{r['isl']}-{r['osl']}-{r['mode']}")
        if r.get("oom") or r["gemm_quant"] not in AIC_QUANT or r["system"] not in AIC_SYSTEMS:
            skipped.append((base, "OOM, or a quantization/system autoquant does not model as such"))
            continue
        metrics = [("ttft_ms", r["ttft_ms"])]
        if r["osl"] > 1 and r.get("tpot_ms"):
            metrics.append(("tpot_ms", r["tpot_ms"]))
        if r["mode"] == "agg":
            metrics.append(("output_tokens_per_s", r["output_tokens_per_s"]))
        for metric, value in metrics:
            rows.append(Row(f"{base}-{metric}", f"AIConfigurator 0.12.0 SILICON {r['mode']}", r["backend"],
                            AIC_QUANT[r["gemm_quant"]], AIC_SYSTEMS[r["system"]], int(r["tp"]) * int(r["pp"]),
                            AIC_MODELS[r["model"]], metric, float(value), int(r["isl"]), int(r["osl"]),
                            int(r["batch"]), int(r["tp"]), int(r["pp"]), "static" if r["mode"] == "static" else
                            "serving", AIC_KV[r["kv_dtype"]]))
    return rows, skipped


def _has_peak(row: Row) -> bool:
    from autoquant.catalog.gpus import lookup

    spec = lookup(row.gpu)
    return bool(spec.bf16_tflops or spec.fp16_tflops)


@functools.cache
def _model(model_id: str):
    return spec_from_catalog(model_id)


@functools.cache
def _node_text(gpu: str, count: int) -> str:
    return gpu if _apple(gpu) else f"{gpu}:{count}"


def predict(row: Row, cal: Calibration) -> float:
    model = _model(row.model)
    node = synthetic_node(_node_text(row.gpu, row.gpu_count))
    isl, osl = max(1, row.isl), max(1, row.osl)
    if row.metric == "prefill_tokens_per_s":
        osl = 1
    if row.mode == "static":
        return _predict_static(row, model, node, cal)
    w = Workload(concurrency=row.concurrency, isl=isl, osl=osl)
    e = estimate(model, node, w, engine=row.engine, method=row.method, tp=row.tp, pp=row.pp,
                 kv_cache_dtype=row.kv if row.kv not in (None, "auto") else None, calibration=cal)
    if row.metric == "output_tokens_per_s":
        return e.output_tokens_per_s
    if row.metric == "total_tokens_per_s":
        return e.output_tokens_per_s * (isl + osl) / osl
    if row.metric in ("per_request_tokens_per_s", "decode_tokens_per_s"):
        return e.per_request_tokens_per_s
    if row.metric == "prefill_tokens_per_s":
        return isl / (e.ttft_ms / 1000)
    if row.metric == "ttft_ms":
        return e.ttft_ms
    if row.metric == "tpot_ms":
        return e.tpot_ms
    raise ValueError(row.metric)


def _predict_static(row: Row, model, node, cal: Calibration) -> float:
    """One batch of B requests (AIConfigurator static): TTFT = one step holding all B x ISL prompt tokens; TPOT =
    the mean decode step of B tokens, the context growing from ISL to ISL + OSL."""
    device = device_of(node)
    spec = facts.engine(row.engine)
    kv = row.kv if row.kv not in (None, "auto") else spec.kv_default
    cfg = candidates.Config(row.engine, row.method, row.tp, row.pp, kv)
    setup = candidates.setup_for(cfg, model, device, cal)
    b = row.concurrency or 1
    if row.metric == "ttft_ms":
        return perf.pipeline_step(setup, 0, 0.0, b * row.isl, row.isl).seconds * 1000
    return perf.pipeline_step(setup, b, row.isl + row.osl / 2, 0.0, row.isl).seconds * 1000


def base_calibration() -> Calibration:
    from autoquant.data import load

    return Calibration().merged(load("kernels") or {}, "autoquant/data/kernels.yaml", _catalog_key)


def with_layer(base: Calibration, layer: dict) -> Calibration:
    return base.merged(layer, "fit", _catalog_key)


@functools.cache
def _kernel(engine: str, method: str, gpu: str) -> str:
    from autoquant.engines.compat import compat

    node = synthetic_node(f"{gpu}:1") if not _apple(gpu) else synthetic_node(gpu)
    return compat(facts.engine(engine), method, device_of(node)).kernel


def kernel_of(row: Row) -> str:
    return _kernel(row.engine, row.method, row.gpu)


def class_of(row: Row) -> str:
    return gpu_class(_catalog_key(row.gpu) or row.gpu) or "unknown"


def _apple(gpu: str) -> bool:
    return gpu[:1] == "M" and gpu[1:2].isdigit()


def evaluate(rows: list[Row], cal: Calibration) -> dict[str, tuple[float, float]]:
    """row id -> (predicted, measured); rows the model cannot place are left out."""
    out = {}
    for r in rows:
        try:
            out[r.id] = (predict(r, cal), r.value)
        except (AutoquantError, ZeroDivisionError, ValueError):
            continue
    return out


def ape(p: float, m: float) -> float:
    return abs(p - m) / m * 100


def loss(rows: list[Row], cal: Calibration) -> float:
    """Mean |log(predicted / measured)| per source, averaged over sources weighted by sqrt(rows); a row that
    cannot be placed costs 1."""
    res = evaluate(rows, cal)
    by_source: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.id in res:
            p, m = res[r.id]
            by_source[r.source].append(abs(math.log(max(p, 1e-9) / m)))
        else:
            by_source[r.source].append(1.0)
    # a source's weight grows as the square root of its rows: hundreds of kernel-database rows count for more
    # than one vendor table row, but do not drown the vendor tables
    total = sum(math.sqrt(len(v)) for v in by_source.values())
    return sum(math.sqrt(len(v)) * statistics.mean(v) for v in by_source.values()) / total if total else float("inf")


def fit(train: list[Row], base: Calibration, sweeps: int = 3) -> dict:
    """Coordinate descent on the train rows, per GPU class: each kernel's decode bandwidth efficiency (and, for
    llama.cpp's whole-model kernels, its prefill efficiency); each engine's step overhead and, for vLLM/TRT-LLM,
    the compute factor that turns the published GEMM efficiency into whole-model efficiency. A parameter is
    only fitted where its rows are (a class with no rows keeps the published figures)."""
    pairs = sorted({(kernel_of(r), class_of(r)) for r in train})
    eng_pairs = sorted({(facts.engine(r.engine).calibration_as, class_of(r)) for r in train})
    engine_of = {kernel_of(r): r.engine for r in train}
    layer: dict = {"kernels": {}, "engines": {}}
    for e, cls in eng_pairs:
        entry = layer["engines"].setdefault(e, {"by_gpu_class": {}})["by_gpu_class"].setdefault(cls, {})
        entry["step_overhead_ms"] = 0.0
        entry["layer_overhead_us"] = 0.0
        if e in FACTOR_ENGINES:
            entry["compute_factor"] = 1.0
    for k, cls in pairs:  # start from the published figures
        eff = base.efficiency(k)
        entry = layer["kernels"].setdefault(k, {"by_gpu_class": {}})["by_gpu_class"].setdefault(cls, {})
        entry["decode"] = eff.decode_bandwidth
        if engine_of[k] not in FACTOR_ENGINES:
            entry["prefill"] = eff.prefill_compute
    rows_of: dict[tuple, list[Row]] = defaultdict(list)  # a parameter's loss only needs its own rows
    for r in train:
        rows_of[("k", kernel_of(r), class_of(r))].append(r)
        rows_of[("e", facts.engine(r.engine).calibration_as, class_of(r))].append(r)

    def sweep(target: dict, key: str, grid: list[float], rows: list[Row]) -> None:
        choice = target[key]
        choice_loss = loss(rows, with_layer(base, layer))
        for v in grid:
            target[key] = v
            trial = loss(rows, with_layer(base, layer))
            if trial < choice_loss - 1e-9:
                choice, choice_loss = v, trial
        target[key] = choice

    for _ in range(sweeps):
        for e, cls in eng_pairs:
            entry = layer["engines"][e]["by_gpu_class"][cls]
            if "compute_factor" in entry:
                sweep(entry, "compute_factor", FACTOR_GRID, rows_of[("e", e, cls)])
        for k, cls in pairs:
            entry = layer["kernels"][k]["by_gpu_class"][cls]
            for field in list(entry):
                sweep(entry, field, GRID, rows_of[("k", k, cls)])
        for e, cls in eng_pairs:
            sweep(layer["engines"][e]["by_gpu_class"][cls], "step_overhead_ms", OVERHEAD_GRID, rows_of[("e", e, cls)])
            sweep(layer["engines"][e]["by_gpu_class"][cls], "layer_overhead_us", LAYER_GRID, rows_of[("e", e, cls)])
    return layer


def fitted_range(train: list[Row]) -> dict:
    """engine -> GPU class -> [min, max] of the train rows' model size (B params), prompt and concurrency: where
    the fitted factors stand on rows (autoquant/planner/usefulness.py flags estimates beyond it)."""
    spans: dict = {}
    for r in train:
        try:
            params = _model(r.model).total_params / 1e9
        except AutoquantError:
            continue
        entry = spans.setdefault(facts.engine(r.engine).calibration_as, {}).setdefault(class_of(r), {})
        for key, value in (("params_b", params), ("isl", r.isl), ("concurrency", r.concurrency or 1)):
            lo, hi = entry.get(key, [value, value])
            entry[key] = [round(min(lo, value), 2), round(max(hi, value), 2)]
    return spans


def split(rows: list[Row]) -> tuple[list[Row], list[Row]]:
    by_source: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_source[r.source].append(r)
    train, test = [], []
    for src in sorted(by_source):
        for i, r in enumerate(sorted(by_source[src], key=lambda r: r.id)):
            (train if i % 2 == 0 else test).append(r)
    return train, test


def mdape_by(rows: list[Row], res: dict, key) -> dict[str, tuple[float, int]]:
    out: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.id in res:
            p, m = res[r.id]
            out[key(r)].append(ape(p, m))
            out["all"].append(ape(p, m))
    return {k: (statistics.median(v), len(v)) for k, v in out.items()}


def ordering(rows: list[Row], res: dict) -> tuple[float, int]:
    """Share of same-source, same-hardware, same-metric pairs whose measured order the model reproduces."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        if r.id in res:
            groups[(r.source, r.gpu, r.gpu_count, r.metric)].append(r)
    agree = total = 0
    for members in groups.values():
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                a, b = members[i], members[j]
                if a.value == b.value:
                    continue
                total += 1
                if (res[a.id][0] - res[b.id][0]) * (a.value - b.value) > 0:
                    agree += 1
    return (agree / total * 100 if total else float("nan")), total


def table(title: str, rows: list[Row], res: dict) -> list[str]:
    """MdAPE per engine (rows) and phase (columns), with the row counts."""
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        if r.id in res:
            err = ape(*res[r.id])
            for e in (r.engine, "all"):
                for ph in (r.phase, "all"):
                    cells[(e, ph)].append(err)
    engines = sorted({e for e, _ in cells if e != "all"}) + ["all"]
    lines = [f"### {title}", "", "| engine | " + " | ".join(f"{p} MdAPE (rows)" for p in (*PHASES, "all")) + " |",
             "|---|" + "---|" * (len(PHASES) + 1)]
    for e in engines:
        vals = []
        for ph in (*PHASES, "all"):
            v = cells.get((e, ph))
            vals.append(f"{statistics.median(v):.1f}% ({len(v)})" if v else "-")
        lines.append(f"| {e} | " + " | ".join(vals) + " |")
    order = ordering(rows, res)
    lines += ["", f"Ordering agreement (same source, same hardware and metric): {order[0]:.1f}% of {order[1]} pairs",
              ""]
    return lines


def aic_agreement(rows: list[Row], res: dict) -> tuple[list[str], float]:
    """autoquant's static TPOT / AIConfigurator's, vLLM and TensorRT-LLM on H100, 8B/70B x BF16/FP8 x batch 1-128:
    the share of rows within 20% (ratio in [0.8, 1.25])."""
    picked = [r for r in rows if r.mode == "static" and r.metric == "tpot_ms" and r.gpu == "H100-SXM"
              and r.engine in ("vllm", "trtllm") and r.id in res]
    lines = ["### TPOT against AIConfigurator's SILICON database (H100, static batch, ISL 1024 / OSL 256)", "",
             "| model | TP | method | engine | batch 1 | 4 | 16 | 32 | 64 | 128 |", "|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in picked:
        groups[(r.model.split("/")[-1], r.tp, r.method, r.engine)][r.concurrency or 1] = res[r.id][0] / res[r.id][1]
    within = [0.8 <= res[r.id][0] / res[r.id][1] <= 1.25 for r in picked]
    for key in sorted(groups):
        cells = [f"{groups[key][b]:.2f}" if b in groups[key] else "-" for b in (1, 4, 16, 32, 64, 128)]
        lines.append(f"| {' | '.join(str(k) for k in key)} | " + " | ".join(cells) + " |")
    share = sum(within) / len(within) * 100 if within else float("nan")
    lines += ["", f"Cells are autoquant TPOT / AIConfigurator TPOT (all rows, train and test). Within 20%: "
              f"{sum(within)} of {len(within)} ({share:.0f}%).", ""]
    return lines, share


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="report only; write nothing")
    args = ap.parse_args(argv)
    rows, skipped = load_rows()
    base = base_calibration()
    train, test = split(rows)
    res0 = evaluate(rows, base)
    unplaced = [r.id for r in rows if r.id not in res0]
    layer = fit(train, base)
    fitted = with_layer(base, layer)
    res_train, res_test, res_all = evaluate(train, fitted), evaluate(test, fitted), evaluate(rows, fitted)
    today = datetime.date.today().isoformat()
    published = [r for r in rows if not r.source.startswith("AIConfigurator")]
    lines = [
        "# Planner accuracy against published measurements and AIConfigurator's kernel database",
        "",
        f"Generated by `python benchmarks/accuracy.py` on {today}: {len(published)} modelled rows of "
        f"`benchmarks/published/measurements.yaml` and {len(rows) - len(published)} of "
        f"`benchmarks/published/aiconfigurator.yaml` ({len(skipped)} skipped, {len(unplaced)} not placeable). "
        "Serving rows are predicted with `autoquant.planner.estimate` (the code behind `autoquant estimate`), "
        "AIConfigurator's static rows with the same speed model's prefill and decode steps. "
        "MdAPE = median absolute percentage error. Phases: throughput (tokens/s of a loaded server), ttft (time "
        "to first token, prefill tokens/s), decode (time per output token, one stream's tokens/s). Targets "
        "(issue 9): held-out MdAPE <= 10% per engine for throughput, <= 15% for TTFT and decode.",
        "",
        "Split: rows grouped by source, sorted by id, even positions train / odd positions test (deterministic).",
        f"Train {len(train)} rows, test {len(test)} rows.",
        "",
    ]
    lines += table("Fitted factors, held-out test rows", test, res_test)
    lines += table("Fitted factors, held-out test rows, published measurements only",
                   [r for r in test if not r.source.startswith("AIConfigurator")], res_test)
    lines += table("Fitted factors, train rows", train, res_train)
    lines += table("Before fitting: published kernel factors (kernels.yaml), all rows", rows, res0)
    agree, _share = aic_agreement(rows, res_all)
    lines += agree
    lines += ["### Fitted factors", "",
              "Compute efficiency = the kernel's published GEMM figure (headline; per GPU where kernels.yaml has "
              "one) x the engine's fitted compute factor; llama.cpp kernels carry a fitted whole-model figure. "
              "Each figure is fitted per GPU class on that class's train rows.", "",
              "| kernel | GPU class | decode BW eff (fitted) | prefill (fitted, whole-model) | published decode |",
              "|---|---|---|---|---|"]
    for k, v in sorted(layer["kernels"].items()):
        for cls, f in sorted(v["by_gpu_class"].items()):
            pre = f.get("prefill")
            lines.append(f"| {k} | {cls} | {f['decode']:.2f} | {'-' if pre is None else f'{pre:.2f}'} | "
                         f"{base.efficiency(k).decode_bandwidth:.2f} |")
    lines += ["", "| engine | GPU class | step overhead (ms) | per-layer overhead (us) | compute factor |",
              "|---|---|---|---|---|"]
    for e, v in sorted(layer["engines"].items()):
        for cls, f in sorted(v["by_gpu_class"].items()):
            cf = f.get("compute_factor")
            lines.append(f"| {e} | {cls} | {f['step_overhead_ms']:.2f} | {f['layer_overhead_us']:.0f} | "
                         f"{'-' if cf is None else f'{cf:.2f}'} |")
    lines += ["", "### Worst held-out rows", "", "| id | measured | predicted | error |", "|---|---|---|---|"]
    worst = sorted(((ape(p, m), i, p, m) for i, (p, m) in res_test.items()), reverse=True)[:15]
    for err, i, p, m in worst:
        lines.append(f"| {i} | {m:,.1f} | {p:,.1f} | {err:.0f}% |")
    lines += ["", "### Skipped rows", ""]
    lines += [f"- {i}: {why}" for i, why in skipped if not i.startswith("aic-")]
    aic_skipped = sum(1 for i, _ in skipped if i.startswith("aic-"))
    if aic_skipped:
        lines.append(f"- {aic_skipped} AIConfigurator rows: OOM, fp8_static (static activation scales) or a system "
                     "autoquant does not map")
    lines += [f"- {i}: the estimate raised (model not in the catalog, or a rule rules it out)" for i in unplaced]
    report = "\n".join(lines) + "\n"
    print(report)
    if not args.dry_run:
        REPORT.write_text(report)
        src = f"fitted by benchmarks/accuracy.py on {today}"
        out = {
            "schema_version": 2,
            "source": f"{src} from benchmarks/published/measurements.yaml and aiconfigurator.yaml "
                      f"({len(train)} train rows; see benchmarks/results/accuracy.md)",
            "kernels": {k: {**v, "source": src} for k, v in layer["kernels"].items()},
            "engines": {e: {**v, "source": src} for e, v in layer["engines"].items()},
            "fitted_range": fitted_range(train),
        }
        CALIBRATION.write_text("# Fitted efficiency factors per GPU class: written by benchmarks/accuracy.py; do not "
                               "edit by hand.\n" + yaml.safe_dump(out, sort_keys=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
