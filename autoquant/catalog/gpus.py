"""The GPU catalog: specs from autoquant/data/gpus.yaml, name matching, and synthetic nodes.

Pure: reads only the packaged YAML (through `autoquant.data.load`) and builds records. Used by the
probe (`match_nvml_name`: which catalog entry is this NVML device), by `--gpu NAME[:COUNT]`
(`synthetic_node`: the node such a machine would be), and by the planner (`lookup`: the figures).

Names match case-insensitively with spaces, underscores and hyphens ignored, and with the marketing
words NVIDIA/GeForce/Tesla/Apple dropped, so "H100-SXM", "h100", "NVIDIA H100 80GB HBM3", "a100 80gb"
and "rtx 4090" all resolve.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autoquant.argtypes import in_range, positive_int
from autoquant.errors import InputError, NotFoundError, UsageError
from autoquant.records.node import GPU, AppleSilicon, CPUInfo, Node

GIB = 1024**3

# Words that vendors put in front of a product name and users leave out.
_NOISE_WORDS = ("nvidia", "geforce", "tesla", "apple", "quadro")

# NVLink bandwidth per link (GB/s, both directions together) by NVLink generation, used only to label
# synthetic topologies "NV<links>" the way `nvidia-smi topo -m` does. Source: NVIDIA NVLink page
# (https://www.nvidia.com/en-us/data-center/nvlink/): 2nd gen 300 GB/s over 6 links (V100), 3rd gen
# 600 GB/s over 12 (A100), 4th gen 900 GB/s over 18 (H100), 5th gen 1.8 TB/s over 18 (B200).
_NVLINK_GBPS_PER_LINK = {"volta": 50.0, "ampere": 50.0, "hopper": 50.0, "blackwell": 100.0}

# GPUs per NVLink/NVSwitch baseboard (HGX/DGX 8-GPU boards); more GPUs on one `--gpu` means boards.
_SXM_BOARD_GPUS = 8


@dataclass(frozen=True)
class Source:
    url: str
    title: str = ""
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class GPUSpec:
    """One catalog entry. Figures are the vendor's dense (no sparsity) peaks; None where not published."""

    key: str  # canonical key, e.g. "H100-SXM"
    vendor: str  # "nvidia" | "apple"
    architecture: str | None = None
    compute_capability: str | None = None  # "9.0"; None for Apple
    form_factor: str | None = None
    aliases: tuple[str, ...] = ()
    nvml_names: tuple[str, ...] = ()
    memory_gib: float | None = None
    memory_type: str | None = None
    memory_bandwidth_gbps: float | None = None
    fp16_tflops: float | None = None
    bf16_tflops: float | None = None
    fp8_tflops: float | None = None
    int8_tops: float | None = None
    fp4_tflops: float | None = None
    nvlink_gbps: float | None = None
    pcie_gen: int | None = None
    pcie_gbps: float | None = None
    sm_count: int | None = None
    tdp_w: float | None = None
    sources: tuple[Source, ...] = ()
    notes: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys the schema may grow

    @property
    def memory_bytes(self) -> int | None:
        return int(self.memory_gib * GIB) if self.memory_gib is not None else None

    @property
    def is_apple(self) -> bool:
        return self.vendor == "apple"

    @property
    def display_name(self) -> str:
        return self.nvml_names[0] if self.nvml_names else self.key

    @property
    def nvlink_links(self) -> int | None:
        """NVLink links per GPU: the catalog's figure if it has one, else bandwidth / per-link bandwidth."""
        if self.extra.get("nvlink_links"):
            return int(self.extra["nvlink_links"])
        per_link = _NVLINK_GBPS_PER_LINK.get((self.architecture or "").lower())
        if not self.nvlink_gbps or not per_link:
            return None
        return max(1, round(self.nvlink_gbps / per_link))


_NUMERIC = (
    "memory_gib", "memory_bandwidth_gbps", "fp16_tflops", "bf16_tflops", "fp8_tflops", "int8_tops",
    "fp4_tflops", "nvlink_gbps", "pcie_gbps", "tdp_w",
)
_INTEGER = ("pcie_gen", "sm_count")
_KNOWN = set(_NUMERIC) | set(_INTEGER) | {
    "vendor", "architecture", "compute_capability", "form_factor", "aliases", "nvml_names", "memory_type",
    "sources", "notes",
}


