"""Two llama-cpp-python servers started from local GGUF files, for `validate --reference-gguf/--candidate-gguf`.

`--logits_all true` is what makes llama-cpp-python return prompt-token log-probabilities; n_ctx is the window
plus room for BOS and the one generated token. The processes are ours: stopped on exit, whatever happens.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from autoquant.errors import EngineError, InputError, UsageError
from autoquant.paths import user_path
from autoquant.servers import connect

READY_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def argv_for(gguf: str, port: int, n_ctx: int, threads: int | None) -> list[str]:
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", str(n_ctx), "--logits_all", "true", "--interrupt_requests", "false"]
    if threads:
        argv += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
    return argv


@contextlib.contextmanager
def gguf_server(gguf: str, n_ctx: int, threads: int | None = None) -> Iterator:
    path = user_path(gguf)
    if not path.is_file():
        raise InputError(f"no such GGUF file: {gguf}")
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise UsageError("--reference-gguf/--candidate-gguf need llama-cpp-python: pip install "
                         "'autoquant[llamacpp]'") from None
    port = _free_port()
    log = tempfile.TemporaryFile(mode="w+")  # not a pipe: llama.cpp's log would fill it and stall the server
    proc = subprocess.Popen(argv_for(str(path), port, n_ctx, threads), stdout=subprocess.DEVNULL, stderr=log,
                            text=True)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                log.seek(0)
                tail = log.read()[-400:].strip().splitlines()
                raise EngineError(f"llama-cpp-python exited ({proc.returncode}) loading {path.name}: "
                                  f"{tail[-1] if tail else 'no message'}")
            try:
                server = connect(f"http://127.0.0.1:{port}", timeout_s=600.0)
                break
            except EngineError:
                if time.monotonic() > deadline:
                    raise EngineError(f"llama-cpp-python did not answer within {READY_TIMEOUT_S} s loading "
                                      f"{path.name}") from None
                time.sleep(0.5)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
