"""Running a LaunchSpec: exec (the engine replaces autoquant, PID 1 in a container) or supervise.

Supervise keeps autoquant as the parent: it forwards SIGINT/SIGTERM, polls readiness over loopback, prints
the URL when ready, returns the engine's exit code, and when a start fails in a way it can classify (out of
memory, unsupported kernel/capability) it starts the next ranked candidate, at most `max_retries` times.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from autoquant.errors import EngineError

from .base import LaunchSpec

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# How long --supervise waits for an engine to answer its readiness route: a 405B checkpoint downloading and
# loading over a slow link takes tens of minutes (the only default; serve's help quotes it).
READY_TIMEOUT_S = 1800.0

def exec_engine(spec: LaunchSpec) -> None:  # pragma: no cover - replaces the process; tested via subprocess
    """Replace this process with the engine (never returns)."""
    spec.write_files()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(spec.argv[0], spec.argv, spec.full_env())
    except FileNotFoundError:
        raise EngineError(f"{spec.argv[0]} not found: install {spec.engine} or put it on PATH") from None


def classify_failure(output: str) -> str | None:
    """'out_of_memory', 'unsupported', or None: which startup failures a retry with another plan may fix."""
    lowered = output.lower()
    from autoquant.facts import default_facts

    for kind, patterns in default_facts().failure_patterns.items():
        if any(p.lower() in lowered for p in patterns):
            return kind
    return None


def is_ready(spec: LaunchSpec, timeout: float = 2.0) -> bool:
    """One readiness probe: GET the engine's ready path on 127.0.0.1; 200 means ready."""
    request = urllib.request.Request(spec.ready_url, headers=spec.ready_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


@dataclass
class Attempt:
    label: str  # e.g. "vllm fp8 tp=2"
    spec: LaunchSpec
    candidate: Any = None  # the plan record it launches, when the caller gave one
    returncode: int | None = None
    ready: bool = False
    failure: str | None = None  # classified failure kind
    tail: list[str] = field(default_factory=list)


class Supervisor:
    """Starts one engine at a time; forwards signals; retries classified startup failures."""

    def __init__(
        self,
        ready_timeout: float | None = None,
        poll_interval: float = 0.25,
        log: Callable[[str], None] | None = None,
        on_ready: Callable[[Attempt], None] | None = None,
        tail_lines: int = 200,
    ) -> None:
        self.ready_timeout = READY_TIMEOUT_S if ready_timeout is None else ready_timeout
        self.poll_interval = poll_interval
        self.log = log or (lambda msg: print(f"autoquant: {msg}", file=sys.stderr, flush=True))
        self.on_ready = on_ready
        self.tail_lines = tail_lines
        self.attempts: list[Attempt] = []
        self._proc: subprocess.Popen | None = None
        self._stop_signal: int | None = None
        self._forced_exit: int | None = None

    # -- signals ---------------------------------------------------------------------------------------
    def _forward(self, signum: int, _frame) -> None:
        self._stop_signal = signum
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signum)
            except ProcessLookupError:
                pass

    def stop(self, exit_code: int) -> None:
        """Stop the running engine on purpose (serve --gate-on failed) and make run() return `exit_code`."""
        self._forced_exit = exit_code
        self._forward(signal.SIGTERM, None)

    # -- running ---------------------------------------------------------------------------------------
    def run(self, attempts: Iterable[tuple], max_retries: int = 2) -> int:
        """Run the first attempt; on a classified startup failure run the next, up to max_retries more."""
        previous = {s: signal.getsignal(s) for s in FORWARDED_SIGNALS}
        for s in FORWARDED_SIGNALS:
            signal.signal(s, self._forward)
        try:
            return self._run(attempts, max_retries)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _run(self, attempts: Iterable[tuple], max_retries: int) -> int:
        """attempts: (label, make_spec) or (label, make_spec, candidate), best first."""
        retries = 0
        last_code = 1
        for label, make_spec, *rest in attempts:
            try:
                spec = make_spec()
            except Exception as exc:  # an alternative that cannot be launched here: say so, try the next
                if not self.attempts:
                    raise
                self.log(f"skipping {label}: {exc}")
                continue
            attempt = Attempt(label=label, spec=spec, candidate=rest[0] if rest else None)
            self.attempts.append(attempt)
            self.log(f"attempt {len(self.attempts)}: {label}: {spec.command_line()}")
            last_code = self._run_one(attempt)
            if self._forced_exit is not None:
                return self._forced_exit
            if attempt.ready or self._stop_signal is not None:
                return last_code
            attempt.failure = classify_failure("\n".join(attempt.tail))
            if attempt.failure is None:
                self.log(f"{label} exited with code {last_code} before it was ready; not retrying "
                         "(the failure is not one another plan can fix)")
                return last_code or 1
            if retries >= max_retries:
                self.log(f"{label} failed ({attempt.failure}); no retries left (--max-retries {max_retries})")
                return last_code or 1
            retries += 1
            self.log(f"{label} failed at startup ({attempt.failure}); trying the next ranked candidate")
        if self.attempts and not self.attempts[-1].ready:
            self.log("no candidate left to try")
        return last_code or 1

    def _run_one(self, attempt: Attempt) -> int:
        spec = attempt.spec
        spec.write_files()
        tail: collections.deque[str] = collections.deque(maxlen=self.tail_lines)
        try:
            proc = subprocess.Popen(
                spec.argv, env=spec.full_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # buffered: readline() takes what the pipe holds instead of one read(2) per byte; lines
                # still arrive as soon as they are written
                bufsize=-1,
                # own session: a terminal's Ctrl-C reaches autoquant once and is forwarded once
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        except FileNotFoundError:
            raise EngineError(f"{spec.argv[0]} not found: install {spec.engine} or put it on PATH") from None
        self._proc = proc
        pump = threading.Thread(target=_pump, args=(proc.stdout, tail, spec), daemon=True)
        pump.start()
        deadline = time.monotonic() + self.ready_timeout
        while proc.poll() is None and self._stop_signal is None:
            if is_ready(spec, timeout=min(2.0, self.ready_timeout)):
                attempt.ready = True
                if self.on_ready:
                    self.on_ready(attempt)
                break
            if time.monotonic() > deadline:
                self.log(f"{attempt.label} not ready after {self.ready_timeout:.0f} s; stopping it")
                proc.terminate()
                break
            time.sleep(self.poll_interval)
        code = _wait(proc)
        pump.join(timeout=5)
        attempt.tail = list(tail)
        attempt.returncode = code
        self._proc = None
        if code < 0 and self._stop_signal is not None and -code == self._stop_signal:
            # uvicorn (vLLM, llama-cpp-python) shuts down gracefully, then re-raises the signal it caught, so
            # the engine "dies" of the very signal autoquant forwarded: that is a clean, requested stop.
            return 0
        if code < 0:  # killed by a signal: report it the shell way
            code = 128 - code
        return code


def _die_with_parent() -> None:
    """Linux: the engine gets SIGTERM if autoquant itself is killed (no orphaned GPU holders)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass


def _wait(proc: subprocess.Popen) -> int:
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:  # the handler forwarded it; keep waiting for the engine to exit
            continue


def _pump(stream, tail: collections.deque, spec: LaunchSpec) -> None:
    """Copy the engine's output to our stderr (secrets redacted) and keep the tail for classification."""
    out = sys.stderr
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        tail.append(line.rstrip("\n"))
        try:
            out.write(spec.redact(line))
            out.flush()
        except (OSError, ValueError):
            pass
    stream.close()