def _spec_from_yaml(key: str, raw: Mapping[str, Any]) -> GPUSpec:
    if not isinstance(raw, Mapping):
        raise InputError(f"gpus.yaml: entry {key!r} is not a mapping")
    kwargs: dict[str, Any] = {}
    for name in _NUMERIC:
        value = raw.get(name)
        kwargs[name] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    for name in _INTEGER:
        value = raw.get(name)
        kwargs[name] = int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    cc = raw.get("compute_capability")
    sources = tuple(
        Source(url=str(s.get("url", "")), title=str(s.get("title", "")), fields=tuple(s.get("fields") or ()))
        for s in (raw.get("sources") or ())
        if isinstance(s, Mapping)
    )
    return GPUSpec(
        key=key,
        vendor=str(raw.get("vendor", "nvidia")).lower(),
        architecture=raw.get("architecture"),
        compute_capability=str(cc) if cc is not None else None,
        form_factor=raw.get("form_factor"),
        aliases=tuple(str(a) for a in (raw.get("aliases") or ())),
        nvml_names=tuple(str(n) for n in (raw.get("nvml_names") or ())),
        memory_type=raw.get("memory_type"),
        sources=sources,
        notes=raw.get("notes"),
        extra={k: v for k, v in raw.items() if k not in _KNOWN},
        **kwargs,
    )


def normalize(name: str) -> str:
    """Lower case, no vendor noise words, no spaces/underscores/hyphens/quotes."""
    text = name.strip().strip("'\"").lower()
    for word in _NOISE_WORDS:
        text = re.sub(rf"\b{word}\b", " ", text)
    return re.sub(r"[\s_\-'\"]+", "", text)


class Catalog:
    """The specs and the indexes that find them by any of their names."""

    def __init__(self, specs: Iterable[GPUSpec]):
        self.specs: dict[str, GPUSpec] = {s.key: s for s in specs}
        self._by_name: dict[str, GPUSpec] = {}
        self._by_nvml: dict[str, list[GPUSpec]] = {}
        # Canonical keys first so an alias can never shadow another entry's key.
        for spec in self.specs.values():
            self._by_name.setdefault(normalize(spec.key), spec)
        for spec in self.specs.values():
            for name in (*spec.aliases, *spec.nvml_names):
                self._by_name.setdefault(normalize(name), spec)
            for name in spec.nvml_names:
                self._by_nvml.setdefault(normalize(name), []).append(spec)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Catalog:
        gpus = (data or {}).get("gpus")
        if not isinstance(gpus, Mapping):
            raise InputError("gpus.yaml has no 'gpus' mapping")
        return cls(_spec_from_yaml(str(k), v) for k, v in gpus.items())

    def names(self) -> list[str]:
        """Every name a user may type (keys, aliases, NVML names), for suggestions."""
        out: list[str] = []
        for spec in self.specs.values():
            out.extend([spec.key, *spec.aliases, *spec.nvml_names])
        return out

    def find(self, name: str) -> GPUSpec | None:
        return self._by_name.get(normalize(name))

    def lookup(self, name: str) -> GPUSpec:
        spec = self.find(name)
        if spec is not None:
            return spec
        raise NotFoundError(f"unknown GPU {name.strip()!r}{self._suggestion(name)}")

    def _suggestion(self, name: str) -> str:
        wanted = normalize(name)
        by_norm: dict[str, str] = {}
        for display in self.names():
            by_norm.setdefault(normalize(display), display)
        close = difflib.get_close_matches(wanted, list(by_norm), n=3, cutoff=0.6)
        # Also offer entries whose name contains what was typed (e.g. "a100" -> the A100 variants).
        if wanted and len(close) < 3:
            close += [n for n in by_norm if wanted in n and n not in close][: 3 - len(close)]
        keys: list[str] = []
        for norm in close:
            key = self._by_name[norm].key
            if key not in keys:
                keys.append(key)
        if keys:
            return f"; did you mean {', '.join(keys)}? (`autoquant probe --gpu NAME` accepts these)"
        return f"; known GPUs: {', '.join(sorted(self.specs))}"

    def match_nvml_name(self, name: str, memory_bytes: int | None = None) -> GPUSpec | None:
        """The entry for a device NVML reports, using its memory to choose between same-named variants."""
        norm = normalize(name)
        candidates = list(self._by_nvml.get(norm, []))
        if not candidates:
            spec = self._by_name.get(norm)
            candidates = [spec] if spec else []
        if not candidates and memory_bytes:
            return self._fuzzy_nvml(norm, memory_bytes)
        if not candidates:
            return None
        if len(candidates) == 1 or not memory_bytes:
            return candidates[0]
        with_mem = [s for s in candidates if s.memory_bytes]
        if not with_mem:
            return candidates[0]
        return min(with_mem, key=lambda s: abs(s.memory_bytes - memory_bytes))

    def _fuzzy_nvml(self, norm: str, memory_bytes: int) -> GPUSpec | None:
        """An unlisted spelling of a listed product ("NVIDIA A100-PCIE-80GB"): the entry with the longest
        key/alias inside the name, among those whose memory is within 15% of what NVML reports (NVML
        totals run a few percent under the marketed size)."""
        best: tuple[int, float, GPUSpec] | None = None
        for spec in self.specs.values():
            if not spec.memory_bytes or abs(spec.memory_bytes - memory_bytes) > 0.15 * spec.memory_bytes:
                continue
            length = max((len(n) for n in map(normalize, (spec.key, *spec.aliases)) if len(n) >= 3 and n in norm),
                         default=0)
            if length and (best is None or (-length, abs(spec.memory_bytes - memory_bytes)) < (-best[0], best[1])):
                best = (length, abs(spec.memory_bytes - memory_bytes), spec)
        return best[2] if best else None


