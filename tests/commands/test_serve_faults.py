"""`autoquant serve` faults at the process boundary, with FAKE engines (tests/fakes/engines.py) reached through
AUTOQUANT_ENGINE_BIN_VLLM / AUTOQUANT_ENGINE_BIN_LLAMACPP_PYTHON: a port another server holds is one error line
(exec and supervise), another server's answer is not readiness, a dead engine says how it died."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from autoquant.records import Candidate, Checkpoint, Memory, Plan, to_dict

ENGINES = Path(__file__).parents[1] / "fakes" / "engines.py"


@pytest.fixture
def rig(tmp_path, fake_pids, free_port):
    """A vLLM plan, an environment with no AUTOQUANT_* of the caller's, a pid file the fakes write to (killed at
    the end by `fake_pids`)."""
    candidate = Candidate(
        engine="vllm", method="bf16", tp=1, pp=1,
        memory=Memory(weights_gb=1.0, kv_cache_gb=1.0, overhead_gb=1.0, total_gb=3.0, fits=True),
        max_concurrency=8, concurrency=1, ttft_ms=10.0, tpot_ms=5.0, output_tokens_per_s=100.0,
        per_request_tokens_per_s=100.0, ppl_delta=0.0, cost_per_million_tokens=None, regime="bandwidth_bound",
        max_model_len=4096, max_num_seqs=8, checkpoint=Checkpoint(repo="org/model", method="bf16"),
    )
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(to_dict(Plan(model="org/model", hardware="test", chosen=candidate))))
    pids = fake_pids
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOQUANT_", "FAKE_"))}
    env.update(AUTOQUANT_CACHE_DIR=str(tmp_path / "cache"), FAKE_PIDS=str(pids), HF_TOKEN="hf_supersecret")
    return {"tmp": tmp_path, "plan": str(plan), "env": env, "port": free_port(), "pids": pids}


def _engine(rig, mode: str) -> str:
    """An executable that runs the fake engine in `mode` with the argv serve gives it."""
    path = rig["tmp"] / f"fake-{mode}"
    path.write_text(f"#!/bin/sh\nexec {sys.executable} {ENGINES} {mode} \"$@\"\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _serve(rig, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoquant", "serve", "--port", str(rig["port"]), *args],
                          env=dict(rig["env"], **env), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def squatter(rig, squat):
    return squat(rig["port"], rig["env"])


@pytest.mark.parametrize("mode", [["--supervise"], []], ids=["supervise", "exec"])
def test_a_port_held_by_another_server_is_an_error_not_ready(rig, squatter, mode):
    out = _serve(rig, "--plan", rig["plan"], *mode, "--ready-timeout", "5",
                 AUTOQUANT_ENGINE_BIN_VLLM=_engine(rig, "serve"))
    assert out.returncode == 2, out.stderr
    assert "ready:" not in out.stdout
    assert out.stderr.strip().splitlines()[-1] == (
        f"autoquant: error: port {rig['port']} on 0.0.0.0 is already in use by another process; stop it or pick "
        f"another with --port (e.g. --port {rig['port'] + 1})")
    assert rig["pids"].read_text().split() == [str(squatter.pid)]  # the engine was never started


def test_another_servers_answer_is_not_readiness(rig):
    # llama-cpp-python's ready route is /v1/models: a server answering 200 there for another model is not ours
    out = _serve(rig, "--supervise", "--ready-timeout", "20", AUTOQUANT_LLAMACPP_FLAVOR="python",
                 AUTOQUANT_ENGINE_BIN_LLAMACPP_PYTHON=_engine(rig, "foreign"), FAKE_SECONDS="1.5")
    assert "ready:" not in out.stdout, out.stderr
    assert out.returncode == 1
    assert "exited with code 1 before it was ready; its last 2 lines:" in out.stderr


def test_an_engine_killed_after_ready_says_so_with_its_last_lines(rig):
    out = _serve(rig, "--plan", rig["plan"], "--supervise", "--ready-timeout", "20",
                 AUTOQUANT_ENGINE_BIN_VLLM=_engine(rig, "killed-after-ready"), FAKE_SECRET="hf_supersecret")
    assert "ready:" in out.stdout
    assert out.returncode == 128 + signal.SIGKILL
    lines = out.stderr.splitlines()
    said = lines.index("autoquant: vllm bf16 was killed by signal SIGKILL (exit status 137) after it was ready; "
                       "its last 10 lines:")
    assert lines[said + 10] == "autoquant: | fake engine: token ***"
    assert "hf_supersecret" not in out.stdout + out.stderr
