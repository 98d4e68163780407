"""The inference engines installed on this machine: the executable of each, its version, how it was found.

The one place both `autoquant probe` (which lists them) and `autoquant serve` (which runs the executable and
gates flags on the version, through launchers/base.py `engine_binary` and launchers/versions.py
`engine_version`) find an engine. What to look for is engines.yaml `installs`; each install is looked for in
this order, the first hit wins:

1. ``AUTOQUANT_ENGINE_BIN_<NAME>``: the user's pointer (for a Python module, the interpreter that has it; a
   console script there stands for the Python its shebang names);
2. this environment: the distribution on autoquant's own sys.path (with a console script, the one beside
   autoquant's Python);
3. PATH: the program (SGLang's `sglang` console script names the Python that runs its module).

Nothing is imported and, but for `autoquant probe` asking a native program (llama-server) for `--version`
with a short timeout, nothing is run: a Python engine's version is the ``<dist>-<version>.dist-info`` folder
in the site-packages of the environment its executable belongs to (the Python a console script's shebang
names, else bin/.. of the executable; a venv's base too when its pyvenv.cfg includes system site-packages).
Every input (environment, autoquant's Python and sys.path, the command runner) is a parameter (`Where`), so
tests run the real code on fake virtual environments.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from autoquant.engines.spec import Install
from autoquant.records import EngineInstall

ENV_PREFIX = "AUTOQUANT_ENGINE_BIN_"
FOUND_HERE = "this environment"
FOUND_ON_PATH = "PATH"
VERSION_TIMEOUT_S = 5.0  # a native program's --version (probe only)

Runner = Callable[[list[str]], "str | None"]  # argv -> its output (stdout + stderr), None when it did not answer


def env_var(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


@dataclass(frozen=True)
class Where:
    """What discovery reads: the environment (its PATH and AUTOQUANT_ENGINE_BIN_*), autoquant's own Python and
    the directories its distributions are in (sys.path)."""

    environ: Mapping[str, str]
    python: str
    site_dirs: tuple[str, ...]

    @classmethod
    def here(cls, environ: Mapping[str, str] | None = None) -> Where:
        return cls(os.environ if environ is None else environ, sys.executable, tuple(sys.path))


# --- distributions ---------------------------------------------------------------------------------------
def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def dist_infos(dirs: Iterable[str]) -> dict[str, tuple[str, str]]:
    """normalized distribution name -> (version, its folder), from the `<name>-<version>.dist-info` (or
    .egg-info) folders in `dirs`; the first directory that has one wins, as for imports."""
    found: dict[str, tuple[str, str]] = {}
    for entry in dirs:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            for suffix in (".dist-info", ".egg-info"):
                stem = name[: -len(suffix)] if name.endswith(suffix) else ""
                dist, _, version = stem.partition("-")  # <name>-<version>[-pyX.Y]
                if version:
                    found.setdefault(normal(dist), (version.split("-")[0], os.path.join(entry or ".", name)))
    return found


@functools.lru_cache(maxsize=8)  # this environment's packages do not change while autoquant runs
def dist_infos_cached(dirs: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """dist_infos, read once per process (autoquant's own sys.path: ~20 ms of a plan's start-up)."""
    return dist_infos(dirs)


def site_dirs(python: str) -> list[str]:
    """The site-packages of the environment `python` belongs to: bin/../lib/python*/site-packages (its own
    version's first), and its base's when pyvenv.cfg includes the system site-packages. The interpreter is
    not resolved: a venv's python is a link to its base's."""
    prefix = os.path.dirname(os.path.dirname(os.path.abspath(python)))
    cfg = _pyvenv_cfg(prefix)
    first = re.match(r"python(\d+\.\d+)", os.path.basename(python)) or re.match(r"(\d+\.\d+)", cfg.get("version", ""))
    dirs = _site_dirs_under(prefix, first.group(1) if first else None)
    home = cfg.get("home")
    if home and cfg.get("include-system-site-packages", "").lower() == "true":
        dirs += [d for d in _site_dirs_under(os.path.dirname(home), first.group(1) if first else None)
                 if d not in dirs]
    return dirs


def _site_dirs_under(prefix: str, version: str | None) -> list[str]:
    patterns = ["lib/python3*/site-packages", "lib/python3*/dist-packages", "lib/python3/dist-packages",
                "lib64/python3*/site-packages", "local/lib/python3*/dist-packages"]
    out: list[str] = []
    seen: set[str] = set()
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.join(prefix, pattern)))
        matches.sort(key=lambda d: f"python{version}{os.sep}" not in d)  # the interpreter's own version first
        for d in matches:
            real = os.path.realpath(d)  # a venv's lib64 is a link to lib
            if real not in seen and os.path.isdir(d):
                seen.add(real)
                out.append(d)
    return out


def _pyvenv_cfg(prefix: str) -> dict[str, str]:
    try:
        with open(os.path.join(prefix, "pyvenv.cfg"), encoding="utf-8", errors="replace") as fh:
            lines = fh.read(64 * 1024).splitlines()
    except OSError:
        return {}
    pairs = (line.partition("=") for line in lines)
    return {k.strip().lower(): v.strip() for k, sep, v in pairs if sep}


def shebang_python(path: str, environ: Mapping[str, str]) -> str | None:
    """The Python a console script names in its first line (`#!/venv/bin/python`; pip's `#!/bin/sh` +
    `'''exec' "/long/path/python"` form; `#!/usr/bin/env python3` as PATH resolves it), None for anything else."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    lines = head.decode("utf-8", "replace").splitlines()
    words = lines[0][2:].split()
    if words and words[0] in ("/bin/sh", "/usr/bin/sh") and len(lines) > 1:
        exec_line = re.match(r"""'''exec' (["']?)(.+?)\1 """, lines[1])
        words = [exec_line.group(2)] if exec_line else []
    if len(words) > 1 and os.path.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-")]
        found = shutil.which(words[0], path=environ.get("PATH") or "") if words and environ.get("PATH") else None
        words = [found] if found else []
    if not words or not os.path.basename(words[0]).startswith("python"):
        return None
    return words[0]


# --- finding one install ---------------------------------------------------------------------------------
def find(engine: str, install: Install, where: Where, ask: Runner | None = None) -> EngineInstall | None:
    """Where `install` (an engines.yaml `installs` entry of `engine`) is, or None. `ask` runs a native
    program's --version (probe only; None: its version stays unknown)."""
    var = env_var(install.name)
    given = (where.environ.get(var) or "").strip()
    if given:
        return _pointed(engine, install, var, given, where, ask)
    return _here(engine, install, where, ask) or _on_path(engine, install, where, ask)


def _record(engine: str, install: Install, path: str, found_by: str, **kw) -> EngineInstall:
    return EngineInstall(name=install.name, engine=engine, label=install.label, path=path, found_by=found_by,
                         program=install.program, module=install.module, **kw)


def _pointed(engine: str, install: Install, var: str, given: str, where: Where,
             ask: Runner | None) -> EngineInstall:
    path = given
    if os.sep not in given:  # a bare name: whatever PATH has under it, as exec would find it
        path = _which(given, where.environ) or given
    why = _not_runnable(path)
    if why:
        return _record(engine, install, path, var, usable=False, notes=(f"{var}={given}: {why}",))
    if install.native:
        return _native(engine, install, path, var, ask)
    if install.module:
        python = path
        named = shebang_python(path, where.environ)
        notes: tuple[str, ...] = ()
        if named:  # a console script (bin/sglang): its Python runs the module
            python = named
            notes = (f"{var} names a console script: its Python {named} runs `python -m {install.module}`",)
        rec = _python_engine(engine, install, python, python, var, where)
        return replace(rec, notes=notes + rec.notes)
    return _python_engine(engine, install, path, shebang_python(path, where.environ), var, where)


def _here(engine: str, install: Install, where: Where, ask: Runner | None) -> EngineInstall | None:
    beside = os.path.join(os.path.dirname(where.python), install.program) if install.program else None
    if install.native:
        if beside and not _not_runnable(beside):
            return _native(engine, install, beside, FOUND_HERE, ask)
        return None
    infos = dist_infos_cached(where.site_dirs)
    version, folder = _version_in(install, infos)
    if version is None:
        return None
    if install.module:
        return _record(engine, install, where.python, FOUND_HERE, version=version, version_from=folder,
                       interpreter=where.python, notes=_extra_notes(install, folder, infos))
    if beside and not _not_runnable(beside):
        return _record(engine, install, beside, FOUND_HERE, version=version, version_from=folder,
                       interpreter=where.python)
    on_path = _on_path(engine, install, where, None)
    if on_path is not None:
        return on_path
    return _record(engine, install, install.program or "", FOUND_HERE, version=version, version_from=folder,
                   interpreter=where.python, usable=False,
                   notes=(f"{install.label} {version} is installed here but its `{install.program}` is neither "
                          f"beside {where.python} nor on PATH",))


def _on_path(engine: str, install: Install, where: Where, ask: Runner | None) -> EngineInstall | None:
    if not install.program:
        return None
    path = _which(install.program, where.environ)
    if path is None:
        return None
    if install.native:
        return _native(engine, install, path, FOUND_ON_PATH, ask)
    python = shebang_python(path, where.environ)
    if install.module:
        if python is None:
            return _record(engine, install, path, FOUND_ON_PATH, usable=False,
                           notes=(f"{path}: cannot tell which Python runs it; point {env_var(install.name)} at "
                                  "that Python",))
        return _python_engine(engine, install, python, python, FOUND_ON_PATH, where)
    return _python_engine(engine, install, path, python, FOUND_ON_PATH, where)


def _python_engine(engine: str, install: Install, path: str, python: str | None, found_by: str,
                   where: Where) -> EngineInstall:
    """A Python engine at `path` (its console script, or for a module its interpreter), its version from the
    environment it runs in."""
    notes: list[str] = []
    usable = True
    if python and os.path.abspath(python) == os.path.abspath(where.python):
        infos = dist_infos_cached(where.site_dirs)
    else:
        if python and not os.path.exists(python):
            notes.append(f"{path} names {python}, which does not exist")
            usable = False
        infos = dist_infos(_environment(path, python))
    version, folder = _version_in(install, infos)
    if version is None and usable:
        where_looked = ", ".join(sorted({os.path.dirname(os.path.dirname(p)) for p in filter(None, [python, path])}))
        notes.append(f"version unknown: no {'/'.join(install.distributions)} dist-info under {where_looked} "
                     "(serve checks its flags as for an engine not installed here)")
    notes += _extra_notes(install, folder, infos)
    return _record(engine, install, path, found_by, version=version, version_from=folder, interpreter=python,
                   usable=usable, notes=tuple(notes))


def _environment(path: str, python: str | None) -> list[str]:
    """The site-packages a Python engine at `path` runs with: its interpreter's, then (a console script) those
    of the bin/ the script really is in, when its shebang says too little (a link in /usr/local/bin)."""
    dirs = site_dirs(python) if python else []
    if path != python:  # never a venv interpreter's real path: that is the base Python's, not the venv's
        own = os.path.join(os.path.dirname(os.path.realpath(path)), "python")
        dirs += [d for d in site_dirs(own) if d not in dirs]
    return dirs


def _native(engine: str, install: Install, path: str, found_by: str, ask: Runner | None) -> EngineInstall:
    if ask is None:
        return _record(engine, install, path, found_by)
    out = ask([path, "--version"])
    if out is None:
        return _record(engine, install, path, found_by,
                       notes=(f"{path} --version did not answer within {VERSION_TIMEOUT_S:g} s",))
    found = re.search(install.version_pattern, out) if install.version_pattern else None  # engines.yaml installs
    if found:
        commit = f" (commit {found.group(2)})" if (found.lastindex or 0) >= 2 else ""
        return _record(engine, install, path, found_by, version=install.version_format.format(found.group(1)),
                       version_from=f"{path} --version{commit}")
    first = next((line.strip() for line in out.splitlines() if line.strip()), "")
    return _record(engine, install, path, found_by,
                   notes=(f"{path} --version printed no build number ({first[:80]!r})",))


def _version_in(install: Install, infos: Mapping[str, tuple[str, str]]) -> tuple[str | None, str | None]:
    for dist in install.distributions:
        if normal(dist) in infos:
            return infos[normal(dist)]
    return None, None


def _extra_notes(install: Install, folder: str | None, infos: Mapping[str, tuple[str, str]]) -> tuple[str, ...]:
    """A note when the distribution's extra (llama-cpp-python[server]) lacks packages in its environment."""
    if not install.extra or not folder:
        return ()
    try:
        with open(os.path.join(folder, "METADATA"), encoding="utf-8", errors="replace") as fh:
            metadata = fh.read(1 << 20)
    except OSError:
        return ()
    wanted = re.findall(rf"^Requires-Dist:\s*([A-Za-z0-9][A-Za-z0-9._-]*)[^;\n]*;\s*extra\s*==\s*['\"]"
                        rf"{re.escape(install.extra)}['\"]\s*$", metadata, flags=re.M)
    missing = [w for w in wanted if normal(w) not in infos]
    if not missing:
        return ()
    dist = install.distributions[0].replace("_", "-")
    return (f"{dist}[{install.extra}] is incomplete: {', '.join(missing)} not installed beside it "
            f"(pip install '{dist}[{install.extra}]')",)


def _which(program: str, environ: Mapping[str, str]) -> str | None:
    path = environ.get("PATH")
    return shutil.which(program, path=path) if path else None


def _not_runnable(path: str) -> str | None:
    if not os.path.exists(path):
        return "no such file"
    if os.path.isdir(path):
        return "a directory, not a program"
    if not os.access(path, os.X_OK):
        return "not executable (chmod +x it)"
    return None


def run_version(argv: list[str]) -> str | None:
    """A native program's `--version` output (argv list, no shell, a short timeout), None when it did not answer."""
    import subprocess

    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=VERSION_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return (proc.stdout or "") + (proc.stderr or "")


# --- every install ---------------------------------------------------------------------------------------
def installs() -> list[tuple[str, Install]]:
    """(engine id, install) for every engines.yaml install, in the file's order."""
    from autoquant.facts import default_facts

    return [(eid, i) for eid, spec in default_facts().engines.items() for i in spec.installs]


def install_named(name: str) -> tuple[str, Install] | None:
    """(engine id, install) of the install called `name` (vllm, llamacpp_python), None if there is none."""
    return next(((e, i) for e, i in installs() if i.name == name), None)


def discover(where: Where | None = None, ask: Runner | None = run_version) -> list[EngineInstall]:
    """Every engine installed here (and every override that names nothing runnable), in engines.yaml order.
    `autoquant probe` asks native programs for --version; pass ask=None never to run one."""
    where = where or Where.here()
    return [rec for eid, i in installs() if (rec := find(eid, i, where, ask)) is not None]


def installed(name: str, environ: Mapping[str, str] | None = None) -> EngineInstall | None:
    """The install `serve` uses for `name` (no program is run), read once per process for the same pointer
    and PATH (all discovery reads of the environment)."""
    environ = os.environ if environ is None else environ
    return _installed(name, environ.get(env_var(name)), environ.get("PATH"))


@functools.lru_cache(maxsize=64)
def _installed(name: str, pointer: str | None, path: str | None) -> EngineInstall | None:
    found = install_named(name)
    if found is None:
        return None
    environ = {k: v for k, v in ((env_var(name), pointer), ("PATH", path)) if v is not None}
    return find(found[0], found[1], Where(environ, sys.executable, tuple(sys.path)), None)


def executable(name: str, environ: Mapping[str, str] | None = None) -> str:
    """What serve runs for `name`: the install found, the override as given even when it names nothing
    runnable (the launch then says so in one line), else the bare program (this Python for a module)."""
    rec = installed(name, environ)
    if rec is not None and (rec.usable or rec.found_by == env_var(name)):
        return rec.path
    found = install_named(name)
    program = found[1].program if found and not found[1].module else None
    return program or (sys.executable if found and found[1].module else name)


def companion_version(rec: EngineInstall, dist: str, where: Where | None = None) -> str | None:
    """The version of `dist` in the environment `rec` runs in (vllm-gguf-plugin beside a vLLM), None if absent."""
    where = where or Where.here()
    python = rec.interpreter
    if python and os.path.abspath(python) == os.path.abspath(where.python):
        infos = dist_infos_cached(where.site_dirs)
    else:
        infos = dist_infos(_environment(rec.path, python))
    got = infos.get(normal(dist))
    return got[0] if got else None
