"""The CLI shell: help, one-line errors, lazy imports, broken pipes."""

from __future__ import annotations

import subprocess
import sys

from autoquant.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def test_unknown_command_is_one_line_exit_2(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("autoquant: error: ") and "frobnicate" in err[0]


def test_unknown_flag_is_one_line_exit_2(capsys):
    assert main(["probe", "--gpu", "h100", "--no-such-flag"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["autoquant: error: unrecognized arguments: --no-such-flag"]


def test_help_imports_no_engine_torch_or_nvml():
    code = (
        "import sys; from autoquant.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('torch', 'vllm', 'llama_cpp', 'tensorrt_llm', 'pynvml') if m in sys.modules]\n"
        "print('BAD=' + ','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "BAD="


def test_closed_pipe_is_not_an_error():
    # `autoquant probe --gpu H100-SXM:8 --json | head -1`: the reader goes away early.
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoquant", "probe", "--gpu", "H100-SXM:8", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=30)
    assert "internal error" not in err and "Traceback" not in err
