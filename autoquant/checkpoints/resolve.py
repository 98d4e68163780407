"""From a base model and a set of methods to verified checkpoints, one per method.

Sources, in order (the first verified one of the best source wins):
  explicit (`--checkpoint` path or repo: the only candidate when given) > local folders/GGUF files >
  the local HF cache > installed Python packages shipping a GGUF > the Hub (base_model:quantized search,
  publisher/name search, registry ids; verified from each repo's config) > the bundled registry offline
  (flagged "registry (unverified: config not readable offline)").
Offline (HF_HUB_OFFLINE=1, --offline, or the Hub unreachable): everything but the Hub, said once on stderr.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from autoquant.checkpoints import registry, sources
from autoquant.checkpoints.hub import (
    HF_ID,
    GatedRepo,
    HubClient,
    HubRepo,
    HubSettings,
    HubUnavailable,
    RepoNotFound,
)
from autoquant.checkpoints.recipes import BASE_METHODS, how_to_make  # noqa: F401 - how_to_make re-exported
from autoquant.checkpoints.sources import Found
from autoquant.checkpoints.verify import (
    Target,
    guess_method,
    serves,
    short_name,
    verify_found,
    verify_registry_offline,
)
from autoquant.errors import InputError, NotFoundError, UsageError
from autoquant.facts import default_facts
from autoquant.paths import user_path
from autoquant.records import Checkpoint, ModelSpec

GGUF_METHOD_RE = re.compile(r"^gguf-(?:ud-)?[a-z0-9_]+$")
SOURCE_RANK = {"explicit": 0, "base": 0, "local": 1, "cache": 2, "package": 3, "hub": 4, "registry": 5}
STATUS_RANK = {"verified": 0, "unverified": 1}
MAX_HUB_PER_METHOD = 6



def known_methods() -> list[str]:
    """Method ids the planner knows (autoquant/data/methods.yaml)."""
    from autoquant.facts import default_facts

    return list(default_facts().methods)


def validate_methods(methods: Iterable[str] | None) -> list[str] | None:
    if methods is None:
        return None
    out = []
    valid = known_methods()
    for m in methods:
        key = m.strip().lower()
        if key not in valid and not GGUF_METHOD_RE.match(key):
            shown = ", ".join(v for v in valid if not v.startswith("gguf-"))
            raise UsageError(f"unknown method '{m}': use one of {shown}, or gguf-<type> (e.g. gguf-q4_k_m)")
        out.append(key)
    return out


def say(message: str, notify: Callable[[str], None] | None = None) -> None:
    from autoquant.output import say as print_note  # the one printer of autoquant's lines (escapes, masks)

    (notify or print_note)(message)


@dataclass
class Resolution:
    """Every candidate per method (verified, flagged or rejected with a reason) and the one chosen."""

    model: str
    candidates: dict[str, list[Checkpoint]] = field(default_factory=dict)
    chosen: dict[str, Checkpoint | None] = field(default_factory=dict)
    offline: bool = False
    notices: list[str] = field(default_factory=list)
    target: Target = field(default_factory=Target)

    def usable(self, method: str) -> list[Checkpoint]:
        """Every checkpoint of `method` that may be chosen, best first."""
        return [c for c in self.candidates.get(method, []) if _choosable(c)]


def capability_of(node: object | None) -> str | None:
    """The lowest compute capability among the node's GPUs (the one every kernel must run on)."""
    from autoquant.engines.compat import capability_tuple

    gpus = getattr(node, "gpus", None) or []
    caps = [g.compute_capability for g in gpus if capability_tuple(getattr(g, "compute_capability", None))]
    return min(caps, key=capability_tuple) if caps else None


