"""This node's hardware as a `Node` record: GPUs (NVML), CPU, RAM, NUMA, cgroup limits, disk, Apple chip.

Everything that touches the world is a parameter with the real thing as default (environment, the NVML
module, the filesystem root, the command runner, psutil), so tests drive the real code with fixtures.
Nothing here raises for a missing driver or an unreadable file: what cannot be known is left None and
a sentence saying why is appended to `Node.notes`.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from autoquant.probes.apple import probe_apple
from autoquant.probes.cgroup import probe_cgroup
from autoquant.probes.cpu import Runner, measured, probe_cpu, run_command, usable_cpus
from autoquant.probes.nvml import probe_gpus
from autoquant.records.node import Node


def probe(
    env: Mapping[str, str] = os.environ,
    nvml: Any | None = None,
    *,
    root: Path = Path("/"),
    system: str | None = None,
    machine: str | None = None,
    run: Runner = run_command,
    psutil_mod: Any | None = None,
    hostname: str | None = None,
    measure: bool = True,
    cpu_bandwidth_gbps: float | None = None,
    catalog: Any | None = None,
    bandwidth: Callable[[], float] | None = None,
    matmul: Callable[[], float] | None = None,
) -> Node:
    """Probe this machine. `measure=False` skips the CPU bandwidth/matmul runs (cached results still
    count); `cpu_bandwidth_gbps` overrides the measured bandwidth (source "flag")."""
    system = system or platform.system()
    machine = machine or platform.machine()
    node = Node(source="probe", hostname=hostname or socket.gethostname())
    catalog = catalog if catalog is not None else _default_catalog(node.notes)

    psutil_mod = psutil_mod if psutil_mod is not None else _psutil(node.notes)
    node.cpu, notes = probe_cpu(root=root, system=system, machine=machine, run=run, psutil_mod=psutil_mod)
    node.notes += notes

    if system != "Darwin":
        match = catalog.match_nvml_name if catalog is not None else None
        inv = probe_gpus(env, nvml, match, cpu_count=node.cpu.logical_cores)
        node.gpus, node.topology, node.nvlink_domains = inv.gpus, inv.topology, inv.nvlink_domains
        node.driver_version, node.cuda_driver_version = inv.driver_version, inv.cuda_driver_version
        node.notes = inv.notes + node.notes
    node.cuda_visible_devices = env.get("CUDA_VISIBLE_DEVICES")
    if psutil_mod is not None:
        vm = psutil_mod.virtual_memory()
        node.ram_total_bytes, node.ram_available_bytes = int(vm.total), int(vm.available)

    if system == "Linux":
        node.numa_nodes = _numa_nodes(root)
        node.cgroup, notes = probe_cgroup(root)
        node.notes += notes

    path = hf_cache_dir(env)
    node.disk_path, node.disk_free_bytes = str(path), free_bytes(path)

    bandwidth_spec = None
    if system == "Darwin" and machine in ("arm64", "aarch64"):
        chip = node.cpu.model if node.cpu.model not in (None, "", "unknown") else None  # read by probe_cpu
        node.apple, notes = probe_apple(run, catalog.find if catalog is not None else None, chip=chip)
        node.notes += notes
        if node.apple and node.apple.catalog_key and catalog is not None:
            bandwidth_spec = catalog.specs[node.apple.catalog_key].memory_bandwidth_gbps
        if node.apple and not node.ram_total_bytes:
            node.ram_total_bytes = node.apple.unified_memory_bytes or None

    if cpu_bandwidth_gbps:
        node.cpu.memory_bandwidth_gbps, node.cpu.memory_bandwidth_source = float(cpu_bandwidth_gbps), "flag"
    elif bandwidth_spec:
        node.cpu.memory_bandwidth_gbps, node.cpu.memory_bandwidth_source = float(bandwidth_spec), "catalog"
    kwargs = {k: v for k, v in (("bandwidth", bandwidth), ("matmul", matmul)) if v is not None}
    try:
        node.notes += measured(
            node.cpu, env, measure=measure, threads=engine_threads(node),
            want_bandwidth=node.cpu.memory_bandwidth_gbps is None, **kwargs,
        )
    except Exception as exc:  # noqa: BLE001 - a failed measurement must not lose the rest of the probe
        node.notes.append(f"CPU measurement failed ({type(exc).__name__}: {exc})")
    return node


def engine_threads(node: Node) -> int:
    """The threads llama.cpp will run here (launchers.llamacpp.threads_for): physical cores within the CPUs
    this process may use. The bandwidth is read with as many, since one core reads about half of two."""
    limit = node.cgroup.cpu_limit_cores if node.cgroup else None
    usable = usable_cpus(limit)
    return max(1, min(usable, node.cpu.physical_cores or usable))


def _default_catalog(notes: list[str]) -> Any | None:
    try:
        from autoquant.catalog.gpus import default_catalog

        return default_catalog()
    except Exception as exc:  # noqa: BLE001 - the probe works without the catalog, only less informed
        notes.append(f"GPU catalog unavailable ({type(exc).__name__}: {exc}): GPUs not matched to specs")
        return None


def _psutil(notes: list[str]) -> Any | None:
    try:
        import psutil
    except ImportError:
        notes.append("psutil not installed: RAM and physical cores unknown (pip install psutil)")
        return None
    return psutil


def _numa_nodes(root: Path) -> int | None:
    base = root / "sys/devices/system/node"
    try:
        count = sum(1 for p in base.iterdir() if re.fullmatch(r"node\d+", p.name))
    except OSError:
        return None
    return count or None


def hf_cache_dir(env: Mapping[str, str]) -> Path:
    """Where Hugging Face models are cached (huggingface_hub's precedence; one helper for the project)."""
    from autoquant.checkpoints.hub import hf_cache_dir as _hf_cache_dir

    return _hf_cache_dir(env)


def free_bytes(path: str | Path) -> int | None:
    """Free bytes on the filesystem that holds `path`, or would hold it: the nearest existing ancestor is
    measured (commands/pull can use this for its download target). None when unreadable."""
    existing = Path(path)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        return shutil.disk_usage(existing).free
    except OSError:
        return None
