"""Prompts, arrivals and the --find-max search: seeded, and the search finds the edge of a monotone SLO."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoquant.bench import schedule


def test_poisson_arrivals_have_the_asked_rate_and_unit_cv():
    t = schedule.arrivals(20000, rate=5.0, burstiness=1.0, seed=1)
    gaps = np.diff(t)
    assert t[0] == 0.0
    assert 1 / gaps.mean() == pytest.approx(5.0, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)


def test_burstiness_below_one_is_burstier():
    # gamma with shape k: coefficient of variation 1/sqrt(k)
    gaps = np.diff(schedule.arrivals(20000, rate=5.0, burstiness=0.25, seed=1))
    assert 1 / gaps.mean() == pytest.approx(5.0, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(2.0, rel=0.08)


def test_infinite_rate_sends_everything_at_once():
    assert schedule.arrivals(5, math.inf, 1.0, 0) == [0.0] * 5


def test_same_seed_same_requests():
    a = schedule.synthetic(4, 64, 16, 0.5, seed=7)
    b = schedule.synthetic(4, 64, 16, 0.5, seed=7)
    assert a == b
    assert a != schedule.synthetic(4, 64, 16, 0.5, seed=8)


def test_lengths_stay_in_range():
    xs = schedule.lengths(1000, 100, 0.2, np.random.default_rng(0))
    assert min(xs) >= 80 and max(xs) <= 120 and len(set(xs)) > 10


def test_prompt_words_follow_the_tokens_per_word_ratio():
    spec = schedule.synthetic(1, 300, 8, 0.0, seed=0, tokens_per_word=1.5)[0]
    assert len(spec.prompt.split()) == 200


def test_replay_scales_the_trace_times():
    specs = schedule.replay([(10.0, 5, 6), (12.0, 7, 8), (16.0, 1, 0)], time_scale=0.5, seed=0)
    assert [s.send_at for s in specs] == [0.0, 1.0, 3.0]
    assert [(s.isl, s.osl) for s in specs] == [(5, 6), (7, 8), (1, 1)]  # zero output asks for one token


@given(edge=st.integers(1, 500), start=st.integers(1, 8))
def test_find_max_finds_the_edge_of_a_monotone_predicate(edge, start):
    best, tried = schedule.find_max(lambda x: x <= edge, float(start), integer=True, limit=1024)
    if start > edge:
        assert best is None
        return
    assert best is not None and best <= edge
    assert edge - best <= max(1, math.floor(best * 0.1))  # within the tolerance
    assert len(tried) < 30


def test_find_max_stops_at_the_limit():
    best, _ = schedule.find_max(lambda x: True, 1.0, integer=True, limit=64)
    assert best == 64


def test_find_max_on_a_rate():
    best, _ = schedule.find_max(lambda x: x <= 3.3, 0.5, integer=False, limit=100)
    assert 3.0 <= best <= 3.3
