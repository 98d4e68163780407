"""The `Node` record: what a machine has (GPUs, interconnect, CPU, memory, container limits).

Produced by `autoquant.probes.hardware` (this machine; `autoquant probe` adds the engines found by
`autoquant.probes.engines`), by `autoquant.catalog.gpus.synthetic_node`
(`--gpu H100-SXM:8`), or read back from `probe --save node.json` (`--hardware node.json`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

NODE_SCHEMA_VERSION = 1


@dataclass
class MigSlice:
    """One usable MIG instance of a GPU in MIG mode."""

    gpu_index: int
    profile: str  # e.g. "3g.40gb"
    memory_bytes: int = field(metadata={"bound": "gpu_memory_bytes"})
    uuid: str | None = None
    gpu_instance_id: int | None = None
    sm_count: int | None = None


@dataclass
class GPU:
    index: int  # index as the engine will see it (after CUDA_VISIBLE_DEVICES)
    name: str  # NVML's name, e.g. "NVIDIA H100 80GB HBM3"
    memory_total_bytes: int = field(metadata={"bound": "gpu_memory_bytes"})
    uuid: str | None = None
    memory_free_bytes: int | None = field(default=None, metadata={"bound": "ram_bytes"})
    compute_capability: str | None = None  # "9.0"
    sm_count: int | None = None
    max_sm_clock_mhz: int | None = None
    max_mem_clock_mhz: int | None = None
    power_limit_w: float | None = None
    pcie_gen: int | None = None
    pcie_width: int | None = None
    mig_enabled: bool = False
    mig_slices: list[MigSlice] = field(default_factory=list)
    numa_node: int | None = None
    cpu_affinity: list[int] | None = None
    physical_index: int | None = None  # NVML index before CUDA_VISIBLE_DEVICES remapping
    catalog_key: str | None = None  # canonical key in autoquant/data/gpus.yaml, None if unknown


@dataclass
class CPUInfo:
    model: str = "unknown"
    arch: str = "unknown"  # platform.machine(): x86_64, aarch64, arm64
    physical_cores: int | None = field(default=None, metadata={"bound": "cpu_cores"})
    logical_cores: int | None = field(default=None, metadata={"bound": "cpu_cores"})
    flags: list[str] = field(default_factory=list)  # the ISA flags that matter to llama.cpp
    memory_bandwidth_gbps: float | None = field(default=None, metadata={"bound": "cpu_bandwidth_gbps"})  # GB/s
    memory_bandwidth_source: str | None = None  # "measured", "measured under load", "flag", "catalog"
    memory_bandwidth_spread_gbps: list[float] | None = field(default=None, metadata={"bound": "cpu_bandwidth_gbps"})  # [lowest, highest] of the measured repetitions
    memory_bandwidth_threads: int | None = field(default=None, metadata={"bound": "cpu_cores"})  # threads the read ran on (the engine's)
    matmul_gflops: float | None = field(default=None, metadata={"bound": "matmul_gflops"})  # measured fp32 GEMM throughput, all threads
    matmul_gflops_source: str | None = None


@dataclass
class CgroupLimits:
    version: int | None = None  # 1 or 2; None outside a cgroup-limited container
    memory_limit_bytes: int | None = field(default=None, metadata={"bound": "ram_bytes"})
    cpu_limit_cores: float | None = field(default=None, metadata={"bound": "cpu_cores"})


@dataclass
class AppleSilicon:
    chip: str  # "Apple M2 Max"
    unified_memory_bytes: int = field(metadata={"bound": "gpu_memory_bytes"})
    gpu_cores: int | None = None
    catalog_key: str | None = None  # e.g. "M2-Max"


@dataclass(frozen=True)
class EngineInstall:
    """An inference engine found on this machine (autoquant.probes.engines): the executable `serve` runs and
    the version it gates flags on."""

    name: str  # the install (engines.yaml `installs`): AUTOQUANT_ENGINE_BIN_<NAME> points at another one
    engine: str  # the engine id: vllm, trtllm, sglang, llamacpp
    label: str  # "vLLM", "llama-server", "llama-cpp-python"
    path: str  # what serve executes: the program, or for a Python module the interpreter that has it
    found_by: str  # "AUTOQUANT_ENGINE_BIN_<NAME>" | "this environment" | "PATH"
    version: str | None = None
    version_from: str | None = None  # the dist-info folder (or the command) the version was read from
    program: str | None = None  # console script or binary: vllm, trtllm-serve, llama-server
    module: str | None = None  # run as `python -m`: sglang, llama_cpp
    interpreter: str | None = None  # the Python it runs on (a console script's shebang), None if native
    usable: bool = True  # False: an override that names nothing runnable (notes say why)
    notes: tuple[str, ...] = ()


@dataclass
class Node:
    schema_version: int = NODE_SCHEMA_VERSION
    source: str = "probe"  # "probe" | "gpu-flag" | "file"
    hostname: str | None = None
    gpus: list[GPU] = field(default_factory=list)
    driver_version: str | None = None
    cuda_driver_version: str | None = None  # "12.4"
    # topology[i][j]: link between GPUs i and j: "X" (self), "NV<n>" (NVLink, n links), "PIX", "PXB",
    # "PHB", "NODE", "SYS" (nvidia-smi topo -m vocabulary), or "?" when unknown.
    topology: list[list[str]] = field(default_factory=list)
    nvlink_domains: list[list[int]] = field(default_factory=list)  # groups of GPUs fully linked by NVLink
    cpu: CPUInfo = field(default_factory=CPUInfo)
    ram_total_bytes: int | None = field(default=None, metadata={"bound": "ram_bytes"})
    ram_available_bytes: int | None = field(default=None, metadata={"bound": "ram_bytes"})
    numa_nodes: int | None = None
    cgroup: CgroupLimits = field(default_factory=CgroupLimits)
    disk_path: str | None = None  # where models are cached (HF_HUB_CACHE)
    disk_free_bytes: int | None = field(default=None, metadata={"bound": "ram_bytes"})
    apple: AppleSilicon | None = None
    cuda_visible_devices: str | None = None
    nodes: int = field(default=1, metadata={"bound": "nodes"})  # identical nodes available (pipeline parallel across nodes)
    # How the nodes reach each other (a pipeline hop between nodes): a fabrics.yaml id (ib-ndr, roce-400,
    # ethernet-100g, ...), and/or the node's own figures, GB/s one way out of one node (all NICs) and us per hop;
    # None: the fabric's figure, or the assumed default (autoquant/catalog/fabrics.py)
    fabric: str | None = None
    inter_node_gbps: float | None = field(default=None, metadata={"bound": "inter_node_gbps"})
    inter_node_latency_us: float | None = field(default=None, metadata={"bound": "inter_node_latency_us"})
    notes: list[str] = field(default_factory=list)  # what could not be probed, and why
    # the engines installed here (`autoquant probe` of this machine only: never read by the planner)
    engines: list[EngineInstall] = field(default_factory=list)
    # A mixed cluster: the other node types beside this one, each a group of `nodes` identical machines
    # (autoquant/planner/cluster.py pools a list of records; the planner plans each type, docs/planner.md).
    others: list[Node] = field(default_factory=list)

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    def usable_ram_bytes(self) -> int | None:
        """RAM a process here may use: the cgroup limit when tighter than the machine."""
        values = [v for v in (self.ram_total_bytes, self.cgroup.memory_limit_bytes) if v]
        return min(values) if values else None
