"""Where autoquant keeps its own files: one rule for every cache and run directory.

$AUTOQUANT_CACHE_DIR, else $XDG_CACHE_HOME/autoquant, else ~/.cache/autoquant; `sub` names the part
(`decisions`, `run`, ...) so setting AUTOQUANT_CACHE_DIR moves every part together.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def autoquant_cache_dir(env: Mapping[str, str] | None = None, sub: str = "") -> Path:
    env = os.environ if env is None else env
    if env.get("AUTOQUANT_CACHE_DIR"):
        base = Path(env["AUTOQUANT_CACHE_DIR"]).expanduser()
    elif env.get("XDG_CACHE_HOME"):
        base = Path(env["XDG_CACHE_HOME"]) / "autoquant"
    else:
        home = env.get("HOME")
        base = (Path(home) if home else Path.home()) / ".cache" / "autoquant"
    return base / sub if sub else base
