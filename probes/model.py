"""Edge: describe a model from wherever it can be found -> `ModelSpec`.

Resolution order for `load_model(ref)`:
  1. a GGUF file path (header and tensor infos read by autoquant.gguf.read_header),
  2. a local directory (config.json + quantization files + safetensors sizes),
  3. the local Hugging Face cache (checkpoints.hub.hf_cache_dir; scanned by checkpoints.sources.scan_cache),
  4. the Hub, unless offline (config.json, quantization json files and the file list: never weights),
  5. the bundled catalog (autoquant/data/models.yaml).
Offline (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, or offline=True) skips the Hub; an unreachable Hub (one
memoised probe per process, checkpoints.hub.hub_unreachable) falls through to the catalog. The Hub client
(checkpoints.hub.HubClient) is injected (`hub=`) so tests run against recorded responses.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from autoquant import jsonio
from autoquant.catalog import models as catalog
from autoquant.checkpoints.hub import (
    HF_ID,
    GatedRepo,
    HubClient,
    HubSettings,
    HubUnavailable,
    RepoNotFound,
    hf_cache_dir,
    map_hub_error,
)
from autoquant.errors import AutoquantError, InputError, NotFoundError, shown
from autoquant.gguf import is_gguf
from autoquant.modelspec import from_hf_config
from autoquant.paths import user_path
from autoquant.quantconfig import parse_quantization
from autoquant.records import ModelSpec

from .gguf_file import read_gguf

QUANT_FILES = ("hf_quant_config.json", "quantize_config.json", "quant_config.json")
INDEX_FILE = "model.safetensors.index.json"


def load_model(
    ref: str,
    *,
    offline: bool | None = None,
    hub: HubClient | None = None,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
) -> ModelSpec:
    """ModelSpec of a GGUF file, local directory, cached or Hub repo, or catalogued model id."""
    if not isinstance(ref, str) or not ref.strip():
        raise InputError("give a model: a Hugging Face id (org/name), a local directory, or a .gguf file")
    ref = ref.strip()
    path = user_path(ref)
    if path.is_file():
        return read_gguf(path)  # non-GGUF files get a clear "not a GGUF file" error
    if path.is_dir():
        return _from_directory(path, ref, "local")
    if ref.lower().endswith(".gguf"):
        raise InputError(f"no such GGUF file: {ref}")
    if _looks_like_path(ref):
        raise InputError(f"no such file or directory: {ref}")
    if not HF_ID.match(ref):
        raise InputError(f"'{ref}' is neither an existing path nor a Hugging Face id of the form org/name")

    tried = ["local path (none)"]
    snapshot = _cached_snapshot(ref, cache_dir, revision)
    if snapshot is not None:
        return _with_catalog_facts(_from_directory(snapshot, ref, "cache"))
    tried.append("Hugging Face cache")

    settings = HubSettings.from_env()
    if offline is None:
        offline = settings.offline
    known = catalog.find(ref)
    if offline:
        tried.append("the Hub (skipped: offline)")
    else:
        try:
            if hub is None:
                from autoquant.checkpoints.hub import HfHubClient

                hub = HfHubClient(settings)  # its one reachability probe is shared with the resolver
            return _with_catalog_facts(_from_hub(ref, hub, revision), known)
        except Exception as exc:
            # Network down: try the catalog. Gated/missing repo: the catalog may still know it;
            # if not, the Hub's own error is the clearest message.
            mapped = exc if isinstance(exc, AutoquantError) else map_hub_error(exc, ref, settings.token_set)
            hub_said_no = isinstance(mapped, (GatedRepo, RepoNotFound)) or _is_http_error(exc)
            if not (isinstance(mapped, HubUnavailable) or (known is not None and hub_said_no)):
                raise
            tried.append(f"the Hub ({_short(exc)})")

    if known is not None:
        return catalog.spec_from_catalog(ref)
    tried.append("the bundled catalog")
    raise NotFoundError(
        f"model '{ref}' not found; tried {', '.join(tried)}. Download it (huggingface-cli download {ref} "
        f"config.json) or pass a local directory or .gguf file"
    )


# ---------------------------------------------------------------------------------------------- local


def _from_directory(directory: Path, model_id: str, source: str) -> ModelSpec:
    config_path = directory / "config.json"
    if not config_path.is_file():
        ggufs = sorted(directory.glob("*.gguf"))
        if len(ggufs) == 1:
            return read_gguf(ggufs[0])
        if ggufs:
            names = ", ".join(p.name for p in ggufs[:4])
            raise InputError(f"{directory} holds several GGUF files ({names}); pass one file")
        raise InputError(f"{directory} has no config.json (not a Hugging Face model directory)")
    config = read_json(config_path)
    spec = from_hf_config(config, model_id, source)
    extra = {name: read_json(directory / name) for name in QUANT_FILES if (directory / name).is_file()}
    spec.quantization = parse_quantization(config, extra.get("hf_quant_config.json"),
                                           extra.get("quantize_config.json"), extra.get("quant_config.json"))
    spec.checkpoint_bytes = checkpoint_bytes(directory)
    return spec


def checkpoint_bytes(directory: Path) -> int | None:
    """Bytes of tensor data: the index's metadata.total_size, else the safetensors headers, else file sizes."""
    index = directory / INDEX_FILE
    if index.is_file():
        total = index_total_size(read_json(index))
        if total:
            return total
    shards = sorted(directory.glob("*.safetensors"))
    if shards:
        return sum(safetensors_data_bytes(p) for p in shards)
    bins = sorted(directory.glob("*.bin"))
    return sum(p.stat().st_size for p in bins) or None


