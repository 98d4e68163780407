"""Dispatch: the LaunchSpec for a candidate, from the launcher module its engine spec names.

Before any launcher runs, the user's flags are checked against the engine's spec (autoquant.engines.flags):
one place says "--x has no <engine> equivalent", for a plan made here or loaded from a file.
"""

from __future__ import annotations

import importlib
from dataclasses import replace

from autoquant.engines.compat import check_kv
from autoquant.engines.flags import honour, translate
from autoquant.engines.spec import EngineSpec
from autoquant.errors import RuleError, UsageError
from autoquant.records import Candidate

from .base import LaunchSpec, ServeOptions, secret_values
from .flags import classify_tokens, native_option_lists

# Servers with a launcher of their own that run an engine's checkpoints: flavor -> the engine the planner plans.
# `--engine ollama` plans llama.cpp (Ollama runs the same GGUF through llama.cpp) and launches Ollama
# (launchers/ollama.py); the engine ids stay the four of engines.yaml everywhere else.
SERVER_FLAVORS = {"ollama": "llamacpp"}


def launcher_module(spec: EngineSpec, flavor: str | None = None):
    if flavor is not None:
        if SERVER_FLAVORS.get(flavor) != spec.id:
            raise UsageError(f"{flavor} does not launch {spec.label}")
        return importlib.import_module(f"autoquant.launchers.{flavor}")
    return importlib.import_module(f"autoquant.launchers.{spec.flags.get('launcher', spec.id)}")


def build(candidate: Candidate, options: ServeOptions, model: str, threads: int | None = None,
          flavor: str | None = None) -> LaunchSpec:
    """argv + env for `candidate` (nothing is started). `model` is the name clients ask for; `flavor` one of
    SERVER_FLAVORS to launch instead of the engine's own server. The spec redacts, wherever it is printed,
    secrets from the environment and the values of secret passthrough flags."""
    from autoquant.facts import default_facts

    facts = default_facts()
    if candidate.engine not in facts.engines:
        raise UsageError(f"unknown engine {candidate.engine!r} in the plan: choose one of {', '.join(facts.engines)}")
    spec = facts.engine(candidate.engine)
    launch = launcher_module(spec, flavor).build(candidate, options, model, threads=threads)
    launch.secrets += [s for s in secret_values(options.user_args or options.passthrough) if s not in launch.secrets]
    launch.notes += [n for n in install_notes(spec, launch.argv[0]) if n not in launch.notes]
    return launch


def install_notes(spec: EngineSpec, executable: str) -> list[str]:
    """What discovery noted about the install that runs `executable` (a pointer that names nothing runnable,
    a version it could not read): `autoquant probe` shows the same."""
    from autoquant.probes.engines import installed

    for install in spec.installs:
        rec = installed(install.name)
        if rec is not None and rec.path == executable:
            return list(rec.notes)
    return []


def prepare(engine: str, candidate: Candidate, options: ServeOptions, version: str | None,
            detect_version: bool = True, flavor: str | None = None) -> tuple[EngineSpec, str | None]:
    """What every launcher does first: its engine's spec, the installed version (unless given), and
    check_launch on the user's flags, the checkpoint and the KV-cache dtype."""
    from autoquant.facts import default_facts

    from . import versions

    if version is None and detect_version:
        version = versions.engine_version(engine)
    spec = default_facts().engine(engine)
    check_launch(spec, candidate, options, version, flavor)
    return spec, version


def check_launch(spec: EngineSpec, candidate: Candidate, options: ServeOptions, version: str | None,
                 flavor: str | None = None) -> None:
    """What every launcher checks first, with the engine spec's rules: the user's flags (each carried,
    translated or meaningless there), load-time quantization, the KV-cache dtype."""
    args, _ = classify_tokens(list(options.user_args or options.passthrough))
    ok, why = honour(spec, args, version, flavor, native_option_lists().get(spec.id, ()))
    if not ok:
        hint = "" if spec.takes_vllm_flags else (
            f" ({spec.label} was chosen; pass --engine vllm to keep vLLM flags, or use {spec.label}'s own option)")
        raise UsageError(f"{why}{hint}")
    if candidate.checkpoint and candidate.checkpoint.runtime_quantization \
            and not spec.quantizes_at_load(candidate.method):
        raise RuleError(spec.no_quantize_at_load)
    kv = check_kv(spec, candidate.kv_cache_dtype or spec.kv_default, None)
    if not kv.ok:
        raise UsageError(kv.reason)


def translated_passthrough(spec: EngineSpec, options: ServeOptions, version: str | None,
                           flavor: str | None = None) -> tuple[list[str], list[str]]:
    """The user's flags autoquant does not read, in the engine's own spelling, and notes on any dropped."""
    args, _ = classify_tokens(list(options.passthrough))
    try:
        return translate(spec, args, version, flavor, native_option_lists().get(spec.id, ()))
    except ValueError as exc:
        raise UsageError(f"{exc} ({spec.label} was chosen; pass --engine vllm to keep vLLM flags)") from None


def server_batch_cap(candidate: Candidate, pinned: bool) -> Candidate:
    """The plan's max_num_seqs is M, the requests running at once at the expected concurrency; a vLLM/TRT-LLM
    server should not turn bursts above it away into the queue while the KV cache has room, so unless the user
    pinned --max-num-seqs it admits `max_running`: up to max_concurrency (the KV room), but no more than the
    engine's default batch cap, which the plan's memory budget (sampler logits, activations) assumes.
    llama.cpp keeps M: each -np slot takes its share of n_ctx. Returns the launch record (a new one if changed)."""
    from autoquant.facts import default_facts

    spec = default_facts().engines.get(candidate.engine)
    if not pinned and spec is not None and spec.tensor_parallel and candidate.max_running > candidate.max_num_seqs:
        return replace(candidate, max_num_seqs=candidate.max_running)
    return candidate
