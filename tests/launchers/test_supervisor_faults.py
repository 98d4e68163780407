"""Supervisor faults at the process boundary, with FAKE engines (tests/fakes/engines.py): a port another server
holds, another server's answer taken for readiness, an engine that ignores SIGTERM, an engine that dies.
The Supervisor runs in this process (its signal handlers included); every process a test starts is killed by
the `pids` fixture's finalizer."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoquant.errors import EngineError
from autoquant.launchers.base import LaunchSpec
from autoquant.launchers.process import Supervisor, check_port_free, is_ready, lists_a_served_model

ENGINES = Path(__file__).parents[1] / "fakes" / "engines.py"
GRACE = 0.5  # the tests' stop grace: seconds before SIGKILL


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _wait_gone(pid: int, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def pids(fake_pids):
    """The file the fakes write their pids to; whatever is still alive at the end is killed."""
    return fake_pids


@pytest.fixture
def port(free_port):
    return free_port()


@pytest.fixture
def squatter(port, pids, squat):
    """Another HTTP server on `port`, answering 200 on every path."""
    return squat(port, dict(os.environ, FAKE_PIDS=str(pids)))


def _spec(mode: str, port: int, pids: Path, served: list[str] | None = None, **env: str) -> LaunchSpec:
    name = (served or ["mine"])[0]
    return LaunchSpec(engine="fake", argv=[sys.executable, str(ENGINES), mode, "--port", str(port),
                                          "--served-model-name", name],
                      env={"FAKE_PIDS": str(pids), **env}, host="127.0.0.1", port=port,
                      served_names=[] if served is None else served)


def _supervisor(lines: list[str], **kw) -> Supervisor:
    kw.setdefault("stop_grace", GRACE)
    kw.setdefault("poll_interval", 0.05)
    return Supervisor(log=lines.append, **kw)


def _engine_pids(pids: Path) -> list[int]:
    return [int(x) for x in pids.read_text().split()] if pids.exists() else []


# -- readiness is the engine's own --------------------------------------------------------------------------
def test_a_port_held_by_another_server_is_an_error_not_ready(squatter, port, pids):
    ready = []
    sup = _supervisor([], on_ready=ready.append, ready_timeout=5)
    with pytest.raises(EngineError, match=rf"port {port} on 127\.0\.0\.1 is already in use.*--port"):
        sup.run([("fake", lambda: _spec("serve", port, pids))])
    assert ready == [] and _engine_pids(pids) == [squatter.pid]  # the engine was never started


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "localhost"])
def test_a_port_held_on_loopback_is_taken_for_every_bind_address(squatter, port, host):
    if host == "::" and not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    with pytest.raises(EngineError, match=f"port {port} on {host} is already"):
        check_port_free(LaunchSpec(engine="fake", argv=["x"], host=host, port=port))


def test_a_free_port_passes_the_check(port):
    check_port_free(LaunchSpec(engine="fake", argv=["x"], host="0.0.0.0", port=port))


def test_another_servers_answer_is_not_readiness(port, pids):
    # the engine is alive and its port answers 200 everywhere, but the model list is not ours: never ready
    lines: list[str] = []
    ready = []
    sup = _supervisor(lines, on_ready=ready.append, ready_timeout=10)
    code = sup.run([("fake foreign", lambda: _spec("foreign", port, pids, served=["mine"]))])
    assert ready == [] and code == 1
    assert "fake foreign exited with code 1 before it was ready; its last 2 lines:" in lines
    assert "| fake engine: giving up" in lines


def test_the_model_list_must_name_a_served_model(port, pids):
    spec = _spec("serve", port, pids, served=["mine"])
    proc = subprocess.Popen(spec.argv, env=spec.full_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert "serving" in proc.stdout.readline()
        assert is_ready(spec)
        assert not is_ready(_spec("serve", port, pids, served=["someone"]))
        assert is_ready(_spec("serve", port, pids))  # no served names: the ready route's 200 alone
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize(("body", "names", "expected"), [
    (b'{"data": [{"id": "a"}, {"id": "b"}]}', ["b"], True),
    (b'{"data": [{"id": "a,b"}]}', ["b"], True),  # llama-server: several --alias values as one id
    (b'{"data": [{"id": "a"}]}', ["b"], False),
    (b'{"status": "ok"}', ["b"], False),
    (b"<html>", ["b"], False),
])
def test_lists_a_served_model(body, names, expected):
    assert lists_a_served_model(body, names) is expected


# -- an engine that ignores SIGTERM is killed, with its process group --------------------------------------
def _assert_group_killed(pids: Path, lines: list[str]) -> None:
    engine, worker = _engine_pids(pids)
    assert _wait_gone(engine) and _wait_gone(worker), "the engine or its worker survived"
    assert any("sending SIGKILL to its process group" in line for line in lines), lines


def test_an_engine_ignoring_sigterm_is_killed_with_its_workers_on_stop(port, pids):
    lines: list[str] = []
    sup = _supervisor(lines, ready_timeout=10)
    sup.on_ready = lambda attempt: sup.stop(7)
    started = time.monotonic()
    assert sup.run([("fake", lambda: _spec("ignore-term", port, pids, served=["mine"]))]) == 7
    assert time.monotonic() - started < 5
    _assert_group_killed(pids, lines)


def test_an_engine_ignoring_a_forwarded_sigterm_is_killed_with_its_workers(port, pids):
    lines: list[str] = []
    sup = _supervisor(lines, ready_timeout=10, on_ready=lambda attempt: os.kill(os.getpid(), signal.SIGTERM))
    code = sup.run([("fake", lambda: _spec("ignore-term", port, pids, served=["mine"]))])
    assert code == 128 + signal.SIGKILL  # stopped, but not cleanly
    _assert_group_killed(pids, lines)
    assert f"fake still running {GRACE:g} s after SIGTERM; sending SIGKILL to its process group" in lines[-2]


def test_an_engine_ignoring_sigterm_at_the_ready_timeout_is_killed(port, pids):
    lines: list[str] = []
    sup = _supervisor(lines, ready_timeout=0.5)
    code = sup.run([("fake", lambda: _spec("ignore-term-unready", port, pids))])
    assert code == 128 + signal.SIGKILL
    _assert_group_killed(pids, lines)
    assert any("not ready after" in line for line in lines)


# -- an engine that dies says how, with its last lines --------------------------------------------------------
def test_an_engine_killed_after_ready_is_reported_with_its_last_lines(port, pids):
    lines: list[str] = []
    ready = []
    sup = _supervisor(lines, ready_timeout=10, on_ready=ready.append)
    spec = _spec("killed-after-ready", port, pids, served=["mine"], FAKE_SECRET="sk-very-secret")
    spec.secrets.append("sk-very-secret")
    assert sup.run([("fake", lambda: spec)]) == 128 + signal.SIGKILL
    assert len(ready) == 1
    said = lines.index("fake was killed by signal SIGKILL (exit status 137) after it was ready; its last 10 lines:")
    last = lines[said + 1:said + 11]
    assert last[-1] == "| fake engine: token ***" and last[0] == "| fake engine line 6"
    assert not any("sk-very-secret" in line for line in lines)
