"""The CPU: model, ISA flags that matter to llama.cpp, cores, and measured memory bandwidth / matmul speed.

Flags come from /proc/cpuinfo on Linux and `sysctl` on macOS; every root and runner is injectable so
tests point them at fixture trees. The measurements are numpy runs: memory READ bandwidth over a buffer four
times the last-level cache with the threads the engine will run, and an fp32 GEMM; each the median of several
runs with their spread. They are cached per CPU model in <cache>/cpu.json (cache = $AUTOQUANT_CACHE_DIR, else
$XDG_CACHE_HOME/autoquant, else ~/.cache/autoquant), unless other processes kept the CPUs busy meanwhile.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoquant import jsonio
from autoquant.errors import InputError
from autoquant.paths import autoquant_cache_dir, write_atomic
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


@dataclass(frozen=True)
class Measurement:
    """One measured figure: the median of `repeats` runs, their spread, and whether other work loaded the
    CPUs meanwhile (then the figure is kept out of the cache)."""

    value: float
    low: float
    high: float
    repeats: int
    threads: int
    size_bytes: int = 0
    other_load: float = 0.0  # share of all CPUs busy with other processes while it ran (0..1)

    @property
    def under_load(self) -> bool:
        return self.other_load > QUIET_LOAD


# Other processes may use at most this share of the CPUs while a figure is taken for the cache: the issue's
# four runs on a busy 2-core machine spread 26-51 GB/s, so a busy reading is reported but never kept.
QUIET_LOAD = 0.15
LOAD_WINDOW_S = 0.2
# The buffer is this many times the last-level cache (and at least MIN_BUFFER): a smaller one measures the
# cache, not DRAM (this machine's VM reports a 480 MiB L3).
LLC_MULTIPLE = 4
MIN_BUFFER = 1 << 30


def last_level_cache_bytes(root: Path = Path("/")) -> int | None:
    """Size of the largest cache level of cpu0 (Linux sysfs), None when unknown."""
    best: tuple[int, int] | None = None
    base = root / "sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(base.glob("index*"))
    except OSError:
        return None
    for entry in entries:
        try:
            level = int((entry / "level").read_text().strip())
            size = _parse_size((entry / "size").read_text().strip())
        except (OSError, ValueError):
            continue
        if size and (best is None or level > best[0]):
            best = (level, size)
    return best[1] if best else None


def _parse_size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    if text and text[-1].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


def bandwidth_buffer_bytes(llc: int | None, available: int | None) -> int:
    """A buffer far larger than the last-level cache, within a quarter of the free memory."""
    size = max(MIN_BUFFER, LLC_MULTIPLE * (llc or 0))
    if available:
        size = min(size, max(64 << 20, available // 4))
    return size


def _busy_seconds(psutil_mod: Any) -> tuple[float, float]:
    """(all CPUs' busy seconds, this process's CPU seconds) so far."""
    t = psutil_mod.cpu_times()
    busy = sum(v for k, v in t._asdict().items() if k not in ("idle", "iowait", "guest", "guest_nice"))
    p = psutil_mod.Process().cpu_times()
    return busy, p.user + p.system


def _timed(run: Callable[[], float], repeats: int, threads: int, size: int,
           budget_s: float | None = None) -> Measurement:
    """Median and spread of up to `repeats` calls of `run()` (each returns one figure; at least one, and no
    more once `budget_s` has passed), with the share of the CPUs other processes kept busy meanwhile."""
    try:
        import psutil
    except ImportError:
        psutil = None
    before = _busy_seconds(psutil) if psutil else None
    t0 = time.perf_counter()
    values: list[float] = []
    while len(values) < repeats and not (values and budget_s and time.perf_counter() - t0 > budget_s):
        values.append(run())
    values.sort()
    wall = time.perf_counter() - t0
    other = 0.0
    # CPU times tick in 10 ms steps: over a shorter window the share is noise (2.26 was seen over a few ms),
    # so it is only taken over LOAD_WINDOW_S or more, and kept within 0..1.
    if psutil and before and wall >= LOAD_WINDOW_S:
        busy, mine = _busy_seconds(psutil)
        cpus = psutil.cpu_count() or 1
        other = min(1.0, max(0.0, ((busy - before[0]) - (mine - before[1])) / (wall * cpus)))
    return Measurement(statistics.median(values), values[0], values[-1], len(values), threads, size,
                       round(other, 3))


def measure_bandwidth(size_bytes: int | None = None, repeats: int = 7, threads: int | None = None,
                      root: Path = Path("/")) -> Measurement:
    """Memory READ bandwidth in GB/s (1e9 B/s): `threads` threads each OR-reduce their share of a buffer far
    larger than the last-level cache (numpy releases the GIL). Reads, because decode reads weights; a copy
    figure depends on whether memcpy uses non-temporal stores, which glibc decides by size (here 27 GB/s at
    256 MiB, 45 GB/s at 2 GiB, same threads). `threads` should be what the engine will run: one core here
    reads ~18 GB/s, two ~35."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    threads = max(1, threads or usable_cpus())
    if size_bytes is None:
        try:
            import psutil

            available = int(psutil.virtual_memory().available)
        except ImportError:
            available = None
        size_bytes = bandwidth_buffer_bytes(last_level_cache_bytes(root), available)
    n = max(threads, size_bytes // 8)
    buf = np.ones(n, dtype=np.uint64)  # written once: the pages are faulted in before timing
    chunks = [slice(i * n // threads, (i + 1) * n // threads) for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda s: np.bitwise_or.reduce(buf[s]), chunks))  # warm up the threads

        def once() -> float:
            start = time.perf_counter()
            list(pool.map(lambda s: np.bitwise_or.reduce(buf[s]), chunks))
            return n * 8 / (time.perf_counter() - start) / 1e9

        return _timed(once, repeats, threads, n * 8)


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


def measure_matmul(n: int = 2048, repeats: int = 5, budget_s: float = 4.0) -> Measurement:
    """fp32 GEMM throughput (GFLOP/s, 2n^3 per product) through numpy's BLAS with all its threads: the
    median of up to `repeats` products within `budget_s`, with the spread."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm up BLAS threads

    def once() -> float:
        t0 = time.perf_counter()
        a @ b
        return 2 * n**3 / (time.perf_counter() - t0) / 1e9

    return _timed(once, repeats, usable_cpus(), 0, budget_s)


# Cache entries of older versions measured a copy, not a read: measured again.
CACHE_METHOD = "read-v2"


def measured(
    cpu: CPUInfo,
    env: Mapping[str, str],
    *,
    measure: bool = True,
    want_bandwidth: bool = True,
    threads: int | None = None,
    bandwidth: Callable[..., Measurement | float] | None = None,
    matmul: Callable[[], Measurement | float] = measure_matmul,
) -> list[str]:
    """Fill memory bandwidth (when wanted) and matmul GFLOPS from the per-machine cache, measuring what is
    missing when `measure` is set. Bandwidth is read with `threads` threads (the engine's); a cached figure
    taken with other threads is measured again. A figure taken while other processes kept the CPUs busy is
    used for this run, said so, and not cached."""
    notes: list[str] = []
    threads = max(1, threads or usable_cpus())
    path = cache_dir(env) / "cpu.json"
    key = cache_key(cpu)
    cache = _read_cache(path)
    entry = dict(cache[key]) if isinstance(cache.get(key), dict) else {}
    if entry.get("method") != CACHE_METHOD:
        entry = {}
    if entry.get("bandwidth_threads") not in (None, threads):
        entry.pop("memory_bandwidth_gbps", None)
    wanted = (["memory_bandwidth_gbps"] if want_bandwidth else []) + ["matmul_gflops"]
    missing = [k for k in wanted if not _is_number(entry.get(k))]
    fresh: dict[str, Any] = {}
    busy: list[str] = []
    if missing and measure:
        if "memory_bandwidth_gbps" in missing:
            m = _as_measurement(bandwidth() if bandwidth else measure_bandwidth(threads=threads), threads)
            fresh.update(memory_bandwidth_gbps=round(m.value, 2), bandwidth_threads=m.threads,
                         memory_bandwidth_spread_gbps=[round(m.low, 2), round(m.high, 2)],
                         bandwidth_buffer_bytes=m.size_bytes)
            if m.under_load:
                busy.append(f"memory bandwidth {m.value:.1f} GB/s")
        if "matmul_gflops" in missing:
            m = _as_measurement(matmul(), usable_cpus())
            fresh.update(matmul_gflops=round(m.value, 1), matmul_spread_gflops=[round(m.low, 1), round(m.high, 1)])
            if m.under_load:
                busy.append(f"matmul {m.value:.0f} GFLOP/s")
        entry.update(fresh)
        if busy:
            notes.append(f"measured while other processes kept the CPUs busy: {', '.join(busy)} used for this run "
                         "but not cached; run `autoquant probe` again on a quiet machine")
        else:
            entry["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            entry["method"] = CACHE_METHOD
            cache[key] = entry
            notes += _write_cache(path, cache)
    elif missing:
        notes.append(f"not measured (--no-measure, nothing cached): {', '.join(missing)}")
    source = "measured under load" if busy else "measured"
    if want_bandwidth and _is_number(entry.get("memory_bandwidth_gbps")):
        cpu.memory_bandwidth_gbps = float(entry["memory_bandwidth_gbps"])
        cpu.memory_bandwidth_source = source if "memory_bandwidth_gbps" in fresh else "measured"
        spread = entry.get("memory_bandwidth_spread_gbps")
        if isinstance(spread, list) and len(spread) == 2 and all(_is_number(v) for v in spread):
            cpu.memory_bandwidth_spread_gbps = [float(v) for v in spread]
        if isinstance(entry.get("bandwidth_threads"), int):
            cpu.memory_bandwidth_threads = entry["bandwidth_threads"]
    if _is_number(entry.get("matmul_gflops")):
        cpu.matmul_gflops = float(entry["matmul_gflops"])
        cpu.matmul_gflops_source = source if "matmul_gflops" in fresh else "measured"
    return notes


def _as_measurement(value: Measurement | float, threads: int) -> Measurement:
    """An injected measurement may be a bare figure (tests, callers with their own numbers)."""
    if isinstance(value, Measurement):
        return value
    return Measurement(float(value), float(value), float(value), 1, threads)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _write_cache(path: Path, cache: dict[str, Any]) -> list[str]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(cache, indent=2, sort_keys=True))  # a failed write leaves no .tmp
    except OSError as exc:
        return [f"could not cache CPU measurements in {path} ({exc.strerror or exc})"]
    return []


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = jsonio.load(path)
    except (OSError, ValueError, InputError):
        return {}  # a cache: unreadable means measure again
    return data if isinstance(data, dict) else {}

