"""Edge: describe a model from wherever it can be found -> `ModelSpec`.

Resolution order for `load_model(ref)`:
  1. a GGUF file path (header read with gguf.GGUFReader),
  2. a local directory (config.json + quantization files + safetensors sizes),
  3. the local Hugging Face cache (HF_HUB_CACHE / HF_HOME; models--org--name/snapshots/<rev>/),
  4. the Hub, unless offline (config.json, quantization json files and the file list: never weights),
  5. the bundled catalog (autoquant/data/models.yaml).
Offline (HF_HUB_OFFLINE=1 or offline=True) skips the Hub; a network failure falls through to the
catalog. The Hub client is injected (`hub=`) so tests run against recorded responses.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
from pathlib import Path
from typing import Any, Protocol

from autoquant.catalog import models as catalog
from autoquant.errors import InputError, NotFoundError
from autoquant.modelspec import from_hf_config
from autoquant.quantconfig import parse_quantization
from autoquant.records import ModelSpec

from .gguf_file import is_gguf, read_gguf

QUANT_FILES = ("hf_quant_config.json", "quantize_config.json", "quant_config.json")
INDEX_FILE = "model.safetensors.index.json"
HF_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
TRUTHY = ("1", "true", "yes", "on")


class HubClient(Protocol):
    """The two huggingface_hub.HfApi calls the probe makes (config files and the file list)."""

    def list_repo_files(self, repo_id: str, *, revision: str | None = None) -> list[str]: ...

    def hf_hub_download(self, repo_id: str, filename: str, *, revision: str | None = None) -> str: ...


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
    path = Path(ref).expanduser()
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

    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUTHY
    unreachable = None if offline or hub is not None else _hub_unreachable()
    if unreachable:
        tried.append(f"the Hub ({unreachable})")
    elif not offline:
        try:
            return _with_catalog_facts(_from_hub(ref, hub or _default_hub(), revision))
        except Exception as exc:
            # Network down: try the catalog. Gated/missing repo: the catalog may still know it;
            # if not, the Hub's own error is the clearest message.
            known = catalog.find(ref) is not None
            if not (_is_network_error(exc) or (known and _is_fallback_error(exc))):
                raise
            tried.append(f"the Hub ({_short(exc)})")
    else:
        tried.append("the Hub (skipped: offline)")

    if catalog.find(ref) is not None:
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
        total = (read_json(index).get("metadata") or {}).get("total_size")
        if isinstance(total, int) and total > 0:  # some tools write 0
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
    try:
        header = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed safetensors header: {exc.msg}") from exc
    total = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        total += end - start
    return total


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------------------------- cache


def hub_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub (huggingface_hub's own order)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _cached_snapshot(repo_id: str, cache_dir: str | Path | None, revision: str | None) -> Path | None:
    """The cached snapshot directory holding config.json, if the repo is in the cache."""
    root = hub_cache_dir(cache_dir)
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=str(root), revision=revision)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found).parent
    except Exception:  # an odd cache layout: fall back to scanning it ourselves
        pass
    repo_dir = root / ("models--" + repo_id.replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    if not snapshots.is_dir():
        return None
    ref_file = repo_dir / "refs" / (revision or "main")
    if ref_file.is_file():
        candidate = snapshots / ref_file.read_text().strip()
        if (candidate / "config.json").is_file():
            return candidate
    with_config = [p for p in snapshots.iterdir() if (p / "config.json").is_file()]
    return max(with_config, key=lambda p: p.stat().st_mtime) if with_config else None


# ---------------------------------------------------------------------------------------------- hub


def _default_hub() -> HubClient:
    from huggingface_hub import HfApi

    return HfApi()


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hub cannot be reached, or None. One quick TCP connect, so an air-gapped node falls
    back to the catalog at once instead of sitting through huggingface_hub's retry backoff."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # a proxy decides; let the client try
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"unreachable: {host}:{port}: {exc.strerror or type(exc).__name__}"


def _from_hub(repo_id: str, hub: HubClient, revision: str | None) -> ModelSpec:
    files = list(hub.list_repo_files(repo_id, revision=revision))
    if "config.json" not in files:
        ggufs = [f for f in files if f.lower().endswith(".gguf")]
        if ggufs:
            raise InputError(f"{repo_id} is a GGUF repo ({len(ggufs)} .gguf files); download one and pass its path")
        raise InputError(f"{repo_id} on the Hub has no config.json")

    def fetch(name: str) -> dict[str, Any]:
        return read_json(Path(hub.hf_hub_download(repo_id, name, revision=revision)))

    config = fetch("config.json")
    spec = from_hf_config(config, repo_id, "hub")
    extra = {name: fetch(name) for name in QUANT_FILES if name in files}
    spec.quantization = parse_quantization(config, extra.get("hf_quant_config.json"),
                                           extra.get("quantize_config.json"), extra.get("quant_config.json"))
    if INDEX_FILE in files:
        total = (fetch(INDEX_FILE).get("metadata") or {}).get("total_size")
        spec.checkpoint_bytes = total if isinstance(total, int) and total > 0 else None
    return spec


def _with_catalog_facts(spec: ModelSpec) -> ModelSpec:
    """Attach the publisher's figures when the catalog knows this id (same architecture only)."""
    entry = catalog.find(spec.id)
    if entry is not None and spec.published_params is None:
        known = catalog.spec_from_catalog(spec.id)
        if known.num_layers == spec.num_layers and known.hidden_size == spec.hidden_size:
            spec.published_params = known.published_params
            spec.published_active_params = known.published_active_params
    return spec


NETWORK_ERROR_NAMES = frozenset({
    "ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "OfflineModeIsEnabled",
    "LocalEntryNotFoundError", "ConnectError", "TimeoutException", "NetworkError", "ProxyError", "SSLError",
})
# Errors after which the catalog may answer instead: the network, and gated/missing repos it knows.
FALLBACK_ERROR_NAMES = NETWORK_ERROR_NAMES | {"GatedRepoError", "RepositoryNotFoundError", "HfHubHTTPError"}


def _error_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _is_network_error(exc: BaseException) -> bool:
    names = _error_names(exc)
    if names & NETWORK_ERROR_NAMES:
        return True
    # Socket-level failures are OSErrors; the Hub's HTTP answers (404, 401...) are OSErrors too, but are not
    # network failures, and a missing local file is not one either.
    return isinstance(exc, OSError) and "HfHubHTTPError" not in names and not isinstance(exc, FileNotFoundError)


def _is_fallback_error(exc: BaseException) -> bool:
    return _is_network_error(exc) or bool(_error_names(exc) & FALLBACK_ERROR_NAMES)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:120]}" if text else type(exc).__name__


def _looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~", ".\\")) or ref.count("/") > 1 or "\\" in ref


__all__ = ["HubClient", "checkpoint_bytes", "hub_cache_dir", "is_gguf", "load_model", "read_gguf", "read_json"]