def safetensors_data_bytes(path: Path) -> int:
    """Sum of tensor sizes from a safetensors header (8-byte little-endian length, then JSON)."""
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise InputError(f"{path}: truncated safetensors file (no header length)")
        (length,) = struct.unpack("<Q", head)
        if length > 100 * 1024 * 1024:
            raise InputError(f"{path}: implausible safetensors header length {length}")
        raw = fh.read(length)
    if len(raw) != length:
        raise InputError(f"{path}: truncated safetensors header")
    header = jsonio.loads(raw, f"{path}: safetensors header")
    if not isinstance(header, dict):
        raise InputError(f"{path}: malformed safetensors header: not a JSON object")
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(
                isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)) or offsets[1] < offsets[0]:
            raise InputError(f"{path}: malformed safetensors header: tensor {shown(name)} has data_offsets "
                             f"{shown(offsets)} (two byte offsets, start <= end)")
        total += offsets[1] - offsets[0]
    return total


def index_total_size(index: Any) -> int | None:
    """metadata.total_size of a model.safetensors.index.json; None when absent, 0 or malformed (some tools
    write 0, or a list for metadata): the size is then taken another way."""
    meta = index.get("metadata") if isinstance(index, dict) else None
    total = meta.get("total_size") if isinstance(meta, dict) else None
    return total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else None


def read_json(path: Path) -> dict[str, Any]:
    data = jsonio.load(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------------------------- cache


def hub_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """`cache_dir` when given, else the Hub cache (checkpoints.hub.hf_cache_dir: huggingface_hub's order)."""
    return user_path(cache_dir) if cache_dir else hf_cache_dir()


def _cached_snapshot(repo_id: str, cache_dir: str | Path | None, revision: str | None) -> Path | None:
    """The cached snapshot directory holding config.json, if the repo is in the cache (sources.scan_cache)."""
    from autoquant.checkpoints.sources import scan_cache

    key = repo_id.lower()
    for found in scan_cache(str(hub_cache_dir(cache_dir)), lambda r: r.lower() == key, revision):
        if found.local_path and (Path(found.local_path) / "config.json").is_file():
            return Path(found.local_path)
    return None


# ---------------------------------------------------------------------------------------------- hub


def _from_hub(repo_id: str, hub: HubClient, revision: str | None) -> ModelSpec:
    files = hub.repo_info(repo_id, revision).file_names()
    if "config.json" not in files:
        ggufs = [f for f in files if f.lower().endswith(".gguf")]
        if ggufs:
            raise InputError(f"{repo_id} is a GGUF repo ({len(ggufs)} .gguf files); download one and pass its path")
        raise InputError(f"{repo_id} on the Hub has no config.json")

    def fetch(name: str) -> dict[str, Any]:
        data = hub.read_json(repo_id, name, revision)
        if not isinstance(data, dict):
            raise InputError(f"{repo_id}/{name}: expected a JSON object on the Hub")
        return data

    config = fetch("config.json")
    spec = from_hf_config(config, repo_id, "hub")
    extra = {name: fetch(name) for name in QUANT_FILES if name in files}
    spec.quantization = parse_quantization(config, extra.get("hf_quant_config.json"),
                                           extra.get("quantize_config.json"), extra.get("quant_config.json"))
    if INDEX_FILE in files:
        spec.checkpoint_bytes = index_total_size(fetch(INDEX_FILE))
    return spec


def _with_catalog_facts(spec: ModelSpec, entry: catalog.CatalogEntry | None = None) -> ModelSpec:
    """Attach the publisher's figures when the catalog knows this id (same architecture only)."""
    entry = entry or catalog.find(spec.id)
    if entry is not None and spec.published_params is None and catalog.same_shape(entry, spec):
        spec.published_params = entry.published_params
        spec.published_active_params = entry.published_active_params
    return spec


def _is_http_error(exc: BaseException) -> bool:
    return any(cls.__name__ == "HfHubHTTPError" for cls in type(exc).__mro__)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:120]}" if text else type(exc).__name__


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~", ".\\")) or ref.count("/") > 1 or "\\" in ref


__all__ = ["HubClient", "checkpoint_bytes", "hub_cache_dir", "is_gguf", "load_model", "read_gguf", "read_json"]
