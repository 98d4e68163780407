"""Facts as data: GPU specs, methods, kernels, quality, engines, checkpoints, models (YAML, each figure sourced).

`load(name)` reads `<name>.yaml` from this package once per process. Parsing all of them costs ~70 ms of
CPU even with libyaml, a third of a `plan` run, so the parsed form is kept like bytecode: a marshal file
per data file under the autoquant cache (`autoquant.paths`, part `data`), named by a hash of the YAML
text. A changed file gets a new name; an unwritable cache, or AUTOQUANT_DATA_CACHE=0, just parses.
"""

from __future__ import annotations

import functools
import hashlib
import marshal
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

CACHE_FORMAT = "1"  # part of every cache key: bump when what is cached changes shape


@functools.cache
def load(name: str) -> Any:
    """Parsed contents of autoquant/data/<name>.yaml (cached; treat as read-only)."""
    text = resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    if os.environ.get("AUTOQUANT_DATA_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return _parse(text)
    return _cached_parse(name, text)


def _parse(text: str) -> Any:
    import yaml

    # libyaml's C loader reads the data files ~10x faster than the pure-Python one (quality.yaml alone
    # is 140 kB); both build the same plain dicts and lists.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader


def cache_path(name: str, text: str) -> Path:
    """Where the parsed form of this text of <name>.yaml is kept."""
    from autoquant.paths import autoquant_cache_dir

    key = hashlib.sha256(f"{CACHE_FORMAT}\0{sys.version_info[:2]}\0{marshal.version}\0{text}".encode()).hexdigest()[:24]
    return autoquant_cache_dir(sub="data") / f"{name.replace('/', '.')}-{key}.marshal"


def _cached_parse(name: str, text: str) -> Any:
    path = cache_path(name, text)
    try:
        return marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        pass
    from autoquant.paths import write_atomic

    data = _parse(text)
    try:
        blob = marshal.dumps(data)
    except ValueError:  # a type marshal cannot hold (a YAML date): parse every time
        return data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stem = path.name.rsplit("-", 1)[0]
        for old in path.parent.glob(f"{stem}-*.marshal"):
            if old.name.rsplit("-", 1)[0] == stem:
                old.unlink(missing_ok=True)  # earlier versions of this file
        write_atomic(path, blob)  # a concurrent reader sees the whole file or none; a failure leaves no .tmp
    except OSError:
        pass
    return data
