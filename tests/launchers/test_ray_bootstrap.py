"""The multi-node bootstrap end to end on a REAL local Ray cluster (issue 14, Deliver 4): a leader and a worker,
each `autoquant serve --plan plan.json` with its role from the environment, on this machine over loopback.

The worker runs `ray start --address ... --block` (exec), the leader starts the Ray head, sees the worker join
through Ray's own API and then launches a stand-in engine (tests/fixtures/engines/fake_engine.py through
AUTOQUANT_ENGINE_BIN_VLLM) that records its argv and environment. Without the worker the leader times out
naming what is missing. Ray runs with CPU resources only: each node declares one logical GPU (`--num-gpus 1`,
a Ray resource count; no device is touched), since the leader waits for the GPUs the plan's world needs.

Bounded: each test has a wall-clock alarm, every wait a deadline; every process started is stopped, and no
raylet or gcs_server of the test's Ray temp dir may be left behind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from autoquant.records import Candidate, Checkpoint, Memory, Plan, to_dict

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="ray is not installed here: pip install 'autoquant[ray]' (the test extra has it)")

FAKE = Path(__file__).parents[1] / "fixtures" / "engines" / "fake_engine.py"
TEST_LIMIT_S = 60


@contextmanager
def no_hang(seconds: float):
    """Fail (TimeoutError) instead of hanging past `seconds` (as tests/fuzz/conftest.py's no_hang)."""
    def expire(_signum, _frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _plan(tmp_path: Path) -> Path:
    """One server over 2 nodes: TP=1 x PP=2, a GPU per node."""
    chosen = Candidate(
        engine="vllm", method="bf16", tp=1, pp=2, nodes=2, gpus=2,
        memory=Memory(weights_gb=1.0, kv_cache_gb=1.0, overhead_gb=1.0, total_gb=3.0, fits=True),
        max_concurrency=8, concurrency=1, ttft_ms=10.0, tpot_ms=5.0, output_tokens_per_s=100.0,
        per_request_tokens_per_s=100.0, ppl_delta=0.0, cost_per_million_tokens=None, regime="bandwidth_bound",
        max_model_len=4096, max_num_seqs=8, checkpoint=Checkpoint(repo="org/model", method="bf16"))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(to_dict(Plan(model="org/model", hardware="test", chosen=chosen))))
    return path


def _ray_processes(marker: str) -> list[tuple[object, str]]:
    """(process, its program name) for every process whose command line names `marker` (Ray's temp dir)."""
    import psutil

    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmdline = p.info["cmdline"] or []
        if any(marker in part for part in cmdline):
            found.append((p, os.path.basename(cmdline[0])))
    return found


@pytest.fixture
def cluster(tmp_path, free_port):
    """The environment both nodes share, a starter for each node's `autoquant serve`, and a teardown that stops
    everything and checks that no Ray process of this test's temp dir is left."""
    # a short temp dir: Ray's session sockets live under it, and a Unix socket path has ~107 characters at most
    ray_tmp = tempfile.mkdtemp(prefix="aq-ray-", dir="/tmp")
    fake = tmp_path / "fake-vllm"
    fake.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    record = tmp_path / "record.jsonl"
    ray_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOQUANT_", "FAKE_ENGINE_", "LWS_", "RAY_"))}
    env.update(
        AUTOQUANT_ENGINE_BIN_VLLM=str(fake), FAKE_ENGINE_RECORD=str(record), FAKE_ENGINE_SCRIPT="serve",
        AUTOQUANT_CACHE_DIR=str(tmp_path / "cache"), AUTOQUANT_PREDICTOR="autoquant",
        AUTOQUANT_LEADER=f"127.0.0.1:{ray_port}", AUTOQUANT_NODES="2",
        AUTOQUANT_RAY_START_ARGS="--num-cpus 1 --num-gpus 1",
        RAY_TMPDIR=ray_tmp, RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0", RAY_USAGE_STATS_ENABLED="0",
    )
    plan = _plan(tmp_path)
    started: list[subprocess.Popen] = []

    def start(role: str, *extra: str) -> subprocess.Popen:
        argv = [sys.executable, "-m", "autoquant", "serve", "--plan", str(plan), "--port", str(http_port), *extra]
        proc = subprocess.Popen(argv, env={**env, "AUTOQUANT_ROLE": role}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        started.append(proc)
        return proc

    rig = {"start": start, "record": record, "port": http_port, "ray_port": ray_port, "ray_tmp": ray_tmp}
    yield rig
    for proc in started:  # SIGTERM, then SIGKILL to the group of whatever is still there
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in started:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=5)
    left = _ray_processes(ray_tmp)
    for p, _name in left:
        try:
            p.kill()
        except Exception:
            pass
    left = [name for _p, name in left]
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert left == [], f"Ray processes of {ray_tmp} were left behind"


def _lines(stream) -> queue.Queue:
    q: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [q.put(line) for line in iter(stream.readline, "")], daemon=True).start()
    return q


