"""Facts as data: GPU specs, methods, kernels, quality, engines, checkpoints, models (YAML, each figure sourced).

`load(name)` reads `<name>.yaml` from this package once per process.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml

# libyaml's C loader reads the data files ~10x faster than the pure-Python one (quality.yaml alone
# is 140 kB); both build the same plain dicts and lists.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def load(name: str) -> Any:
    """Parsed contents of autoquant/data/<name>.yaml (cached; treat as read-only)."""
    text = resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
