"""Machine descriptions for the fake pynvml (data; see tests/fakes/pynvml.py for the keys).

Figures are what NVML reports on such machines (memory totals in bytes as NVML gives them, CUDA core
counts, max clocks, power limits in mW), so the probe sees realistic answers.
"""

from __future__ import annotations

from typing import Any

GIB = 1024**3
MIB = 1024**2


def _gpu(i: int, name: str, memory_total: int, cc: tuple[int, int], cores: int, *, sm_clock: int,
         mem_clock: int, power_w: int, pcie: tuple[int, int], socket: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "uuid": f"GPU-{i:08x}-1111-2222-3333-{0xabc000 + i:012x}",
        "bus_id": f"00000000:{0x18 + 0x10 * i:02X}:00.0",
        "memory_total": memory_total,
        "memory_free": memory_total - 512 * MIB,
        "cc": cc,
        "cores": cores,
        "max_sm_clock": sm_clock,
        "max_mem_clock": mem_clock,
        "power_limit_mw": power_w * 1000,
        "pcie_gen": pcie[0],
        "pcie_width": pcie[1],
        "numa_node": socket,
        "socket": socket,
        "cpus": list(range(socket * 56, socket * 56 + 56)),
        **extra,
    }


def h100_sxm_8() -> dict[str, Any]:
    """DGX/HGX H100: 8 GPUs, each with 18 NVLinks to the NVSwitches; 4 per CPU socket."""
    gpus = [
        _gpu(i, "NVIDIA H100 80GB HBM3", 81559 * MIB, (9, 0), 16896, sm_clock=1980, mem_clock=2619,
             power_w=700, pcie=(5, 16), socket=i // 4, pcie_switch=i // 2,
             nvlinks=[{"to": "switch"}] * 18)
        for i in range(8)
    ]
    return {"driver_version": "550.54.15", "cuda_driver_version": 12040, "gpus": gpus}


def a100_pcie_2() -> dict[str, Any]:
    """Two A100 80GB PCIe cards without an NVLink bridge, one per socket."""
    gpus = [
        _gpu(i, "NVIDIA A100 80GB PCIe", 81920 * MIB, (8, 0), 6912, sm_clock=1410, mem_clock=1512,
             power_w=300, pcie=(4, 16), socket=i)
        for i in range(2)
    ]
    return {"driver_version": "535.161.08", "cuda_driver_version": 12020, "gpus": gpus}


def l40s_pcie_4() -> dict[str, Any]:
    """Four L40S (PCIe only, no NVLink), two behind each PCIe switch, one socket."""
    gpus = [
        _gpu(i, "NVIDIA L40S", 46068 * MIB, (8, 9), 18176, sm_clock=2520, mem_clock=9001, power_w=350,
             pcie=(4, 16), pcie_switch=i // 2)
        for i in range(4)
    ]
    return {"driver_version": "550.90.07", "cuda_driver_version": 12040, "gpus": gpus}


def rtx4090_1() -> dict[str, Any]:
    """A workstation with one GeForce RTX 4090."""
    gpus = [_gpu(0, "NVIDIA GeForce RTX 4090", 24564 * MIB, (8, 9), 16384, sm_clock=3120, mem_clock=10501,
                 power_w=450, pcie=(4, 16))]
    return {"driver_version": "560.35.03", "cuda_driver_version": 12060, "gpus": gpus}


def h100_mig() -> dict[str, Any]:
    """One H100 SXM in MIG mode with two 3g.40gb instances, plus a second H100 not in MIG mode."""
    slices = [
        {"name": "NVIDIA H100 80GB HBM3 MIG 3g.40gb", "uuid": f"MIG-{k}aaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
         "memory_total": 40320 * MIB, "sm_count": 60, "gi_slices": 3, "memory_mb": 40320, "gi_id": 1 + k}
        for k in range(2)
    ]
    machine = h100_sxm_8()
    machine["gpus"] = machine["gpus"][:2]
    machine["gpus"][0]["mig"] = {"enabled": True, "slices": slices}
    return machine


def driver_error_on_gpu1() -> dict[str, Any]:
    """4x L40S where the driver fails the power-limit query on GPU 1 (NVML_ERROR_UNKNOWN)."""
    machine = l40s_pcie_4()
    machine["errors"] = {("nvmlDeviceGetPowerManagementLimit", 1): "Unknown"}
    return machine


def old_driver() -> dict[str, Any]:
    """An RTX 4090 under a driver without nvmlDeviceGetNumGpuCores / NUMA ids, and an nvidia-ml-py
    without nvmlSystemGetCudaDriverVersion_v2."""
    machine = rtx4090_1()
    machine["not_supported"] = ["nvmlDeviceGetNumGpuCores", "nvmlDeviceGetNumaNodeId"]
    machine["missing"] = ["nvmlSystemGetCudaDriverVersion_v2"]
    return machine


def unknown_gpu() -> dict[str, Any]:
    """A GPU the catalog does not list: SMs come from NVML's core count and the compute capability."""
    gpus = [_gpu(0, "NVIDIA RTX A5000", 24564 * MIB, (8, 6), 8192, sm_clock=2100, mem_clock=8001,
                 power_w=300, pcie=(4, 16))]
    return {"gpus": gpus}


def library_missing() -> dict[str, Any]:
    return {"init_error": "LibraryNotFound", "gpus": []}


def driver_not_loaded() -> dict[str, Any]:
    return {"init_error": "DriverNotLoaded", "gpus": []}
