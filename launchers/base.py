"""The launch record every engine launcher returns, and what the launchers share.

A launcher is a pure-ish function `build(candidate, options, ...) -> LaunchSpec`: it reads the installed
engine version (metadata only) and, for llama.cpp, the GGUF header; it never starts anything.
`autoquant.launchers.process` runs a LaunchSpec (exec or supervise).
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field

from autoquant.secrets import REDACTED, SECRET_ENV, SECRET_WORDS, is_secret_name, scrub, secret_values

# The secret facts and the one scrub live in the core (autoquant.secrets); re-exported for the launchers.
__all__ = ["REDACTED", "SECRET_ENV", "SECRET_WORDS", "LaunchSpec", "ServeOptions", "ServerCheck", "Step",
           "engine_binary", "is_secret_name", "secret_values", "served_names"]


@dataclass
class ServeOptions:
    """What the user asked for that every engine understands (vLLM spellings, engine-neutral values)."""

    host: str | None = None  # None: the engine's all-interfaces default (vLLM's own default)
    port: int = 8000
    served_model_name: list[str] = field(default_factory=list)
    api_key: str | None = None
    dtype: str | None = None
    gpu_memory_utilization: float | None = None
    passthrough: list[str] = field(default_factory=list)  # flags autoquant does not read, untouched
    user_args: list[str] = field(default_factory=list)  # every engine flag the user gave, as given (vLLM: verbatim)
    unmapped_quantization: str | None = None  # a vLLM --quantization value with no autoquant method
    pinned: set[str] = field(default_factory=set)  # planner pins the user gave (their flags must be honoured)


@dataclass(frozen=True)
class ServerCheck:
    """A GET of `path` on the engine's address that answers 200 with a JSON object holding `key`: a server of
    this kind is up there (Ollama: /api/version, {"version": ...})."""

    path: str
    key: str


@dataclass(frozen=True)
class Step:
    """A command the supervisor runs once the engine's server passes `after`, before readiness counts: Ollama's
    `ollama create` needs `ollama serve` up. `env` is added to the launch's environment; a step that fails
    stops the engine."""

    argv: tuple[str, ...]
    after: ServerCheck
    env: tuple[tuple[str, str], ...] = ()


@dataclass
class LaunchSpec:
    """Exactly what will be executed: argv, extra environment, files to write first, how to know it is up."""

    engine: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # added to (overrides) the inherited environment
    version: str | None = None  # installed engine version, None when not installed here
    flavor: str = ""  # e.g. "llama-server" | "llama-cpp-python"
    host: str = "0.0.0.0"
    port: int = 8000
    ready_path: str = "/health"
    ready_headers: dict[str, str] = field(default_factory=dict)
    # The names its /v1/models lists (served_names()): readiness needs one of them there, so another server's
    # 200 on the same port is not taken for this engine's. Empty: the ready route's 200 alone.
    served_names: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # path -> contents, written before the start
    secrets: list[str] = field(default_factory=list)  # values to redact wherever printed
    notes: list[str] = field(default_factory=list)
    after_start: list[Step] = field(default_factory=list)  # run in order once the server is up (needs supervise)
    # A server of the engine's kind already answering this check at host:port is used instead of starting one
    # (the system's Ollama service): the steps run against it, and readiness is its /v1/models.
    reuse: ServerCheck | None = None

    @property
    def connect_host(self) -> str:
        """Where to reach the engine from this machine: loopback for a wildcard bind, else its address
        (an IPv6 literal bracketed for URLs)."""
        return _url_host(self.host)

    def local_url(self, path: str) -> str:
        return f"http://{self.connect_host}:{self.port}{path}"

    @property
    def ready_url(self) -> str:
        return self.local_url(self.ready_path)

    @property
    def url(self) -> str:
        return self.local_url("/v1")

    def redact(self, text: str) -> str:
        """`text` with this launch's secrets, the environment's and URL credentials masked."""
        return scrub(text, self.secrets)

    def command_line(self) -> str:
        """The argv as one shell-quoted line, secrets redacted, with the env it sets (values redacted)."""
        env = " ".join(
            f"{k}={REDACTED if _is_secret(k, v, self.secrets) else shlex.quote(v)}" for k, v in sorted(self.env.items())
        )
        line = " ".join(shlex.quote(a) for a in self.argv)
        return self.redact(f"{env} {line}" if env else line)

    def step_line(self, step: Step) -> str:
        """One after-start step as a shell line, secrets redacted."""
        env = " ".join(f"{k}={REDACTED if _is_secret(k, v, self.secrets) else shlex.quote(v)}" for k, v in step.env)
        line = " ".join(shlex.quote(a) for a in step.argv)
        return self.redact(f"{env} {line}" if env else line)

    def redacted_argv(self) -> list[str]:
        return [self.redact(a) for a in self.argv]

    def redacted_env(self) -> dict[str, str]:
        return {k: (REDACTED if _is_secret(k, v, self.secrets) else v) for k, v in self.env.items()}

    def write_files(self) -> None:
        for path, text in self.files.items():
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)

    def full_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env.update(self.env)
        return env


def bracket_host(host: str) -> str:
    """`host` as the host part of HOST:PORT or a URL: an IPv6 literal bracketed."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _url_host(host: str | None) -> str:
    """The host to connect to for a bind address: loopback for a wildcard, IPv6 literals bracketed."""
    if host in (None, "", "0.0.0.0"):
        return "127.0.0.1"
    return bracket_host("::1" if host == "::" else host)


def _is_secret(key: str, value: str, secrets: list[str]) -> bool:
    return is_secret_name(key) or value in secrets


def engine_binary(name: str, environ: dict[str, str] | None = None) -> str:
    """The executable of the engine install `name` (engines.yaml `installs`: vllm, llamacpp_python), as
    autoquant.probes.engines finds it: AUTOQUANT_ENGINE_BIN_<NAME>, this environment, PATH (`autoquant probe`
    lists the same)."""
    from autoquant.probes.engines import executable

    return executable(name, environ)


def served_names(options: ServeOptions, model: str) -> list[str]:
    """Clients keep using the name they asked for, whichever checkpoint serves it."""
    return list(options.served_model_name) or [model]


# Python puts the working directory first on sys.path for `python -m MODULE`: a secrets.py or uvicorn.py where
# the user runs autoquant would be imported inside the engine. PYTHONSAFEPATH=1 (Python 3.11+, the same as -P)
# leaves it off, for the engine and the Python processes it spawns (SGLang's schedulers, multiprocessing
# workers), and keeps the working directory itself, so relative paths still mean what the user meant. An
# interpreter older than 3.11 ignores the variable; SAFE_PATH_MIN says where it starts to work.
SAFE_PATH_ENV = {"PYTHONSAFEPATH": "1"}
SAFE_PATH_MIN = (3, 11)


def safe_path_notes(interpreter: str) -> list[str]:
    """A note when the engine's interpreter is this one and too old for PYTHONSAFEPATH (another interpreter's
    version is not known without running it)."""
    if interpreter != sys.executable or sys.version_info >= SAFE_PATH_MIN:
        return []
    return [f"Python {sys.version_info.major}.{sys.version_info.minor} runs the engine: it imports modules from "
            "the working directory before its own (PYTHONSAFEPATH needs 3.11); start autoquant where no .py "
            "file can shadow them"]
