"""The CPU catalog: specs from autoquant/data/cpus.yaml, name matching, and CPU-only synthetic nodes.

Pure: reads only the packaged YAML (through `autoquant.data.load`) and builds records. Used by
`--gpu cpu:NAME[:SOCKETS]` (`cpu_node`: the CPU-only node such a machine would be, for llama.cpp
planning) and by anyone who wants a CPU's catalog figures (`lookup`).

Names match case-insensitively with spaces, underscores and hyphens ignored, with the vendor words
AMD/Intel/Apple, "(R)", "(TM)", "Processor", "CPU", "NN-Core" and "@ N.NNGHz" dropped, so "EPYC-9654",
"epyc 9654", "AMD EPYC 9654 96-Core Processor" (the /proc/cpuinfo model name) and
"Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz" all resolve. An all-digit name is never a CPU: in
`--gpu cpu:N` digits are a core count.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autoquant.errors import InputError, NotFoundError, UsageError
from autoquant.records.node import CPUInfo, Node

GIB = 1024**3

_NOISE_WORDS = ("amd", "intel", "apple", "processor", "cpu")


class UnknownCPUError(NotFoundError, UsageError):
    """A CPU name the catalog does not know: a NotFoundError like an unknown GPU, and a UsageError
    because it comes from a flag (`--gpu cpu:NAME`)."""


@dataclass(frozen=True)
class Source:
    url: str
    title: str = ""
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class CPUSpec:
    """One catalog entry: one socket's figures. None where not published or not derivable."""

    key: str  # canonical key, e.g. "EPYC-9654"
    vendor: str  # "amd" | "intel" | "apple"
    name: str  # display name, e.g. "AMD EPYC 9654"
    family: str | None = None  # "epyc", "xeon", "ryzen", "threadripper", "core", "apple-m"
    generation: str | None = None  # "genoa", "sapphire-rapids", ...
    microarchitecture: str | None = None  # "zen4", "golden-cove", ...
    arch: str = "x86_64"  # "x86_64" | "arm64"
    aliases: tuple[str, ...] = ()
    cores: int | None = None
    threads: int | None = None
    base_ghz: float | None = None
    boost_ghz: float | None = None
    max_sockets: int | None = None
    memory_channels: int | None = None
    memory_type: str | None = None
    memory_mts: float | None = None
    memory_bandwidth_gbps: float | None = None  # per socket, GB/s
    derivation: str | None = None
    flags: tuple[str, ...] = ()  # /proc/cpuinfo spellings, the subset autoquant's probe records
    fp32_gflops_peak: float | None = None  # per socket
    fp32_derivation: str | None = None
    typical_ram_gib: float | None = None  # per socket; an ASSUMED configuration (see ram_assumption)
    ram_assumption: str | None = None
    tdp_w: float | None = None
    sources: tuple[Source, ...] = ()
    notes: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys the schema may grow


_FLOAT = ("base_ghz", "boost_ghz", "memory_mts", "memory_bandwidth_gbps", "fp32_gflops_peak", "typical_ram_gib",
          "tdp_w")
_INTEGER = ("cores", "threads", "max_sockets", "memory_channels")
_TEXT = ("family", "generation", "microarchitecture", "memory_type", "derivation", "fp32_derivation",
         "ram_assumption", "notes")
_KNOWN = set(_FLOAT) | set(_INTEGER) | set(_TEXT) | {"vendor", "name", "arch", "aliases", "flags", "sources"}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _spec_from_yaml(key: str, raw: Mapping[str, Any]) -> CPUSpec:
    if not isinstance(raw, Mapping):
        raise InputError(f"cpus.yaml: entry {key!r} is not a mapping")
    kwargs: dict[str, Any] = {}
    for name in _FLOAT:
        value = raw.get(name)
        kwargs[name] = float(value) if _number(value) else None
    for name in _INTEGER:
        value = raw.get(name)
        kwargs[name] = int(value) if _number(value) else None
    for name in _TEXT:
        value = raw.get(name)
        kwargs[name] = str(value) if value is not None else None
    sources = tuple(
        Source(url=str(s.get("url", "")), title=str(s.get("title", "")), fields=tuple(s.get("fields") or ()))
        for s in (raw.get("sources") or ())
        if isinstance(s, Mapping)
    )
    return CPUSpec(
        key=key,
        vendor=str(raw.get("vendor", "")).lower(),
        name=str(raw.get("name") or key),
        arch=str(raw.get("arch") or "x86_64"),
        aliases=tuple(str(a) for a in (raw.get("aliases") or ())),
        flags=tuple(str(f) for f in (raw.get("flags") or ())),
        sources=sources,
        extra={k: v for k, v in raw.items() if k not in _KNOWN},
        **kwargs,
    )


def normalize(name: str) -> str:
    """Lower case; no vendor words, (R)/(TM), 'Processor', 'CPU', 'NN-Core', '@ N.NNGHz'; no separators."""
    text = name.strip().strip("'\"").lower()
    text = re.sub(r"\((r|tm)\)|[®™]", " ", text)
    text = re.sub(r"@\s*[\d.]+\s*ghz", " ", text)
    text = re.sub(r"\b\d+[-\s]?cores?\b", " ", text)
    for word in _NOISE_WORDS:
        text = re.sub(rf"\b{word}\b", " ", text)
    return re.sub(r"[\s_\-'\"]+", "", text)