@functools.lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    from autoquant.data import load

    return Catalog.from_data(load("gpus"))


def lookup(name: str) -> GPUSpec:
    """The spec for a GPU name; NotFoundError with close matches when unknown."""
    return default_catalog().lookup(name)


def match_nvml_name(name: str, memory_bytes: int | None = None) -> GPUSpec | None:
    return default_catalog().match_nvml_name(name, memory_bytes)


def all_specs() -> list[GPUSpec]:
    return list(default_catalog().specs.values())


# --- synthetic nodes (`--gpu NAME[:COUNT]`) --------------------------------------------------------


def parse_gpu_flag(text: str) -> tuple[str, int | None]:
    """'H100-SXM:8' -> ('H100-SXM', 8); 'a100-80gb' -> ('a100-80gb', None); 'cpu:16' -> ('cpu', 16) (cores);
    'cpu:EPYC-9654' -> ('cpu:EPYC-9654', None); 'cpu:EPYC-9654:2' -> ('cpu:EPYC-9654', 2) (sockets)."""
    cleaned = (text or "").strip().strip("'\"").strip()
    if not cleaned:
        raise UsageError("--gpu needs a name, e.g. --gpu H100-SXM:8 or --gpu cpu")
    name, sep, count_text = cleaned.rpartition(":")
    if not sep:
        return cleaned, None
    name = name.strip()
    count_text = count_text.strip()
    if not name:
        raise UsageError(f"--gpu {text!r}: missing the GPU name before ':' (e.g. H100-SXM:8)")
    if normalize(name) == "cpu" and not count_text.isdigit():
        # cpu:NAME (a CPU catalog entry), not cpu:COUNT; a leading '-' is a bad count, not a name.
        if not count_text:
            raise UsageError(f"--gpu {text!r}: give a core count or a CPU after 'cpu:' (e.g. cpu:16, cpu:EPYC-9654)")
        if not count_text.startswith("-"):
            return f"cpu:{count_text}", None
    count = positive_int(count_text, f"--gpu {text!r}: COUNT")
    # bounded before a count x count topology is built for it
    return name, in_range(count, "cpu_cores" if normalize(name).startswith("cpu") else "gpus_per_node",
                          f"--gpu {text!r}: COUNT")


def synthetic_node(text: str, catalog: Catalog | None = None) -> Node:
    """The node a `--gpu NAME[:COUNT]` machine has, from the catalog alone (nothing here is probed).

    `cpu` and `cpu:N` (N cores) describe an unnamed CPU-only machine; `cpu:NAME[:SOCKETS]` one with that
    CPU from the CPU catalog (autoquant/data/cpus.yaml): its cores, ISA flags, memory bandwidth and an
    assumed RAM size, for CPU-only (llama.cpp) planning."""
    name, count = parse_gpu_flag(text)
    if normalize(name) == "cpu":
        cpu = CPUInfo(physical_cores=count, logical_cores=count)
        notes = [] if count else ["synthetic CPU node: core count and memory bandwidth unknown (use cpu:N)"]
        return Node(source="gpu-flag", cpu=cpu, notes=notes)
    head, sep, cpu_name = name.partition(":")
    if sep and normalize(head) == "cpu":
        from autoquant.catalog import cpus

        spec = cpus.lookup(cpu_name)
        return cpus.cpu_node(spec, count, flag=(text or "").strip().strip("'\"").strip())
    spec = (catalog or default_catalog()).lookup(name)
    if spec.is_apple:
        return _apple_node(spec, count)
    return _gpu_node(spec, count or 1)


