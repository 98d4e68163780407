"""How long `autoquant plan` takes as a whole process: interpreter start, imports, data files, plan, output.

Target: < 250 ms of CPU (user + sys of the child) for a Hub model id answered from the offline catalog.
Runs `python -m autoquant plan MODEL --gpu GPUS --json` N times per case with HF_HUB_OFFLINE=1 and an
empty Hugging Face cache (so the model comes from the bundled catalog), and measures the child's CPU time
(resource.getrusage(RUSAGE_CHILDREN) deltas) and wall time. One untimed warm-up run per case writes the
bytecode caches (__pycache__, as an installed package has them; PYTHONDONTWRITEBYTECODE is dropped from the
child's environment) and the parsed-data cache (autoquant.data, in a temporary AUTOQUANT_CACHE_DIR), and
warms the OS file cache. One extra `-X importtime` run per case lists the heavy
optional modules the command imported. Writes benchmarks/results/plan_startup.md.

    python benchmarks/plan_startup.py [--runs 7] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "benchmarks" / "results" / "plan_startup.md"
CASES = (("meta-llama/Llama-3.1-8B-Instruct", "H100-SXM:1"), ("meta-llama/Llama-3.1-70B-Instruct", "H100-SXM:8"))
# Modules the plan path must not need (tests/test_import_hygiene.py asserts the first three).
HEAVY = ("gguf", "numpy", "httpx", "huggingface_hub", "torch", "llama_cpp", "vllm", "tensorrt_llm",
         "aiconfigurator")
TARGET_CPU_MS = 250.0


def argv_of(model: str, gpus: str) -> list[str]:
    return [sys.executable, "-m", "autoquant", "plan", model, "--gpu", gpus, "--json"]


def child_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "PYTHONPYCACHE"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # without bytecode caches every run compiles ~60 modules (~90 ms)
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp / "hf-hub"),  # absent: nothing cached, the catalog answers
               AUTOQUANT_CACHE_DIR=str(tmp / "autoquant"), PYTHONPATH=str(ROOT),
               # The base install's path: with the `aic` extra present, `auto` would load its database (~3 s).
               AUTOQUANT_PREDICTOR="autoquant")
    return env


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(child CPU ms, wall ms) of one run; the output must be a plan."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = (time.perf_counter() - t0) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[1:])} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    json.loads(proc.stdout)  # a plan record, not an error
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return cpu, wall


def imported(argv: list[str], env: dict[str, str]) -> tuple[list[str], float]:
    """(heavy modules imported, total import time in ms) from one `-X importtime` run."""
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=True)
    names, total = set(), 0.0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "self [us]" in line:
            continue
        _, cumulative, name = line.split("|")
        names.add(name.strip())
        if not name.startswith("  "):  # top-level entries: their cumulative times add up to the total
            total += int(cumulative) / 1000
    return [m for m in HEAVY if m in names], total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="timed runs per case and bytecode setting")
    ap.add_argument("--dry-run", action="store_true", help="print the report, do not write it")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = child_env(Path(tmp))
        for model, gpus in CASES:
            command = argv_of(model, gpus)
            run_once(command, env)  # warm-up: writes __pycache__ and the data cache, fills the OS file cache
            runs = [run_once(command, env) for _ in range(args.runs)]
            cpu, wall = [r[0] for r in runs], [r[1] for r in runs]
            heavy, import_ms = imported(command, env)
            rows.append((model, gpus, statistics.median(cpu), min(cpu), statistics.median(wall), min(wall),
                         import_ms, heavy))
    lines = [
        "# Plan startup",
        "",
        f"`benchmarks/plan_startup.py`: `python -m autoquant plan MODEL --gpu GPUS --json` as a whole process, "
        f"{args.runs} runs per row, on this machine (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs). "
        "Environment: `HF_HUB_OFFLINE=1` and an empty `HF_HUB_CACHE`, so the model comes from the bundled "
        "catalog, and `AUTOQUANT_PREDICTOR=autoquant`, the path of an install without the `aic` extra (with "
        "it, the default `auto` predictor loads AIConfigurator's database: about 3.5 s more). CPU is the child's user + sys time (`getrusage(RUSAGE_CHILDREN)`), caches warm (an untimed "
        "warm-up run writes `__pycache__`, as an installed package has it, and the parsed-data cache of "
        "`autoquant.data`, in a temporary `AUTOQUANT_CACHE_DIR`). 'imports' is the "
        "total of one `-X importtime` run (which adds its own overhead).",
        "",
        "| model | GPUs | CPU median (ms) | CPU min (ms) | wall median (ms) | wall min (ms) | imports (ms) "
        "| heavy modules imported |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, gpus, cpu_med, cpu_min, wall_med, wall_min, import_ms, heavy in rows:
        lines.append(f"| {model} | {gpus} | {cpu_med:.0f} | {cpu_min:.0f} | {wall_med:.0f} | {wall_min:.0f} "
                     f"| {import_ms:.0f} | {', '.join(heavy) or 'none'} |")
    worst = max(r[2] for r in rows)
    lines += [
        "",
        f"Target (< {TARGET_CPU_MS:.0f} ms CPU): worst median {worst:.0f} ms -> "
        + ("met." if worst < TARGET_CPU_MS else "NOT met."),
        "",
        "Commands: " + "; ".join(f"`{' '.join(['python', *argv_of(m, g)[1:]])}`" for m, g in CASES) + ".",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if not args.dry_run:
        REPORT.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
