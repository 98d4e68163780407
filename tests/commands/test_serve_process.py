"""`autoquant serve` at the process boundary, with a FAKE engine executable.

tests/fixtures/engines/fake_engine.py stands in for `vllm` through AUTOQUANT_ENGINE_BIN_VLLM: it records its
PID, argv and environment, serves /health, handles signals, exits with a chosen code, or prints a simulated
CUDA OOM. Everything between the CLI and the engine process is the real code (no mocks inside autoquant).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autoquant.records import Candidate, Checkpoint, Memory, Plan, to_dict

FAKE = Path(__file__).parents[1] / "fixtures" / "engines" / "fake_engine.py"


def _candidate(method="bf16", tp=1, kv="auto", repo="org/model") -> Candidate:
    return Candidate(
        engine="vllm", method=method, tp=tp, pp=1,
        memory=Memory(weights_gb=1.0, kv_cache_gb=1.0, overhead_gb=1.0, total_gb=3.0, fits=True),
        max_concurrency=8, concurrency=1, ttft_ms=10.0, tpot_ms=5.0, output_tokens_per_s=100.0,
        per_request_tokens_per_s=100.0, ppl_delta=0.0, cost_per_million_tokens=None, regime="bandwidth_bound",
        kv_cache_dtype=kv, max_model_len=4096, max_num_seqs=8, checkpoint=Checkpoint(repo=repo, method=method),
    )


@pytest.fixture
def rig(tmp_path, free_port):
    """A fake engine binary, a plan with a fallback, and an environment pointing autoquant at them."""
    fake = tmp_path / "fake-vllm"
    fake.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    plan = Plan(model="org/model", hardware="test", chosen=_candidate("bf16"),
                alternatives=[_candidate("fp8", kv="fp8", repo="org/model-FP8"), _candidate("awq-int4", repo="org/awq")])
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(to_dict(plan)))
    record = tmp_path / "record.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOQUANT_", "FAKE_ENGINE_"))}
    env.update(AUTOQUANT_ENGINE_BIN_VLLM=str(fake), FAKE_ENGINE_RECORD=str(record),
               AUTOQUANT_CACHE_DIR=str(tmp_path / "cache"), HF_TOKEN="hf_supersecret")
    return {"plan": str(plan_path), "record": record, "env": env, "port": free_port()}


def _records(rig):
    if not rig["record"].exists():
        return []
    return [json.loads(line) for line in rig["record"].read_text().splitlines()]


def _start(rig, *extra, script="serve", **env):
    e = dict(rig["env"], FAKE_ENGINE_SCRIPT=script, **env)
    argv = [sys.executable, "-m", "autoquant", "serve", "--plan", rig["plan"], "--port", str(rig["port"]), *extra]
    return subprocess.Popen(argv, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lines(stream) -> queue.Queue:
    q: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [q.put(line) for line in iter(stream.readline, "")], daemon=True).start()
    return q


def _wait_for(q: queue.Queue, needle: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} not seen in {timeout}s: {''.join(seen)[-2000:]}")


def test_exec_replaces_the_process_with_exact_argv_and_env(rig):
    proc = _start(rig, "--api-key", "sk-test-1", "--enable-prefix-caching", script="exit:7")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 7, err  # the engine's exit code is the process's exit code
    (rec,) = _records(rig)
    assert rec["pid"] == proc.pid  # exec: same PID, no autoquant parent left
    # what the plan decides, then the user's flags verbatim and in order (--api-key travels as VLLM_API_KEY)
    assert rec["argv"][1:] == ["serve", "org/model", "--served-model-name", "org/model", "--max-model-len", "4096",
                               "--max-num-seqs", "8", "--dtype", "bfloat16", "--port", str(rig["port"]),
                               "--enable-prefix-caching"]
    assert rec["env"]["VLLM_API_KEY"] == "sk-test-1" and rec["env"]["HF_TOKEN"] == "hf_supersecret"
    assert "sk-test-1" not in out + err and "hf_supersecret" not in out + err
    assert "VLLM_API_KEY=***" in err


def test_dry_run_prints_the_same_command_it_would_exec(rig):
    proc = _start(rig, "--dry-run", "--json", "--api-key", "sk-test-2")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    launch = json.loads(out)["launch"]
    assert launch["argv"][1:4] == ["serve", "org/model", "--served-model-name"]
    assert launch["env"] == {"VLLM_API_KEY": "***"} and "sk-test-2" not in out
    assert _records(rig) == []  # nothing started


def test_supervise_forwards_sigterm_and_exits_cleanly(rig):
    proc = _start(rig, "--supervise")
    ready = _wait_for(_lines(proc.stdout), "ready:")
    assert f"http://127.0.0.1:{rig['port']}/v1" in ready
    engine_pid = _records(rig)[0]["pid"]
    assert engine_pid != proc.pid  # supervise: autoquant stays the parent
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert {"signal": signal.SIGTERM, "pid": engine_pid} in _records(rig)


def test_supervise_forwards_sigint_and_propagates_the_exit_code(rig):
    proc = _start(rig, "--supervise", FAKE_ENGINE_EXIT_ON_SIGNAL="3")
    _wait_for(_lines(proc.stdout), "ready:")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 3
    assert _records(rig)[-1]["signal"] == signal.SIGINT


def test_supervise_engine_reraising_the_forwarded_signal_is_a_clean_stop(rig):
    proc = _start(rig, "--supervise", FAKE_ENGINE_RERAISE="1")
    _wait_for(_lines(proc.stdout), "ready:")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_supervise_engine_killed_by_another_signal_reports_128_plus(rig):
    proc = _start(rig, "--supervise")
    _wait_for(_lines(proc.stdout), "ready:")
    os.kill(_records(rig)[0]["pid"], signal.SIGKILL)
    assert proc.wait(timeout=30) == 128 + signal.SIGKILL


@pytest.mark.parametrize("failure", ["oom", "unsupported"])
def test_supervise_falls_back_to_next_candidate(rig, failure):
    proc = _start(rig, "--supervise", "--max-retries", "2", script=f"{failure},serve")
    ready = _wait_for(_lines(proc.stdout), "ready:")
    assert "vllm fp8" in ready  # the second-ranked candidate
    starts = [r for r in _records(rig) if "start" in r]
    assert [s["argv"][2] for s in starts] == ["org/model", "org/model-FP8"]
    assert "--kv-cache-dtype" in starts[1]["argv"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    err = proc.stderr.read()
    assert "attempt 1: vllm bf16" in err and "attempt 2: vllm fp8" in err
    assert ("out_of_memory" if failure == "oom" else "unsupported") in err


def test_supervise_gives_up_after_max_retries(rig):
    proc = _start(rig, "--supervise", "--max-retries", "1", script="oom")
    assert proc.wait(timeout=60) == 1
    assert len([r for r in _records(rig) if "start" in r]) == 2
    assert "no retries left" in proc.stderr.read()


def test_supervise_does_not_retry_an_unclassified_failure(rig):
    proc = _start(rig, "--supervise", script="exit:5,serve")
    assert proc.wait(timeout=60) == 5
    assert len([r for r in _records(rig) if "start" in r]) == 1


def test_missing_engine_binary_is_one_line_error(rig):
    proc = _start(rig, AUTOQUANT_ENGINE_BIN_VLLM="/nonexistent/vllm")
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.strip().splitlines()[-1].startswith("autoquant: error: /nonexistent/vllm not found")


def test_fake_is_not_shadowing_a_real_vllm():
    # the fake is reached only through AUTOQUANT_ENGINE_BIN_VLLM; nothing named vllm is put on PATH
    assert shutil.which("fake-vllm") is None
