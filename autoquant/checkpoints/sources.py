"""Where candidate checkpoints come from, apart from the Hub: explicit paths, local folders and GGUF
files, the local Hugging Face cache, and Python packages that ship a GGUF.

Each source yields `Found` objects: a repo or path, its file list, and readers for the small metadata
files (config.json, hf_quant_config.json, quantize_config.json, quant_config.json, GGUF headers).
Verification (verify.py) reads only through those readers, so a Hub candidate and a local folder are
checked by the same code. Nothing here reads weights.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoquant import jsonio
from autoquant.checkpoints import gguf_files
from autoquant.checkpoints.hub import hf_cache_dir
from autoquant.checkpoints.registry import PackageEntry, RegistryEntry
from autoquant.errors import InputError
from autoquant.gguf import GGUFError, read_header
from autoquant.paths import user_path

CONFIG_FILES = ("config.json", "hf_quant_config.json", "quantize_config.json", "quant_config.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")

JsonReader = Callable[[str], "dict[str, Any] | None"]
HeaderReader = Callable[[str], "dict[str, Any] | None"]


@dataclass
class Found:
    """A candidate checkpoint before verification."""

    repo: str  # Hub id, local path, or "pkg:<distribution>"
    source: str  # explicit | local | cache | registry | hub | package
    files: list[tuple[str, int | None]] = field(default_factory=list)
    revision: str | None = None
    base_models: list[str] = field(default_factory=list)  # what its card / metadata says it derives from
    read_json: JsonReader | None = None  # None: configs cannot be read (registry offline)
    read_header: HeaderReader | None = None
    registry: RegistryEntry | None = None
    package: PackageEntry | None = None
    local_path: str | None = None

    def file_names(self) -> list[str]:
        return [p for p, _ in self.files]

    @property
    def is_gguf(self) -> bool:
        return any(p.lower().endswith(".gguf") or ".gguf.part" in p.lower() for p in self.file_names())


# ---------------------------------------------------------------------------------------------- local


def _dir_files(root: Path) -> list[tuple[str, int | None]]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and ".cache" not in p.relative_to(root).parts:
            try:
                out.append((p.relative_to(root).as_posix(), p.stat().st_size))
            except OSError:
                continue
    return out


def _json_reader(root: Path) -> JsonReader:
    def read(name: str) -> dict[str, Any] | None:
        path = root / name
        if not path.is_file():
            return None
        try:
            data = jsonio.load(path)
        except OSError as exc:
            raise InputError(f"{path} cannot be read: {exc.strerror or exc}") from None
        return data if isinstance(data, dict) else None

    return read


def _header_reader(root: Path) -> HeaderReader:
    def read(name: str) -> dict[str, Any] | None:
        return gguf_metadata(root / name)

    return read


def gguf_metadata(path: Path) -> dict[str, Any] | None:
    """A GGUF file's metadata (long arrays skipped), or None when it is unreadable or not GGUF."""
    try:
        return read_header(path).meta
    except (OSError, GGUFError):
        return None


def from_path(path: str | Path, source: str = "local") -> Found:
    """A local model folder or a single .gguf file (InputError when missing or neither)."""
    p = user_path(path)
    if not p.exists():
        raise InputError(f"no such checkpoint path: {path} (give a model folder, a .gguf file, or a Hub id org/name)")
    if p.is_file():
        if not p.name.lower().endswith(".gguf") and not gguf_files.PART_RE.match(p.name):
            raise InputError(f"{path} is not a .gguf file or a model folder")
        root = p.parent
        names = [p.name]
        # a gguf-split first shard brings its siblings
        if m := gguf_files.SHARD_RE.match(p.name):
            names = sorted(x.name for x in root.glob(f"{m['stem']}-*-of-{m['n']}.gguf"))
        files = [(n, (root / n).stat().st_size) for n in names]
        return Found(repo=str(p), source=source, files=files, read_json=_json_reader(root),
                     read_header=_header_reader(root), local_path=str(p))
    if not p.is_dir():
        raise InputError(f"{path} is not a .gguf file or a model folder")
    if not any((p / c).is_file() for c in CONFIG_FILES) and not any(p.glob("*.gguf")):
        raise InputError(f"{path} has no config.json and no .gguf file: not a model folder")
    return Found(repo=str(p), source=source, files=_dir_files(p), read_json=_json_reader(p),
                 read_header=_header_reader(p), local_path=str(p), base_models=card_base_models(p / "README.md"))


