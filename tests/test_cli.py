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


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("autoquant: error: ")
    return err[0]


def test_hardware_file_that_is_a_directory_is_one_line(capsys, tmp_path):
    assert main(["plan", "org/model", "--hardware", str(tmp_path)]) == 2
    assert f"{tmp_path} is a directory, not a hardware file" in _one_error_line(capsys)


def test_binary_hardware_file_is_one_line(capsys, tmp_path):
    bad = tmp_path / "node.json"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert main(["plan", "org/model", "--hardware", str(bad)]) == 2
    assert f"{bad} is not a hardware file: not UTF-8 JSON text" in _one_error_line(capsys)


def test_profile_of_a_directory_is_one_line(capsys, tmp_path):
    assert main(["profile", str(tmp_path)]) == 2
    assert f"{tmp_path} is a directory" in _one_error_line(capsys)


def test_any_os_or_decode_error_becomes_one_line(capsys, monkeypatch):
    from autoquant.commands import profile
    from autoquant.errors import describe

    assert describe(IsADirectoryError(21, "Is a directory", "/tmp")) == "/tmp is a directory: give a file"
    assert describe(NotADirectoryError(20, "Not a directory", "/etc/passwd/x")) == "not a directory: /etc/passwd/x"
    assert describe(OSError(28, "No space left on device", "/data")) == "/data: No space left on device"
    assert "not UTF-8 text" in describe(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"))

    def boom(args):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(profile, "run", boom)
    assert main(["profile", "x.csv"]) == 2
    assert "not UTF-8 text" in _one_error_line(capsys)


def test_exit_code_comes_from_the_error(capsys, monkeypatch):
    from autoquant.commands import profile
    from autoquant.errors import AutoquantError

    class Custom(AutoquantError):
        exit_code = 3

    def boom(args):
        raise Custom("custom failure")

    monkeypatch.setattr(profile, "run", boom)
    assert main(["profile", "x.csv"]) == 3
    assert _one_error_line(capsys) == "autoquant: error: custom failure"


def test_record_error_says_why_each_union_member_failed():
    import pytest

    from autoquant.records import Plan, RecordError, from_dict

    with pytest.raises(RecordError) as info:
        from_dict(Plan, {"model": "m", "hardware": "h", "chosen": 5})
    assert "matches none of" in str(info.value) and "expected an object, got int" in str(info.value)
