"""Pure scoring: windows, perplexity, a KL lower bound from top-k log-probabilities, top-1 agreement, delta-p and
bits per byte. Records in, records out; no I/O, so every figure is testable by hand in microseconds."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

LN2 = math.log(2.0)
# Floating point sums of top-k probabilities can exceed 1 by ~1e-7; a tail below this is "no tail".
_TAIL_EPS = 1e-9


@dataclass(frozen=True)
class Window:
    """Tokens [start, end) of the token stream; the ones at index >= first_scored (within the window) are scored."""

    start: int
    end: int
    first_scored: int

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def scored(self) -> range:
        """Indices within the window whose token is scored."""
        return range(self.first_scored, self.length)


def windows(n_tokens: int, window: int, max_windows: int | None = None) -> list[Window]:
    """Non-overlapping windows of `window` tokens, each scoring its second half with the first half as context.

    This is llama.cpp's scheme (tools/perplexity/perplexity.cpp, perplexity(): chunks of n_ctx tokens, BOS in
    front, `first = n_ctx/2`, only logits after `first` are scored) so every scored token sees at least
    window/2 tokens of context and figures are comparable with `llama-perplexity`. Like it, a partial last
    chunk is dropped: its tokens would be scored with less context than the rest.
    """
    if window < 2:
        raise ValueError("window must be at least 2 tokens")
    count = n_tokens // window
    if max_windows is not None:
        count = min(count, max_windows)
    return [Window(i * window, (i + 1) * window, window // 2) for i in range(count)]


@dataclass(frozen=True)
class Position:
    """One scored prompt position on one server: log p(actual token) and the server's top-k log-probabilities.

    Keys identify tokens (token ids, or token strings where a server gives only those); both sides of a
    comparison must use the same kind of key. `top` includes the actual token where the server adds it.
    """

    logprob: float
    top: Mapping[Hashable, float]


@dataclass(frozen=True)
class PositionScore:
    """The comparison at one position (reference p vs candidate q)."""

    nll_ref: float  # -ln p(actual)
    nll_cand: float  # -ln q(actual)
    kl_bound: float  # lower bound on KL(p || q) in nats
    same_top1: bool
    dp: float  # p(actual) - q(actual): reference minus candidate
    ref_outside: float  # reference probability mass outside the tokens both sides listed (bound slack indicator)


def kl_lower_bound(p_top: Mapping[Hashable, float], q_top: Mapping[Hashable, float]) -> tuple[float, float]:
    """(lower bound on KL(p || q) in nats, p's mass outside the compared buckets) from two top-k log-prob maps.

    The vocabulary is coarsened into one bucket per token that BOTH sides listed (where both probabilities
    are known) plus one tail bucket holding everything else: P_tail = 1 - sum of p over the shared tokens, and
    likewise Q_tail. A token only one side listed goes to the tail, because the other side's probability for
    it is unknown. That is a partition of the vocabulary with the same events on both sides, so by the
    log-sum inequality (data-processing inequality for the merge map) its KL is <= the true KL.
    """
    shared = [k for k in p_top if k in q_top]
    total = 0.0
    p_known = 0.0
    q_known = 0.0
    for k in shared:
        lp, lq = p_top[k], q_top[k]
        p = math.exp(lp)
        total += p * (lp - lq)
        p_known += p
        q_known += math.exp(lq)
    p_tail = max(0.0, 1.0 - p_known)
    q_tail = max(0.0, 1.0 - q_known)
    if p_tail > _TAIL_EPS:
        total += p_tail * (math.log(p_tail) - math.log(max(q_tail, _TAIL_EPS)))
    # The coarse KL is >= 0 mathematically; a negative value is rounding in the sums.
    return max(0.0, total), p_tail


def _argmax(top: Mapping[Hashable, float]) -> Hashable | None:
    return max(top.items(), key=lambda kv: kv[1])[0] if top else None


def score_position(ref: Position, cand: Position) -> PositionScore:
    kl, outside = kl_lower_bound(ref.top, cand.top)
    top1 = _argmax(ref.top)
    return PositionScore(
        nll_ref=-ref.logprob,
        nll_cand=-cand.logprob,
        kl_bound=kl,
        same_top1=top1 is not None and top1 == _argmax(cand.top),
        dp=math.exp(ref.logprob) - math.exp(cand.logprob),
        ref_outside=outside,
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass(frozen=True)
class Figures:
    """Everything `validate` reports. KL figures are lower bounds (see kl_lower_bound)."""

    tokens_scored: int
    windows: int
    bytes_scored: int
    ppl_reference: float
    ppl_candidate: float
    ppl_delta: float  # candidate - reference (the seed's perplexity_degradation)
    ppl_ratio: float  # candidate / reference
    bpb_reference: float
    bpb_candidate: float
    kl_mean: float
    kl_p50: float
    kl_p90: float
    kl_p99: float
    kl_max: float
    same_top1: float  # fraction of positions where both argmax tokens agree
    dp_mean: float
    dp_rms: float
    dp_p1: float
    dp_p50: float
    dp_p99: float
    dp_max: float
    dp_min: float
    ref_outside_mean: float  # mean reference mass outside the compared buckets: the bound is loose when large
    top_k: int


def summarize(scores: Sequence[PositionScore], *, n_windows: int, bytes_scored: int, top_k: int) -> Figures:
    """Aggregate per-position scores into the report's figures."""
    n = len(scores)
    if n == 0:
        raise ValueError("no positions scored")
    nll_ref = sum(s.nll_ref for s in scores)
    nll_cand = sum(s.nll_cand for s in scores)
    ppl_ref = math.exp(nll_ref / n)
    ppl_cand = math.exp(nll_cand / n)
    kls = [s.kl_bound for s in scores]
    dps = [s.dp for s in scores]
    return Figures(
        tokens_scored=n,
        windows=n_windows,
        bytes_scored=bytes_scored,
        ppl_reference=ppl_ref,
        ppl_candidate=ppl_cand,
        ppl_delta=ppl_cand - ppl_ref,
        ppl_ratio=ppl_cand / ppl_ref,
        bpb_reference=bits_per_byte(nll_ref, bytes_scored),
        bpb_candidate=bits_per_byte(nll_cand, bytes_scored),
        kl_mean=sum(kls) / n,
        kl_p50=percentile(kls, 50),
        kl_p90=percentile(kls, 90),
        kl_p99=percentile(kls, 99),
        kl_max=max(kls),
        same_top1=sum(s.same_top1 for s in scores) / n,
        dp_mean=sum(dps) / n,
        dp_rms=math.sqrt(sum(d * d for d in dps) / n),
        dp_p1=percentile(dps, 1),
        dp_p50=percentile(dps, 50),
        dp_p99=percentile(dps, 99),
        dp_max=max(dps),
        dp_min=min(dps),
        ref_outside_mean=sum(s.ref_outside for s in scores) / n,
        top_k=top_k,
    )


def bits_per_byte(total_nll_nats: float, n_bytes: int) -> float:
    """Total negative log-likelihood in bits over the UTF-8 bytes it covers: comparable across tokenizers."""
    if n_bytes <= 0:
        return math.nan
    return total_nll_nats / LN2 / n_bytes


@dataclass(frozen=True)
class Thresholds:
    """The gate: perplexity increase and (lower-bounded) mean KL must stay below these."""

    max_ppl_delta: float
    max_kl: float
    source: str


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]


def judge(fig: Figures, th: Thresholds) -> Verdict:
    """Pass iff ppl delta < max and the KL lower bound < max (strict, as the seed's validate_quantized_model).

    The KL figure is a lower bound, so a bound over the limit proves a failure, while a bound under it is
    necessary but not sufficient; the gate passes on it (top-k is all most servers return) and the report
    says how much reference mass the bound could not see (ref_outside_mean).
    """
    reasons = []
    if not fig.ppl_delta < th.max_ppl_delta:
        reasons.append(f"perplexity rose by {fig.ppl_delta:.4g} (limit {th.max_ppl_delta:g})")
    if not fig.kl_mean < th.max_kl:
        reasons.append(f"mean KL >= {fig.kl_mean:.4g} (limit {th.max_kl:g}; the bound alone exceeds it)")
    return Verdict(passed=not reasons, reasons=tuple(reasons))
