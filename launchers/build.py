"""Dispatch: the LaunchSpec for a candidate, from the launcher of its engine."""

from __future__ import annotations

from autoquant.errors import UsageError
from autoquant.records import Candidate

from .base import ENGINES, LaunchSpec, ServeOptions, secret_values


def build(candidate: Candidate, options: ServeOptions, model: str, threads: int | None = None) -> LaunchSpec:
    """argv + env for `candidate` (nothing is started). `model` is the name clients ask for. The spec
    redacts, wherever it is printed, secrets from the environment and the values of secret passthrough flags."""
    from . import llamacpp, trtllm, vllm

    if candidate.engine == "vllm":
        spec = vllm.build(candidate, options, model)
    elif candidate.engine == "trtllm":
        spec = trtllm.build(candidate, options, model)
    elif candidate.engine == "llamacpp":
        spec = llamacpp.build(candidate, options, model, threads=threads)
    else:
        raise UsageError(f"unknown engine {candidate.engine!r} in the plan: choose one of {', '.join(ENGINES)}")
    spec.secrets += [s for s in secret_values(options.passthrough) if s not in spec.secrets]
    return spec


def server_batch_cap(candidate: Candidate, pinned: bool) -> None:
    """The plan's max_num_seqs is M, the requests running at once at the expected concurrency; a vLLM/TRT-LLM
    server should not turn bursts above it away into the queue while the KV cache has room, so unless the user
    pinned --max-num-seqs it admits `max_running`: up to max_concurrency (the KV room), but no more than the
    engine's default batch cap, which the plan's memory budget (sampler logits, activations) assumes.
    llama.cpp keeps M: each -np slot takes its share of n_ctx."""
    if not pinned and candidate.engine in ("vllm", "trtllm") and candidate.max_running > candidate.max_num_seqs:
        candidate.max_num_seqs = candidate.max_running
