"""The CPU: model, ISA flags that matter to llama.cpp, cores, and measured memory bandwidth / matmul speed.

Flags come from /proc/cpuinfo on Linux and `sysctl` on macOS; every root and runner is injectable so
tests point them at fixture trees. The measurements are short numpy runs, cached per CPU model in
<cache>/cpu.json (cache = $AUTOQUANT_CACHE_DIR, else $XDG_CACHE_HOME/autoquant, else ~/.cache/autoquant).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from autoquant.paths import autoquant_cache_dir
from autoquant.records.node import CPUInfo

# ISA features llama.cpp's CPU backend selects kernels by (ggml-cpu feature checks), by the names
# Linux prints. aarch64 names get llama.cpp's spelling added too (asimd -> neon, asimddp -> dotprod).
_X86_FLAGS = (
    "sse3", "ssse3", "avx", "avx2", "avx_vnni", "f16c", "fma", "avx512f", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
)
_ARM_FLAGS = ("asimd", "asimdhp", "asimddp", "fphp", "i8mm", "bf16", "sve", "sve2", "sme")
_ARM_ALIASES = {"asimd": "neon", "asimddp": "dotprod", "asimdhp": "fp16"}
# macOS sysctl hw.optional names -> the Linux/llama.cpp names above.
_MAC_FLAGS = {
    "hw.optional.neon": ["asimd", "neon"],
    "hw.optional.AdvSIMD": ["asimd", "neon"],
    "hw.optional.arm.FEAT_DotProd": ["asimddp", "dotprod"],
    "hw.optional.arm.FEAT_I8MM": ["i8mm"],
    "hw.optional.arm.FEAT_BF16": ["bf16"],
    "hw.optional.arm.FEAT_FP16": ["fphp", "asimdhp", "fp16"],
    "hw.optional.arm.FEAT_SME": ["sme"],
    "hw.optional.avx1_0": ["avx"],
    "hw.optional.avx2_0": ["avx2"],
    "hw.optional.fma": ["fma"],
    "hw.optional.f16c": ["f16c"],
    "hw.optional.avx512f": ["avx512f"],
    "hw.optional.avx512bw": ["avx512bw"],
    "hw.optional.avx512vl": ["avx512vl"],
    "hw.optional.avx512vnni": ["avx512_vnni"],
}

Runner = Callable[[list[str]], str | None]

_IMPORT = object()  # probe_cpu's psutil_mod default: import psutil here


def run_command(argv: list[str]) -> str | None:
    """stdout of argv (no shell), or None if it cannot run."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def parse_cpuinfo(text: str) -> tuple[str | None, list[str]]:
    """(model name, llama.cpp-relevant flags) from /proc/cpuinfo text (x86 or aarch64)."""
    model = None
    raw_flags: set[str] = set()
    implementer = part = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        value = value.strip()
        if key in ("model name", "hardware", "cpu model") and not model and value:
            model = value
        elif key in ("flags", "features") and not raw_flags:
            raw_flags = set(value.split())
        elif key == "cpu implementer" and implementer is None:
            implementer = value
        elif key == "cpu part" and part is None:
            part = value
    if model is None and implementer:
        model = f"ARM implementer {implementer} part {part or '?'}"
    if "pni" in raw_flags:  # Linux prints SSE3 as "pni" (Prescott New Instructions)
        raw_flags.add("sse3")
    flags = [f for f in (*_X86_FLAGS, *_ARM_FLAGS) if f in raw_flags]
    flags += [alias for name, alias in _ARM_ALIASES.items() if name in raw_flags]
    return model, flags


def parse_sysctl_flags(text: str) -> list[str]:
    """Flags from `sysctl hw.optional` output ("hw.optional.arm.FEAT_DotProd: 1" lines)."""
    flags: list[str] = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip() == "1":
            for f in _MAC_FLAGS.get(key.strip(), ()):
                if f not in flags:
                    flags.append(f)
    return flags


def probe_cpu(
    *,
    root: Path = Path("/"),
    system: str = "Linux",
    machine: str = "x86_64",
    run: Runner = run_command,
    psutil_mod: Any = _IMPORT,
) -> tuple[CPUInfo, list[str]]:
    """CPU facts (no measurement) and notes on what could not be read. `psutil_mod=None` means the caller
    found psutil missing and said so: no second import, no second note."""
    notes: list[str] = []
    cpu = CPUInfo(arch=machine or "unknown")
    if system == "Darwin":
        cpu.model = (run(["sysctl", "-n", "machdep.cpu.brand_string"]) or "").strip() or "unknown"
        cpu.flags = parse_sysctl_flags(run(["sysctl", "hw.optional"]) or "")
    else:
        try:
            model, flags = parse_cpuinfo((root / "proc/cpuinfo").read_text(errors="replace"))
            cpu.model = model or "unknown"
            cpu.flags = flags
        except OSError as exc:
            notes.append(f"cannot read /proc/cpuinfo ({exc.strerror or exc}): CPU model and ISA flags unknown")
    if psutil_mod is _IMPORT:
        try:
            import psutil as psutil_mod
        except ImportError:
            psutil_mod = None
            notes.append("psutil not installed: physical core count unknown")
    if psutil_mod is not None:
        cpu.logical_cores = psutil_mod.cpu_count(logical=True)
        cpu.physical_cores = psutil_mod.cpu_count(logical=False)
    else:
        cpu.logical_cores = os.cpu_count()
    return cpu, notes


