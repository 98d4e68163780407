"""positive_int / positive_float: the one parser for positive numbers in flags, env vars and --gpu COUNT."""

from __future__ import annotations

import argparse

import pytest

from autoquant.argtypes import positive_float, positive_int
from autoquant.errors import UsageError


def test_values():
    assert positive_int("8") == 8 and positive_int(" 3 ", "--tp") == 3
    assert positive_float("0.5") == 0.5 and positive_float("2", "--x") == 2.0


@pytest.mark.parametrize("text", ["0", "-2", "two", "1.5", ""])
def test_bad_int(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected a positive integer"):
        positive_int(text)
    with pytest.raises(UsageError, match="^--tp must be (a positive integer|at least 1), not"):
        positive_int(text, "--tp")


@pytest.mark.parametrize("text", ["0", "-3", "nan", "fast"])
def test_bad_float(text):
    with pytest.raises(argparse.ArgumentTypeError, match="expected a positive number"):
        positive_float(text)
    with pytest.raises(UsageError, match="^--ttft-ms must be (a positive number|above 0), not"):
        positive_float(text, "--ttft-ms")


def test_cli_names_the_flag(capsys):
    from autoquant.cli import main

    assert main(["plan", "org/model", "--gpu", "H100-SXM", "--isl", "0"]) == 2
    assert "--isl" in capsys.readouterr().err
