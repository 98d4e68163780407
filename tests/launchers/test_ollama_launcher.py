"""`autoquant serve --engine ollama`: the launch record (OLLAMA_HOST from --host/--port, `ollama create` once the
server answers /api/version, ready when /v1/models lists the model), and the process boundary end to end with a
FAKE `ollama` executable (tests/fixtures/engines/fake_ollama.py via AUTOQUANT_ENGINE_BIN_OLLAMA): started,
created, ready, stopped; an Ollama already running there reused; a failing create stops the server; no ollama
installed is one error line."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from autoquant import modelfile as mf
from autoquant.errors import UsageError
from autoquant.launchers import ollama
from autoquant.launchers.base import ServeOptions
from autoquant.records import Checkpoint

FAKE = Path(__file__).parents[1] / "fixtures" / "engines" / "fake_ollama.py"


def _cand(candidate, path, **kw):
    ck = Checkpoint(repo=path, method="gguf-q4_k_m", files=[path], source="local")
    kw.setdefault("max_num_seqs", 1)
    kw.setdefault("gpu", "cpu")
    kw.setdefault("gpus", 0)
    return candidate(engine="llamacpp", method="gguf-q4_k_m", checkpoint=ck, **kw)


def _gguf(path, **meta) -> str:
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(path), "gemma3")
    for key, value in meta.items():
        (writer.add_uint32 if isinstance(value, int) else writer.add_string)(key, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return str(path)


# -- the launch record ---------------------------------------------------------------------------------------
def test_ollama_serve_gets_the_address_and_the_plans_server_settings(candidate, demo_gguf, tmp_path):
    cand = _cand(candidate, demo_gguf, max_model_len=4096, max_num_seqs=4, kv="q8_0")
    spec = ollama.build(cand, ServeOptions(host="127.0.0.1", port=8123), "google/gemma-3-270m", threads=3,
                        run_dir=str(tmp_path))
    assert spec.argv[1:] == ["serve"] and spec.engine == "llamacpp" and spec.flavor == "ollama"
    assert spec.env == {"OLLAMA_HOST": "127.0.0.1:8123", "OLLAMA_NUM_PARALLEL": "4", "OLLAMA_KV_CACHE_TYPE": "q8_0"}
    assert spec.ready_url == "http://127.0.0.1:8123/v1/models"
    assert spec.served_names == ["google/gemma-3-270m", "google/gemma-3-270m:latest"]
    (path, text), = spec.files.items()
    assert path == str(tmp_path / "ollama-8123.Modelfile") and mf.check(text) == []
    params = {c.name: c.value for c in mf.parse(text)[0] if c.instruction == "parameter"}
    assert params == {"num_ctx": "4096", "num_thread": "3", "num_gpu": "0", "num_batch": "512"}
    step, = spec.after_start
    assert list(step.argv[1:]) == ["create", "google/gemma-3-270m", "-f", path]
    assert step.after.path == "/api/version" and dict(step.env) == {"OLLAMA_HOST": "127.0.0.1:8123"}
    assert spec.reuse is not None and spec.reuse.path == "/api/version"


@pytest.mark.parametrize(("host", "bind", "client"), [
    (None, "0.0.0.0:8000", "127.0.0.1:8000"),  # autoquant's default: every interface, as for every engine
    ("::", "[::]:8000", "[::1]:8000"),
    ("::1", "[::1]:8000", "[::1]:8000"),
])
def test_host_and_port_become_ollama_host(candidate, demo_gguf, tmp_path, host, bind, client):
    spec = ollama.build(_cand(candidate, demo_gguf), ServeOptions(host=host), "m", run_dir=str(tmp_path))
    assert spec.env["OLLAMA_HOST"] == bind and dict(spec.after_start[0].env)["OLLAMA_HOST"] == client


def test_a_name_ollama_does_not_take_is_made_into_one(candidate, demo_gguf, tmp_path):
    spec = ollama.build(_cand(candidate, demo_gguf), ServeOptions(), demo_gguf, run_dir=str(tmp_path))
    assert spec.served_names == ["gemma-3-270m-q4_k_m", "gemma-3-270m-q4_k_m:latest"]
    assert any("is not an Ollama model name" in n for n in spec.notes)
    with pytest.raises(UsageError, match="is not an Ollama model name"):
        ollama.build(_cand(candidate, demo_gguf), ServeOptions(served_model_name=["my model"]), "m",
                     run_dir=str(tmp_path))


@pytest.mark.parametrize(("options", "says"), [
    (ServeOptions(api_key="sk-1"), "Ollama's server has no API key"),
    (ServeOptions(passthrough=["--seed", "3"], user_args=["--seed", "3"]), "--seed has no Ollama equivalent"),
    (ServeOptions(dtype="bfloat16"), "--dtype bfloat16 has no Ollama equivalent"),
])
def test_what_ollama_cannot_carry_is_refused(candidate, demo_gguf, tmp_path, options, says):
    with pytest.raises(UsageError, match=says):
        ollama.build(_cand(candidate, demo_gguf), options, "m", run_dir=str(tmp_path))


def test_a_flag_that_means_llamacpps_default_is_dropped_with_a_note(candidate, demo_gguf, tmp_path):
    opts = ServeOptions(passthrough=["--enable-prefix-caching"], user_args=["--enable-prefix-caching"])
    spec = ollama.build(_cand(candidate, demo_gguf), opts, "m", run_dir=str(tmp_path))
    assert spec.argv[1:] == ["serve"] and any(n.startswith("--enable-prefix-caching:") for n in spec.notes)


def test_a_gguf_with_a_chat_template_is_left_to_ollamas_detection(candidate, tmp_path):
    path = _gguf(tmp_path / "chat.gguf", **{"general.name": "Tiny Chat", "gemma3.block_count": 4,
                                           "tokenizer.chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"})
    made = ollama.modelfile(_cand(candidate, path, gpu="RTX4090", gpus=1), path, "tiny-chat", threads=4)
    assert "template" not in [c.instruction for c in mf.parse(made.text)[0]]
    assert "Ollama's TEMPLATE is Go text/template" in made.text and "`ollama create` detects" in made.text
    params = {c.name: c.value for c in mf.parse(made.text)[0] if c.instruction == "parameter"}
    assert params["num_gpu"] == "5" and made.notes == ()  # 4 blocks + the output layer
    assert mf.check(made.text) == []


def test_a_split_gguf_is_created_from_the_folder_of_its_shards(candidate, tmp_path):
    shards = [_gguf(tmp_path / f"m-0000{i}-of-00002.gguf", **{"general.name": "M"}) for i in (1, 2)]
    ck = Checkpoint(repo=str(tmp_path), method="gguf-q4_k_m", files=shards, source="local")
    cand = candidate(engine="llamacpp", method="gguf-q4_k_m", checkpoint=ck, gpu="cpu", gpus=0, max_num_seqs=1)
    assert ollama.modelfile(cand, "m", "m").source == str(tmp_path)
    _gguf(tmp_path / "other.gguf")
    with pytest.raises(Exception, match="a folder of their own"):
        ollama.modelfile(cand, "m", "m")


# -- the process boundary, with a fake ollama ---------------------------------------------------------------
@pytest.fixture
def rig(tmp_path, free_port, demo_gguf):
    fake = tmp_path / "bin" / "ollama"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\n" + FAKE.read_text())
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    record = tmp_path / "record.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOQUANT_", "FAKE_", "OLLAMA_"))}
    env.update(AUTOQUANT_ENGINE_BIN_OLLAMA=str(fake), FAKE_OLLAMA_RECORD=str(record), AUTOQUANT_PREDICTOR="autoquant",
               AUTOQUANT_CACHE_DIR=str(tmp_path / "cache"), AUTOQUANT_RUN_DIR=str(tmp_path / "run"),
               HF_HUB_OFFLINE="1")
    return {"fake": fake, "record": record, "env": env, "port": free_port(), "gguf": demo_gguf}


def _records(rig) -> list[dict]:
    return [json.loads(line) for line in rig["record"].read_text().splitlines()] if rig["record"].exists() else []


def _serve(rig, *extra, **env):
    argv = [sys.executable, "-m", "autoquant", "serve", "--engine", "ollama", "--host", "127.0.0.1",
            "--port", str(rig["port"]), "--ready-timeout", "60", *extra]
    return subprocess.Popen(argv, env=dict(rig["env"], **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _until_ready(proc) -> str:
    line = proc.stdout.readline()
    if not line.startswith("ready:"):
        proc.kill()
        pytest.fail(f"not ready: {line!r} {proc.communicate()[1][-2000:]}")
    return line


def _models(port) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as r:
        return [m["id"] for m in json.loads(r.read())["data"]]


def test_serve_starts_ollama_creates_the_model_and_stops_on_sigterm(rig):
    proc = _serve(rig, "--supervise")
    try:
        ready = _until_ready(proc)
        assert ready.startswith(f"ready: http://127.0.0.1:{rig['port']}/v1")
        assert _models(rig["port"]) == ["google/gemma-3-270m:latest"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    serve, create, created, stopped = _records(rig)
    assert serve["argv"][1:] == ["serve"] and serve["env"]["OLLAMA_HOST"] == f"127.0.0.1:{rig['port']}"
    assert serve["env"]["OLLAMA_NUM_PARALLEL"] == "1"
    modelfile = str(Path(rig["env"]["AUTOQUANT_RUN_DIR"]) / f"ollama-{rig['port']}.Modelfile")
    assert create["argv"][1:] == ["create", "google/gemma-3-270m", "-f", modelfile]
    assert mf.check(created["modelfile"]) == []  # the Modelfile serve wrote reads clean with Ollama's syntax
    assert f"FROM {rig['gguf']}" in created["modelfile"]
    assert stopped == {"cmd": "serve", "signal": signal.SIGTERM, "pid": serve["pid"]}


def test_an_ollama_already_running_there_is_used_and_left_running(rig):
    server = subprocess.Popen([str(rig["fake"]), "serve"], env=dict(rig["env"], OLLAMA_HOST=f"127.0.0.1:{rig['port']}"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                _models(rig["port"])
                break
            except OSError:
                time.sleep(0.1)
        proc = _serve(rig)  # no --supervise: `ollama create` needs the server, so serve supervises anyway
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.startswith(f"ready: http://127.0.0.1:{rig['port']}/v1")
        assert "ollama runs under --supervise" in err and "already answers" in err and "version 0.32.15" in err
        assert server.poll() is None and _models(rig["port"]) == ["google/gemma-3-270m:latest"]
        assert [r["cmd"] for r in _records(rig) if "argv" in r] == ["serve", "create"]  # the test's server only
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_failing_create_stops_ollama_and_exits_1(rig):
    proc = _serve(rig, "--supervise", FAKE_OLLAMA_CREATE="fail")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "ready:" not in out
    assert "ollama create exited with code 1" in err and "| Error: invalid model name" in err
    assert _records(rig)[-1]["signal"] == signal.SIGTERM  # the server was stopped


def test_without_ollama_installed_serve_is_one_error_line(rig, tmp_path):
    env = dict(rig["env"], PATH=str(tmp_path / "empty"))
    del env["AUTOQUANT_ENGINE_BIN_OLLAMA"]
    proc = subprocess.run([sys.executable, "-m", "autoquant", "serve", "--engine", "ollama"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    line, = proc.stderr.strip().splitlines()
    assert line.startswith("autoquant: error: --engine ollama needs the ollama executable")
    assert "https://ollama.com/download" in line and "`autoquant ollama MODEL`" in line


def test_dry_run_needs_no_ollama(rig, tmp_path):
    env = dict(rig["env"], PATH=str(tmp_path / "empty"))
    del env["AUTOQUANT_ENGINE_BIN_OLLAMA"]
    proc = subprocess.run([sys.executable, "-m", "autoquant", "serve", "--engine", "ollama", "--dry-run", "--json"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    launch = json.loads(proc.stdout)["launch"]
    assert launch["argv"] == ["ollama", "serve"] and launch["env"]["OLLAMA_HOST"] == "0.0.0.0:8000"
    assert any("ollama create google/gemma-3-270m -f" in n for n in launch["notes"])
