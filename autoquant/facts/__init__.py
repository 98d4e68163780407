"""The facts the core reads, as one immutable object built from autoquant/data/*.yaml.

`load_facts()` is the only place the planner's and the compatibility rules' data files are read; the
planner, the estimators and the checkpoint verifier take a `Facts` (tests build their own). `default_facts()`
memoizes the packaged one for the command-line edge.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autoquant.engines.spec import EngineSpec, specs_from_data


@dataclass(frozen=True, eq=False)  # compared (and hashed) by identity: one object per set of data files
class Facts:
    engines: Mapping[str, EngineSpec]
    methods: Mapping[str, Mapping[str, Any]]
    kv_dtype_bytes: Mapping[str, float]
    overheads: Mapping[str, Any] = field(default_factory=dict)
    prices: Mapping[str, float] = field(default_factory=dict)
    failure_patterns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    quality: Mapping[str, Any] = field(default_factory=dict)  # quality.yaml: perplexity deltas, use cases

    @property
    def engine_ids(self) -> tuple[str, ...]:
        return tuple(self.engines)

    def engine(self, engine_id: str) -> EngineSpec:
        try:
            return self.engines[engine_id]
        except KeyError:
            raise KeyError(f"unknown engine {engine_id!r}; choose one of {', '.join(self.engines)}") from None


def facts_from_data(engines: Mapping[str, Any], methods: Mapping[str, Any], overheads: Mapping[str, Any] | None = None,
                    pricing: Mapping[str, Any] | None = None, quality: Mapping[str, Any] | None = None) -> Facts:
    """Pure: parsed YAML documents -> Facts."""
    method_facts = dict(methods.get("methods") or {})
    prices: dict[str, float] = {}
    for key, entry in ((pricing or {}).get("prices") or {}).items():
        if isinstance(entry, Mapping) and isinstance(entry.get("usd_per_hour"), (int, float)):
            prices[str(key)] = float(entry["usd_per_hour"])
    return Facts(
        engines=specs_from_data(engines, method_facts),
        methods=method_facts,
        kv_dtype_bytes={k: float(v) for k, v in (methods.get("kv_cache_dtypes") or {}).items()},
        overheads=dict(overheads or {}),
        prices=prices,
        failure_patterns={k: tuple(v) for k, v in (engines.get("failure_patterns") or {}).items()},
        quality=dict(quality or {}),
    )


def load_facts() -> Facts:
    """Facts from the packaged data files."""
    from autoquant.data import load

    def safe(name: str) -> Any:
        try:
            return load(name) or {}
        except FileNotFoundError:
            return {}

    return facts_from_data(safe("engines"), safe("methods"), safe("overheads"), safe("pricing"), safe("quality"))


@functools.cache
def default_facts() -> Facts:
    return load_facts()


def option_list_names() -> dict[str, list[str]]:
    """engine -> the versions of its option lists shipped in autoquant/data/engine_options/, oldest first."""
    from importlib import resources

    out: dict[str, list[str]] = {}
    folder = resources.files("autoquant.data").joinpath("engine_options")
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".yaml"):
            engine, _, version = name[:-5].partition("-")
            out.setdefault(engine, []).append(version)
    return {e: sorted(v, key=_version_key) for e, v in out.items()}


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in text.replace("rc", ".").split("."))


@functools.cache
def option_data(engine: str, version: str | None = None) -> dict[str, Any]:
    """The parsed engine_options/<engine>-<version>.yaml: the newest shipped list at or below `version`
    (the oldest when `version` is older than all; the newest when `version` is None)."""
    from autoquant.data import load

    versions = option_list_names().get(engine)
    if not versions:
        return {}
    pick = versions[-1]
    if version:
        below = [v for v in versions if _version_key(v) <= _version_key(version)]
        pick = below[-1] if below else versions[0]
    return dict(load(f"engine_options/{engine}-{pick}") or {})
