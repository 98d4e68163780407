"""NVIDIA GPUs through NVML (nvidia-ml-py's `pynvml` module): devices, MIG slices, NVLink/PCIe topology.

NVML does not initialise CUDA and is not affected by CUDA_VISIBLE_DEVICES (it always sees physical
devices in PCI bus order), so this module applies CUDA_VISIBLE_DEVICES itself. Every call may fail on
some driver or GPU: a NotSupported answer is silently "unknown"; any other NVMLError becomes a note and
the probe goes on. Nothing here raises.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from autoquant.records.node import GPU, MigSlice

# nvmlDeviceGetTopologyCommonAncestor levels -> `nvidia-smi topo -m` vocabulary.
# (NVML_TOPOLOGY_INTERNAL means two GPUs on one board, which nvidia-smi also shows as PIX.)
_TOPOLOGY_LABELS = {0: "PIX", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}

# FP32 lanes ("CUDA cores") per SM by compute capability, to turn NVML's core count into SMs when the
# catalog does not know the GPU: autoquant/data/cuda.yaml (its source is cited there).
def _cores_per_sm() -> dict[str, int]:
    from autoquant.data import load

    return {str(k): int(v) for k, v in load("cuda")["fp32_cores_per_sm"].items()}


_MIG_PROFILE = re.compile(r"(\d+g\.\d+gb(?:\+[a-z0-9]+)?)", re.IGNORECASE)


@dataclass
class GpuInventory:
    gpus: list[GPU] = field(default_factory=list)
    topology: list[list[str]] = field(default_factory=list)
    nvlink_domains: list[list[int]] = field(default_factory=list)
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class _Device:
    """A physical GPU as NVML sees it, before CUDA_VISIBLE_DEVICES selects from them."""

    handle: Any
    gpu: GPU
    bus_id: str | None = None
    mig_handles: list[Any] = field(default_factory=list)


class _Calls:
    """NVML calls that turn failures into None plus (for real errors) a note."""

    def __init__(self, nvml: Any, notes: list[str]):
        self.nvml = nvml
        self.notes = notes
        self.error = getattr(nvml, "NVMLError", Exception)
        self.quiet = tuple(
            c for c in (getattr(nvml, n, None) for n in ("NVMLError_NotSupported", "NVMLError_FunctionNotFound"))
            if isinstance(c, type)
        )

    def __call__(self, where: str, fn_name: str, *args: Any, quiet: tuple[type, ...] = ()) -> Any:
        fn = getattr(self.nvml, fn_name, None)
        if fn is None:  # an nvidia-ml-py older than the function
            return None
        try:
            return fn(*args)
        except self.error as exc:
            if isinstance(exc, self.quiet + quiet):
                return None
            self.notes.append(f"{where}: {fn_name} failed ({_text(exc)}); left unknown")
            return None

    def cls(self, name: str) -> tuple[type, ...]:
        c = getattr(self.nvml, name, None)
        return (c,) if isinstance(c, type) else ()


def load_nvml() -> tuple[Any | None, str | None]:
    """The pynvml module, or None and why."""
    try:
        import pynvml
    except ImportError:
        return None, "nvidia-ml-py (pynvml) is not installed: no NVIDIA GPUs probed (pip install nvidia-ml-py)"
    return pynvml, None


def probe_gpus(
    env: Mapping[str, str],
    nvml: Any | None = None,
    match: Callable[[str, int | None], Any] | None = None,
    cpu_count: int | None = None,
) -> GpuInventory:
    """GPUs this process may use (CUDA_VISIBLE_DEVICES applied), their topology, driver versions.
    `cpu_count` sizes the CPU-affinity mask (default: os.cpu_count())."""
    inv = GpuInventory()
    if nvml is None:
        nvml, why = load_nvml()
        if nvml is None:
            inv.notes.append(why or "NVML unavailable")
            return inv
    try:
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - any failure to start NVML means "no GPUs known"
        inv.notes.append(_init_failure(nvml, exc))
        return inv
    try:
        _probe_initialised(nvml, env, inv, match, max(cpu_count or 0, os.cpu_count() or 1))
    except Exception as exc:  # noqa: BLE001 - never crash the probe; say what was lost
        inv.notes.append(f"NVML probe stopped early: {type(exc).__name__}: {_text(exc)}")
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001, S110 - shutting down is best effort
            pass
    return inv


def _init_failure(nvml: Any, exc: BaseException) -> str:
    for name, why in (
        ("NVMLError_LibraryNotFound", "NVML library not found (no NVIDIA driver installed): no NVIDIA GPUs"),
        ("NVMLError_DriverNotLoaded", "NVIDIA driver not loaded: no NVIDIA GPUs usable"),
        ("NVMLError_NoPermission", "no permission to use NVML: GPUs not probed"),
    ):
        cls = getattr(nvml, name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return why
    return f"NVML could not start ({type(exc).__name__}: {_text(exc)}): no NVIDIA GPUs probed"


def _probe_initialised(
    nvml: Any,
    env: Mapping[str, str],
    inv: GpuInventory,
    match: Callable[[str, int | None], Any] | None,
    cpu_count: int,
) -> None:
    call = _Calls(nvml, inv.notes)
    inv.driver_version = _str(call("driver", "nvmlSystemGetDriverVersion"))
    cuda = call("driver", "nvmlSystemGetCudaDriverVersion_v2")
    if cuda is None:
        cuda = call("driver", "nvmlSystemGetCudaDriverVersion")
    if isinstance(cuda, int) and cuda > 0:
        inv.cuda_driver_version = f"{cuda // 1000}.{(cuda % 1000) // 10}"
    count = call("devices", "nvmlDeviceGetCount")
    if not count:
        if count == 0:
            inv.notes.append("NVML reports no NVIDIA GPUs")
        return
    devices: list[_Device] = []
    for i in range(count):
        handle = call(f"GPU {i}", "nvmlDeviceGetHandleByIndex", i)
        if handle is None:
            continue
        devices.append(_probe_device(call, i, handle, match, cpu_count))
    selected = _select_visible(devices, env, call, inv.notes)
    inv.gpus = [gpu for gpu, _, _ in selected]
    for new_index, gpu in enumerate(inv.gpus):
        gpu.index = new_index
        for s in gpu.mig_slices:
            s.gpu_index = new_index
    inv.topology, inv.nvlink_domains = _topology(call, devices, selected, inv.notes)
    for gpu in inv.gpus:
        if gpu.mig_enabled and len(gpu.mig_slices) != 1:
            inv.notes.append(
                f"GPU {gpu.index} is in MIG mode: an engine uses one slice, not the whole GPU "
                f"(set CUDA_VISIBLE_DEVICES=MIG-<uuid> to pick one)"
            )


def _probe_device(
    call: _Calls, index: int, handle: Any, match: Callable[[str, int | None], Any] | None, cpu_count: int
) -> _Device:
    where = f"GPU {index}"
    nvml = call.nvml
    name = _str(call(where, "nvmlDeviceGetName", handle)) or "unknown NVIDIA GPU"
    mem = call(where, "nvmlDeviceGetMemoryInfo", handle)
    total = int(getattr(mem, "total", 0) or 0)
    gpu = GPU(
        index=index,
        physical_index=index,
        name=name,
        memory_total_bytes=total,
        memory_free_bytes=int(mem.free) if mem is not None and getattr(mem, "free", None) is not None else None,
        uuid=_str(call(where, "nvmlDeviceGetUUID", handle)),
    )
    cc = call(where, "nvmlDeviceGetCudaComputeCapability", handle)
    if cc:
        gpu.compute_capability = f"{cc[0]}.{cc[1]}"
    spec = match(name, total or None) if match else None
    if spec is not None:
        gpu.catalog_key = spec.key
    cores = call(where, "nvmlDeviceGetNumGpuCores", handle)
    # NVML counts CUDA cores, not SMs; the catalog's SM count wins, else cores / cores-per-SM.
    if spec is not None and getattr(spec, "sm_count", None):
        gpu.sm_count = spec.sm_count
    elif cores and gpu.compute_capability in (per_sm := _cores_per_sm()):
        gpu.sm_count = int(cores) // per_sm[gpu.compute_capability]
    gpu.max_sm_clock_mhz = call(where, "nvmlDeviceGetMaxClockInfo", handle, getattr(nvml, "NVML_CLOCK_SM", 1))
    gpu.max_mem_clock_mhz = call(where, "nvmlDeviceGetMaxClockInfo", handle, getattr(nvml, "NVML_CLOCK_MEM", 2))
    power_mw = call(where, "nvmlDeviceGetPowerManagementLimit", handle)
    if power_mw:
        gpu.power_limit_w = round(power_mw / 1000.0, 1)
    gpu.pcie_gen = call(where, "nvmlDeviceGetMaxPcieLinkGeneration", handle)
    gpu.pcie_width = call(where, "nvmlDeviceGetMaxPcieLinkWidth", handle)
    gpu.numa_node = _numa_node(call(where, "nvmlDeviceGetNumaNodeId", handle))
    cpu_words = max(1, (cpu_count + 63) // 64)
    gpu.cpu_affinity = _bits_to_cpus(call(where, "nvmlDeviceGetCpuAffinity", handle, cpu_words))
    pci = call(where, "nvmlDeviceGetPciInfo", handle)
    device = _Device(handle=handle, gpu=gpu, bus_id=_bus_id(pci))
    mode = call(where, "nvmlDeviceGetMigMode", handle)
    if mode and mode[0] == getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1):
        gpu.mig_enabled = True
        _probe_mig(call, where, device)
    return device


def _probe_mig(call: _Calls, where: str, device: _Device) -> None:
    slots = call(where, "nvmlDeviceGetMaxMigDeviceCount", device.handle) or 0
    not_found = call.cls("NVMLError_NotFound") + call.cls("NVMLError_InvalidArgument")
    for k in range(slots):
        mig = call(f"{where} MIG {k}", "nvmlDeviceGetMigDeviceHandleByIndex", device.handle, k, quiet=not_found)
        if mig is None:  # an empty slot
            continue
        mwhere = f"{where} MIG {k}"
        name = _str(call(mwhere, "nvmlDeviceGetName", mig)) or ""
        mem = call(mwhere, "nvmlDeviceGetMemoryInfo", mig)
        attrs = call(mwhere, "nvmlDeviceGetAttributes", mig)
        memory = int(getattr(mem, "total", 0) or 0)
        if not memory and attrs is not None:
            memory = int(getattr(attrs, "memorySizeMB", 0) or 0) * 1024 * 1024
        found = _MIG_PROFILE.search(name)
        if found:
            profile = found.group(1).lower()
        elif attrs is not None:
            gib = round((getattr(attrs, "memorySizeMB", 0) or 0) / 1024)
            profile = f"{getattr(attrs, 'gpuInstanceSliceCount', '?')}g.{gib}gb"
        else:
            profile = "unknown"
        device.gpu.mig_slices.append(
            MigSlice(
                gpu_index=device.gpu.index,
                profile=profile,
                memory_bytes=memory,
                uuid=_str(call(mwhere, "nvmlDeviceGetUUID", mig)),
                gpu_instance_id=call(mwhere, "nvmlDeviceGetGpuInstanceId", mig),
                sm_count=getattr(attrs, "multiprocessorCount", None) if attrs is not None else None,
            )
        )
        device.mig_handles.append(mig)


# --- CUDA_VISIBLE_DEVICES ----------------------------------------------------------------------------

# (GPU record, its device, the MIG slice position or None for the whole GPU)
_Selected = tuple[GPU, _Device, int | None]


def _select_visible(devices: list[_Device], env: Mapping[str, str], call: _Calls, notes: list[str]) -> list[_Selected]:
    """Apply CUDA_VISIBLE_DEVICES the way the CUDA runtime does: indices, GPU UUIDs (unique prefixes
    allowed) or MIG UUIDs; the first entry that matches nothing ends the list."""
    text = env.get("CUDA_VISIBLE_DEVICES")
    if text is None:
        return [(d.gpu, d, None) for d in devices]
    chosen: list[_Selected] = []
    seen: set[tuple[int, int | None]] = set()
    if not text.strip():
        notes.append("CUDA_VISIBLE_DEVICES is empty: CUDA sees no GPUs")
        return chosen
    for raw in text.split(","):
        token = raw.strip()
        hit = _match_token(token, devices)
        if hit is None:
            notes.append(
                f"CUDA_VISIBLE_DEVICES entry {token!r} matches no GPU: CUDA ignores it and every entry after it"
            )
            break
        device, slot = hit
        if (device.gpu.physical_index or 0, slot) in seen:
            notes.append(f"CUDA_VISIBLE_DEVICES lists {token!r} twice; counted once")
            continue
        seen.add((device.gpu.physical_index or 0, slot))
        chosen.append((_visible_gpu(device, slot), device, slot))
    return chosen


def _match_token(token: str, devices: list[_Device]) -> tuple[_Device, int | None] | None:
    low = token.lower()
    if re.fullmatch(r"\d+", token):
        i = int(token)
        return (devices[i], None) if i < len(devices) else None
    if low.startswith("mig-"):
        for d in devices:
            for pos, s in enumerate(d.gpu.mig_slices):
                if s.uuid and s.uuid.lower() == low:
                    return d, pos
        # Legacy form MIG-GPU-<gpu uuid>/<gi>/<ci>.
        legacy = re.fullmatch(r"mig-(gpu-[0-9a-f-]+)/(\d+)/(\d+)", low)
        if legacy:
            for d in devices:
                if (d.gpu.uuid or "").lower() == legacy.group(1):
                    for pos, s in enumerate(d.gpu.mig_slices):
                        if s.gpu_instance_id == int(legacy.group(2)):
                            return d, pos
        return None
    prefix = low if low.startswith("gpu-") else f"gpu-{low}"
    hits = [d for d in devices if (d.gpu.uuid or "").lower().startswith(prefix)]
    return (hits[0], None) if len(hits) == 1 else None


def _visible_gpu(device: _Device, slot: int | None) -> GPU:
    """The GPU record for one visible entry: the whole GPU, or one MIG slice shown as a GPU."""
    gpu = device.gpu
    if slot is None:
        return _copy_gpu(gpu)
    s = gpu.mig_slices[slot]
    one = _copy_gpu(gpu)
    one.name = f"{gpu.name} MIG {s.profile}"
    one.uuid = s.uuid
    one.memory_total_bytes = s.memory_bytes
    one.memory_free_bytes = None
    one.sm_count = s.sm_count
    one.mig_slices = [s]
    return one


def _copy_gpu(gpu: GPU) -> GPU:
    return replace(gpu, mig_slices=[replace(s) for s in gpu.mig_slices])


def proc_gpu_names(env: Mapping[str, str], root: str = "/") -> list[str]:
    """Names of the GPUs CUDA will show this process, read cheaply from /proc/driver/nvidia (no NVML init),
    CUDA_VISIBLE_DEVICES applied as in `probe_gpus`. A MIG UUID counts as one GPU (its parent is not
    known here)."""
    import glob

    devices: list[_Device] = []
    for i, info in enumerate(sorted(glob.glob(os.path.join(root, "proc/driver/nvidia/gpus/*/information")))):
        fields: dict[str, str] = {}
        try:
            with open(info) as fh:
                for line in fh:
                    key, _, value = line.partition(":")
                    fields[key.strip()] = value.strip()
        except OSError:
            continue
        gpu = GPU(index=i, name=fields.get("Model", "?"), memory_total_bytes=0, uuid=fields.get("GPU UUID"),
                  physical_index=i)
        devices.append(_Device(handle=None, gpu=gpu))
    text = env.get("CUDA_VISIBLE_DEVICES")
    if text is None:
        return [d.gpu.name for d in devices]
    names: list[str] = []
    seen: set[int] = set()
    for raw in text.split(",") if text.strip() else []:
        token = raw.strip()
        if token.lower().startswith("mig-"):
            names.append("MIG")
            continue
        hit = _match_token(token, devices)
        if hit is None:
            break  # CUDA ignores this entry and every one after it
        if id(hit[0]) not in seen:
            seen.add(id(hit[0]))
            names.append(hit[0].gpu.name)
    return names


# --- topology ------------------------------------------------------------------------------------------


def _topology(
    call: _Calls, devices: list[_Device], selected: list[_Selected], notes: list[str]
) -> tuple[list[list[str]], list[list[int]]]:
    n = len(selected)
    if n == 0:
        return [], []
    direct, switch_links = _nvlink_counts(call, devices, notes)
    nvml = call.nvml
    nvlink_idx = getattr(nvml, "NVML_P2P_CAPS_INDEX_NVLINK", 2)
    ok = getattr(nvml, "NVML_P2P_STATUS_OK", 0)
    matrix = [["X"] * n for _ in range(n)]
    adjacent = [[False] * n for _ in range(n)]
    for a in range(n):
        for b in range(a + 1, n):
            ga, da, _ = selected[a]
            gb, db, _ = selected[b]
            label = "?"
            if da is db:  # two MIG slices of one GPU share it; no NVLink between them
                label = "PIX"
            else:
                pa, pb = da.gpu.physical_index or 0, db.gpu.physical_index or 0
                n_links = direct.get((pa, pb), 0)
                if switch_links.get(pa) and switch_links.get(pb):
                    n_links += min(switch_links[pa], switch_links[pb])
                status = call(f"GPUs {pa},{pb}", "nvmlDeviceGetP2PStatus", da.handle, db.handle, nvlink_idx)
                linked = (status == ok) if status is not None else n_links > 0
                # MIG mode turns off peer access: neither a slice nor a MIG-enabled GPU joins a domain.
                if linked and not ga.mig_enabled and not gb.mig_enabled:
                    label = f"NV{n_links}" if n_links else "NV"
                    adjacent[a][b] = adjacent[b][a] = True
                else:
                    level = call(f"GPUs {pa},{pb}", "nvmlDeviceGetTopologyCommonAncestor", da.handle, db.handle)
                    label = _TOPOLOGY_LABELS.get(level, "?") if level is not None else "?"
            matrix[a][b] = matrix[b][a] = label
    return matrix, nvlink_domains(adjacent)


def _nvlink_counts(
    call: _Calls, devices: list[_Device], notes: list[str]
) -> tuple[dict[tuple[int, int], int], dict[int, int]]:
    """Active NVLinks: (physical a, physical b) -> direct links, and physical index -> links to NVSwitches."""
    nvml = call.nvml
    by_bus = {d.bus_id: d.gpu.physical_index or 0 for d in devices if d.bus_id}
    max_links = int(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18))
    stop = call.cls("NVMLError_NotSupported") + call.cls("NVMLError_InvalidArgument") + call.cls(
        "NVMLError_FunctionNotFound"
    )
    switch_type = getattr(nvml, "NVML_NVLINK_DEVICE_TYPE_SWITCH", 2)
    direct: dict[tuple[int, int], int] = {}
    switch_links: dict[int, int] = {}
    state_fn = getattr(nvml, "nvmlDeviceGetNvLinkState", None)
    if state_fn is None:
        return direct, switch_links
    for d in devices:
        me = d.gpu.physical_index or 0
        for link in range(max_links):
            try:
                if not state_fn(d.handle, link):
                    continue
            except call.error as exc:
                if not isinstance(exc, stop):
                    notes.append(f"GPU {me}: NVLink {link} state unreadable ({_text(exc)}); NVLink counts partial")
                break
            remote = call(f"GPU {me} NVLink {link}", "nvmlDeviceGetNvLinkRemotePciInfo", d.handle, link)
            peer = by_bus.get(_bus_id(remote)) if remote is not None else None
            if peer is not None and peer != me:
                direct[(me, peer)] = direct.get((me, peer), 0) + 1
                continue
            kind = call(f"GPU {me} NVLink {link}", "nvmlDeviceGetNvLinkRemoteDeviceType", d.handle, link)
            if kind is None or kind == switch_type:
                switch_links[me] = switch_links.get(me, 0) + 1
    # Each direct link is seen from both ends (when both are probed); keep the larger count per pair.
    for (a, b), v in list(direct.items()):
        direct[(a, b)] = direct[(b, a)] = max(v, direct.get((b, a), 0))
    return direct, switch_links


def nvlink_domains(adjacent: list[list[bool]]) -> list[list[int]]:
    """Maximal groups of GPUs in which every pair is NVLinked (maximal cliques; lone GPUs alone).

    On NVSwitch systems that is one group of all GPUs; with NVLink bridges, the bridged pairs; on a
    DGX-1-style hybrid cube mesh, the fully connected quads.
    """
    n = len(adjacent)
    neighbours = [{j for j in range(n) if j != i and adjacent[i][j]} for i in range(n)]
    cliques: list[list[int]] = []

    def expand(r: set[int], p: set[int], x: set[int]) -> None:  # Bron-Kerbosch with pivoting
        if not p and not x:
            cliques.append(sorted(r))
            return
        pivot = max(p | x, key=lambda u: len(neighbours[u] & p))
        for v in sorted(p - neighbours[pivot]):
            expand(r | {v}, p & neighbours[v], x & neighbours[v])
            p = p - {v}
            x = x | {v}

    expand(set(), set(range(n)), set())
    return sorted(cliques, key=lambda c: (c[0], -len(c), c))


# --- small conversions ---------------------------------------------------------------------------------


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def _text(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - pynvml's __str__ may itself call into NVML
        text = ""
    return text or type(exc).__name__


def _bus_id(pci: Any) -> str | None:
    """PCI bus id normalised so that '00000000:18:00.0' and '0000:18:00.0' compare equal."""
    raw = _str(getattr(pci, "busId", None) or getattr(pci, "busIdLegacy", None)) if pci is not None else None
    if not raw:
        return None
    m = re.fullmatch(r"\s*([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+)\.([0-9a-fA-F]+)\s*", raw)
    if not m:
        return raw.strip().lower()
    dom, bus, dev, fn = (int(g, 16) for g in m.groups())
    return f"{dom:04x}:{bus:02x}:{dev:02x}.{fn:x}"


def _numa_node(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and value >= 0 else None


def _bits_to_cpus(words: Any) -> list[int] | None:
    """NVML's CPU affinity bitmask (64-bit words) -> CPU numbers."""
    if words is None:
        return None
    cpus = [w * 64 + bit for w, word in enumerate(words) for bit in range(64) if int(word) >> bit & 1]
    return cpus or None
