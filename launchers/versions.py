"""Installed engine versions (package metadata only: never imports an engine) and version predicates.

Flag gates are `(ok, reason)` predicates in the shape of vLLM's `_check_marlin_supported`, so a launcher
can both decide and say why.
"""

from __future__ import annotations

import functools
import os
import re
import sys

from autoquant.engines.flags import at_least, parse_version  # noqa: F401 - the one version comparison


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


@functools.cache  # package metadata does not change while autoquant runs: read each once per process
def _dist_infos() -> dict[str, str]:
    """normalized distribution name -> version, from the `<name>-<version>.dist-info` folders on sys.path
    (what importlib.metadata reads, without importing it: ~20 ms of a plan's start-up)."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            for suffix in (".dist-info", ".egg-info"):
                stem = name[: -len(suffix)] if name.endswith(suffix) else ""
                dist, _, version = stem.partition("-")  # <name>-<version>[-pyX.Y]
                if version:
                    found.setdefault(_normal(dist), version.split("-")[0])
    return found


def installed_version(dist: str) -> str | None:
    return _dist_infos().get(_normal(dist))


def engine_version(engine: str) -> str | None:
    """The installed version of an engine (its spec's distributions, in order), None when not installed."""
    from autoquant.facts import default_facts

    spec = default_facts().engines.get(engine)
    for dist in spec.distributions if spec else ():
        version = installed_version(dist)
        if version:
            return version
    return None


def check_vllm_gguf(version: str | None) -> tuple[bool, str]:
    """GGUF left vLLM's tree in v0.24.0 (#39612): from then on it needs vllm-gguf-plugin."""
    from autoquant.facts import default_facts

    since = default_facts().engine("vllm").flags["gguf_plugin_since"]
    if version is None or not at_least(version, since):
        return True, f"in-tree GGUF (vLLM < {since}) or vLLM not installed here"
    if installed_version("vllm-gguf-plugin") or installed_version("vllm_gguf_plugin"):
        return True, "vllm-gguf-plugin installed"
    return False, f"vLLM {version} serves GGUF only with the plugin: pip install vllm-gguf-plugin"