class Catalog:
    """The CPU specs and the index that finds them by any of their names."""

    def __init__(self, specs: Iterable[CPUSpec]):
        self.specs: dict[str, CPUSpec] = {s.key: s for s in specs}
        self._by_name: dict[str, CPUSpec] = {}
        # Canonical keys first so an alias can never shadow another entry's key.
        for spec in self.specs.values():
            self._by_name.setdefault(normalize(spec.key), spec)
        for spec in self.specs.values():
            for name in (spec.name, *spec.aliases):
                self._by_name.setdefault(normalize(name), spec)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Catalog:
        cpus = (data or {}).get("cpus")
        if not isinstance(cpus, Mapping):
            raise InputError("cpus.yaml has no 'cpus' mapping")
        return cls(_spec_from_yaml(str(k), v) for k, v in cpus.items())

    def names(self) -> list[str]:
        """Every name a user may type (keys, display names, aliases), for suggestions."""
        out: list[str] = []
        for spec in self.specs.values():
            out.extend([spec.key, spec.name, *spec.aliases])
        return out

    def find(self, name: str) -> CPUSpec | None:
        norm = normalize(name)
        return self._by_name.get(norm) if norm else None

    def lookup(self, name: str) -> CPUSpec:
        spec = self.find(name)
        if spec is not None:
            return spec
        raise UnknownCPUError(f"unknown CPU {name.strip()!r}{self._suggestion(name)}")

    def _suggestion(self, name: str) -> str:
        wanted = normalize(name)
        by_norm: dict[str, str] = {}
        for display in self.names():
            by_norm.setdefault(normalize(display), display)
        close = difflib.get_close_matches(wanted, list(by_norm), n=3, cutoff=0.6)
        # Also offer entries whose name contains what was typed (e.g. "epyc" -> the EPYC parts).
        if wanted and len(close) < 3:
            close += [n for n in by_norm if wanted in n and n not in close][: 3 - len(close)]
        keys: list[str] = []
        for norm in close:
            key = self._by_name[norm].key
            if key not in keys:
                keys.append(key)
        if keys:
            return f"; did you mean {', '.join(keys)}? (`--gpu cpu:NAME` accepts these)"
        return f"; known CPUs: {', '.join(sorted(self.specs))}"


@functools.lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    from autoquant.data import load

    return Catalog.from_data(load("cpus"))


def find(name: str) -> CPUSpec | None:
    return default_catalog().find(name)


def lookup(name: str) -> CPUSpec:
    """The spec for a CPU name; UnknownCPUError (a NotFoundError and a UsageError) with close matches."""
    return default_catalog().lookup(name)


def example_keys() -> list[str]:
    """One catalog key per vendor, in catalog order (EPYC-9654, Xeon-8480+, M2-Ultra): what a message offers
    as `--gpu cpu:NAME` examples."""
    by_vendor: dict[str, str] = {}
    for spec in default_catalog().specs.values():
        by_vendor.setdefault(spec.vendor, spec.key)
    return list(by_vendor.values())


def all_specs() -> list[CPUSpec]:
    return list(default_catalog().specs.values())


# --- synthetic CPU-only nodes (`--gpu cpu:NAME[:SOCKETS]`) -----------------------------------------


def cpu_node(spec: CPUSpec, sockets: int | None = None, flag: str | None = None) -> Node:
    """The CPU-only node a machine with `sockets` of this CPU has, from the catalog alone (nothing probed).

    Per-socket figures (cores, threads, memory bandwidth, FP32 peak, assumed RAM) are multiplied by the
    socket count. RAM is the entry's `typical_ram_gib`, an assumed configuration, and the node's notes say so.
    """
    n = sockets or 1
    shown = flag or f"cpu:{spec.key}" + (f":{sockets}" if sockets else "")
    if spec.max_sockets and n > spec.max_sockets:
        raise UsageError(f"--gpu {shown}: {spec.key} goes in at most {spec.max_sockets} socket(s) per machine")

    def times(value: float | int | None) -> Any:
        return value * n if value is not None else None

    cpu = CPUInfo(
        model=spec.name,
        arch=spec.arch,
        physical_cores=times(spec.cores),
        logical_cores=times(spec.threads or spec.cores),
        flags=list(spec.flags),
        memory_bandwidth_gbps=times(spec.memory_bandwidth_gbps),
        memory_bandwidth_source="catalog" if spec.memory_bandwidth_gbps else None,
        matmul_gflops=times(spec.fp32_gflops_peak),
        matmul_gflops_source="catalog (peak)" if spec.fp32_gflops_peak else None,
    )
    where = f", {n} sockets" if n > 1 else ""
    notes = [f"synthetic CPU-only node from --gpu {shown} ({spec.name}{where}): figures are the catalog's, "
             "nothing was probed"]
    ram_bytes = None
    if spec.typical_ram_gib:
        ram_gib = spec.typical_ram_gib * n
        ram_bytes = int(ram_gib * GIB)
        how = re.sub(r"^assumed:\s*", "", spec.ram_assumption or "a typical configuration")
        notes.append(f"RAM {ram_gib:g} GiB is ASSUMED, not probed ({how}{f', x {n} sockets' if n > 1 else ''}): "
                     "plan with --hardware node.json from `autoquant probe` for the real figure")
    if spec.memory_bandwidth_gbps:
        notes.append(f"memory bandwidth {cpu.memory_bandwidth_gbps:g} GB/s is the theoretical peak "
                     "(catalog); llama.cpp decode typically reaches well under it")
    if spec.fp32_gflops_peak:
        notes.append(f"matmul rate {cpu.matmul_gflops:g} GFLOPS is the catalog's FP32 peak at base clock, "
                     "not a measurement (an upper bound)")
    return Node(source="gpu-flag", cpu=cpu, ram_total_bytes=ram_bytes, notes=notes)