def _wait_for(q: queue.Queue, needle: str, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} not seen in {timeout} s; got:\n{''.join(seen)[-3000:]}")


def _drain(q: queue.Queue) -> str:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return "".join(out)


def test_the_worker_joins_and_the_leader_launches_the_engine(cluster):
    with no_hang(TEST_LIMIT_S):
        leader = cluster["start"]("leader", "--join-timeout", "40")
        worker = cluster["start"]("worker")
        out, err = _lines(leader.stdout), _lines(leader.stderr)
        _wait_for(out, "ready: http://127.0.0.1:", timeout=45)
        said = _drain(err)
        assert "waiting up to 40 s (--join-timeout) for 2 nodes and 2 GPUs" in said
        assert "2 of 2 nodes, 2 of 2 GPUs" in said  # the leader saw the worker through ray.nodes()
        assert worker.poll() is None  # the worker stays in the foreground: `ray start --block`
        running = {name for _p, name in _ray_processes(cluster["ray_tmp"])}
        assert {"raylet", "gcs_server"} <= running  # what the teardown check looks for is there to be seen

        starts = [json.loads(line) for line in cluster["record"].read_text().splitlines()]
        assert len(starts) == 1
        argv, env = starts[0]["argv"], starts[0]["env"]
        assert argv[1:3] == ["serve", "org/model"]
        assert argv[argv.index("--pipeline-parallel-size") + 1] == "2"
        assert argv[argv.index("--distributed-executor-backend") + 1] == "ray"
        port = cluster["port"]
        assert env["RAY_ADDRESS"] == f"127.0.0.1:{cluster['ray_port']}"  # the head, for vLLM's ray.init
        assert env["VLLM_HOST_IP"] == "127.0.0.1"
        assert env["GLOO_SOCKET_IFNAME"] == env["NCCL_SOCKET_IFNAME"] == "lo"
        assert argv[argv.index("--port") + 1] == str(port)

        leader.send_signal(signal.SIGTERM)  # the engine stops, then the Ray head
        assert leader.wait(timeout=25) == 0
        said += _drain(err)
        assert "Ray head stopped" in said
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)


def test_a_missing_worker_times_out_naming_what_is_missing(cluster):
    with no_hang(TEST_LIMIT_S):
        leader = cluster["start"]("leader", "--join-timeout", "3")
        _out, err = leader.communicate(timeout=45)
        assert leader.returncode == 2
        errors = [line for line in err.splitlines() if line.startswith("autoquant: error:")]
        assert len(errors) == 1, err[-3000:]
        assert "did not form in 3 s (--join-timeout): expected 2 nodes and 2 GPUs, joined 1 node(s) with 1 GPUs" \
            in errors[0]
        assert "missing 1 node(s) and 1 GPU(s)" in errors[0]
        assert "Ray head stopped" in err
        assert not cluster["record"].exists()  # no engine was started


def test_a_stop_while_the_group_forms_stops_the_head_and_the_wait(cluster):
    with no_hang(TEST_LIMIT_S):
        leader = cluster["start"]("leader", "--join-timeout", "40")
        err = _lines(leader.stderr)
        _wait_for(err, "1 of 2 nodes", timeout=40)  # the head is up, the wait running
        leader.send_signal(signal.SIGTERM)
        assert leader.wait(timeout=20) == 0
        said = _drain(err)
        assert "stopped by SIGTERM before the engine started" in said and "Ray head stopped" in said
        assert not cluster["record"].exists()
