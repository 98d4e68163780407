"""The bundled offline model catalog (autoquant/data/models.yaml): published config facts by HF id.

Pure: reads packaged data only. Lookup is case-insensitive and knows repo renames from the file's
`renames` table (`meta-llama/Meta-Llama-3.1-70B-Instruct` == `meta-llama/Llama-3.1-70B-Instruct`), the
project's one alias table (checkpoints.registry.aliases reads it through `rename_group`).
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
    """Case-folded id, surrounding slashes and blanks dropped (renames are looked up in `renames`)."""
    return model_id.strip().strip("/").lower()


@functools.lru_cache(maxsize=1)
def _renames() -> dict[str, tuple[str, ...]]:
    """normalised id -> every id of that repo, canonical first (models.yaml `renames`)."""
    out: dict[str, tuple[str, ...]] = {}
    for row in data.load("models").get("renames") or ():
        group = (str(row["canonical"]), *(str(a) for a in row.get("aliases") or ()))
        for name in group:
            out[normalise_id(name)] = group
    return out


def rename_group(model_id: str) -> tuple[str, ...]:
    """Every id of the repo `model_id` names, canonical first; (model_id,) when it was never renamed."""
    return _renames().get(normalise_id(model_id), (model_id,))


def canonical_id(model_id: str) -> str:
    """The id the repo has now (renames' `canonical`), else `model_id` unchanged."""
    group = _renames().get(normalise_id(model_id))
    return group[0] if group else model_id


@functools.lru_cache(maxsize=1)
def _index() -> dict[str, CatalogEntry]:
    index: dict[str, CatalogEntry] = {}
    for raw in data.load("models")["models"]:
        ids = tuple(dict.fromkeys(a for i in raw["ids"] for a in (i, *rename_group(i))))
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
    """The catalog entry for an HF id (any case, any id in `renames`), or None."""
    return _index().get(normalise_id(model_id))


def same_shape(entry: CatalogEntry, spec: ModelSpec) -> bool:
    """Whether a probed spec has the catalogued architecture's layer count and width (config keys, no parse)."""
    config = entry.config
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    return (text.get("num_hidden_layers") == spec.num_layers and text.get("hidden_size") == spec.hidden_size)


@functools.lru_cache(maxsize=1)
def _gguf_architectures() -> dict[str, tuple[str, ...]]:
    return {str(k): tuple(str(t) for t in v) for k, v in (data.load("models").get("gguf_architectures") or {}).items()}


def gguf_architecture(model_type: str) -> str:
    """The GGUF `general.architecture` llama.cpp writes for a Hugging Face model_type (cohere -> command-r)."""
    key = model_type.lower()
    return next((arch for arch, types in _gguf_architectures().items() if key in types), key)


def model_type_of_gguf(architecture: str) -> str:
    """The HF model_type a GGUF architecture stands for (command-r -> cohere); the name itself when equal."""
    return (_gguf_architectures().get(architecture) or (architecture,))[0]


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
    # A renamed repo's old id is reported under its current one.
    key = normalise_id(canonical_id(model_id))
    asked = next((i for i in entry.ids if normalise_id(i) == key), entry.id)
    spec = from_hf_config(entry.config, asked, "catalog")
    spec.published_params = entry.published_params
    spec.published_active_params = entry.published_active_params
    spec.quantization = parse_quantization(entry.config)
    return spec
