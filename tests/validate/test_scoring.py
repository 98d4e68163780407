"""Scoring on hand-made distributions: the KL figure never exceeds the true KL, windows score their second half,
perplexity and bits per byte by hand, the gate strict as the seed's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoquant.validate import scoring


def logp(p):
    return {i: math.log(x) for i, x in enumerate(p) if x > 0}


def top(p, k):
    order = np.argsort(p)[::-1][:k]
    return {int(i): math.log(p[i]) for i in order}


def true_kl(p, q):
    return float(np.sum(p * (np.log(p) - np.log(q))))


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10_000), vocab=st.integers(2, 60), k=st.integers(1, 10), temp=st.floats(0.2, 3.0))
def test_kl_from_top_k_is_a_lower_bound(seed, vocab, k, temp):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(vocab) * temp)
    q = rng.dirichlet(np.ones(vocab) * temp)
    p, q = np.clip(p, 1e-12, None), np.clip(q, 1e-12, None)
    p, q = p / p.sum(), q / q.sum()
    bound, _ = scoring.kl_lower_bound(top(p, k), top(q, k))
    assert bound <= true_kl(p, q) + 1e-9


def test_full_vocabulary_gives_the_exact_kl():
    p = np.array([0.5, 0.3, 0.2])
    q = np.array([0.2, 0.5, 0.3])
    bound, outside = scoring.kl_lower_bound(logp(p), logp(q))
    assert bound == pytest.approx(true_kl(p, q))
    assert outside == pytest.approx(0.0, abs=1e-12)


def test_identical_servers_score_zero():
    pos = scoring.Position(math.log(0.5), {1: math.log(0.5), 2: math.log(0.3)})
    s = scoring.score_position(pos, pos)
    assert s.kl_bound == 0.0 and s.same_top1 and s.dp == 0.0


def test_a_token_only_one_side_listed_goes_to_the_tail():
    # q lists token 3 that p did not: it must not be compared as if p(3) were known
    p = {1: math.log(0.6), 2: math.log(0.3)}
    q = {1: math.log(0.6), 3: math.log(0.3)}
    bound, outside = scoring.kl_lower_bound(p, q)
    # buckets: {1} (0.6 vs 0.6) and tail (0.4 vs 0.4): zero, although p and q differ
    assert bound == pytest.approx(0.0, abs=1e-12)
    assert outside == pytest.approx(0.4)


def test_windows_score_their_second_half_and_drop_a_partial_last():
    ws = scoring.windows(1000, 256)
    assert len(ws) == 3
    assert ws[1].start == 256 and list(ws[1].scored) == list(range(128, 256))
    assert len(scoring.windows(1000, 256, max_windows=2)) == 2


def test_perplexity_and_bits_per_byte_by_hand():
    scores = [scoring.PositionScore(math.log(2), math.log(4), 0.1, True, 0.25, 0.0),
              scoring.PositionScore(math.log(8), math.log(8), 0.3, False, 0.0, 0.0)]
    f = scoring.summarize(scores, n_windows=1, bytes_scored=4, top_k=5)
    assert f.ppl_reference == pytest.approx(4.0)  # exp(mean(ln2, ln8)) = sqrt(16)
    assert f.ppl_candidate == pytest.approx(math.sqrt(32))
    assert f.bpb_reference == pytest.approx((1 + 3) / 4)  # 4 bits over 4 bytes
    assert f.kl_mean == pytest.approx(0.2) and f.same_top1 == 0.5


def test_the_gate_is_strict_and_says_why():
    f = scoring.summarize([scoring.PositionScore(1.0, 1.2, 0.05, True, 0.0, 0.0)], n_windows=1, bytes_scored=1,
                          top_k=1)
    assert scoring.judge(f, scoring.Thresholds(1.0, 0.1, "t")).passed
    verdict = scoring.judge(f, scoring.Thresholds(0.1, 0.05, "t"))
    assert not verdict.passed and len(verdict.reasons) == 2  # 0.05 is not < 0.05
