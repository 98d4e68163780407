"""Calibration records on disk: this user's cache and a fleet directory, read and written as versioned JSON.

<autoquant cache>/calibration/<fingerprint hash>.json, and the same under $AUTOQUANT_CALIBRATION_DIR when it is
set (a directory every node of a fleet shares: one node's runs calibrate its twins). A corrupt, foreign or
newer file is ignored with a notice, never fatal. The records themselves and what they mean are
autoquant.planner.measured (pure).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from autoquant.paths import autoquant_cache_dir, user_path, write_atomic
from autoquant.planner import measured as m

FLEET_ENV = "AUTOQUANT_CALIBRATION_DIR"


def record_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    env = os.environ if env is None else env
    dirs = [autoquant_cache_dir(env, "calibration")]
    if env.get(FLEET_ENV):
        dirs.append(user_path(env[FLEET_ENV]))
    return dirs


def load_records(env: Mapping[str, str] | None = None,
                 notify: Callable[[str], None] | None = None) -> list[m.Record]:
    out: list[m.Record] = []
    for d in record_dirs(env):
        for path in sorted(d.glob("*.json")) if d.is_dir() else ():
            try:
                out += m.from_json(json.loads(path.read_text()))
            except (OSError, ValueError) as exc:
                if notify:
                    notify(f"ignored calibration file {path}: {exc}")
    return out


def policy():
    from autoquant.data import load

    return m.Policy.from_data((load("overheads") or {}).get("measured_calibration"))


def measured_on(node, model: str, env: Mapping[str, str] | None = None,
                notify: Callable[[str], None] | None = None) -> m.Measured:
    """The measured factors that apply to `node` (for `model`, preferring its own runs)."""
    return m.measured_for(load_records(env, notify), m.fingerprint(node), model, policy())


def node_calibration(node, model: str, path: str | None = None, env: Mapping[str, str] | None = None,
                     notify: Callable[[str], None] | None = None, use_measured: bool = True):
    """The published/fitted calibration (plus a `--calibration FILE`), with this node's measured factors."""
    from autoquant.planner.calibration import load_calibration

    cal = load_calibration(path)
    if not use_measured:
        return cal
    return cal.with_measured(measured_on(node, model, env, notify))


def save_samples(fingerprint: str, engine: str, method: str, samples: Iterable[m.Sample], hardware: str = "",
                 env: Mapping[str, str] | None = None) -> list[Path]:
    """Add `samples` to the record of (fingerprint, engine, method) in every record directory; the paths
    written. A file another version wrote (or a corrupt one) is kept aside as <name>.bad, not lost."""
    samples = list(samples)
    written: list[Path] = []
    name = hashlib.sha256(fingerprint.encode()).hexdigest()[:16] + ".json"
    for d in record_dirs(env):
        path = d / name
        records: list[m.Record] = []
        if path.exists():
            try:
                records = m.from_json(json.loads(path.read_text()))
            except (OSError, ValueError):
                path.replace(path.with_suffix(".json.bad"))
        records = m.add_samples(records, fingerprint, engine, method, samples, hardware)
        d.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(m.to_json(records), indent=2))  # an error names `path`, leaves no .tmp
        written.append(path)
    return written


def digest(env: Mapping[str, str] | None = None) -> str:
    """Changes whenever a record file does: part of the decision-cache key, so a new calibration re-plans."""
    h = hashlib.sha256()
    for d in record_dirs(env):
        for path in sorted(d.glob("*.json")) if d.is_dir() else ():
            try:
                st = path.stat()
            except OSError:
                continue
            h.update(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]
