"""`validate` as a library call: the same token windows through a reference and a candidate server, scored.

The text is tokenized once, by the reference; the candidate must tokenize it the same way (KL and top-1 need
one vocabulary). Each window of `window` tokens gets BOS in front and only its second half is scored, as
llama-perplexity does (scoring.windows). llama-cpp-python takes text prompts only, so there a window is sent
as its detokenized text, and a window whose text does not tokenize back to the same ids is skipped and
counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from autoquant.errors import InputError, UsageError
from autoquant.servers import LLAMA_CPP_PYTHON, Server, detokenize, tokenize
from autoquant.validate import client, scoring


@dataclass(frozen=True)
class Result:
    reference: dict
    candidate: dict
    figures: scoring.Figures
    thresholds: scoring.Thresholds
    verdict: scoring.Verdict
    windows_skipped: int = 0
    notes: list[str] = field(default_factory=list)
    schema: str = "autoquant.validate"
    schema_version: int = 1


def thresholds_for(use_case: str | None, max_ppl_delta: float | None, max_kl: float | None) -> scoring.Thresholds:
    """The seed's per-use-case limits (quality.yaml use_cases), or the user's; a user figure overrides one."""
    from autoquant.data import load

    cases = (load("quality") or {}).get("use_cases") or {}
    aliases = {row.get("seed_key"): name for name, row in cases.items() if isinstance(row, dict)}
    name = aliases.get(use_case, use_case) or "chat"
    if name not in cases:
        raise UsageError(f"--use-case {use_case!r}: choose one of {', '.join(cases)}")
    row = cases[name]
    ppl = max_ppl_delta if max_ppl_delta is not None else float(row["max_ppl_degradation"])
    kl = max_kl if max_kl is not None else float(row["max_kl_divergence"])
    given = "your limits" if max_ppl_delta is not None and max_kl is not None else f"use case {name}"
    return scoring.Thresholds(ppl, kl, given)


def _key_kind(server: Server) -> str:
    return "string" if server.kind == LLAMA_CPP_PYTHON else "id"


def validate(reference: Server, candidate: Server, text: str, thresholds: scoring.Thresholds, *, window: int = 512,
             max_windows: int | None = 8, top_k: int = 10,
             progress: Callable[[int, int], None] | None = None) -> Result:
    if _key_kind(reference) != _key_kind(candidate):
        raise UsageError(f"the reference ({reference.kind}) names tokens by {_key_kind(reference)} and the candidate "
                         f"({candidate.kind}) by {_key_kind(candidate)}: serve both with the same kind of server")
    for s in (reference, candidate):
        client.probe_capability(s, top_k)
    ids = tokenize(reference, text)
    cand_ids = tokenize(candidate, text)
    if ids != cand_ids:
        at = next((i for i, (a, b) in enumerate(zip(ids, cand_ids, strict=False)) if a != b), min(len(ids), len(cand_ids)))
        raise InputError(f"the two servers tokenize the text differently (from token {at}): KL and top-1 need one "
                         "vocabulary; compare models that share a tokenizer")
    bos = tokenize(reference, "")
    stream = ids[len(bos):] if bos and ids[: len(bos)] == bos else ids
    limit = min(x for x in (reference.max_model_len, candidate.max_model_len) if x) if any(
        (reference.max_model_len, candidate.max_model_len)) else None
    if limit and window + len(bos) + 1 > limit:
        raise UsageError(f"--window {window} does not fit the servers' context ({limit} tokens): lower it")
    wins = scoring.windows(len(stream), window, max_windows)
    if not wins:
        raise InputError(f"the dataset is {len(stream)} tokens, less than one --window of {window}: give more text "
                         "or a smaller --window")
    scores: list[scoring.PositionScore] = []
    skipped = 0
    n_bytes = 0
    for n, w in enumerate(wins):
        prompt = list(bos) + stream[w.start:w.end]
        text_w = detokenize(reference, stream[w.start:w.end]) if reference.kind == LLAMA_CPP_PYTHON else None
        if text_w is not None and tokenize(reference, text_w) != prompt:
            skipped += 1
            continue
        ref = client.prompt_logprobs(reference, prompt, top_k, text_w)
        cand = client.prompt_logprobs(candidate, prompt, top_k, text_w)
        scored = [len(bos) + i for i in w.scored]
        pairs = [(ref[i], cand[i]) for i in scored if i < len(ref) and i < len(cand) and ref[i] and cand[i]]
        scores += [scoring.score_position(r, c) for r, c in pairs]
        n_bytes += len(detokenize(reference, [prompt[i] for i in scored]).encode("utf-8"))
        if progress:
            progress(n + 1, len(wins))
    if not scores:
        raise InputError("no window could be scored (every window's text tokenized differently from its ids)")
    fig = scoring.summarize(scores, n_windows=len(wins) - skipped, bytes_scored=n_bytes, top_k=top_k)
    notes = [f"KL is a lower bound from the top-{top_k} log-probabilities (the tokens both servers listed, plus "
             f"one bucket for the rest); the reference put {fig.ref_outside_mean:.1%} of its mass, on average, "
             "outside the shared tokens"]
    if skipped:
        notes.append(f"{skipped} window(s) skipped: their text does not tokenize back to the same ids")
    return Result(reference.identity(), candidate.identity(), fig, thresholds, scoring.judge(fig, thresholds),
                  skipped, notes)
