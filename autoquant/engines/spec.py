"""EngineSpec: one record per engine, built from autoquant/data/engines.yaml (the only place engine facts are
written). Pure: `specs_from_data` takes the parsed data and returns records; nothing here reads a file.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class KernelChoice:
    """One kernel an engine may run a method with: its capability range and the constraints it checks."""

    kernel: str
    min_capability: str | None = None
    max_capability: str | None = None
    constraints: tuple[str, ...] = ()
    rule: str = ""
    reason: str = ""  # template used when this is the kernel that rules the method out
    source: str = ""


@dataclass(frozen=True)
class Requirement:
    field: str
    allowed: tuple[Any, ...] | None = None  # `in:` the field must be one of these
    refused: tuple[Any, ...] | None = None  # `not:` the field must be none of these
    reason: str = ""


@dataclass(frozen=True)
class FormatRule:
    """A checkpoint-format rule: applies when every `when` field matches the QuantSpec (a list: any of)."""

    id: str
    when: Mapping[str, Any] = field(default_factory=dict)
    reject: str | None = None
    require: tuple[Requirement, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class Install:
    """One way an engine is installed and started (engines.yaml `installs`); probes/engines.py looks for it, and
    `autoquant probe` lists and `serve` runs what it finds."""

    name: str  # AUTOQUANT_ENGINE_BIN_<NAME> points at one installed elsewhere
    label: str
    program: str | None = None  # the console script or binary looked for (on PATH, beside this Python)
    module: str | None = None  # run as `python -m`: its interpreter is the executable
    native: bool = False  # not a Python distribution: its version is its own `--version` (probe only)
    distributions: tuple[str, ...] = ()  # package names its version is read from (dist-info folders)
    extra: str | None = None  # the distribution's extra its server needs (llama-cpp-python[server])
    # a native program: the regex its `--version` output is read with (group 1: the version; group 2, if
    # any: the commit) and how the version is written from group 1 (llama.cpp: "b{}", its release tags)
    version_pattern: str | None = None
    version_format: str = "{}"


@dataclass(frozen=True)
class EngineSpec:
    id: str
    label: str
    preference: int
    devices: tuple[str, ...]
    tensor_parallel: bool
    min_capability: str | None
    min_capability_source: str
    distributions: tuple[str, ...]
    memory: Mapping[str, Any]
    batch_rows: tuple[Mapping[str, Any], ...]
    batch: Mapping[str, Any]
    kv_dtypes: tuple[str, ...]
    kv_default: str
    kv_fallback: str | None
    kv_requires: Mapping[str, Mapping[str, Any]]
    kv_from_vllm: Mapping[str, str]
    kv_source: str
    kv_paged: bool  # engines.yaml kv_cache.allocation: paged (a request holds its own length) | slots (n_ctx/np each)
    quantize_at_load: Mapping[str, Mapping[str, Any]]
    no_quantize_at_load: str
    methods: Mapping[str, tuple[KernelChoice, ...]]
    unsupported_methods: Mapping[str, tuple[str, str]]  # method pattern -> (rule, reason)
    formats: tuple[FormatRule, ...]
    preferred_producers: tuple[str, ...]
    requires_cpu_flag: Mapping[str, Mapping[str, Any]]
    flags: Mapping[str, Any]
    calibration_as: str  # the engine whose fitted speed factors this one uses (itself, unless it has none)
    calibration_note: str
    # replicas inside one server: {flag, source} where the engine has them, {none: why, source} where not
    data_parallel: Mapping[str, Any] = field(default_factory=dict)
    # one server over several nodes: {backends: [...], default, source} where the engine spans nodes (the launcher
    # picks the backend), {none: why, source} where autoquant does not plan it across nodes; empty: not said
    multi_node: Mapping[str, Any] = field(default_factory=dict)
    installs: tuple[Install, ...] = ()  # how it is found on a machine, in the order tried
    # shared tables the compatibility rules read (engines.yaml `constraints`, `device_reasons`, methods.yaml)
    constraint_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    device_reasons: Mapping[str, str] = field(default_factory=dict, repr=False)
    method_facts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)

    def kernels_for(self, method: str) -> tuple[KernelChoice, ...] | None:
        """The kernels this engine tries for `method` (patterns such as gguf-* match), None when it has none."""
        if method in self.methods:
            return self.methods[method]
        for pattern, kernels in self.methods.items():
            if fnmatch.fnmatchcase(method, pattern):
                return kernels
        return None

    def unsupported(self, method: str) -> tuple[str, str, str] | None:
        """(rule, reason, pattern) of the unsupported_methods entry that names this method."""
        for pattern, (rule, reason) in self.unsupported_methods.items():
            if method == pattern or fnmatch.fnmatchcase(method, pattern):
                return rule, reason, pattern
        return None

    def runs_method(self, method: str) -> bool:
        return self.kernels_for(method) is not None

    def producer_rank(self, producer: str | None) -> int:
        """Where a checkpoint made by `producer` goes among this engine's candidates: its own publisher's
        format first (preferred_producers: ModelOpt exports for TensorRT-LLM), the rest after, as resolved."""
        prefs = self.preferred_producers
        return prefs.index(producer) if producer in prefs else len(prefs)

    def quantizes_at_load(self, method: str) -> bool:
        return method in self.quantize_at_load

    def batch_limits(self, memory_gib: float, gpu_key: str) -> tuple[int, int]:
        """(max concurrent sequences, tokens per step) by default on a device of this much memory."""
        family = gpu_key.split("-")[0]
        row = next((r for r in self.batch_rows if memory_gib >= float(r.get("min_gib", 0))
                    and family not in r.get("not", [])), self.batch_rows[-1])
        return int(row["seqs"]), int(row["batched_tokens"])

    @property
    def data_parallel_flag(self) -> str | None:
        """The flag that runs N replicas inside one server (vLLM --data-parallel-size), None without one."""
        flag = self.data_parallel.get("flag")
        return str(flag) if flag else None

    @property
    def no_data_parallel(self) -> str:
        return str(self.data_parallel.get("none") or f"{self.label} has no data-parallel replicas in one server")

    @property
    def multi_node_backends(self) -> tuple[str, ...]:
        """The ways this engine runs one server over several nodes (engines.yaml multi_node.backends), default
        first; () where it is not planned across nodes."""
        if self.multi_node.get("none"):
            return ()
        backends = tuple(str(b) for b in self.multi_node.get("backends") or ())
        default = self.multi_node.get("default")
        return tuple(sorted(backends, key=lambda b: b != default))

    @property
    def spans_nodes(self) -> bool:
        return bool(self.multi_node_backends)

    @property
    def no_multi_node(self) -> str:
        return str(self.multi_node.get("none") or f"{self.label} is not planned across nodes (engines.yaml has no "
                                                   "multi_node backend for it)")

    @property
    def takes_vllm_flags(self) -> bool:
        """A vllm serve line's own engine (flags.verbatim): the user's flags go to it as given."""
        return bool(self.flags.get("verbatim"))

    @property
    def max_batch(self) -> int:
        return max(int(r["seqs"]) for r in self.batch_rows)


def _choices(raw: Any) -> tuple[KernelChoice, ...]:
    out = []
    for entry in raw or ():
        out.append(KernelChoice(
            kernel=str(entry["kernel"]), min_capability=_opt_str(entry.get("min_capability")),
            max_capability=_opt_str(entry.get("max_capability")), constraints=tuple(entry.get("constraints") or ()),
            rule=str(entry.get("rule") or ""), reason=str(entry.get("reason") or ""),
            source=str(entry.get("source") or "")))
    return tuple(out)


def _requirement(raw: Mapping[str, Any]) -> Requirement:
    def tup(v: Any) -> tuple[Any, ...] | None:
        return None if v is None else tuple(tuple(x) if isinstance(x, list) else x for x in v)

    return Requirement(field=str(raw["field"]), allowed=tup(raw.get("in")), refused=tup(raw.get("not")),
                       reason=str(raw.get("reason") or ""))


def _format(raw: Mapping[str, Any]) -> FormatRule:
    return FormatRule(id=str(raw["id"]), when=dict(raw.get("when") or {}), reject=raw.get("reject"),
                      require=tuple(_requirement(r) for r in raw.get("require") or ()),
                      source=str(raw.get("source") or ""))


def _unsupported(engine: str, raw: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    out = {}
    for pattern, entry in (raw or {}).items():
        if isinstance(entry, Mapping):
            out[str(pattern)] = (str(entry.get("rule") or f"{engine}-no-{pattern}"), str(entry["reason"]))
        else:
            out[str(pattern)] = (f"{engine}-no-{pattern}", str(entry))
    return out


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


def _install(engine: str, raw: Mapping[str, Any], label: str, distributions: tuple[str, ...]) -> Install:
    native = bool(raw.get("native", False))
    return Install(name=str(raw.get("name", engine)), label=str(raw.get("label", label)),
                   program=_opt_str(raw.get("program")), module=_opt_str(raw.get("module")), native=native,
                   distributions=() if native else tuple(raw.get("distributions") or distributions),
                   extra=_opt_str(raw.get("extra")), version_pattern=_opt_str(raw.get("version_pattern")),
                   version_format=str(raw.get("version_format") or "{}"))


def spec_from_data(engine: str, raw: Mapping[str, Any], shared: Mapping[str, Any],
                   method_facts: Mapping[str, Mapping[str, Any]]) -> EngineSpec:
    kv = raw.get("kv_cache") or {}
    batch = raw.get("batch") or {}
    return EngineSpec(
        id=engine, label=str(raw.get("label", engine)), preference=int(raw.get("preference", 9)),
        devices=tuple(raw.get("devices") or ()), tensor_parallel=bool(raw.get("tensor_parallel", False)),
        min_capability=_opt_str(raw.get("min_capability")),
        min_capability_source=str(raw.get("min_capability_source") or ""),
        distributions=tuple(raw.get("distributions") or ()), memory=dict(raw.get("memory") or {}),
        batch_rows=tuple(batch.get("rows") or ({"min_gib": 0, "seqs": 256, "batched_tokens": 2048},)),
        batch=dict(batch), kv_dtypes=tuple(kv.get("dtypes") or ("auto",)), kv_default=str(kv.get("default", "auto")),
        kv_fallback=_opt_str(kv.get("fallback")), kv_requires=dict(kv.get("requires") or {}),
        kv_from_vllm=dict(kv.get("from_vllm") or {}), kv_source=str(kv.get("source") or ""),
        kv_paged=str(kv.get("allocation", "paged")) == "paged",
        quantize_at_load=dict(raw.get("quantize_at_load") or {}),
        no_quantize_at_load=str(raw.get("no_quantize_at_load")
                                or f"{raw.get('label', engine)} does not quantize at load time; it needs a "
                                   "pre-quantized checkpoint"),
        methods={str(m): _choices(k) for m, k in (raw.get("methods") or {}).items()},
        unsupported_methods=_unsupported(engine, raw.get("unsupported_methods") or {}),
        formats=tuple(_format(f) for f in raw.get("formats") or ()),
        preferred_producers=tuple(raw.get("preferred_producers") or ()),
        requires_cpu_flag=dict(raw.get("requires_cpu_flag") or {}), flags=dict(raw.get("flags") or {}),
        calibration_as=str(raw.get("calibration_as") or engine), calibration_note=str(raw.get("calibration_note") or ""),
        data_parallel=dict(raw.get("data_parallel") or {}), multi_node=dict(raw.get("multi_node") or {}),
        installs=tuple(_install(engine, i, str(raw.get("label", engine)), tuple(raw.get("distributions") or ()))
                       for i in raw.get("installs") or ()),
        constraint_params=dict(shared.get("constraints") or {}), device_reasons=dict(shared.get("device_reasons") or {}),
        method_facts=method_facts,
    )


def specs_from_data(data: Mapping[str, Any], method_facts: Mapping[str, Mapping[str, Any]]) -> dict[str, EngineSpec]:
    """engines.yaml (parsed) + methods.yaml `methods` -> engine id -> EngineSpec, in the file's order."""
    return {str(e): spec_from_data(str(e), raw, data, method_facts) for e, raw in (data.get("engines") or {}).items()}
