"""Running a LaunchSpec: exec (the engine replaces autoquant, PID 1 in a container) or supervise.

Supervise keeps autoquant as the parent: it forwards SIGINT/SIGTERM, polls readiness over loopback, prints
the URL when ready, returns the engine's exit code, and when a start fails in a way it can classify (out of
memory, unsupported kernel/capability) it starts the next ranked candidate, at most `max_retries` times.

Readiness is the engine's own: a port another server already holds is refused before the start, and a probe
counts only while our process is alive and, where the spec names the served models, /v1/models lists one.
An engine asked to stop that is still running after `stop_grace` seconds is killed with its process group.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import signal
import socket
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
from autoquant.output import COMMAND_LIMIT, say

from .base import LaunchSpec, ServerCheck, Step

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# How long --supervise waits for an engine to answer its readiness route: a 405B checkpoint downloading and
# loading over a slow link takes tens of minutes (the only default; serve's help quotes it).
READY_TIMEOUT_S = 1800.0

# How long an engine asked to stop (forwarded SIGINT/SIGTERM, ready timeout, Supervisor.stop) may take before
# its process group gets SIGKILL. uvicorn (vLLM, SGLang, llama-cpp-python) waits for open streams without a
# bound by default, so one long answer can hold a shutdown forever; vLLM's own teardown of its workers takes a
# few seconds. 25 s stays inside Kubernetes' default 30 s terminationGracePeriodSeconds: the kubelet's
# SIGKILL of autoquant would otherwise leave the engine (in its own session) behind, holding the GPUs.
STOP_GRACE_S = 25.0

# Lines of the engine's output repeated when it dies unasked (the rest scrolled past on stderr).
DEATH_TAIL_LINES = 10

MODELS_PATH = "/v1/models"  # every engine autoquant starts serves the OpenAI model list here

# The exit status when an after-start step (Ollama's `ollama create`) fails: the engine is stopped.
STEP_FAILED = 1


def exec_engine(spec: LaunchSpec) -> None:  # pragma: no cover - replaces the process; tested via subprocess
    """Replace this process with the engine (never returns)."""
    if spec.after_start or spec.reuse is not None:
        raise EngineError(f"{spec.flavor or spec.engine} needs --supervise: autoquant runs "
                          f"{spec.step_line(spec.after_start[0]) if spec.after_start else 'a step'} once it is up")
    check_port_free(spec)
    spec.write_files()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(spec.argv[0], spec.argv, spec.full_env())
    except OSError as exc:
        raise EngineError(_cannot_start(spec, exc)) from None


def _cannot_start(spec: LaunchSpec, exc: OSError) -> str:
    """Why the engine's executable did not start, in one line (`autoquant probe` lists what is installed)."""
    program = spec.argv[0]
    if isinstance(exc, FileNotFoundError):
        return f"{program} not found: install {spec.engine} or put it on PATH (`autoquant probe` lists the engines found)"
    if isinstance(exc, PermissionError):
        return f"{program} is not an executable program: chmod +x it, or point AUTOQUANT_ENGINE_BIN_* at the engine"
    return f"{program} cannot be started: {exc.strerror or exc}"


def classify_failure(output: str) -> str | None:
    """'out_of_memory', 'unsupported', or None: which startup failures a retry with another plan may fix."""
    lowered = output.lower()
    from autoquant.facts import default_facts

    for kind, patterns in default_facts().failure_patterns.items():
        if any(p.lower() in lowered for p in patterns):
            return kind
    return None


