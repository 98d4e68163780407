"""Finding the inference engines (autoquant.probes.engines): real discovery over fake virtual environments in
tmp_path (dist-info folders, console scripts with shebangs, pyvenv.cfg), PATH and the AUTOQUANT_ENGINE_BIN_*
pointers; and `autoquant probe` listing what this machine has."""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pytest

from autoquant.cli import main
from autoquant.errors import EngineError
from autoquant.probes import engines
from autoquant.probes.engines import FOUND_HERE, FOUND_ON_PATH, Where
from autoquant.records import EngineInstall, Node, from_dict, to_dict

NODES = Path(__file__).resolve().parents[1] / "fixtures" / "nodes"


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def venv(root: Path, dists: dict[str, str] | None = None, scripts: tuple[str, ...] = (), *,
         metadata_text: str = "", cfg: str | None = None) -> Path:
    """A virtual environment as pip leaves it: bin/python, lib/python3.11/site-packages/<dist>-<v>.dist-info,
    console scripts whose shebang names bin/python, pyvenv.cfg. Returns its bin/python, which leaves
    bin/python.ran behind if anything runs it."""
    python = _executable(root / "bin" / "python", '#!/bin/sh\ntouch "$0.ran"\n')
    site = root / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    for dist, version in (dists or {}).items():
        info = site / f"{dist}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n{metadata_text}")
    for script in scripts:
        _executable(root / "bin" / script, f"#!{python}\nimport sys\nsys.exit(0)\n")
    (root / "pyvenv.cfg").write_text(cfg if cfg is not None else "home = /usr/bin\nversion = 3.11.7\n")
    return python


def _site(python: Path) -> str:
    return str(python.parent.parent / "lib" / "python3.11" / "site-packages")


@pytest.fixture
def here(tmp_path) -> Path:
    """autoquant's own environment: nothing but autoquant in it."""
    return venv(tmp_path / "aq", {"autoquant": "0.1.0"})


def _where(here: Path, **environ: str) -> Where:
    return Where(environ, str(here), (_site(here),))


def _find(name: str, where: Where, ask=None) -> EngineInstall | None:
    engine, install = engines.install_named(name)
    return engines.find(engine, install, where, ask)


def test_a_vllm_in_its_own_venv_is_found_only_when_pointed_at(tmp_path, here):
    python = venv(tmp_path / "venv-vllm", {"vllm": "0.20.0"}, ("vllm",))
    vllm = python.parent / "vllm"
    assert _find("vllm", _where(here, PATH=str(tmp_path / "empty"))) is None
    rec = _find("vllm", _where(here, PATH=str(tmp_path / "empty"), AUTOQUANT_ENGINE_BIN_VLLM=str(vllm)))
    assert (rec.path, rec.found_by, rec.version) == (str(vllm), "AUTOQUANT_ENGINE_BIN_VLLM", "0.20.0")
    assert rec.version_from == f"{_site(python)}/vllm-0.20.0.dist-info" and rec.interpreter == str(python)
    assert rec.usable and rec.notes == ()


def test_a_vllm_on_path_gets_the_version_of_its_venv(tmp_path, here):
    python = venv(tmp_path / "venv-vllm", {"vllm": "0.20.0"}, ("vllm",))
    rec = _find("vllm", _where(here, PATH=f"{tmp_path / 'empty'}{os.pathsep}{python.parent}"))
    assert (rec.path, rec.found_by, rec.version) == (str(python.parent / "vllm"), FOUND_ON_PATH, "0.20.0")


def test_the_pointer_beats_this_environment_which_beats_path(tmp_path):
    own = venv(tmp_path / "aq", {"vllm": "0.33.0"}, ("vllm",))
    other = venv(tmp_path / "other", {"vllm": "0.20.0"}, ("vllm",))
    pointed = venv(tmp_path / "pointed", {"vllm": "0.25.1"}, ("vllm",))
    rec = _find("vllm", _where(own, PATH=str(other.parent)))
    assert (rec.path, rec.found_by, rec.version) == (str(own.parent / "vllm"), FOUND_HERE, "0.33.0")
    rec = _find("vllm", _where(own, PATH=str(other.parent), AUTOQUANT_ENGINE_BIN_VLLM=str(pointed.parent / "vllm")))
    assert (rec.found_by, rec.version) == ("AUTOQUANT_ENGINE_BIN_VLLM", "0.25.1")


def test_a_bare_pointer_is_looked_up_on_path(tmp_path, here):
    python = venv(tmp_path / "nightly", {"vllm": "0.34.0rc1"})
    _executable(python.parent / "vllm-nightly", f"#!{python}\n")
    rec = _find("vllm", _where(here, PATH=str(python.parent), AUTOQUANT_ENGINE_BIN_VLLM="vllm-nightly"))
    assert rec.path == str(python.parent / "vllm-nightly") and rec.version == "0.34.0rc1"


