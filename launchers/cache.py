"""Per-node decision cache: a restarted container skips planning when nothing that drives the plan changed.

Key = sha256 of (hardware fingerprint, model, pins, workload, engine versions, autoquant version). The
fingerprint is read cheaply (no NVML init, no benchmark) through the probes' own parsers: GPU models from
/proc/driver/nvidia (CUDA_VISIBLE_DEVICES applied), CPU model and core count, RAM, cgroup limits. Entries
live in <autoquant cache>/decisions/ (autoquant.paths).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autoquant import __version__, jsonio
from autoquant.errors import AutoquantError
from autoquant.paths import autoquant_cache_dir, write_atomic
from autoquant.records import Plan, from_dict, to_dict

from . import versions


def cache_dir(environ: Mapping[str, str] | None = None) -> str:
    return str(autoquant_cache_dir(environ, "decisions"))


def visible_gpus(environ: Mapping[str, str] | None = None, root: Path = Path("/")) -> list[str]:
    """Models of the GPUs this process will see (cheap: /proc, no NVML init)."""
    from autoquant.probes.nvml import proc_gpu_names

    return proc_gpu_names(os.environ if environ is None else environ, str(root))


def hardware_fingerprint(environ: Mapping[str, str] | None = None, root: Path = Path("/")) -> dict[str, Any]:
    """What identifies this node's hardware, cheaply (milliseconds)."""
    from autoquant.probes.cgroup import probe_cgroup
    from autoquant.probes.cpu import parse_cpuinfo

    environ = os.environ if environ is None else environ
    try:
        cpu_model = parse_cpuinfo((root / "proc/cpuinfo").read_text(errors="replace"))[0]
    except OSError:
        cpu_model = None
    limits, _ = probe_cgroup(root)
    return {
        "gpus": visible_gpus(environ, root),
        "cuda_visible_devices": environ.get("CUDA_VISIBLE_DEVICES"),
        "cpu": cpu_model or platform.processor() or "unknown",
        "cpus": os.cpu_count(),
        "ram": _meminfo_total(root),
        "cgroup_memory": limits.memory_limit_bytes,
        "cgroup_cpu": limits.cpu_limit_cores,
        "machine": platform.machine(),
    }


def engine_versions() -> dict[str, str | None]:
    from autoquant.facts import default_facts

    return {e: versions.engine_version(e) for e in default_facts().engines}


def decision_key(model: str, pins: dict, workload: dict, extra: dict | None = None,
                 fingerprint: dict | None = None) -> str:
    payload = {
        "hardware": fingerprint if fingerprint is not None else hardware_fingerprint(),
        "model": model,
        "pins": pins,
        "workload": workload,
        "engines": engine_versions(),
        "autoquant": __version__,
        "extra": extra or {},
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_plan(key: str, environ: Mapping[str, str] | None = None) -> Plan | None:
    path = os.path.join(cache_dir(environ), f"{key}.json")
    try:
        return from_dict(Plan, jsonio.load(path))
    except (OSError, ValueError, AutoquantError):
        return None  # missing or unreadable: plan again


def save_plan(key: str, plan: Plan, environ: Mapping[str, str] | None = None) -> str | None:
    directory = cache_dir(environ)
    path = os.path.join(directory, f"{key}.json")
    try:
        os.makedirs(directory, exist_ok=True)
        # atomic, and a failed write leaves no half-written entry or .tmp behind (a full disk)
        write_atomic(path, json.dumps(to_dict(plan)))
        return path
    except OSError:
        return None  # a read-only cache never stops a launch


def _meminfo_total(root: Path) -> int | None:
    try:
        with open(root / "proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None