# --- measurements --------------------------------------------------------------------------------------


def cache_dir(env: Mapping[str, str]) -> Path:
    return autoquant_cache_dir(env)


def cache_key(cpu: CPUInfo) -> str:
    """Per CPU model and size, not per host: a new pod on the same CPU reuses the measurement."""
    return f"{cpu.model}|{cpu.logical_cores}"


def measure_bandwidth_gbps(size_bytes: int = 256 * 1024**2, repeats: int = 5, threads: int | None = None) -> float:
    """Memory bandwidth in GB/s (1e9 B/s): best of `repeats` np.copyto of a `size_bytes` array split
    across `threads` threads (numpy releases the GIL while copying), counting bytes read plus written."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    threads = max(1, threads or usable_cpus())
    n = max(threads, size_bytes // 8)
    src = np.ones(n, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the pages in before timing
    chunks = [slice(i * n // threads, (i + 1) * n // threads) for i in range(threads)]
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(lambda s: np.copyto(dst[s], src[s]), chunks))
            best = min(best, time.perf_counter() - t0)
    return 2 * n * 8 / best / 1e9


def usable_cpus(cpu_limit_cores: float | None = None) -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota (in cores) if given."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    if cpu_limit_cores:
        n = min(n, max(1, int(cpu_limit_cores)))
    return max(1, n)


def physical_cores(psutil_mod: Any = None) -> int | None:
    """Physical core count (psutil), None when psutil is missing."""
    if psutil_mod is None:
        try:
            import psutil as psutil_mod
        except ImportError:
            return None
    return psutil_mod.cpu_count(logical=False)


def measure_matmul_gflops(n: int = 1024, budget_s: float = 2.0, max_runs: int = 5) -> float:
    """fp32 GEMM throughput (GFLOP/s, 2n^3 per product) through numpy's BLAS, all its threads."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm up BLAS threads
    best = float("inf")
    start = time.perf_counter()
    for _ in range(max_runs):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s:
            break
    return 2 * n**3 / best / 1e9


def measured(
    cpu: CPUInfo,
    env: Mapping[str, str],
    *,
    measure: bool = True,
    want_bandwidth: bool = True,
    bandwidth: Callable[[], float] = measure_bandwidth_gbps,
    matmul: Callable[[], float] = measure_matmul_gflops,
) -> list[str]:
    """Fill memory bandwidth (when wanted) and matmul GFLOPS from the per-machine cache, measuring and
    caching what is missing when `measure` is set."""
    notes: list[str] = []
    path = cache_dir(env) / "cpu.json"
    key = cache_key(cpu)
    cache = _read_cache(path)
    entry = dict(cache[key]) if isinstance(cache.get(key), dict) else {}
    wanted = (["memory_bandwidth_gbps"] if want_bandwidth else []) + ["matmul_gflops"]
    missing = [k for k in wanted if not _is_number(entry.get(k))]
    if missing and measure:
        if "memory_bandwidth_gbps" in missing:
            entry["memory_bandwidth_gbps"] = round(bandwidth(), 2)
        if "matmul_gflops" in missing:
            entry["matmul_gflops"] = round(matmul(), 1)
        entry["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        cache[key] = entry
        notes += _write_cache(path, cache)
    elif missing:
        notes.append(f"not measured (--no-measure, nothing cached): {', '.join(missing)}")
    if want_bandwidth and _is_number(entry.get("memory_bandwidth_gbps")):
        cpu.memory_bandwidth_gbps = float(entry["memory_bandwidth_gbps"])
        cpu.memory_bandwidth_source = "measured"
    if _is_number(entry.get("matmul_gflops")):
        cpu.matmul_gflops = float(entry["matmul_gflops"])
        cpu.matmul_gflops_source = "measured"
    return notes


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _write_cache(path: Path, cache: dict[str, Any]) -> list[str]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=2, sort_keys=True))
        tmp.replace(path)
    except OSError as exc:
        return [f"could not cache CPU measurements in {path} ({exc.strerror or exc})"]
    return []


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}