def test_a_module_engine_runs_on_the_python_that_has_it(tmp_path, here):
    python = venv(tmp_path / "venv-sglang", {"sglang": "0.5.23"}, ("sglang",))
    # this environment has it: autoquant's own Python runs it
    own = venv(tmp_path / "aq-sglang", {"sglang": "0.5.9"})
    rec = _find("sglang", _where(own, PATH=str(python.parent)))
    assert (rec.path, rec.found_by, rec.version) == (str(own), FOUND_HERE, "0.5.9")
    # on PATH: the `sglang` console script names the Python that has the module
    rec = _find("sglang", _where(here, PATH=str(python.parent)))
    assert (rec.path, rec.interpreter, rec.found_by, rec.version) == (str(python), str(python), FOUND_ON_PATH,
                                                                       "0.5.23")
    # pointed at: the interpreter, or a console script standing for the Python its shebang names
    rec = _find("sglang", _where(here, AUTOQUANT_ENGINE_BIN_SGLANG=str(python)))
    assert (rec.path, rec.version, rec.notes) == (str(python), "0.5.23", ())
    rec = _find("sglang", _where(here, AUTOQUANT_ENGINE_BIN_SGLANG=str(python.parent / "sglang")))
    assert rec.path == str(python) and rec.version == "0.5.23" and "console script" in rec.notes[0]


def test_a_module_engine_has_no_path_lookup_without_a_console_script(tmp_path, here):
    python = venv(tmp_path / "venv-llama", {"llama_cpp_python": "0.3.36"})
    assert _find("llamacpp_python", _where(here, PATH=str(python.parent))) is None
    rec = _find("llamacpp_python", _where(here, AUTOQUANT_ENGINE_BIN_LLAMACPP_PYTHON=str(python)))
    assert (rec.path, rec.version, rec.module) == (str(python), "0.3.36", "llama_cpp")


def test_a_linked_console_script_reads_the_venv_it_really_is_in(tmp_path, here):
    python = venv(tmp_path / "opt" / "venv-vllm", {"vllm": "0.21.0"})
    real = _executable(python.parent / "vllm", "#!/usr/bin/env python3\nimport sys\n")  # no python3 on PATH
    (tmp_path / "usr-local-bin").mkdir()
    (tmp_path / "usr-local-bin" / "vllm").symlink_to(real)
    rec = _find("vllm", _where(here, PATH=str(tmp_path / "usr-local-bin")))
    assert rec.path == str(tmp_path / "usr-local-bin" / "vllm") and rec.version == "0.21.0"


def test_an_env_shebang_runs_the_python_path_has(tmp_path, here):
    python = venv(tmp_path / "venv-vllm", {"vllm": "0.23.0"})
    _executable(python.parent / "python3", f"#!/bin/sh\nexec {python} \"$@\"\n")
    script = _executable(tmp_path / "tools" / "vllm", "#!/usr/bin/env python3\nimport sys\n")
    rec = _find("vllm", _where(here, PATH=f"{script.parent}{os.pathsep}{python.parent}"))
    assert rec.interpreter == str(python.parent / "python3") and rec.version == "0.23.0"


