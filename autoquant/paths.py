"""Where autoquant keeps its own files: one rule for every cache and run directory.

$AUTOQUANT_CACHE_DIR, else $XDG_CACHE_HOME/autoquant, else ~/.cache/autoquant; `sub` names the part
(`decisions`, `run`, ...) so setting AUTOQUANT_CACHE_DIR moves every part together.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def user_path(text: str | os.PathLike) -> Path:
    """`text` as a path with a leading ~ or ~user expanded. A ~name for no such user (or no home directory)
    stays as written: it is then simply a path that does not exist, not a crash (pathlib raises RuntimeError)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        return Path(text)


def autoquant_cache_dir(env: Mapping[str, str] | None = None, sub: str = "") -> Path:
    env = os.environ if env is None else env
    if env.get("AUTOQUANT_CACHE_DIR"):
        base = user_path(env["AUTOQUANT_CACHE_DIR"])
    elif env.get("XDG_CACHE_HOME"):
        base = Path(env["XDG_CACHE_HOME"]) / "autoquant"
    else:
        home = env.get("HOME")
        base = (Path(home) if home else Path.home()) / ".cache" / "autoquant"
    return base / sub if sub else base


def write_atomic(path: Path | str, data: str | bytes) -> None:
    """Write `data` to `path` through `.<name>.<pid>.tmp` beside it, renamed over it: a concurrent reader
    sees the old file or the new one, never a part. On failure the temporary file is removed and the
    OSError names `path`: a write that fails (a full disk) names no file, and `PATH: No space left on
    device` is what the user can act on."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:  # open(), not mkstemp: the file gets the umask's mode (a shared fleet dir)
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError) and exc.filename != str(path):
            # OSError(errno, ...) keeps the subclass (PermissionError, ...) that describe() words
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # e.g. the directory became read-only: nothing more to do
