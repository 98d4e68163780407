"""Shared by the fuzz suite: one hypothesis profile (derandomized, so CI sees the same examples every run;
AUTOQUANT_FUZZ_EXAMPLES raises the count for a longer local hunt) and the CLI contract as a fixture."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("AUTOQUANT_FUZZ_EXAMPLES", "40")),
    deadline=None,  # wall time is bounded per call by no_hang() instead: CI machines are slow and shared
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.data_too_large],
)

HANG_S = 20  # no parser or plan takes more than a fraction of this; past it the input made unbounded work


@contextmanager
def no_hang(seconds: float = HANG_S) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging when one call runs past `seconds`."""
    def expire(_signum, _frame):
        raise TimeoutError(f"still running after {seconds} s: unbounded work on this input")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, as every JSON parser but Python's does."""
    def refuse(name: str):
        raise ValueError(f"{name} in --json output")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def cli_contract(capsys, monkeypatch) -> Callable[[Sequence[str]], tuple[int, str]]:
    """Run the CLI in-process and assert the contract: exit 0 (or 1, a valid "no") with strict JSON on stdout
    for --json, or exit 2 with exactly one `autoquant: error:` line that is not an internal error. Returns
    (code, output)."""
    from autoquant.cli import main

    monkeypatch.setenv("AUTOQUANT_PREDICTOR", "autoquant")  # the planner's own model: no optional predictor

    def run(argv: Sequence[str]) -> tuple[int, str]:
        with no_hang():
            code = main(list(argv))
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        if code == 2:
            errors = [line for line in err.splitlines() if line.startswith("autoquant: error:")]
            assert len(errors) == 1, err
            assert "internal error" not in errors[0], errors[0]
            assert len(errors[0]) <= 700, errors[0][:200]
            return code, errors[0]
        assert code in (0, 1), (code, err)  # 1: a valid answer that is "no" (plan: nothing fits)
        if "--json" in argv:
            strict_json(out)
        return code, out

    return run