def scan_dirs(dirs: Iterable[str | Path]) -> Iterator[Found]:
    """Model folders and .gguf files directly inside each folder (and the folder itself if it is one)."""
    for d in dirs:
        root = user_path(d)
        if not root.is_dir():
            continue
        children = [root, *sorted(c for c in root.iterdir() if c.is_dir())]
        for c in children:
            if any((c / n).is_file() for n in CONFIG_FILES):
                yield from_path(c)
        for g in sorted(root.glob("*.gguf")):
            m = gguf_files.SHARD_RE.match(g.name)
            if m and int(m["i"]) != 1:
                continue
            yield from_path(g)


# ---------------------------------------------------------------------------------------------- HF cache


def scan_cache(cache_dir: str | None, wanted: Callable[[str], bool], revision: str | None = None) -> Iterator[Found]:
    """Cached Hub repos (huggingface_hub.scan_cache_dir) whose id `wanted(repo_id)` accepts: the snapshot of
    `revision` (a commit hash, its prefix, or a ref) when given, else of `main`, else the newest.

    huggingface_hub (and its HTTP stack, ~100 ms to import) is only loaded when a wanted repo's folder is
    there: the cache layout names each repo `models--<org>--<name>` (repo ids cannot contain `--`)."""
    root = user_path(cache_dir) if cache_dir else hf_cache_dir()
    try:
        present = [c.name.split("--", 1)[1].replace("--", "/") for c in root.iterdir()
                   if c.name.startswith("models--") and c.is_dir()]
    except OSError:  # no cache folder, or unreadable: nothing cached
        return
    if not any(wanted(repo_id) for repo_id in present):
        return
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(str(root))
    except Exception:  # noqa: BLE001 - no cache folder, or unreadable: nothing cached
        return
    for repo in sorted(info.repos, key=lambda r: r.repo_id.lower()):
        if repo.repo_type != "model" or not wanted(repo.repo_id):
            continue
        revisions = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
        if not revisions:
            continue
        if revision:
            rev = next((r for r in revisions if revision in r.refs or r.commit_hash.startswith(revision)), None)
            if rev is None:
                continue
        else:
            rev = next((r for r in revisions if "main" in r.refs), revisions[0])
        snap = Path(rev.snapshot_path)
        files = [(f.file_path.relative_to(snap).as_posix(), f.size_on_disk) for f in rev.files]
        yield Found(repo=repo.repo_id, source="cache", files=files, revision=rev.commit_hash,
                    read_json=_json_reader(snap), read_header=_header_reader(snap), local_path=str(snap),
                    base_models=card_base_models(snap / "README.md"))


def card_base_models(readme: Path) -> list[str]:
    """`base_model` from a model card's YAML front matter (str or list), [] when absent or unreadable."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return []
    if not text.startswith("---"):
        return []
    end = text.find("\n---", 3)
    if end < 0:
        return []
    import yaml

    try:
        meta = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError:
        return []
    value = meta.get("base_model") if isinstance(meta, dict) else None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


# ---------------------------------------------------------------------------------------------- packages


def package_installed(entry: PackageEntry) -> bool:
    try:
        return importlib.util.find_spec(entry.module) is not None
    except (ImportError, ValueError):
        return False


def from_package(entry: PackageEntry) -> Found | None:
    """A GGUF shipped by an installed Python package (chunks joined on demand by its `assemble()`).

    The header is read from the first chunk (it holds the whole key/value header), so nothing is
    assembled until the file is actually needed (`materialize`).
    """
    if not package_installed(entry):
        return None
    mod = importlib.import_module(entry.module)
    chunks = [Path(p) for p in mod.chunk_paths()] if hasattr(mod, "chunk_paths") else []
    size = sum(p.stat().st_size for p in chunks if p.exists()) or None
    assembled = Path(mod.default_output_path()) if hasattr(mod, "default_output_path") else None

    def header(name: str) -> dict[str, Any] | None:
        source = assembled if assembled and assembled.is_file() else (chunks[0] if chunks else None)
        if source is None or not source.is_file():
            return None
        return gguf_metadata(source)

    return Found(repo=f"pkg:{entry.package}", source="package", files=[(entry.file, size)],
                 read_header=header, package=entry,
                 local_path=str(assembled) if assembled and assembled.is_file() else None,
                 base_models=list(entry.bases))


def materialize_package(entry_module: str, output_dir: str | Path | None = None) -> Path:
    """Join a GGUF package's chunks into one file (its own `assemble()`, which checks the sha256)."""
    mod = importlib.import_module(entry_module)
    if output_dir is None:
        return Path(mod.assemble())
    out = Path(output_dir) / mod.MODEL_NAME
    return Path(mod.assemble(out))