class Resolver:
    def __init__(self, *, client: HubClient | None = None, settings: HubSettings | None = None,
                 offline: bool | None = None, notify: Callable[[str], None] | None = None,
                 local_dirs: Iterable[str] = (), max_hub_per_method: int = MAX_HUB_PER_METHOD):
        self.settings = settings or HubSettings.from_env()
        self.offline = self.settings.offline if offline is None else offline
        self.offline_reason = f"{self.settings.offline_reason} is set" if self.settings.offline else "--offline"
        self._client = client
        self.notify = notify
        self.local_dirs = [*self.settings.local_dirs, *local_dirs]
        self.max_hub = max_hub_per_method
        self.notices: list[str] = []

    # ------------------------------------------------------------------ plumbing
    @property
    def client(self) -> HubClient:
        if self._client is None:
            from autoquant.checkpoints.hub import HfHubClient

            self._client = HfHubClient(self.settings)
        return self._client

    def _go_offline(self, reason: str) -> None:
        if not self.offline:
            self.offline = True
            self.offline_reason = reason
        self._announce_offline()

    def _announce_offline(self) -> None:
        msg = (f"offline ({self.offline_reason}): checkpoints from local folders, the Hugging Face cache, "
               "the bundled registry and installed packages only")
        if msg not in self.notices:  # said once per resolution
            self.notices.append(msg)
            say(msg, self.notify)

    # ------------------------------------------------------------------ main entry
    def resolve(self, model_id: str, base: ModelSpec | None, methods: Iterable[str] | None,
                target: Target | None = None, checkpoint: str | None = None) -> Resolution:
        wanted = validate_methods(methods)
        wanted_set = set(wanted) if wanted is not None else None
        target = target or Target()
        if self.offline:
            self._announce_offline()
        res = Resolution(model=model_id, target=target)
        checkpoints: list[Checkpoint] = []
        if checkpoint:
            checkpoints = self._explicit(checkpoint, model_id, base, target, wanted_set)
        else:
            checkpoints = self._gather(model_id, base, target, wanted_set)
            checkpoints += self._base_checkpoints(model_id, base, wanted_set)
        seen: set[tuple[str, str, str]] = set()
        for ckpt in checkpoints:
            key = (ckpt.method, registry.publisher_key(ckpt.repo), ",".join(ckpt.files))
            if key in seen:
                continue
            seen.add(key)
            if wanted_set is not None and not any(serves(m, ckpt.method) for m in wanted_set):
                continue
            for m in (wanted or [ckpt.method]):
                if serves(m, ckpt.method):
                    res.candidates.setdefault(m, []).append(ckpt)
        spec = default_facts().engines.get(target.engine) if target.engine else None
        for m in wanted or list(res.candidates):
            res.candidates.setdefault(m, [])
            res.candidates[m].sort(key=_rank)
            if spec is not None:  # for one engine: its own publisher's format first (stable: rank kept)
                res.candidates[m].sort(key=lambda c: spec.producer_rank(c.quant.producer if c.quant else None))
            res.chosen[m] = next((c for c in res.candidates[m] if _choosable(c)), None)
        res.offline = self.offline
        res.notices = list(self.notices)
        return res

    # ------------------------------------------------------------------ sources
    def _explicit(self, ref: str, model_id: str, base: ModelSpec | None, target: Target,
                  wanted: set[str] | None) -> list[Checkpoint]:
        path = user_path(ref)
        if path.exists():
            found = sources.from_path(path, source="explicit")
        elif HF_ID.match(ref) and not ref.startswith((".", "/", "~")) and not ref.lower().endswith(".gguf"):
            found = self._explicit_repo(ref, model_id)
        else:
            raise InputError(f"no such checkpoint path: {ref} (give a model folder, a .gguf file, or a Hub id org/name)")
        if found.source == "registry" and found.registry is not None:  # offline: its recorded facts
            results = [verify_registry_offline(found.registry, model_id, base, target)]
        else:
            results = verify_found(found, model_id, base, target, None)
        if not results:
            raise InputError(f"{ref}: no quantized weights found (no quantization config and no .gguf file)")
        if wanted is not None and not any(serves(m, c.method) for c in results for m in wanted):
            got = ", ".join(sorted({c.method for c in results}))
            raise InputError(f"checkpoint {ref} is {got}, not {', '.join(sorted(wanted))}")
        for c in results:
            c.source = "explicit" if found.source in ("explicit", "hub") else found.source
            if c.status == "unconfirmed":  # the user names it: its existence is theirs to vouch for
                c.status = "unverified"
                c.reason = f"{c.reason}; named by the user"
        return results

    def _explicit_repo(self, repo: str, model_id: str) -> Found:
        cached = list(sources.scan_cache(self.settings.cache_dir, lambda r: r.lower() == repo.lower()))
        if cached:
            return cached[0]
        if not self.offline:
            try:
                return self._hub_found(self.client.repo_info(repo), source="hub")
            except HubUnavailable as exc:
                self._go_offline(str(exc))
        entry = next((e for e in registry.entries() if e.repo.lower() == repo.lower()), None)
        if entry is not None:
            return Found(repo=entry.repo, source="registry", registry=entry, base_models=[entry.base],
                         files=[(f, None) for f in entry.files])
        raise NotFoundError(f"checkpoint {repo} is not cached here and the Hub is offline: download it first "
                            f"(autoquant pull {model_id} --checkpoint {repo}) or give a local path")

    def _gather(self, model_id: str, base: ModelSpec | None, target: Target,
                wanted: set[str] | None) -> list[Checkpoint]:
        out: list[Checkpoint] = []
        local_keys: set[str] = set()
        # 1. local folders and GGUF files
        for found in sources.scan_dirs(self.local_dirs):
            if _related(found.repo, model_id) or found.base_models:
                out += verify_found(found, model_id, base, target, wanted)
        # 2. the HF cache
        stems = _stems(model_id)
        reg_entries = registry.for_base(model_id)
        reg_repos = {registry.publisher_key(e.repo) for e in reg_entries}

        def cached_wanted(repo_id: str) -> bool:
            key = registry.publisher_key(repo_id)
            if key in reg_repos:
                return True
            if repo_id.lower() in {a.lower() for a in registry.aliases(model_id)}:
                return False  # the base itself (bf16) is handled as the base checkpoint
            return any(s in short_name(repo_id).lower() for s in stems)

        for found in sources.scan_cache(self.settings.cache_dir, cached_wanted):
            local_keys.add(registry.publisher_key(found.repo))
            out += verify_found(found, model_id, base, target, wanted)
        # 3. packages shipping a GGUF
        for pkg in registry.packages_for_base(model_id):
            if wanted is not None and pkg.method not in wanted:
                continue
            found = sources.from_package(pkg)
            if found is not None:
                out += verify_found(found, model_id, base, target, wanted)
        # 4. the Hub (registry ids included), unless offline
        if not self.offline:
            try:
                out += self._from_hub(model_id, base, target, wanted, reg_entries, local_keys)
            except HubUnavailable as exc:
                self._go_offline(str(exc))
        # 5. the registry, offline: published facts only
        if self.offline:
            for entry in reg_entries:
                if registry.publisher_key(entry.repo) in local_keys:
                    continue
                if wanted is None or any(serves(m, entry.method) for m in wanted):
                    out.append(verify_registry_offline(entry, model_id, base, target))
        return out

    def _base_checkpoints(self, model_id: str, base: ModelSpec | None, wanted: set[str] | None) -> list[Checkpoint]:
        """bf16/fp16 are the base weights; a base that is itself quantized (FP8 DeepSeek-V3) serves its method."""
        out = []
        own = base.quantization if base is not None else None
        if own is None:
            for m in BASE_METHODS:
                if wanted is None or m in wanted:
                    out.append(base_checkpoint(model_id, m))
        elif wanted is None or any(serves(m, own.method) for m in wanted):
            ck = Checkpoint(repo=model_id, method=own.method, source="base", verified=True, quant=own,
                            reason="the model itself is published quantized", status="verified", base=model_id)
            out.append(ck)
        return out

    # ------------------------------------------------------------------ the Hub
    def _from_hub(self, model_id: str, base: ModelSpec | None, target: Target, wanted: set[str] | None,
                  reg_entries: list[registry.RegistryEntry], skip: set[str]) -> list[Checkpoint]:
        client = self.client
        found: dict[str, HubRepo] = {}

        def add(repo: HubRepo) -> None:
            key = registry.publisher_key(repo.id)
            if key not in skip and key not in found:
                found[key] = repo

        for alias in registry.aliases(model_id):
            for r in client.search(filter=f"base_model:quantized:{alias}", limit=100):
                add(r)
        stems = _stems(model_id)
        for stem in _search_stems(model_id):
            for r in client.search(search=stem, limit=100):
                if any(s in short_name(r.id).lower() for s in stems):
                    add(r)
            for author in registry.search_publishers():
                for r in client.search(author=author, search=stem, limit=50):
                    if any(s in short_name(r.id).lower() for s in stems):
                        add(r)
        reg_by_key = {registry.publisher_key(e.repo): e for e in reg_entries}
        for key, entry in reg_by_key.items():
            if key not in found and key not in skip:
                found[key] = HubRepo(id=entry.repo, base_models=[entry.base])
        aliases_l = {a.lower() for a in registry.aliases(model_id)}
        shortlist = self._shortlist([r for r in found.values() if r.id.lower() not in aliases_l], wanted, reg_by_key)
        out: list[Checkpoint] = []
        for summary in shortlist:
            key = registry.publisher_key(summary.id)
            entry = reg_by_key.get(key)
            try:
                info = client.repo_info(summary.id, entry.revision if entry else None)
            except GatedRepo as exc:
                method = entry.method if entry else (guess_method(summary.id, summary.tags) or "other")
                out.append(_gated(summary.id, method, str(exc), model_id))
                continue
            except (RepoNotFound, NotFoundError):
                if entry is not None:
                    out.append(_gone(entry, model_id))
                continue
            if not info.base_models:
                info.base_models = summary.base_models
            f = self._hub_found(info, source="hub", revision=entry.revision if entry else None)
            f.registry = entry
            out += verify_found(f, model_id, base, target, wanted)
        return out

    def _shortlist(self, repos: list[HubRepo], wanted: set[str] | None,
                   reg_by_key: dict[str, registry.RegistryEntry]) -> list[HubRepo]:
        def relevant(guess: str | None) -> bool:
            if wanted is None or guess is None:
                return True
            if guess == "gguf":
                return any(m.startswith("gguf-") for m in wanted)
            return any(serves(m, guess) for m in wanted)

        ranked = sorted(repos, key=lambda r: (registry.publisher_key(r.id) not in reg_by_key, -(r.downloads or 0)))
        per: dict[str, int] = {}
        out = []
        for r in ranked:
            guess = guess_method(r.id, r.tags)
            if not relevant(guess):
                continue
            bucket = guess or "?"
            if per.get(bucket, 0) >= self.max_hub and registry.publisher_key(r.id) not in reg_by_key:
                continue
            per[bucket] = per.get(bucket, 0) + 1
            out.append(r)
        return out

    def _hub_found(self, info: HubRepo, source: str, revision: str | None = None) -> Found:
        client = self.client
        rev = revision or info.sha
        names = set(info.file_names())

        def read_json(name: str) -> dict | None:
            if names and name not in names:
                return None
            return client.read_json(info.id, name, rev)

        def read_header(name: str) -> dict | None:
            return client.gguf_header(info.id, name, rev)

        return Found(repo=info.id, source=source, files=list(info.files), revision=revision or info.sha,
                     base_models=list(info.base_models), read_json=read_json, read_header=read_header)