def _apple_node(spec: GPUSpec, count: int | None) -> Node:
    if count not in (None, 1):
        raise UsageError(f"--gpu {spec.key}:{count}: an Apple chip is one per machine; drop the count")
    memory = spec.memory_bytes or 0
    chip = "Apple " + spec.key.replace("-", " ")
    return Node(
        source="gpu-flag",
        # The catalog's sm_count of an Apple chip is its GPU core count.
        apple=AppleSilicon(chip=chip, unified_memory_bytes=memory,
                           gpu_cores=spec.extra.get("gpu_cores") or spec.sm_count, catalog_key=spec.key),
        cpu=CPUInfo(
            model=chip,
            arch="arm64",
            memory_bandwidth_gbps=spec.memory_bandwidth_gbps,
            memory_bandwidth_source="catalog" if spec.memory_bandwidth_gbps else None,
        ),
        ram_total_bytes=memory or None,
        notes=[f"synthetic {spec.key}: unified memory {spec.memory_gib:g} GiB is the catalog's configuration"]
        if spec.memory_gib else [],
    )


def _gpu_node(spec: GPUSpec, count: int) -> Node:
    gpus = [
        GPU(
            index=i,
            name=spec.display_name,
            memory_total_bytes=spec.memory_bytes or 0,
            memory_free_bytes=spec.memory_bytes,
            compute_capability=spec.compute_capability,
            sm_count=spec.sm_count,
            power_limit_w=spec.tdp_w,
            pcie_gen=spec.pcie_gen,
            physical_index=i,
            catalog_key=spec.key,
        )
        for i in range(count)
    ]
    topology, domains, note = synthetic_topology(spec, count)
    notes = [f"synthetic node from --gpu {spec.key}:{count}: {note}"]
    return Node(source="gpu-flag", gpus=gpus, topology=topology, nvlink_domains=domains, notes=notes)


def nvlink_kind(spec: GPUSpec) -> str:
    """How GPUs of this part are NVLinked in the machines that carry them.

    "switch": SXM/superchip boards (NVSwitch, or all-to-all links on 4-GPU boards): all GPUs of a board.
    "pairs": NVL cards joined two by two with NVLink bridges (H100 NVL).
    "none": PCIe cards; bridges are optional (A100 PCIe, RTX 3090) so none is assumed.
    """
    form = (spec.form_factor or "").lower()
    key = spec.key.lower()
    if not spec.nvlink_gbps:
        return "none"
    if "nvl" in form or key.endswith("-nvl"):
        return "pairs"
    if any(w in form for w in ("sxm", "superchip", "mezzanine", "hgx", "oam")) or any(
        w in key for w in ("sxm", "gh200", "h200", "b200")
    ):
        return "switch"
    return "none"


def synthetic_topology(spec: GPUSpec, count: int) -> tuple[list[list[str]], list[list[int]], str]:
    """(topology matrix, NVLink domains, a sentence saying what was assumed)."""
    kind = nvlink_kind(spec)
    links = spec.nvlink_links
    nv = f"NV{links}" if links else "NV"
    if kind == "switch" and (spec.architecture or "").lower() == "volta" and count > 4:
        # 8x V100 SXM2 (DGX-1) is a hybrid cube mesh, not NVSwitch: only the quads are all-to-all.
        domains = [list(range(s, min(s + 4, count))) for s in range(0, count, 4)]
        what = "V100 SXM2 hybrid cube mesh: NVLink domains are the 4-GPU quads"
    elif kind == "switch":
        size = _SXM_BOARD_GPUS
        domains = [list(range(s, min(s + size, count))) for s in range(0, count, size)]
        what = f"one NVLink domain per {size}-GPU board" if count > size else "all GPUs in one NVLink domain"
    elif kind == "pairs":
        domains = [list(range(s, min(s + 2, count))) for s in range(0, count, 2)]
        what = "NVLink bridges join GPUs in pairs"
    else:
        domains = [[i] for i in range(count)]
        what = "PCIe only, no NVLink bridges assumed"
    domain_of = {g: d for d, members in enumerate(domains) for g in members}
    topology = [
        [
            "X" if i == j else nv if domain_of[i] == domain_of[j] else _pcie_level(i, j, count)
            for j in range(count)
        ]
        for i in range(count)
    ]
    if count > 4:
        what += "; PCIe: GPUs 0..n/2-1 and n/2..n-1 on two CPU sockets (PHB within, SYS across)"
    return topology, domains, what


def _pcie_level(i: int, j: int, count: int) -> str:
    # A typical two-socket server puts half of its GPUs behind each CPU; up to 4 GPUs share one.
    if count <= 4:
        return "PHB"
    half = (count + 1) // 2
    return "PHB" if (i < half) == (j < half) else "SYS"
