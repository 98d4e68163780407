"""Container limits from cgroups v1 and v2: the memory and CPU a process here may really use.

The process's own cgroup comes from /proc/self/cgroup; limits are read at that cgroup and at each
ancestor up to the mount point (a parent's limit binds its children too), taking the tightest. When the
path in /proc/self/cgroup is not visible under the mount (cgroup namespaces, bind mounts) the mount's
root is the process's cgroup. "max", -1 and page-counter-sized values mean no limit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from autoquant.records.node import CgroupLimits

# Values at or above this are the kernel's "unlimited" (v1 reports 2^63 rounded down to a page).
_UNLIMITED = 1 << 60

T = TypeVar("T", int, float)


def probe_cgroup(root: Path = Path("/")) -> tuple[CgroupLimits, list[str]]:
    """Limits of this process's cgroup under `root` (a fixture tree in tests), and notes."""
    notes: list[str] = []
    mount = root / "sys/fs/cgroup"
    own = _own_cgroups(root)
    if (mount / "cgroup.controllers").exists():
        path = own.get("", "/")
        limits = CgroupLimits(version=2)
        limits.memory_limit_bytes = _tightest(mount, path, lambda d: _read(d / "memory.max", _parse_bytes))
        limits.cpu_limit_cores = _tightest(mount, path, lambda d: _read(d / "cpu.max", _parse_cpu_max))
        return limits, notes
    memory_mount = mount / "memory"
    cpu_mount = next((mount / d for d in ("cpu", "cpu,cpuacct", "cpuacct,cpu") if (mount / d).is_dir()), None)
    if memory_mount.is_dir() or cpu_mount is not None:
        limits = CgroupLimits(version=1)
        if memory_mount.is_dir():
            limits.memory_limit_bytes = _tightest(
                memory_mount, own.get("memory", "/"), lambda d: _read(d / "memory.limit_in_bytes", _parse_bytes)
            )
        if cpu_mount is not None:
            cpu_path = next((own[k] for k in own if "cpu" in k.split(",")), "/")
            limits.cpu_limit_cores = _tightest(cpu_mount, cpu_path, _v1_cpu)
        return limits, notes
    if (root / "proc/self/cgroup").exists():
        notes.append("cgroup filesystem not mounted at /sys/fs/cgroup: container limits unknown")
    return CgroupLimits(), notes


def _own_cgroups(root: Path) -> dict[str, str]:
    """controller list ('' for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    try:
        text = (root / "proc/self/cgroup").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out[parts[1]] = parts[2] or "/"
    return out


def _chain(mount: Path, path: str) -> list[Path]:
    """The cgroup directories from the process's own up to the mount root that exist."""
    rel = [p for p in path.strip("/").split("/") if p and p != ".."]
    leaf = mount.joinpath(*rel) if rel else mount
    if not leaf.is_dir():
        return [mount]
    dirs = [leaf]
    while dirs[-1] != mount:
        dirs.append(dirs[-1].parent)
    return dirs


def _tightest(mount: Path, path: str, read_one: Callable[[Path], T | None]) -> T | None:
    values = [v for v in (read_one(d) for d in _chain(mount, path)) if v is not None]
    return min(values) if values else None  # type: ignore[type-var]


def _read(path: Path, parse: Callable[[str], T | None]) -> T | None:
    try:
        return parse(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _parse_bytes(text: str) -> int | None:
    if text in ("max", "-1", ""):
        return None
    value = int(text)
    return None if value <= 0 or value >= _UNLIMITED else value


def _parse_cpu_max(text: str) -> float | None:
    """cgroup v2 cpu.max: '<quota> <period>' or 'max <period>' -> cores."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    period = int(parts[1]) if len(parts) > 1 else 100_000
    quota = int(parts[0])
    return round(quota / period, 3) if quota > 0 and period > 0 else None


def _v1_cpu(d: Path) -> float | None:
    quota = _read(d / "cpu.cfs_quota_us", int)
    period = _read(d / "cpu.cfs_period_us", int)
    if not quota or quota <= 0 or not period or period <= 0:
        return None
    return round(quota / period, 3)