# ---------------------------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=1)
def _registry_keys() -> frozenset[str]:
    return frozenset(registry.publisher_key(e.repo) for e in registry.entries())


def _rank(c: Checkpoint) -> tuple:
    known = 0 if registry.publisher_key(c.repo) in _registry_keys() else 1
    return (STATUS_RANK.get(c.status, 2 if c.verified else 3), SOURCE_RANK.get(c.source, 9), known, c.repo.lower())


def _choosable(c: Checkpoint) -> bool:
    return c.verified or c.status == "unverified"


def _stems(model_id: str) -> list[str]:
    return sorted({short_name(a).lower() for a in registry.aliases(model_id)}, key=len)


def _search_stems(model_id: str) -> list[str]:
    """Name stems to search the Hub with; a stem containing a shorter one is covered by it (substring search)."""
    out: list[str] = []
    for s in sorted({short_name(a) for a in registry.aliases(model_id)}, key=len):
        if not any(o.lower() in s.lower() for o in out):
            out.append(s)
    return out


def _related(path: str, model_id: str) -> bool:
    return any(s in Path(path).name.lower() for s in _stems(model_id))


def _gated(repo: str, method: str, reason: str, model_id: str) -> Checkpoint:
    return Checkpoint(repo=repo, method=method, source="hub", verified=False, reason=reason, status="rejected",
                      base=model_id)


def _gone(entry: registry.RegistryEntry, model_id: str) -> Checkpoint:
    return Checkpoint(repo=entry.repo, method=entry.method, source="registry", verified=False,
                      reason="in the registry but not found on the Hub (renamed or removed)", status="rejected",
                      base=model_id)


def base_checkpoint(model_id: str, method: str = "bf16") -> Checkpoint:
    """bf16/fp16: the base model's own weights."""
    return Checkpoint(repo=model_id, method=method, source="base", verified=True,
                      reason="the base checkpoint (16-bit weights)", status="verified", base=model_id)


def check_disk(size_bytes: int | None, free_bytes: int | None, where: str | None) -> tuple[bool, str | None]:
    """Refuse a download that does not fit the disk (before downloading)."""
    if size_bytes is None or free_bytes is None:
        return True, None
    if size_bytes > free_bytes:
        gb = 1e9
        return False, (f"not enough disk space in {where or 'the cache'}: the download needs {size_bytes / gb:.1f} GB, "
                       f"{free_bytes / gb:.1f} GB free (free space, or set HF_HUB_CACHE / --local-dir elsewhere)")
    return True, None
