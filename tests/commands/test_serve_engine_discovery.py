"""`autoquant serve` runs the engine that discovery finds (autoquant.probes.engines, what `autoquant probe`
lists) and gates its flags on that engine's version: a vLLM in its own virtual environment, pointed at with
AUTOQUANT_ENGINE_BIN_VLLM, is held to the version its dist-info says."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from autoquant.cli import main
from autoquant.records import Candidate, Checkpoint, Memory, Plan, to_dict

pytestmark = pytest.mark.usefixtures("no_autoquant_env")


def _vllm_venv(root: Path, version: str) -> Path:
    """A virtual environment with vLLM `version` as pip leaves it; returns its bin/vllm console script."""
    python = root / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\nexit 0\n")
    (root / "lib" / "python3.11" / "site-packages" / f"vllm-{version}.dist-info").mkdir(parents=True)
    script = root / "bin" / "vllm"
    script.write_text(f"#!{python}\nfrom vllm.entrypoints.cli.main import main\n")
    for f in (python, script):
        f.chmod(f.stat().st_mode | stat.S_IXUSR)
    return script


def _plan_file(tmp_path: Path) -> str:
    c = Candidate(
        engine="vllm", method="bf16", tp=1, pp=1,
        memory=Memory(weights_gb=1.0, kv_cache_gb=1.0, overhead_gb=1.0, total_gb=3.0, fits=True),
        max_concurrency=8, concurrency=1, ttft_ms=1.0, tpot_ms=1.0, output_tokens_per_s=1.0,
        per_request_tokens_per_s=1.0, ppl_delta=0.0, cost_per_million_tokens=None, regime="bandwidth_bound",
        max_model_len=4096, max_num_seqs=0, gpu="H100-SXM", gpus=1,
        checkpoint=Checkpoint(repo="org/model", method="bf16", source="registry"),
    )
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(to_dict(Plan(model="org/model", hardware="t", chosen=c))))
    return str(path)


def test_serve_runs_the_vllm_pointed_at_and_gates_flags_on_its_venvs_version(capsys, tmp_path, monkeypatch):
    vllm = _vllm_venv(tmp_path / "venv-vllm", "0.20.0")
    monkeypatch.setenv("AUTOQUANT_ENGINE_BIN_VLLM", str(vllm))
    # --calculate-kv-scales left vLLM in 0.28: a 0.20.0 still takes it
    assert main(["serve", "--plan", _plan_file(tmp_path), "--dry-run", "--json", "--calculate-kv-scales"]) == 0
    launch = json.loads(capsys.readouterr().out)["launch"]
    assert launch["argv"][:2] == [str(vllm), "serve"] and launch["version"] == "0.20.0"
    assert "--calculate-kv-scales" in launch["argv"]


def test_a_newer_vllm_in_its_venv_refuses_the_flag_it_removed(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOQUANT_ENGINE_BIN_VLLM", str(_vllm_venv(tmp_path / "venv-vllm", "0.30.0")))
    assert main(["serve", "--plan", _plan_file(tmp_path), "--dry-run", "--calculate-kv-scales"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["autoquant: error: --calculate-kv-scales is not a vLLM 0.30.0 flag: removed from vLLM's "
                   "arguments in 2026"]


def test_a_pointer_to_a_file_that_is_not_executable_is_one_error_line(aq, env, tmp_path, free_port):
    target = tmp_path / "vllm"
    target.write_text("#!/bin/sh\n")  # no x bit
    proc = aq({**env, "AUTOQUANT_ENGINE_BIN_VLLM": str(target)}, "serve", "--plan", _plan_file(tmp_path),
              "--host", "127.0.0.1", "--port", str(free_port()), timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert lines[-1] == (f"autoquant: error: {target} is not an executable program: chmod +x it, or point "
                         "AUTOQUANT_ENGINE_BIN_* at the engine")
    assert f"AUTOQUANT_ENGINE_BIN_VLLM={target}: not executable (chmod +x it)" in proc.stderr  # the summary's note