def check_port_free(spec: LaunchSpec) -> None:
    """EngineError when something already listens where the engine will bind: its readiness answers would be
    taken for the engine's, and the engine itself would fail to bind."""
    host = spec.host or "0.0.0.0"
    where = f"port {spec.port} on {host}"
    hint = "stop it or pick another with --port" + (f" (e.g. --port {spec.port + 1})" if spec.port < 65535 else "")
    try:
        addresses = socket.getaddrinfo(host, spec.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        addresses = []  # the engine reports a host it cannot resolve in its own words
    local = False
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            # as uvicorn, asyncio and llama-server bind: a connection left in TIME_WAIT is no conflict
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
                local = True
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise EngineError(f"{where} is already in use by another process; {hint}") from None
                # anything else (an address not on this machine, a privileged port) the engine reports itself
    if not local:
        return
    try:  # a server in another network namespace (a container's published port) is reachable, not bindable
        with socket.create_connection((spec.connect_host.strip("[]"), spec.port), timeout=0.5):
            raise EngineError(f"{where} already answers connections (another server); {hint}")
    except OSError:
        pass


def is_ready(spec: LaunchSpec, timeout: float = 2.0) -> bool:
    """One readiness probe: GET the engine's ready path on loopback; 200 means ready. Where the spec names the
    models it serves, /v1/models must list one of them too: another server's 200 is not this engine's."""
    status, body = _get(spec.ready_url, spec.ready_headers, timeout)
    if status != 200:
        return False
    if not spec.served_names:
        return True
    if spec.ready_path != MODELS_PATH:
        status, body = _get(spec.local_url(MODELS_PATH), spec.ready_headers, timeout)
        if status != 200:
            return False
    return lists_a_served_model(body, spec.served_names)


def server_answers(spec: LaunchSpec, check: ServerCheck, timeout: float = 2.0) -> str | None:
    """The value of `check.key` when GET check.path at the engine's address answers 200 with a JSON object
    holding it (a server of the engine's kind is up there), else None."""
    status, body = _get(spec.local_url(check.path), spec.ready_headers, timeout)
    if status != 200:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return str(data[check.key]) if isinstance(data, dict) and check.key in data else None


def lists_a_served_model(body: bytes, names: Iterable[str]) -> bool:
    """Whether an OpenAI model list ({"data": [{"id": ...}]}) names one of `names`. llama-server reports
    several aliases as one comma-joined id."""
    try:
        data = json.loads(body).get("data")
        ids = {part for entry in data for part in str(entry.get("id", "")).split(",")}
    except (ValueError, AttributeError, TypeError):
        return False
    return bool(ids & set(names))


def _get(url: str, headers: dict[str, str], timeout: float) -> tuple[int | None, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.status, response.read(1 << 20)
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
        return None, b""


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
        stop_grace: float | None = None,
    ) -> None:
        self.ready_timeout = READY_TIMEOUT_S if ready_timeout is None else ready_timeout
        self.poll_interval = poll_interval
        # masked and control characters escaped; not clipped short: an attempt line is a command to copy
        self.log = log or (lambda msg: say(msg, limit=COMMAND_LIMIT))
        self.on_ready = on_ready
        self.tail_lines = tail_lines
        self.stop_grace = STOP_GRACE_S if stop_grace is None else stop_grace
        self.attempts: list[Attempt] = []
        self._proc: subprocess.Popen | None = None
        self._stop_signal: int | None = None  # a stop the user asked for (forwarded signal, stop())
        self._forced_exit: int | None = None
        self._asked: tuple[float, int] | None = None  # (when, which signal) the running engine was asked to stop

    # -- signals ---------------------------------------------------------------------------------------
    def _forward(self, signum: int, _frame) -> None:
        self._stop_signal = signum
        self._ask_to_stop(signum)

    def _ask_to_stop(self, signum: int) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signum)
            except ProcessLookupError:
                pass
            if self._asked is None:  # the grace period runs from the first request
                self._asked = (time.monotonic(), signum)

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
            if self._stop_signal is not None:  # asked to stop between two attempts: start no other
                return last_code
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
                self.log(f"not retrying {label}: the failure is not one another plan can fix")
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
        if spec.reuse is not None:
            running = server_answers(spec, spec.reuse)
            if running is not None:
                return self._run_reused(attempt, running)
        check_port_free(spec)
        spec.write_files()
        tail: collections.deque[str] = collections.deque(maxlen=self.tail_lines)
        try:
            proc = subprocess.Popen(
                spec.argv, env=spec.full_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # buffered: readline() takes what the pipe holds instead of one read(2) per byte; lines
                # still arrive as soon as they are written
                bufsize=-1,
                # own session: a terminal's Ctrl-C reaches autoquant once and is forwarded once; its pgid is
                # its pid, shared by the workers it spawns, so one killpg reaches them all
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise EngineError(_cannot_start(spec, exc)) from None
        self._asked = None
        self._proc = proc
        if self._stop_signal is not None:  # it arrived while the engine was being started
            self._ask_to_stop(self._stop_signal)
        pump = threading.Thread(target=pump_output, args=(proc.stdout, tail, spec.redact), daemon=True)
        pump.start()
        deadline = time.monotonic() + self.ready_timeout
        steps = list(spec.after_start)
        while proc.poll() is None and self._stop_signal is None:
            if steps:  # the server is up once the step's check passes; readiness counts after the last step
                if server_answers(spec, steps[0].after, timeout=min(2.0, self.ready_timeout)) is not None \
                        and proc.poll() is None:
                    code = self._run_step(attempt, steps.pop(0), deadline, proc)
                    if code != 0:
                        if proc.poll() is None and self._stop_signal is None:
                            self.log(f"stopping {attempt.label}: a step it needs failed")
                            self.stop(STEP_FAILED)
                        break
                    continue
            # a 200 counts only while our engine is alive: a server that squats the port answers for a dead one
            elif is_ready(spec, timeout=min(2.0, self.ready_timeout)) and proc.poll() is None:
                attempt.ready = True
                if self.on_ready:
                    self.on_ready(attempt)
                break
            if time.monotonic() > deadline:
                self.log(f"{attempt.label} not ready after {self.ready_timeout:.0f} s; stopping it")
                self._ask_to_stop(signal.SIGTERM)
                break
            time.sleep(self.poll_interval)
        status, killed = self._wait(proc, attempt.label)
        pump.join(timeout=5)
        attempt.tail = list(tail)
        attempt.returncode = status
        self._proc = None
        if self._stop_signal is None:  # it died unasked (or at the ready timeout): say how, with its last words
            self._report_exit(attempt, status)
        else:
            self.log(f"{attempt.label} {describe_exit(status)} after {signal.Signals(self._stop_signal).name}")
        if status < 0 and not killed and self._stop_signal is not None and -status == self._stop_signal:
            # uvicorn (vLLM, llama-cpp-python) shuts down gracefully, then re-raises the signal it caught, so
            # the engine "dies" of the very signal autoquant forwarded: that is a clean, requested stop.
            return 0
        if status < 0:  # killed by a signal: report it the shell way
            return 128 - status
        return status

    def _run_step(self, attempt: Attempt, step: Step, deadline: float, engine: subprocess.Popen | None) -> int:
        """Run one after-start step to its end (its output on stderr, redacted); it is stopped when a stop is
        asked for, the engine dies or the ready deadline passes. Its exit status; a failure is reported."""
        spec = attempt.spec
        env = spec.full_env()
        env.update(dict(step.env))
        self.log(f"{attempt.label}: {spec.step_line(step)}")
        tail: collections.deque[str] = collections.deque(maxlen=self.tail_lines)
        try:
            proc = subprocess.Popen(list(step.argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, bufsize=-1, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        except OSError as exc:
            self.log(f"{attempt.label}: cannot run {step.argv[0]}: {exc.strerror or exc}")
            return 127
        pump = threading.Thread(target=pump_output, args=(proc.stdout, tail, spec.redact), daemon=True)
        pump.start()
        why = None
        while proc.poll() is None:
            if self._stop_signal is not None:
                why = "a stop was asked for"
            elif engine is not None and engine.poll() is not None:
                why = f"{attempt.label} exited"
            elif time.monotonic() > deadline:
                why = f"not done after {self.ready_timeout:.0f} s (--ready-timeout)"
            if why:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                break
            time.sleep(self.poll_interval)
        code = proc.wait()
        pump.join(timeout=5)
        if code != 0 and self._stop_signal is None:
            last = list(tail)[-DEATH_TAIL_LINES:]
            said = f"; its last {len(last)} lines:" if last else " without printing anything"
            self.log(f"{os.path.basename(step.argv[0])} {step.argv[1] if len(step.argv) > 1 else ''} "
                     f"{describe_exit(code)}{f' ({why})' if why else ''}{said}".replace("  ", " "))
            for line in last:
                self.log(f"| {spec.redact(line)}")
        return code

    def _run_reused(self, attempt: Attempt, running: str) -> int:
        """A server of the engine's kind already answers at the address: run the steps against it and wait for
        it to list the model; nothing is started, and the server keeps running when autoquant exits."""
        spec = attempt.spec
        check = spec.reuse
        kept = [f"{k}={v}" for k, v in sorted(spec.env.items())]
        self.log(f"{spec.flavor or spec.engine} already answers at {spec.local_url('')} ({check.key} {running}): "
                 "using it (nothing is started; it keeps serving when autoquant exits"
                 + (f", with its own settings, not {' '.join(kept)}" if kept else "") + ")")
        spec.write_files()
        deadline = time.monotonic() + self.ready_timeout
        for step in spec.after_start:
            if self._run_step(attempt, step, deadline, None) != 0:
                return STEP_FAILED
        while self._stop_signal is None:
            if is_ready(spec, timeout=min(2.0, self.ready_timeout)):
                attempt.ready = True
                if self.on_ready:
                    self.on_ready(attempt)
                return 0 if self._forced_exit is None else self._forced_exit
            if time.monotonic() > deadline:
                self.log(f"{spec.local_url(MODELS_PATH)} does not list {', '.join(spec.served_names)} after "
                         f"{self.ready_timeout:.0f} s")
                return STEP_FAILED
            time.sleep(self.poll_interval)
        return 128 + self._stop_signal

    def _wait(self, proc: subprocess.Popen, label: str) -> tuple[int, bool]:
        """The engine's exit status, and whether it had to be killed: once asked to stop, it has
        `stop_grace` seconds before its whole process group gets SIGKILL."""
        killed = False
        while True:
            try:
                return proc.wait(timeout=self.poll_interval), killed
            except subprocess.TimeoutExpired:
                pass
            except KeyboardInterrupt:  # outside run()'s handlers: the engine got the same Ctrl-C
                continue
            asked = self._asked
            if not killed and asked is not None and time.monotonic() - asked[0] >= self.stop_grace:
                killed = True
                self.log(f"{label} still running {self.stop_grace:g} s after {signal.Signals(asked[1]).name}; "
                         f"sending SIGKILL to its process group (pgid {proc.pid}: the engine and its workers)")
                _kill_group(proc)

    def _report_exit(self, attempt: Attempt, status: int) -> None:
        when = "after it was ready" if attempt.ready else "before it was ready"
        last = attempt.tail[-DEATH_TAIL_LINES:]
        said = f"; its last {len(last)} lines:" if last else " without printing anything"
        self.log(f"{attempt.label} {describe_exit(status)} {when}{said}")
        for line in last:
            self.log(f"| {attempt.spec.redact(line)}")


def describe_exit(status: int) -> str:
    """A Popen return code in words: 'exited with code 3', 'was killed by signal SIGKILL (exit status 137)'."""
    if status >= 0:
        return f"exited with code {status}"
    try:
        name = signal.Signals(-status).name
    except ValueError:
        name = str(-status)
    return f"was killed by signal {name} (exit status {128 - status})"


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # start_new_session: the group id is the engine's pid
    except ProcessLookupError:
        pass
    except PermissionError:  # a member that changed its credentials: at least the engine itself
        proc.kill()


def _die_with_parent() -> None:
    """Linux: the engine gets SIGTERM if autoquant itself is killed (no orphaned GPU holders)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass


def pump_output(stream, tail: collections.deque, redact: Callable[[str], str],
         on_line: Callable[[str], None] | None = None) -> None:
    """Copy a child's output to our stderr (secrets redacted) and keep the tail for classification;
    `on_line` sees each line first (the Ray head's start marker)."""
    out = sys.stderr
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        tail.append(line.rstrip("\n"))
        if on_line is not None:
            on_line(line)
        try:
            out.write(redact(line))
            out.flush()
        except (OSError, ValueError):
            pass
    stream.close()
