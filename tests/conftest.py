"""Shared fixtures for the core tests (planner, engines): real published configs (tests/fixtures/hf-configs) and
synthetic nodes from the GPU catalog. Nothing is faked: the planner is pure. And the helpers several test files
share: a free port, a full disk, the fake engines' pid file and a server squatting on a port."""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from autoquant.catalog.gpus import synthetic_node
from autoquant.modelspec import from_hf_config
from autoquant.records import ModelSpec, Node

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf-configs"


def load_fixture(name: str) -> ModelSpec:
    """ModelSpec of tests/fixtures/hf-configs/<org>__<name>/config.json."""
    config = json.loads((FIXTURES / name / "config.json").read_text())
    return from_hf_config(config, name.replace("__", "/"), "config")


def apple_node(key: str, gib: int) -> Node:
    node = synthetic_node(key)
    node.apple.unified_memory_bytes = gib * 1024**3
    node.ram_total_bytes = gib * 1024**3
    return node


@pytest.fixture(scope="session")
def model():
    return load_fixture


@pytest.fixture(scope="session")
def apple():
    return apple_node


@pytest.fixture(scope="session")
def node():
    return synthetic_node


@pytest.fixture(autouse=True)
def _own_speed_model(monkeypatch):
    """Plans in tests use autoquant's own speed model; the tests of the optional AIConfigurator predictor ask
    for it explicitly (`--predictor aic` or a predictor passed to plan)."""
    monkeypatch.setenv("AUTOQUANT_PREDICTOR", "autoquant")


@pytest.fixture(scope="session")
def openai_fake():
    """tests/fakes/openai_server.py (a fake OpenAI-compatible streaming server), loaded by path: tests/ is not a
    package."""
    import importlib.util
    import sys

    pytest.importorskip("aiohttp")
    name = "autoquant_tests_fake_openai"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "fakes" / "openai_server.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def free_port():
    """free_port(): a TCP port on 127.0.0.1 that nothing listens on (the OS's pick, released at once)."""
    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    return pick


_open = io.open  # the real one, before any test patches it


class _FullDisk:
    """A file that opens (so a temporary file exists) but whose write fails as on a full disk: no filename."""

    def __init__(self, fh) -> None:
        self._fh = fh

    def __enter__(self):
        return self

    def __exit__(self, *_) -> None:
        self._fh.close()

    def write(self, _data) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")  # as a real write does: no filename


@pytest.fixture
def full_disk(monkeypatch):
    """Writing a `.tmp` file fails (open() and Path.write_* alike); every other file is untouched. Returns a
    function that sets which files fail instead: full_disk(lambda name: ...), given the file's name."""
    fails = [lambda name: name.endswith(".tmp")]

    def fake_open(file, mode="r", *args, **kwargs):
        fh = _open(file, mode, *args, **kwargs)
        return _FullDisk(fh) if "w" in mode and fails[0](Path(str(file)).name) else fh

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)

    def fail_writes_to(match) -> None:
        fails[0] = match

    return fail_writes_to


FAKE_ENGINES = Path(__file__).resolve().parent / "fakes" / "engines.py"


@pytest.fixture
def fake_pids(tmp_path):
    """The file tests/fakes/engines.py writes its pids to (FAKE_PIDS); whatever is still alive at the end is
    killed."""
    path = tmp_path / "pids"
    yield path
    if path.exists():
        for line in path.read_text().split():
            try:
                os.kill(int(line), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def squat():
    """squat(port, env=None): another HTTP server on `port` (tests/fakes/engines.py squat, answering 200 on
    every path), started and listening; killed at the end of the test."""
    procs: list[subprocess.Popen] = []

    def start(port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, str(FAKE_ENGINES), "squat", "--port", str(port)], env=env,
                                stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert "squatting" in proc.stdout.readline()
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)
