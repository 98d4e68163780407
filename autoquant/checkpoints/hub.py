"""The Hugging Face Hub boundary: a small protocol, one real client over huggingface_hub, error mapping.

Everything that talks to the Hub goes through `HubClient`, so tests inject a fake that serves recorded
metadata. `HfHubClient` only uses the `list_models` keywords that work from huggingface_hub 0.36 through
2.x (filter, author, search, sort, limit, expand, token; reference/checkpoints.md A2). The token is never
read or printed here: huggingface_hub picks HF_TOKEN up itself; we only say whether one is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from autoquant import jsonio
from autoquant.errors import InputError, NotFoundError
from autoquant.paths import user_path

TRUE = {"1", "true", "yes", "on"}
HF_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")  # a Hub repo id: org/name
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
DEFAULT_ENDPOINT = "https://huggingface.co"


def hf_home(env: Mapping[str, str] | None = None) -> Path:
    """HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface (huggingface_hub/constants.py)."""
    env = os.environ if env is None else env
    if env.get("HF_HOME"):
        return user_path(os.path.expandvars(env["HF_HOME"]))
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    xdg = user_path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else home / ".cache"
    return xdg / "huggingface"


def hf_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The Hub cache, in huggingface_hub's precedence: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE (legacy),
    HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub. The project's only copy."""
    env = os.environ if env is None else env
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(key):
            return user_path(os.path.expandvars(env[key]))
    return hf_home(env) / "hub"


def offline_reason(env: Mapping[str, str] | None = None) -> str | None:
    """Which variable switched the Hub off ("HF_HUB_OFFLINE"), or None. As huggingface_hub reads it: HF_HUB_OFFLINE, and
    only when that is unset, TRANSFORMERS_OFFLINE."""
    env = os.environ if env is None else env
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        value = str(env.get(key) or "").strip()
        if value:
            return key if value.lower() in TRUE else None
    return None


# endpoint -> why it is unreachable ("" when reachable): one TCP probe per endpoint and process, shared by
# the model probe and the checkpoint resolver, so one command probes at most once.
_REACHABILITY: dict[str, str] = {}


def hub_unreachable(endpoint: str | None = None, proxy: bool = False, timeout: float = 5.0) -> str | None:
    """Why the Hub cannot be reached, or None. One quick TCP connect, so an air-gapped node falls back at once
    instead of sitting through huggingface_hub's ~30 s of retries. Behind a proxy the client decides."""
    if proxy:
        return None
    import socket
    from urllib.parse import urlparse

    url = endpoint or DEFAULT_ENDPOINT
    if url not in _REACHABILITY:
        parsed = urlparse(url)
        host = parsed.hostname or "huggingface.co"
        port = parsed.port or (80 if parsed.scheme == "http" else 443)
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            _REACHABILITY[url] = ""
        except OSError as exc:
            _REACHABILITY[url] = f"{host}:{port}: {exc.strerror or type(exc).__name__}"
    return _REACHABILITY[url] or None


