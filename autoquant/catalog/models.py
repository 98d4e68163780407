"""The bundled offline model catalog (autoquant/data/models.yaml): published config facts by HF id.

Pure: reads packaged data only. Lookup is case-insensitive and knows Meta's renames
(`meta-llama/Meta-Llama-3.1-70B-Instruct` == `meta-llama/Llama-3.1-70B-Instruct`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from autoquant import data
from autoquant.errors import NotFoundError
from autoquant.records import ModelSpec


@dataclass(frozen=True)
class CatalogEntry:
    id: str  # canonical HF id
    ids: tuple[str, ...]  # every id and alias that names this architecture
    config: dict[str, Any]
    published_params: int | None
    published_active_params: int | None
    params_source: str
    config_source: str


def normalise_id(model_id: str) -> str:
    """Case-folded id with Meta's 3.1 rename undone: meta-llama/Meta-Llama-3.1-8B -> meta-llama/llama-3.1-8b."""
    key = model_id.strip().strip("/").lower()
    if key.startswith("meta-llama/meta-llama-3.1-"):
        key = "meta-llama/llama-3.1-" + key.removeprefix("meta-llama/meta-llama-3.1-")
    return key


@functools.lru_cache(maxsize=1)
def _index() -> dict[str, CatalogEntry]:
    index: dict[str, CatalogEntry] = {}
    for raw in data.load("models")["models"]:
        ids = tuple(raw["ids"]) + tuple(raw.get("aliases") or ())
        entry = CatalogEntry(
            id=raw["ids"][0],
            ids=ids,
            config=raw["config"],
            published_params=raw.get("published_params"),
            published_active_params=raw.get("published_active_params"),
            params_source=raw.get("params_source", ""),
            config_source=raw.get("config_source", ""),
        )
        for model_id in ids:
            index[normalise_id(model_id)] = entry
    return index


def find(model_id: str) -> CatalogEntry | None:
    """The catalog entry for an HF id (any case, old or new Meta name), or None."""
    return _index().get(normalise_id(model_id))


def known_ids() -> list[str]:
    """Canonical ids of every catalogued model."""
    return sorted({entry.id for entry in _index().values()}, key=str.lower)


def spec_from_catalog(model_id: str) -> ModelSpec:
    """ModelSpec of a catalogued model (source "catalog"); NotFoundError if it is not catalogued."""
    from autoquant.modelspec import from_hf_config
    from autoquant.quantconfig import parse_quantization

    entry = find(model_id)
    if entry is None:
        raise NotFoundError(f"'{model_id}' is not in the bundled model catalog")
    # The id the user asked for is kept when it names the same architecture (e.g. -Instruct vs base).
    asked = next((i for i in entry.ids if normalise_id(i) == normalise_id(model_id)), entry.id)
    spec = from_hf_config(entry.config, asked, "catalog")
    spec.published_params = entry.published_params
    spec.published_active_params = entry.published_active_params
    spec.quantization = parse_quantization(entry.config)
    return spec
