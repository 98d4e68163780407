"""Installed engine versions (package metadata only: never imports or runs an engine) and version predicates.

An engine's version is that of the install `serve` runs (autoquant.probes.engines: AUTOQUANT_ENGINE_BIN_<NAME>,
this environment, PATH), read from the dist-info of the environment it belongs to: a vLLM in its own virtual
environment is gated on its own version.

Flag gates are `(ok, reason)` predicates in the shape of vLLM's `_check_marlin_supported`, so a launcher
can both decide and say why.
"""

from __future__ import annotations

import sys

from autoquant.engines.flags import at_least, parse_version  # noqa: F401 - the one version comparison
from autoquant.probes import engines


def installed_version(dist: str) -> str | None:
    """`dist`'s version in autoquant's own environment (the dist-info folders on sys.path, what
    importlib.metadata reads, without importing it)."""
    got = engines.dist_infos_cached(tuple(sys.path)).get(engines.normal(dist))
    return got[0] if got else None


def _python_install(engine: str):
    """The install of `engine` whose version gates its flags: the first that is a Python distribution
    (llama.cpp: llama-cpp-python; llama-server's build number is no package version)."""
    from autoquant.facts import default_facts

    spec = default_facts().engines.get(engine)
    return next((i for i in (spec.installs if spec else ()) if not i.native), None), spec


def engine_version(engine: str) -> str | None:
    """The version of the engine `serve` runs (probes.engines.installed), None when it is not installed or
    its version cannot be read."""
    install, spec = _python_install(engine)
    if install is None:  # an engine without `installs`: its distributions in this environment
        return next((v for d in (spec.distributions if spec else ()) if (v := installed_version(d))), None)
    rec = engines.installed(install.name)
    return rec.version if rec else None


def beside_engine(engine: str, dist: str) -> str | None:
    """`dist`'s version in the environment `engine` runs in (vllm-gguf-plugin beside vLLM), None if absent."""
    install, _ = _python_install(engine)
    rec = engines.installed(install.name) if install else None
    return engines.companion_version(rec, dist) if rec else None  # this environment's, when found here


def check_vllm_gguf(version: str | None) -> tuple[bool, str]:
    """GGUF left vLLM's tree in v0.24.0 (#39612): from then on it needs vllm-gguf-plugin."""
    from autoquant.facts import default_facts

    since = default_facts().engine("vllm").flags["gguf_plugin_since"]
    if version is None or not at_least(version, since):
        return True, f"in-tree GGUF (vLLM < {since}) or vLLM not installed here"
    if beside_engine("vllm", "vllm-gguf-plugin"):
        return True, "vllm-gguf-plugin installed"
    return False, f"vLLM {version} serves GGUF only with the plugin: pip install vllm-gguf-plugin"