@dataclass(frozen=True)
class HubSettings:
    """Environment read once per command (not at import): offline switch, cache location, token presence."""

    offline: bool = False
    token_set: bool = False
    cache_dir: str | None = None
    endpoint: str | None = None
    local_dirs: tuple[str, ...] = ()  # AUTOQUANT_CHECKPOINT_DIRS: extra folders searched for checkpoints
    offline_reason: str = "HF_HUB_OFFLINE"  # which variable switched the Hub off (for messages)
    proxy: bool = False  # HTTPS_PROXY/ALL_PROXY set: no direct reachability probe

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HubSettings:
        env = os.environ if env is None else env
        reason = offline_reason(env)
        token_set = bool(env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN")) or (hf_home(env) / "token").is_file()
        dirs = tuple(d for d in str(env.get("AUTOQUANT_CHECKPOINT_DIRS", "")).split(os.pathsep) if d)
        return cls(offline=reason is not None, token_set=token_set, cache_dir=str(hf_cache_dir(env)),
                   endpoint=env.get("HF_ENDPOINT"), local_dirs=dirs, offline_reason=reason or "HF_HUB_OFFLINE",
                   proxy=any(env.get(k) for k in PROXY_VARS))


@dataclass
class HubRepo:
    """What the resolver needs from a model repo's metadata."""

    id: str
    sha: str | None = None
    tags: list[str] = field(default_factory=list)
    base_models: list[str] = field(default_factory=list)  # card base_model / ModelInfo.base_models
    library_name: str | None = None
    gated: bool | str | None = None
    files: list[tuple[str, int | None]] = field(default_factory=list)  # (path, size in bytes)
    downloads: int | None = None

    def file_names(self) -> list[str]:
        return [p for p, _ in self.files]


@dataclass
class DownloadPlan:
    """What a download would fetch (dry run) or fetched."""

    repo: str
    revision: str | None
    files: list[tuple[str, int | None, bool]]  # (path, size, already cached)
    path: str | None = None  # local snapshot / folder after a real download

    @property
    def total_bytes(self) -> int:
        return sum(s or 0 for _, s, _ in self.files)

    @property
    def to_download_bytes(self) -> int:
        return sum(s or 0 for _, s, cached in self.files if not cached)


class HubUnavailable(InputError):
    """The Hub cannot be reached (offline mode, no network): callers fall back to local sources."""


class GatedRepo(InputError):
    """A gated or private repo this machine has no access to."""

    def __init__(self, repo: str, token_set: bool):
        how = ("the token in HF_TOKEN has no access: accept the licence on the repo page with that account"
               if token_set else "set HF_TOKEN to a token of an account that accepted its licence")
        super().__init__(f"{repo} is gated (https://huggingface.co/{repo}): {how}")
        self.repo = repo


class RepoNotFound(NotFoundError):
    def __init__(self, repo: str, token_set: bool):
        hint = "" if token_set else " (if it is private or gated, set HF_TOKEN)"
        super().__init__(f"repository {repo} not found on the Hub{hint}")
        self.repo = repo


@runtime_checkable
class HubClient(Protocol):
    """The Hub as the resolver sees it. Implementations raise HubUnavailable, GatedRepo or RepoNotFound."""

    def search(self, *, filter: str | None = None, author: str | None = None, search: str | None = None,
               limit: int = 100) -> list[HubRepo]: ...

    def repo_info(self, repo: str, revision: str | None = None) -> HubRepo: ...

    def read_json(self, repo: str, filename: str, revision: str | None = None) -> dict[str, Any] | None:
        """A small JSON file of the repo, or None when the repo has no such file."""
        ...

    def gguf_header(self, repo: str, filename: str, revision: str | None = None) -> dict[str, Any] | None:
        """The GGUF key/value header of one file (read without the weights), or None if unreadable."""
        ...

    def download(self, repo: str, *, revision: str | None = None, allow_patterns: list[str] | None = None,
                 local_dir: str | None = None, dry_run: bool = False) -> DownloadPlan: ...


# ---------------------------------------------------------------------------------------------------------


_NETWORK_ERROR_NAMES = {
    "OfflineModeIsEnabled", "ConnectionError", "ConnectError", "ConnectTimeout", "ReadTimeout", "Timeout",
    "TransportError", "NetworkError", "TimeoutException", "ProxyError", "SSLError",
}


def _is_network_error(exc: BaseException) -> bool:
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return any(cls.__name__ in _NETWORK_ERROR_NAMES for cls in type(exc).__mro__)


def map_hub_error(exc: BaseException, repo: str, token_set: bool) -> BaseException | None:
    """huggingface_hub / transport exceptions -> our errors; None when not a Hub error we know."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "GatedRepoError" in names:
        return GatedRepo(repo, token_set)
    if "RepositoryNotFoundError" in names:
        return RepoNotFound(repo, token_set)
    if "RevisionNotFoundError" in names:
        return NotFoundError(f"{repo}: revision not found on the Hub")
    if "LocalEntryNotFoundError" in names or _is_network_error(exc):
        return HubUnavailable(f"the Hugging Face Hub is not reachable ({type(exc).__name__})")
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return GatedRepo(repo, token_set)
    return None


class HfHubClient:
    """HubClient over huggingface_hub (imported lazily, on first use)."""

    def __init__(self, settings: HubSettings | None = None, progress: bool = True):
        self.settings = settings or HubSettings.from_env()
        self.progress = progress
        self._api: Any = None

    def _hf(self) -> Any:
        if self._api is None:
            from huggingface_hub import HfApi

            self._api = HfApi(endpoint=self.settings.endpoint) if self.settings.endpoint else HfApi()
        return self._api

    def _check_reachable(self) -> None:
        why = hub_unreachable(self.settings.endpoint, self.settings.proxy)
        if why:
            raise HubUnavailable(f"the Hugging Face Hub is not reachable ({why})")

    def _call(self, repo: str, fn: Callable[[], Any]) -> Any:
        if self.settings.offline:
            raise HubUnavailable(f"{self.settings.offline_reason} is set")
        self._check_reachable()
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - mapped below, re-raised if unknown
            mapped = map_hub_error(exc, repo, self.settings.token_set)
            if mapped is None:
                raise
            raise mapped from None

    def search(self, *, filter: str | None = None, author: str | None = None, search: str | None = None,
               limit: int = 100) -> list[HubRepo]:
        kwargs: dict[str, Any] = {"limit": limit, "sort": "downloads", "expand": ["tags", "library_name", "downloads"]}
        if filter:
            kwargs["filter"] = filter
        if author:
            kwargs["author"] = author
        if search:
            kwargs["search"] = search
        models = self._call(author or filter or "", lambda: list(self._hf().list_models(**kwargs)))
        return [_to_repo(m) for m in models]

    def repo_info(self, repo: str, revision: str | None = None) -> HubRepo:
        info = self._call(repo, lambda: self._hf().model_info(repo, revision=revision, files_metadata=True))
        return _to_repo(info)

    def read_json(self, repo: str, filename: str, revision: str | None = None) -> dict[str, Any] | None:
        from huggingface_hub import hf_hub_download

        def fetch() -> Any:
            try:
                return hf_hub_download(repo, filename, revision=revision)
            except Exception as exc:  # noqa: BLE001
                names = {c.__name__ for c in type(exc).__mro__}
                if "EntryNotFoundError" in names and "LocalEntryNotFoundError" not in names:
                    return None
                raise

        path = self._call(repo, fetch)
        if path is None:
            return None
        try:
            return jsonio.load(path, f"{repo}/{filename}")
        except OSError as exc:
            raise InputError(f"{repo}/{filename} cannot be read: {exc.strerror or exc}") from None

    def gguf_header(self, repo: str, filename: str, revision: str | None = None) -> dict[str, Any] | None:
        # HfFileSystem reads by HTTP range: only the header blocks are fetched, never the tensors.
        from autoquant.gguf import GGUFError, read_header

        def read() -> Any:
            from huggingface_hub import HfFileSystem

            fs = HfFileSystem()
            with fs.open(f"{repo}/{filename}", "rb", revision=revision, block_size=1 << 20) as fh:
                return read_header(fh).meta

        try:
            return self._call(repo, read)
        except GGUFError:
            return None

    def download(self, repo: str, *, revision: str | None = None, allow_patterns: list[str] | None = None,
                 local_dir: str | None = None, dry_run: bool = False) -> DownloadPlan:
        import inspect

        from huggingface_hub import snapshot_download

        kwargs: dict[str, Any] = {"revision": revision, "allow_patterns": allow_patterns}
        if local_dir:
            kwargs["local_dir"] = local_dir
        if dry_run:
            if "dry_run" in inspect.signature(snapshot_download).parameters:
                infos = self._call(repo, lambda: snapshot_download(repo, dry_run=True, **kwargs))
                files = [(i.filename, i.file_size, bool(i.is_cached)) for i in infos]
                return DownloadPlan(repo=repo, revision=revision, files=files)
            # huggingface_hub < 1.0 has no dry run: size from the file listing instead.
            info = self.repo_info(repo, revision)
            files = [(p, s, False) for p, s in info.files if _matches(p, allow_patterns)]
            return DownloadPlan(repo=repo, revision=revision, files=files)
        # snapshot_download resumes partial files and shows a tqdm progress bar per file.
        path = self._call(repo, lambda: snapshot_download(repo, **kwargs))
        info = self.repo_info(repo, revision)
        files = [(p, s, True) for p, s in info.files if _matches(p, allow_patterns)]
        return DownloadPlan(repo=repo, revision=revision, files=files, path=str(path))


def _matches(path: str, patterns: list[str] | None) -> bool:
    import fnmatch

    return not patterns or any(fnmatch.fnmatch(path, p) for p in patterns)


def _to_repo(m: Any) -> HubRepo:
    tags = list(getattr(m, "tags", None) or [])
    bases = list(getattr(m, "base_models", None) or [])
    card = getattr(m, "card_data", None) or getattr(m, "cardData", None)
    if not bases and card is not None:
        value = card.get("base_model") if hasattr(card, "get") else None
        bases = [value] if isinstance(value, str) else list(value or [])
    if not bases:
        bases = [t.split(":", 2)[-1] for t in tags if t.startswith("base_model:quantized:")]
    files = []
    for s in getattr(m, "siblings", None) or []:
        size = getattr(s, "size", None)
        lfs = getattr(s, "lfs", None)
        if size is None and lfs is not None:
            size = getattr(lfs, "size", None) if not isinstance(lfs, dict) else lfs.get("size")
        files.append((s.rfilename, size))
    return HubRepo(id=m.id, sha=getattr(m, "sha", None), tags=tags, base_models=bases,
                   library_name=getattr(m, "library_name", None), gated=getattr(m, "gated", None),
                   files=files, downloads=getattr(m, "downloads", None))
