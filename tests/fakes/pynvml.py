"""A fake `pynvml` (nvidia-ml-py) for tests: the outermost boundary of the hardware probe, faked.

Same function names, constants and error classes as nvidia-ml-py's pynvml.py (13.x): NVMLError and one
subclass per NVML_ERROR_* code, named the way pynvml names them (NVML_ERROR_LIBRARY_NOT_FOUND ->
NVMLError_LibraryNotFound). `make_nvml(machine)` returns a module object whose functions answer from a
machine description (a dict, see tests/fakes/machines.py), so the real probe code runs against it.

Machine keys: driver_version, cuda_driver_version (int, 12040), init_error (error class suffix),
gpus (list of dicts), errors {(function name, physical GPU index): error suffix}, missing [function names
absent from the module], not_supported [function names that raise NotSupported on every GPU].
GPU keys: name, uuid, bus_id, memory_total, memory_free, cc (major, minor), cores, max_sm_clock,
max_mem_clock, power_limit_mw, pcie_gen, pcie_width, numa_node, cpus [affinity], socket, pcie_switch,
nvlinks [{"to": "switch"} | {"to": gpu index}], mig {"slices": [{name, uuid, memory_total, sm_count,
gi_slices, memory_mb, gi_id}]}.
"""

from __future__ import annotations

import string
import types
from collections.abc import Callable
from typing import Any

# Values as in nvidia-ml-py 13.615 pynvml.py.
NVML_ERROR_CODES = {
    "NVML_ERROR_UNINITIALIZED": 1,
    "NVML_ERROR_INVALID_ARGUMENT": 2,
    "NVML_ERROR_NOT_SUPPORTED": 3,
    "NVML_ERROR_NO_PERMISSION": 4,
    "NVML_ERROR_ALREADY_INITIALIZED": 5,
    "NVML_ERROR_NOT_FOUND": 6,
    "NVML_ERROR_INSUFFICIENT_SIZE": 7,
    "NVML_ERROR_DRIVER_NOT_LOADED": 9,
    "NVML_ERROR_TIMEOUT": 10,
    "NVML_ERROR_LIBRARY_NOT_FOUND": 12,
    "NVML_ERROR_FUNCTION_NOT_FOUND": 13,
    "NVML_ERROR_GPU_IS_LOST": 15,
    "NVML_ERROR_UNKNOWN": 999,
}
CONSTANTS = {
    "NVML_FEATURE_DISABLED": 0,
    "NVML_FEATURE_ENABLED": 1,
    "NVML_NVLINK_MAX_LINKS": 36,
    "NVML_CLOCK_GRAPHICS": 0,
    "NVML_CLOCK_SM": 1,
    "NVML_CLOCK_MEM": 2,
    "NVML_TOPOLOGY_INTERNAL": 0,
    "NVML_TOPOLOGY_SINGLE": 10,
    "NVML_TOPOLOGY_MULTIPLE": 20,
    "NVML_TOPOLOGY_HOSTBRIDGE": 30,
    "NVML_TOPOLOGY_NODE": 40,
    "NVML_TOPOLOGY_CPU": 40,
    "NVML_TOPOLOGY_SYSTEM": 50,
    "NVML_P2P_CAPS_INDEX_READ": 0,
    "NVML_P2P_CAPS_INDEX_WRITE": 1,
    "NVML_P2P_CAPS_INDEX_NVLINK": 2,
    "NVML_P2P_CAPS_INDEX_ATOMICS": 3,
    "NVML_P2P_STATUS_OK": 0,
    "NVML_P2P_STATUS_NOT_SUPPORTED": 5,
    "NVML_NVLINK_DEVICE_TYPE_GPU": 0,
    "NVML_NVLINK_DEVICE_TYPE_SWITCH": 2,
    "NVML_DEVICE_MIG_DISABLE": 0,
    "NVML_DEVICE_MIG_ENABLE": 1,
}


class NVMLError(Exception):
    """Like pynvml.NVMLError: carries `.value`; NVMLError(code) becomes the code's subclass."""

    _valClassMapping: dict[int, type] = {}

    def __new__(cls, value: int = NVML_ERROR_CODES["NVML_ERROR_UNKNOWN"]):
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value: int | None = None):
        super().__init__()

    def __str__(self) -> str:
        return type(self).__name__.replace("NVMLError_", "") or "NVML error"


