"""What to send and when (pure, seeded): synthetic prompts and lengths, open-loop arrivals, trace replay, and
the --find-max search over load levels."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from autoquant.bench.records import RequestSpec

# Common English words: a prompt of random words tokenizes at close to one token per word in the BPE and
# SentencePiece vocabularies of current models, and asks the model to continue rather than to stop.
WORDS = (
    "the of and to in is was for that on with as by at from his her an were are which this be or has had "
    "not but what all their when up there can out other about into more time only new some could these two "
    "may first then do any like my now over such our man me even most made after also did many before must "
    "through back years where much your way well down should because each just those people how too little "
    "state good very make world still own see men work long get here between both life being under never day "
    "same another know while last might us great old year off come since against go came right used take three"
).split()


def lengths(n: int, mean: int, range_ratio: float, rng: np.random.Generator) -> list[int]:
    """`n` lengths uniform in [mean(1-r), mean(1+r)] (vllm bench's random dataset), at least 1."""
    if range_ratio <= 0:
        return [mean] * n
    lo = max(1, math.floor(mean * (1 - range_ratio)))
    hi = max(lo, math.ceil(mean * (1 + range_ratio)))
    return [int(x) for x in rng.integers(lo, hi + 1, size=n)]


def words_prompt(n_words: int, rng: np.random.Generator) -> str:
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), size=max(1, n_words)))


def synthetic(n: int, isl: int, osl: int, range_ratio: float, seed: int,
              tokens_per_word: float = 1.0) -> list[RequestSpec]:
    """`n` requests of about `isl` prompt tokens (words scaled by the server's measured tokens per word) and
    `osl` output tokens."""
    rng = np.random.default_rng(seed)
    ins = lengths(n, isl, range_ratio, rng)
    outs = lengths(n, osl, range_ratio, rng)
    specs = []
    for i, (a, b) in enumerate(zip(ins, outs, strict=True)):
        specs.append(RequestSpec(i, words_prompt(round(a / max(tokens_per_word, 1e-6)), rng), a, b))
    return specs


def arrivals(n: int, rate: float, burstiness: float, seed: int) -> list[float]:
    """Send times (s) of an open loop at `rate` req/s: gaps drawn from a gamma with shape `burstiness` and
    mean 1/rate (burstiness 1 is Poisson), as `vllm bench serve --burstiness`; inf: all at t=0."""
    if rate == math.inf:
        return [0.0] * n
    rng = np.random.default_rng(seed + 1)
    gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=n)
    t = np.cumsum(gaps) - gaps[0]  # the first request goes at once
    return [float(x) for x in t]


def at_times(specs: Sequence[RequestSpec], times: Sequence[float]) -> list[RequestSpec]:
    return [RequestSpec(s.index, s.prompt, s.isl, s.osl, t) for s, t in zip(specs, times, strict=False)]


def replay(trace: Sequence[tuple[float, int, int]], time_scale: float, seed: int,
           tokens_per_word: float = 1.0, limit: int | None = None) -> list[RequestSpec]:
    """Requests of a trace (arrival s, input tokens, output tokens) at its own times x `time_scale`
    (0.5 plays it twice as fast)."""
    rng = np.random.default_rng(seed)
    rows = list(trace)[:limit] if limit else list(trace)
    if not rows:
        return []
    t0 = rows[0][0]
    return [RequestSpec(i, words_prompt(round(max(1, isl) / max(tokens_per_word, 1e-6)), rng), max(1, isl),
                        max(1, osl), (t - t0) * time_scale)
            for i, (t, isl, osl) in enumerate(rows)]


def find_max(measure: Callable[[float], bool], start: float, integer: bool, limit: float,
             rel_tol: float = 0.1) -> tuple[float | None, list[float]]:
    """The largest load in [start, limit] for which `measure(load)` is True, assuming it is monotone: double
    from `start` until it fails (or reaches `limit`), then bisect to `rel_tol`. Returns (best or None, the
    loads tried, in order)."""
    tried: list[float] = []

    def ok(x: float) -> bool:
        tried.append(x)
        return measure(x)

    x = start
    if not ok(x):
        return None, tried
    good, bad = x, None
    while bad is None and good < limit:
        x = min(limit, good * 2)
        if ok(x):
            good = x
        else:
            bad = x
    while bad is not None:
        gap = bad - good
        if (integer and gap <= max(1, math.floor(good * rel_tol))) or (not integer and gap <= good * rel_tol):
            break
        mid = (good + bad) / 2
        mid = float(math.floor(mid)) if integer else mid
        if mid in tried:
            break
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good, tried
