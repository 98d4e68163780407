"""The bundled registry (autoquant/data/checkpoints.yaml): known quantized derivatives, usable offline.

Pure: reads the data file once and answers "which entries are derivatives of this base", with repo
renames (autoquant/data/models.yaml `renames`) and publisher equivalences (neuralmagic == RedHatAI) applied.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from autoquant import data
from autoquant.quantconfig import gguf_quant_spec
from autoquant.records import QuantSpec

INT_METHODS = frozenset({"awq-int4", "gptq-int4", "gptq-int8", "int8-sq"})
# The tool a format is written by, when the format alone says so (what autoquant.quantconfig records when it
# reads the real config): the planner orders checkpoints per engine by it (engines.yaml preferred_producers).
PRODUCER_OF_FORMAT = {"modelopt": "modelopt", "compressed-tensors": "llm-compressor", "awq": "autoawq"}


@dataclass(frozen=True)
class RegistryEntry:
    repo: str
    base: str
    method: str  # a method id; gguf repos are expanded into one entry per type ("gguf-q4_k_m")
    quant: dict[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    revision: str | None = None
    status: str = "seen"  # seen | pattern
    evidence: str = ""
    intermediate_size: int | None = None  # the repo's own MLP width where it differs from the base (padded)

    @property
    def facts_complete(self) -> bool:
        """Enough published facts to plan with, without reading the real config."""
        if self.method.startswith("gguf-"):
            return bool(self.files)
        bits = self.quant.get("bits")
        if bits is None:
            return False
        return not (self.method in INT_METHODS and bits == 4 and self.quant.get("group_size") is None)

    @property
    def usable_offline(self) -> bool:
        return self.status == "seen" and self.facts_complete

    def quant_spec(self) -> QuantSpec:
        """The published facts as a QuantSpec (what the planner sizes with when the config is unreadable)."""
        q = self.quant
        if self.method.startswith("gguf-"):
            return gguf_quant_spec(self.method.removeprefix("gguf-"))
        zero_point = q.get("zero_point")
        sym = q.get("sym")
        if sym is None and zero_point is not None:
            sym = not zero_point
        float_w = self.method in ("fp8", "fp8-weight-only", "nvfp4")
        return QuantSpec(
            method=self.method,
            quant_method=str(q.get("quant_method") or "unknown"),
            weight_bits=float(q.get("bits") or 0),
            weight_type="float" if float_w else "int",
            act_bits=q.get("act_bits"),
            group_size=q.get("group_size"),
            symmetric=sym,
            zero_point=zero_point,
            act_order=q.get("act_order"),
            dynamic_act=q.get("dynamic"),
            weight_block_size=q.get("weight_block_size"),
            kv_cache=q.get("kv_cache"),
            format=q.get("format"),
            producer=q.get("producer") or PRODUCER_OF_FORMAT.get(str(q.get("quant_method") or "")),
        )


@dataclass(frozen=True)
class PackageEntry:
    package: str  # the distribution name (pip install ...)
    module: str  # the import name
    bases: tuple[str, ...]
    method: str
    file: str
    upstream: str | None = None
    evidence: str = ""


@functools.lru_cache(maxsize=1)
def _raw() -> dict[str, Any]:
    return data.load("checkpoints") or {}


@functools.lru_cache(maxsize=1)
def entries() -> tuple[RegistryEntry, ...]:
    out: list[RegistryEntry] = []
    for row in _raw().get("checkpoints", []):
        common = dict(repo=row["repo"], base=row["base"], revision=row.get("revision"),
                      status=row.get("status", "seen"), evidence=row.get("evidence", ""),
                      intermediate_size=row.get("intermediate_size"))
        if row["method"] == "gguf":
            for gtype, spec in (row.get("files") or {}).items():
                status = "seen" if common["status"] == "seen" and spec.get("status", "seen") == "seen" else "pattern"
                out.append(RegistryEntry(**{**common, "status": status}, method=f"gguf-{gtype.lower()}",
                                         files=tuple(spec.get("files") or ())))
        else:
            out.append(RegistryEntry(**common, method=row["method"], quant=dict(row.get("quant") or {})))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def packages() -> tuple[PackageEntry, ...]:
    return tuple(
        PackageEntry(package=p["package"], module=p["module"], bases=tuple(p["bases"]), method=p["method"],
                     file=p["file"], upstream=p.get("upstream"), evidence=p.get("evidence", ""))
        for p in _raw().get("packages", [])
    )


@functools.lru_cache(maxsize=256)
def aliases(model_id: str) -> tuple[str, ...]:
    """The id itself and every other id of the same repo (models.yaml `renames`), requested id first."""
    from autoquant.catalog.models import rename_group

    key = model_id.lower()
    return (model_id, *(g for g in rename_group(model_id) if g.lower() != key))


def publisher_key(repo: str) -> str:
    """Case-insensitive identity of a repo, with equivalent orgs folded (neuralmagic -> redhatai)."""
    org, _, name = repo.partition("/")
    org_l = org.lower()
    for group in (_raw().get("publishers") or {}).get("same", []):
        lowered = [g.lower() for g in group]
        if org_l in lowered:
            org_l = lowered[-1]
    return f"{org_l}/{name.lower()}"


def search_publishers() -> tuple[str, ...]:
    return tuple((_raw().get("publishers") or {}).get("search", []))


def for_base(model_id: str, methods: Iterable[str] | None = None) -> list[RegistryEntry]:
    wanted = set(methods) if methods is not None else None
    names = {a.lower() for a in aliases(model_id)}
    return [e for e in entries() if e.base.lower() in names and (wanted is None or e.method in wanted)]


def packages_for_base(model_id: str) -> list[PackageEntry]:
    names = {a.lower() for a in aliases(model_id)}
    return [p for p in packages() if names & {b.lower() for b in p.bases}]