ERROR_CLASSES: dict[str, type[NVMLError]] = {}
for _name, _code in NVML_ERROR_CODES.items():
    # pynvml's rule: NVML_ERROR_ALREADY_INITIALIZED -> NVMLError_AlreadyInitialized
    _cls_name = "NVMLError_" + string.capwords(_name.replace("NVML_ERROR_", ""), "_").replace("_", "")

    def _new(cls, *args, _code=_code):  # noqa: ANN001, ANN202
        return NVMLError.__new__(cls, _code)

    _cls = type(_cls_name, (NVMLError,), {"__new__": _new})
    ERROR_CLASSES[_cls_name] = _cls
    NVMLError._valClassMapping[_code] = _cls


class Handle:
    def __init__(self, gpu: int, mig: int | None = None):
        self.gpu, self.mig = gpu, mig

    def __repr__(self) -> str:
        return f"Handle({self.gpu}, {self.mig})"


class _Struct(types.SimpleNamespace):
    pass


def make_nvml(machine: dict[str, Any]) -> types.ModuleType:
    """A pynvml-shaped module answering from `machine`. `module.calls` lists the functions called."""
    mod = types.ModuleType("pynvml")
    mod.calls = []  # type: ignore[attr-defined]
    for k, v in {**NVML_ERROR_CODES, **CONSTANTS}.items():
        setattr(mod, k, v)
    mod.NVMLError = NVMLError  # type: ignore[attr-defined]
    for k, v in ERROR_CLASSES.items():
        setattr(mod, k, v)
    gpus: list[dict[str, Any]] = machine.get("gpus", [])
    errors: dict[tuple[str, int], str] = machine.get("errors", {})
    not_supported = set(machine.get("not_supported", ()))
    state = {"init": False}

    def err(suffix: str) -> NVMLError:
        return ERROR_CLASSES[f"NVMLError_{suffix}"]()

    def api(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = fn.__name__

        def wrapper(*args: Any) -> Any:
            mod.calls.append(name)  # type: ignore[attr-defined]
            if name not in ("nvmlInit", "nvmlShutdown") and not state["init"]:
                raise err("Uninitialized")
            handle = next((a for a in args if isinstance(a, Handle)), None)
            if handle is not None:
                suffix = errors.get((name, handle.gpu))
                if suffix:
                    raise err(suffix)
            if name in not_supported:
                raise err("NotSupported")
            return fn(*args)

        wrapper.__name__ = name
        if name not in machine.get("missing", ()):
            setattr(mod, name, wrapper)
        return wrapper

    def gpu_of(h: Handle) -> dict[str, Any]:
        return gpus[h.gpu]

    def mig_of(h: Handle) -> dict[str, Any]:
        return gpus[h.gpu]["mig"]["slices"][h.mig]

    @api
    def nvmlInit() -> None:
        if machine.get("init_error"):
            raise err(machine["init_error"])
        state["init"] = True

    @api
    def nvmlShutdown() -> None:
        state["init"] = False

    @api
    def nvmlSystemGetDriverVersion() -> str:
        return machine.get("driver_version", "550.54.15")

    @api
    def nvmlSystemGetCudaDriverVersion_v2() -> int:
        return machine.get("cuda_driver_version", 12040)

    @api
    def nvmlSystemGetCudaDriverVersion() -> int:
        return machine.get("cuda_driver_version", 12040)

    @api
    def nvmlDeviceGetCount() -> int:
        return len(gpus)

    @api
    def nvmlDeviceGetHandleByIndex(i: int) -> Handle:
        if not 0 <= i < len(gpus):
            raise err("InvalidArgument")
        return Handle(i)

    @api
    def nvmlDeviceGetName(h: Handle) -> str:
        return mig_of(h)["name"] if h.mig is not None else gpu_of(h)["name"]

    @api
    def nvmlDeviceGetUUID(h: Handle) -> str:
        return mig_of(h)["uuid"] if h.mig is not None else gpu_of(h)["uuid"]

    @api
    def nvmlDeviceGetMemoryInfo(h: Handle, version: Any = None) -> _Struct:
        if h.mig is not None:
            total = mig_of(h)["memory_total"]
            return _Struct(total=total, free=total, used=0)
        g = gpu_of(h)
        free = g.get("memory_free", g["memory_total"])
        return _Struct(total=g["memory_total"], free=free, used=g["memory_total"] - free)

    @api
    def nvmlDeviceGetCudaComputeCapability(h: Handle) -> tuple[int, int]:
        return tuple(gpu_of(h)["cc"])

    @api
    def nvmlDeviceGetNumGpuCores(h: Handle) -> int:
        return gpu_of(h)["cores"]

    @api
    def nvmlDeviceGetMaxClockInfo(h: Handle, clock: int) -> int:
        g = gpu_of(h)
        return g["max_sm_clock"] if clock in (0, 1) else g["max_mem_clock"]

    @api
    def nvmlDeviceGetPowerManagementLimit(h: Handle) -> int:
        return gpu_of(h)["power_limit_mw"]

    @api
    def nvmlDeviceGetMaxPcieLinkGeneration(h: Handle) -> int:
        return gpu_of(h)["pcie_gen"]

    @api
    def nvmlDeviceGetMaxPcieLinkWidth(h: Handle) -> int:
        return gpu_of(h)["pcie_width"]

    @api
    def nvmlDeviceGetNumaNodeId(h: Handle) -> int:
        return gpu_of(h).get("numa_node", -1)

    @api
    def nvmlDeviceGetCpuAffinity(h: Handle, words: int) -> list[int]:
        mask = [0] * words
        for cpu in gpu_of(h).get("cpus", []):
            if cpu // 64 < words:
                mask[cpu // 64] |= 1 << (cpu % 64)
        return mask

    @api
    def nvmlDeviceGetPciInfo(h: Handle) -> _Struct:
        return _Struct(busId=gpu_of(h)["bus_id"].encode())

    @api
    def nvmlDeviceGetMigMode(h: Handle) -> list[int]:
        g = gpu_of(h)
        if "mig" not in g:
            raise err("NotSupported")
        on = 1 if g["mig"].get("enabled", True) else 0
        return [on, on]

    @api
    def nvmlDeviceGetMaxMigDeviceCount(h: Handle) -> int:
        return 7 if gpu_of(h).get("mig") else 0

    @api
    def nvmlDeviceGetMigDeviceHandleByIndex(h: Handle, k: int) -> Handle:
        slices = gpu_of(h).get("mig", {}).get("slices", [])
        if k >= len(slices):
            raise err("NotFound")
        return Handle(h.gpu, k)

    @api
    def nvmlDeviceGetAttributes(h: Handle) -> _Struct:
        if h.mig is None:
            raise err("NotSupported")
        s = mig_of(h)
        return _Struct(multiprocessorCount=s["sm_count"], gpuInstanceSliceCount=s["gi_slices"],
                       computeInstanceSliceCount=s["gi_slices"], memorySizeMB=s["memory_mb"])

    @api
    def nvmlDeviceGetGpuInstanceId(h: Handle) -> int:
        if h.mig is None:
            raise err("InvalidArgument")
        return mig_of(h)["gi_id"]

    @api
    def nvmlDeviceGetNvLinkState(h: Handle, link: int) -> int:
        links = gpu_of(h).get("nvlinks", [])
        if not links:
            raise err("NotSupported")
        if link >= len(links):
            raise err("InvalidArgument")
        return 1

    @api
    def nvmlDeviceGetNvLinkRemotePciInfo(h: Handle, link: int) -> _Struct:
        to = gpu_of(h)["nvlinks"][link]["to"]
        bus = f"00000000:{0xE0 + link % 4:02X}:00.0" if to == "switch" else gpus[to]["bus_id"]
        return _Struct(busId=bus.encode())

    @api
    def nvmlDeviceGetNvLinkRemoteDeviceType(h: Handle, link: int) -> int:
        to = gpu_of(h)["nvlinks"][link]["to"]
        return CONSTANTS["NVML_NVLINK_DEVICE_TYPE_SWITCH"] if to == "switch" else 0

    def _links(a: int, b: int) -> bool:
        la, lb = gpus[a].get("nvlinks", []), gpus[b].get("nvlinks", [])
        direct = any(x["to"] == b for x in la)
        switched = any(x["to"] == "switch" for x in la) and any(x["to"] == "switch" for x in lb)
        return direct or switched

    @api
    def nvmlDeviceGetP2PStatus(h1: Handle, h2: Handle, index: int) -> int:
        if index != CONSTANTS["NVML_P2P_CAPS_INDEX_NVLINK"]:
            return CONSTANTS["NVML_P2P_STATUS_OK"]
        ok = _links(h1.gpu, h2.gpu)
        return CONSTANTS["NVML_P2P_STATUS_OK"] if ok else CONSTANTS["NVML_P2P_STATUS_NOT_SUPPORTED"]

    @api
    def nvmlDeviceGetTopologyCommonAncestor(h1: Handle, h2: Handle) -> int:
        a, b = gpus[h1.gpu], gpus[h2.gpu]
        if a.get("pcie_switch") is not None and a.get("pcie_switch") == b.get("pcie_switch"):
            return CONSTANTS["NVML_TOPOLOGY_SINGLE"]
        if a.get("socket", 0) == b.get("socket", 0):
            return CONSTANTS["NVML_TOPOLOGY_NODE"]
        return CONSTANTS["NVML_TOPOLOGY_SYSTEM"]

    return mod
