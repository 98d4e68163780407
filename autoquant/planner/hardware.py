"""The planner's view of a node: one device type, its count, its figures (from the GPU catalog).

A Node lists what is there; a `Device` says what the cost model needs: memory per device, memory
bandwidth, peak throughput per math precision, compute capability, links. GB = 1e9 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autoquant.catalog.fabrics import Fabric, default_fabric, resolve
from autoquant.errors import InputError
from autoquant.records import GPU, CPUInfo, MigSlice, Node


@dataclass(frozen=True)
class Device:
    kind: str  # "cuda" | "apple" | "cpu"
    key: str  # catalog key, or "cpu"
    label: str
    count: int  # devices per node (1 for apple/cpu)
    memory_gb: float  # per device; host RAM for cpu, unified memory for apple
    bandwidth_gbps: float | None  # memory bandwidth, GB/s
    peaks_tflops: dict[str, float] = field(default_factory=dict)  # fp16, fp8, int8, fp4, gguf
    capability: str | None = None
    architecture: str | None = None
    nvlink_gbps: float | None = None  # per GPU, as the catalog states it (both directions)
    pcie_gbps: float | None = None
    nvlink_domain: int = 1  # largest group of GPUs all linked by NVLink
    nodes: int = 1
    cpu: CPUInfo = field(default_factory=CPUInfo)
    host_ram_gb: float | None = None
    notes: tuple[str, ...] = ()
    # how the nodes reach each other (a pipeline hop between nodes): fabrics.yaml, or the node record's figures
    fabric: Fabric = field(default_factory=default_fabric)

    def peak(self, math: str) -> float | None:
        return self.peaks_tflops.get(math) or None

    def describe(self) -> str:
        if self.kind == "cpu":
            return f"CPU ({self.cpu.model}, {self.host_ram_gb or 0:.0f} GB RAM)"
        nodes = f" x {self.nodes} nodes ({self.fabric.short()})" if self.nodes > 1 else ""
        if " MIG " in self.label:
            return f"1x {self.key} ({self.label.split(' MIG ', 1)[1]} MIG slice){nodes}"
        return f"{self.count}x {self.key}{nodes}"


def _spec_peaks(spec) -> dict[str, float]:
    fp16 = spec.bf16_tflops or spec.fp16_tflops
    peaks = {"fp16": fp16, "fp8": spec.fp8_tflops, "int8": spec.int8_tops, "fp4": spec.fp4_tflops,
             "gguf": fp16}
    return {k: float(v) for k, v in peaks.items() if v}


def pcie_gbps(spec) -> float | None:
    """The GPU's PCIe x16 bandwidth, both directions (as the catalog states pcie_gbps); without one, the
    catalog's `interconnects` figure for its PCIe generation; None when neither is known."""
    if spec.pcie_gbps:
        return float(spec.pcie_gbps)
    if not spec.pcie_gen:
        return None
    from autoquant.data import load

    link = ((load("gpus") or {}).get("interconnects") or {}).get(f"pcie_gen{spec.pcie_gen}") or {}
    value = link.get("x16_gbps_bidirectional")
    return float(value) if value else None


def fabric_of(node: Node, gpus_per_node: int) -> Fabric:
    """The fabric between this node and its peers: the record's named fabric and figures, else the default."""
    return resolve(node.fabric, node.inter_node_gbps, node.inter_node_latency_us, gpus_per_node)