def test_pips_long_path_shebang_names_the_interpreter(tmp_path, here):
    python = venv(tmp_path / "venv with a long path", {"tensorrt_llm": "1.1.0"})
    script = _executable(tmp_path / "bin" / "trtllm-serve",
                         f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\nimport sys\n")
    rec = _find("trtllm", _where(here, AUTOQUANT_ENGINE_BIN_TRTLLM=str(script)))
    assert rec.interpreter == str(python) and rec.version == "1.1.0"


def test_a_venv_with_system_site_packages_reads_its_base(tmp_path, here):
    base = venv(tmp_path / "base", {"vllm": "0.22.0"})
    python = venv(tmp_path / "venv", {}, ("vllm",),
                  cfg=f"home = {base.parent}\ninclude-system-site-packages = true\nversion = 3.11.7\n")
    rec = _find("vllm", _where(here, AUTOQUANT_ENGINE_BIN_VLLM=str(python.parent / "vllm")))
    assert rec.version == "0.22.0" and rec.version_from.startswith(_site(base))
    isolated = venv(tmp_path / "isolated", {}, ("vllm",), cfg=f"home = {base.parent}\nversion = 3.11.7\n")
    rec = _find("vllm", _where(here, AUTOQUANT_ENGINE_BIN_VLLM=str(isolated.parent / "vllm")))
    assert rec.version is None and rec.notes[0].startswith("version unknown: no vllm dist-info under")


@pytest.mark.parametrize(("make", "why"), [
    (lambda p: p, "no such file"),
    (lambda p: (p.mkdir(), p)[1], "a directory, not a program"),
    (lambda p: (p.write_text("#!/bin/sh\n"), p)[1], "not executable (chmod +x it)"),
])
def test_a_pointer_that_names_nothing_runnable_is_noted_and_kept(tmp_path, here, make, why):
    target = make(tmp_path / "vllm")
    environ = {"PATH": str(tmp_path / "empty"), "AUTOQUANT_ENGINE_BIN_VLLM": str(target)}
    rec = _find("vllm", Where(environ, str(here), (_site(here),)))
    assert not rec.usable and rec.notes == (f"AUTOQUANT_ENGINE_BIN_VLLM={target}: {why}",)
    # serve runs what the user pointed at, so the launch fails with one line naming it (not another vLLM)
    assert engines.executable("vllm", environ) == str(target)


def test_a_console_script_whose_python_is_gone_is_not_usable(tmp_path, here):
    script = _executable(tmp_path / "bin" / "vllm", f"#!{tmp_path / 'deleted' / 'bin' / 'python'}\n")
    rec = _find("vllm", _where(here, PATH=str(script.parent)))
    assert not rec.usable and "does not exist" in rec.notes[0]
    assert engines.executable("vllm", {"PATH": str(script.parent)}) == "vllm"


def test_not_installed_anywhere_serve_names_the_bare_program(tmp_path):
    empty = {"PATH": str(tmp_path)}
    assert engines.executable("trtllm", empty) == "trtllm-serve" and engines.installed("trtllm", empty) is None


def test_serve_runs_llama_server_when_discovery_finds_one(tmp_path):
    from autoquant.launchers import llamacpp

    server = _executable(tmp_path / "bin" / "llama-server", "#!/bin/sh\n")
    assert llamacpp.flavor({"PATH": str(server.parent)}) == "server"
    assert llamacpp.flavor({"PATH": str(tmp_path / "empty")}) == "python"
    assert engines.executable("llamacpp", {"PATH": str(server.parent)}) == str(server)


def test_a_native_llama_server_is_asked_its_version_only_when_probing(tmp_path, here):
    server = _executable(tmp_path / "bin" / "llama-server",
                         "#!/bin/sh\necho 'version: 6530 (1a2b3c4d)' >&2\necho 'built with cc' >&2\n")
    where = _where(here, PATH=str(server.parent))
    rec = _find("llamacpp", where)  # serve and plan: never run
    assert (rec.path, rec.found_by, rec.version) == (str(server), FOUND_ON_PATH, None)
    rec = _find("llamacpp", where, ask=engines.run_version)
    assert rec.version == "b6530" and rec.version_from == f"{server} --version (commit 1a2b3c4d)"


def test_ollama_is_found_with_its_release_and_serve_runs_that_one(tmp_path, here):
    from autoquant.launchers import ollama

    program = _executable(tmp_path / "bin" / "ollama", "#!/bin/sh\necho 'ollama version is 0.32.15'\n")
    where = _where(here, PATH=str(program.parent))
    rec = _find("ollama", where, ask=engines.run_version)
    assert (rec.path, rec.found_by, rec.version) == (str(program), FOUND_ON_PATH, "0.32.15")
    assert ollama.binary({"PATH": str(program.parent)}) == str(program)  # the launcher's lookup is discovery's
    assert ollama.binary({"PATH": str(tmp_path / "empty")}) is None
    # an override that names nothing runnable is one line, not a launch that fails later
    (tmp_path / "not-a-program").write_text("")
    with pytest.raises(EngineError, match=r"AUTOQUANT_ENGINE_BIN_OLLAMA=.*not executable.*point it at the ollama"):
        ollama.binary({"AUTOQUANT_ENGINE_BIN_OLLAMA": str(tmp_path / "not-a-program")})


def test_a_version_query_that_hangs_is_noted_not_waited_for(tmp_path, here, monkeypatch):
    monkeypatch.setattr(engines, "VERSION_TIMEOUT_S", 0.3)
    server = _executable(tmp_path / "bin" / "llama-server", "#!/bin/sh\nexec sleep 30\n")
    rec = _find("llamacpp", _where(here, PATH=str(server.parent)), ask=engines.run_version)
    assert rec.version is None and rec.notes == (f"{server} --version did not answer within 0.3 s",)


def test_llama_cpp_python_without_its_server_extra_is_noted(tmp_path):
    extra = 'Requires-Dist: numpy>=1.20\nRequires-Dist: uvicorn>=0.22.0; extra == "server"\n' \
            'Requires-Dist: fastapi>=0.100.0; extra == "server"\nRequires-Dist: pytest; extra == "test"\n'
    python = venv(tmp_path / "aq", {"llama_cpp_python": "0.3.36", "fastapi": "0.110.0"}, metadata_text=extra)
    rec = _find("llamacpp_python", _where(python))
    assert (rec.found_by, rec.version, rec.path) == (FOUND_HERE, "0.3.36", str(python))
    assert rec.notes == ("llama-cpp-python[server] is incomplete: uvicorn not installed beside it "
                         "(pip install 'llama-cpp-python[server]')",)


def test_a_python_engine_is_never_run_even_when_probing(tmp_path, here):
    python = venv(tmp_path / "venv-vllm", {"vllm": "0.20.0"}, ("vllm",))
    rec = _find("vllm", _where(here, AUTOQUANT_ENGINE_BIN_VLLM=str(python.parent / "vllm")), ask=engines.run_version)
    assert rec.version == "0.20.0" and rec.notes == ()
    assert not Path(f"{python}.ran").exists()  # its shebang was read, its Python never started


# --- the record, and `autoquant probe` ----------------------------------------------------------------------
def test_the_node_record_round_trips_with_engines_and_loads_without(tmp_path):
    rec = EngineInstall(name="vllm", engine="vllm", label="vLLM", path="/v/bin/vllm", found_by="PATH",
                        version="0.20.0", program="vllm", notes=("a", "b"))
    node = Node(engines=[rec])
    assert from_dict(Node, json.loads(json.dumps(to_dict(node)))) == node
    old = json.loads((NODES / "cpu-2core.json").read_text())
    assert "engines" not in old and from_dict(Node, old).engines == []


def test_engines_do_not_change_what_measurements_are_keyed_on():
    from autoquant.planner.measured import fingerprint

    saved = from_dict(Node, json.loads((NODES / "cpu-2core.json").read_text()))
    found = replace(saved, engines=[EngineInstall("vllm", "vllm", "vLLM", "/v/vllm", "PATH")])
    assert fingerprint(found) == fingerprint(saved)


@pytest.fixture
def no_pointers(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("AUTOQUANT_ENGINE_BIN_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AUTOQUANT_CACHE_DIR", str(tmp_path / "aq-cache"))


def _probe_json(capsys, *argv) -> dict:
    assert main(["probe", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_probe_lists_the_engines_of_this_machine(capsys, no_pointers):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed")
    listed = {e["name"]: e for e in _probe_json(capsys, "--no-measure")["engines"]}
    llama = listed["llamacpp_python"]
    assert llama["version"] == metadata.version("llama_cpp_python") and llama["found_by"] == FOUND_HERE
    assert llama["module"] == "llama_cpp" and llama["usable"]
    for name, program in (("vllm", "vllm"), ("trtllm", "trtllm-serve"), ("llamacpp", "llama-server")):
        assert (name in listed) == (shutil.which(program) is not None)


def test_probe_finds_a_vllm_pointed_at_with_its_venvs_version(capsys, no_pointers, tmp_path, monkeypatch):
    python = venv(tmp_path / "venv-vllm", {"vllm": "0.20.0"}, ("vllm",))
    monkeypatch.setenv("AUTOQUANT_ENGINE_BIN_VLLM", str(python.parent / "vllm"))
    vllm = next(e for e in _probe_json(capsys, "--no-measure")["engines"] if e["name"] == "vllm")
    assert vllm["version"] == "0.20.0" and vllm["found_by"] == "AUTOQUANT_ENGINE_BIN_VLLM"
    assert main(["probe", "--no-measure"]) == 0
    out = capsys.readouterr().out
    rows = out[out.index("\nEngines\n"):].splitlines()
    assert ["vLLM", "vllm", "0.20.0", str(python.parent / "vllm"), "AUTOQUANT_ENGINE_BIN_VLLM"] in [
        r.split() for r in rows]


def test_a_described_node_lists_no_engines(capsys, no_pointers):
    assert _probe_json(capsys, "--gpu", "H100-SXM:8")["engines"] == []
    assert main(["probe", "--gpu", "H100-SXM:8"]) == 0
    assert "Engines: not looked for (--gpu describes a machine" in capsys.readouterr().out


def test_a_saved_node_keeps_the_engines_of_where_it_was_probed(capsys, no_pointers, tmp_path):
    saved = tmp_path / "node.json"
    assert main(["probe", "--no-measure", "--json", "--save", str(saved)]) == 0
    probed = json.loads(capsys.readouterr().out)["engines"]
    assert json.loads(saved.read_text())["engines"] == probed
    assert _probe_json(capsys, "--hardware", str(saved))["engines"] == probed
    assert main(["probe", "--hardware", str(NODES / "cpu-2core.json")]) == 0
    assert "Engines: none recorded" in capsys.readouterr().out
