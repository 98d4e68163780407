"""Per-node decision cache: a restarted container skips planning when nothing that drives the plan changed.

Key = sha256 of (hardware fingerprint, model, pins, workload, engine versions, autoquant version). The
fingerprint is read cheaply (no NVML init, no benchmark): GPU models from /proc/driver/nvidia, CPU model and
core count, RAM, cgroup limits. Entries live in AUTOQUANT_CACHE_DIR or ~/.cache/autoquant/decisions/.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import platform
import tempfile
from typing import Any

from autoquant import __version__
from autoquant.records import Plan, from_dict, to_dict

from . import versions


def cache_dir(environ: dict[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get("AUTOQUANT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "autoquant",
                                                              "decisions")


def hardware_fingerprint() -> dict[str, Any]:
    """What identifies this node's hardware, cheaply (milliseconds)."""
    gpus = []
    for info in sorted(glob.glob("/proc/driver/nvidia/gpus/*/information")):
        fields = {}
        try:
            with open(info) as fh:
                for line in fh:
                    key, _, value = line.partition(":")
                    fields[key.strip()] = value.strip()
        except OSError:
            continue
        gpus.append(fields.get("Model", "?"))
    return {
        "gpus": gpus,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "ram": _meminfo_total(),
        "cgroup_memory": _read_first(("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")),
        "cgroup_cpu": _read_first(("/sys/fs/cgroup/cpu.max",)),
        "machine": platform.machine(),
    }


def decision_key(model: str, pins: dict, workload: dict, extra: dict | None = None,
                 fingerprint: dict | None = None) -> str:
    payload = {
        "hardware": fingerprint if fingerprint is not None else hardware_fingerprint(),
        "model": model,
        "pins": pins,
        "workload": workload,
        "engines": {e: versions.engine_version(e) for e in versions.DISTRIBUTIONS},
        "autoquant": __version__,
        "extra": extra or {},
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_plan(key: str, environ: dict[str, str] | None = None) -> Plan | None:
    path = os.path.join(cache_dir(environ), f"{key}.json")
    try:
        with open(path, encoding="utf-8") as fh:
            return from_dict(Plan, json.load(fh))
    except (OSError, ValueError):
        return None  # missing or unreadable: plan again


def save_plan(key: str, plan: Plan, environ: dict[str, str] | None = None) -> str | None:
    directory = cache_dir(environ)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(to_dict(plan), fh)
        path = os.path.join(directory, f"{key}.json")
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old or the new entry
        return path
    except OSError:
        return None  # a read-only cache never stops a launch


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "Hardware", "cpu model")):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _meminfo_total() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _read_first(paths: tuple[str, ...]) -> str | None:
    for path in paths:
        try:
            with open(path) as fh:
                return fh.read().strip()
        except OSError:
            continue
    return None