def device_of(node: Node) -> Device:
    """The device the planner places the model on (the node's GPUs, its Apple chip, or its CPU)."""
    host = node.usable_ram_bytes()
    host_gb = host / 1e9 if host else None
    if node.gpus:
        from autoquant.catalog.gpus import lookup

        first = node.gpus[0]
        spec = lookup(first.catalog_key or first.name)
        same = [g for g in node.gpus if (g.catalog_key or g.name) == (first.catalog_key or first.name)
                and not g.mig_enabled]
        notes: list[str] = []
        if len(same) < len(node.gpus):
            notes.append(f"planning on the {len(same)} {spec.key} GPU(s); other or MIG GPUs ignored")
        if not same:
            return _mig_device(first, spec, node, host_gb)
        mem = min(g.memory_total_bytes for g in same) or int((spec.memory_gib or 0) * 1024**3)
        if not spec.memory_bandwidth_gbps:
            raise InputError(f"the GPU catalog has no memory bandwidth for {spec.key}; cannot estimate speed")
        if not (spec.bf16_tflops or spec.fp16_tflops):
            notes.append(f"the GPU catalog has no TFLOPS for {spec.key}: compute time is not modelled (a lower bound)")
        domain = max((len(d) for d in node.nvlink_domains), default=1) if spec.nvlink_gbps else 1
        return Device(
            kind="cuda", key=spec.key, label=spec.display_name, count=len(same), memory_gb=mem / 1e9,
            bandwidth_gbps=spec.memory_bandwidth_gbps, peaks_tflops=_spec_peaks(spec),
            capability=first.compute_capability or spec.compute_capability, architecture=spec.architecture,
            nvlink_gbps=spec.nvlink_gbps, pcie_gbps=pcie_gbps(spec), nvlink_domain=max(1, domain),
            nodes=max(1, node.nodes), cpu=node.cpu, host_ram_gb=host_gb, notes=tuple(notes),
            fabric=fabric_of(node, len(same)),
        )
    if node.apple is not None:
        from autoquant.catalog.gpus import lookup

        spec = lookup(node.apple.catalog_key or node.apple.chip)
        mem = node.apple.unified_memory_bytes or int((spec.memory_gib or 0) * 1024**3)
        if not spec.memory_bandwidth_gbps:
            raise InputError(f"the GPU catalog has no memory bandwidth for {spec.key}; cannot estimate speed")
        return Device(
            kind="apple", key=spec.key, label=node.apple.chip, count=1, memory_gb=mem / 1e9,
            bandwidth_gbps=spec.memory_bandwidth_gbps, peaks_tflops=_spec_peaks(spec),
            architecture=spec.architecture, cpu=node.cpu, host_ram_gb=mem / 1e9,
        )
    cpu = node.cpu
    if not host_gb:
        raise InputError("this CPU-only node's RAM is unknown (`--gpu cpu:N` gives only cores): plan on the machine "
                         "itself (`--gpu cpu` or no --gpu), or run `autoquant probe --save node.json` there and plan "
                         "with --hardware node.json, or name its CPU from the catalog (--gpu cpu:NAME, e.g. "
                         "cpu:EPYC-9654)")
    peaks = {"gguf": cpu.matmul_gflops / 1000.0} if cpu.matmul_gflops else {}
    notes = []
    if not cpu.memory_bandwidth_gbps:
        notes.append("CPU memory bandwidth unknown (run `autoquant probe` on the machine to measure it)")
    return Device(
        kind="cpu", key="cpu", label=cpu.model, count=1, memory_gb=host_gb or 0.0,
        bandwidth_gbps=cpu.memory_bandwidth_gbps, peaks_tflops=peaks, cpu=cpu, host_ram_gb=host_gb,
        notes=tuple(notes),
    )


def _mig_device(gpu: GPU, spec, node: Node, host_gb: float | None) -> Device:
    """Every GPU of the node is in MIG mode: plan for one MIG slice (the one CUDA_VISIBLE_DEVICES selected,
    or the largest when the GPU lists several). A slice has its own memory and SMs: compute scales by
    slice SMs / full SMs; bandwidth by slice memory / full memory (a MIG memory slice owns its share of
    the memory controllers, NVIDIA MIG user guide). No NVLink peer traffic between slices: one device."""
    if not gpu.mig_slices:
        raise InputError(f"GPU {gpu.index} ({gpu.name}) is in MIG mode but lists no MIG instance; create one "
                         "(nvidia-smi mig -cgi ... -C) or disable MIG")
    if not spec.memory_bandwidth_gbps:
        raise InputError(f"the GPU catalog has no memory bandwidth for {spec.key}; cannot estimate speed")
    sl: MigSlice = max(gpu.mig_slices, key=lambda m: (m.memory_bytes, m.sm_count or 0))
    full_mem = gpu.memory_total_bytes or int((spec.memory_gib or 0) * 1024**3)
    full_sms = gpu.sm_count or spec.sm_count
    notes = [f"MIG slice {sl.profile} of {spec.key}: {sl.memory_bytes / 1e9:.1f} GB"
             + (f", {sl.sm_count} of {full_sms} SMs" if sl.sm_count and full_sms else "")]
    if len(gpu.mig_slices) > 1:
        notes.append(f"GPU {gpu.index} is in MIG mode with {len(gpu.mig_slices)} slices: planning for one slice "
                     f"(the largest, {sl.profile}); select one with CUDA_VISIBLE_DEVICES=<MIG uuid>")
    sm_frac = sl.sm_count / full_sms if sl.sm_count and full_sms else None
    if sm_frac is None:
        notes.append("MIG slice SM count unknown: compute taken as the whole GPU's (an upper bound)")
    mem_frac = min(1.0, sl.memory_bytes / full_mem) if full_mem else 1.0
    peaks = {k: v * (sm_frac or 1.0) for k, v in _spec_peaks(spec).items()}
    return Device(
        kind="cuda", key=spec.key, label=f"{spec.display_name} MIG {sl.profile}", count=1,
        memory_gb=sl.memory_bytes / 1e9, bandwidth_gbps=spec.memory_bandwidth_gbps * mem_frac,
        peaks_tflops=peaks, capability=gpu.compute_capability or spec.compute_capability,
        architecture=spec.architecture, nvlink_gbps=None, pcie_gbps=pcie_gbps(spec), nvlink_domain=1,
        nodes=max(1, node.nodes), cpu=node.cpu, host_ram_gb=host_gb, notes=tuple(notes),
        fabric=fabric_of(node, 1),
    )
