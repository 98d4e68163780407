"""autoquant's own stderr lines all go through output.say: user text (a model name, a folder, an engine flag)
with a newline in it stays on its line, so it cannot forge an `autoquant: error:` line of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from autoquant.cli import main

ROOT = Path(__file__).resolve().parents[2]
MODEL = str(ROOT / "tests" / "fixtures" / "hf-configs" / "meta-llama__Llama-3.2-1B")
FORGED = "x\nautoquant: error: fake"


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AUTOQUANT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AUTOQUANT_CALIBRATION_DIR", raising=False)


def _assert_no_forged_line(err: str) -> None:
    lines = err.splitlines()
    assert not [line for line in lines if line.startswith("autoquant: error: fake")], err
    assert any("autoquant: error: fake" in line for line in lines), "the text itself is still shown, escaped"


@pytest.fixture
def corrupt_fleet_dir(monkeypatch, tmp_path):
    """A fleet calibration folder whose name holds a newline, with a corrupt record: the 'ignored calibration
    file PATH' note names it."""
    fleet = tmp_path / FORGED
    fleet.mkdir()
    (fleet / "bad.json").write_text("{not json")
    monkeypatch.setenv("AUTOQUANT_CALIBRATION_DIR", str(fleet))


def test_checkpoints_model_name_with_a_newline(capsys):
    assert main(["checkpoints", "org/foo\nautoquant: error: fake", "--offline", "--no-plan"]) == 0
    out, err = capsys.readouterr()
    _assert_no_forged_line(err)
    assert all(line.startswith("autoquant: ") for line in err.splitlines())
    assert not [line for line in out.splitlines() if line.startswith("autoquant:")]  # stdout's repo lines too


def test_checkpoints_probe_failure_note(capsys, monkeypatch):
    from autoquant.probes import hardware

    def broken(**_):
        raise RuntimeError(f"probe {FORGED}")

    monkeypatch.setattr(hardware, "probe", broken)
    assert main(["checkpoints", "org/foo", "--offline"]) == 0
    _assert_no_forged_line(capsys.readouterr().err)


def test_checkpoints_planner_note(capsys, monkeypatch):
    import autoquant.planner
    from autoquant.errors import RuleError

    def failing(*_, **__):
        raise RuleError(f"planner {FORGED}")

    monkeypatch.setattr(autoquant.planner, "plan", failing)
    assert main(["checkpoints", MODEL, "--offline", "--gpu", "L4"]) == 0
    err = capsys.readouterr().err
    _assert_no_forged_line(err)
    assert "autoquant: note: planner: planner x\\nautoquant: error: fake" in err


def test_plan_notes(capsys, corrupt_fleet_dir):
    assert main(["plan", MODEL, "--gpu", "L4"]) in (0, 1)
    err = capsys.readouterr().err
    _assert_no_forged_line(err)
    assert all(line.startswith("autoquant: ") for line in err.splitlines())


def test_serve_dry_run_notes(capsys, corrupt_fleet_dir):
    assert main(["serve", MODEL, "--gpu", "H100-SXM", "--engine", "vllm", "--method", "bf16", "--dry-run",
                 "--no-cache"]) == 0
    _assert_no_forged_line(capsys.readouterr().err)


def test_serve_exec_line_is_one_line_and_whole(capsys, monkeypatch):
    from autoquant.launchers import process

    monkeypatch.setattr(process, "exec_engine", lambda spec: None)
    long_name = "n" * 2000  # the command is for copying: not clipped like a message
    assert main(["serve", MODEL, "--gpu", "H100-SXM", "--engine", "vllm", "--method", "bf16", "--no-cache",
                 "--served-model-name", f"{long_name}{FORGED}"]) == 1
    err = capsys.readouterr().err
    _assert_no_forged_line(err)
    [exec_line] = [line for line in err.splitlines() if line.startswith("autoquant: exec ")]
    assert long_name in exec_line and "\u2026" not in exec_line


def test_serve_dry_run_json_masks_environment_secrets(capsys, monkeypatch, tmp_path):
    """The plan's own strings (its model, reasons) are masked too, not only the launch command."""
    import json
    import shutil

    monkeypatch.setenv("HF_TOKEN", "hf_never_print_me_123")
    model = tmp_path / "hf_never_print_me_123"
    shutil.copytree(MODEL, model)
    assert main(["serve", str(model), "--gpu", "H100-SXM", "--engine", "vllm", "--method", "bf16", "--dry-run",
                 "--json", "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert "hf_never_print_me_123" not in out
    assert set(json.loads(out)) == {"plan", "launch", "source"}


def test_no_module_prints_its_own_autoquant_line():
    """Only output.say writes `autoquant: ...` lines (launchers/ has its own owners and is not checked)."""
    own = re.compile(r"""print\(\s*f?["']autoquant: """)
    offenders = [f"{p.relative_to(ROOT)}:{n}" for d in ("autoquant", "probes") for p in sorted((ROOT / d).rglob("*.py"))
                 if p.name != "output.py" or p.parent.name != "autoquant"
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if own.search(line)]
    assert not offenders, offenders
