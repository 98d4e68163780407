"""`autoquant k8s MODEL [plan options]`: YAML on stdout, one summary line on stderr. A one-node plan is a Deployment
and a Service, a multi-node one a LeaderWorkerSet and a Service; both validate (tests/k8s_check.py). Each pod's
`autoquant serve` arguments, run as the image's entrypoint on the node the pod asks for, launch the engine command
the plan shows. Bad names are one error line and exit 2 before any planning; a plan that chooses nothing is one
error line and exit 1."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import pytest

from autoquant.cli import main
from autoquant.launchers.flags import classify_tokens

pytestmark = pytest.mark.usefixtures("no_autoquant_env")

_spec = importlib.util.spec_from_file_location("k8s_check", Path(__file__).parents[1] / "k8s_check.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

# vLLM pinned: its runner-up on SGLang is within the planner's 2% tie, and SGLang has no image of its own yet
SINGLE = ["meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100-SXM:1", "--engine", "vllm"]
MULTI = ["meta-llama/Llama-3.1-405B-Instruct", "--gpu", "H100-SXM:8", "--nodes", "2", "--method", "bf16",
         "--engine", "vllm"]
SECRET = "hf_k8sSecretToken0123456789abcdef"


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOQUANT_PREDICTOR", "autoquant")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_TOKEN", SECRET)


def _k8s(capsys, *argv) -> tuple[list[dict], str, str]:
    assert main(["k8s", *argv]) == 0
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    return check.documents(out), out, err


def _error(capsys, argv, code) -> str:
    assert main(["k8s", *argv]) == code
    out, err = capsys.readouterr()
    lines = [line for line in err.strip().splitlines() if not line.startswith("autoquant: offline")]
    assert out == "" and len(lines) == 1 and lines[0].startswith("autoquant: error: "), (out, err)
    return lines[0]


def _plan(capsys, argv) -> dict:
    assert main(["plan", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _pod_serves(args: list[str], gpus: int, monkeypatch) -> dict:
    """The pod's `autoquant serve ARGS` as the image runs it (its ENV: AUTOQUANT_ENGINE=vllm) on a node with the
    GPUs the pod asks for, as a dry run: the launch record."""
    monkeypatch.setenv("AUTOQUANT_ENGINE", "vllm")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["serve", *args, "--gpu", f"H100-SXM:{gpus}", "--dry-run", "--json"]) == 0
    return json.loads(out.getvalue())


def _flags(argv: list[str]) -> dict[str, tuple[str, ...]]:
    parsed, _ = classify_tokens(argv)
    return {a.name: a.values for a in parsed}


def test_one_node_is_a_deployment_and_a_service_that_validate(capsys):
    docs, out, err = _k8s(capsys, *SINGLE)
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    for d in docs:
        check.validate(d)
    assert out.startswith("# autoquant k8s: meta-llama/Llama-3.1-8B-Instruct on 1x H100-SXM\n")
    assert "&id" not in out and "*id" not in out  # no YAML anchors: every pod spells out its probes
    deployment = docs[0]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "autoquant-vllm"  # launchers/containers/Dockerfile.vllm's tag
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert "autoquant: Deployment llama-3-1-8b-instruct: 1 pod(s), 1 GPU(s) each; Service llama-3-1-8b-instruct " \
           "on port 8000" in err


def test_multi_node_is_a_leader_worker_set_of_two_pods_of_eight_gpus(capsys):
    docs, out, _ = _k8s(capsys, *MULTI)
    assert [d["kind"] for d in docs] == ["LeaderWorkerSet", "Service"]
    for d in docs:
        check.validate(d)
    lws, service = docs
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == 2 and lws["spec"]["replicas"] == 1
    assert template["restartPolicy"] == "RecreateGroupOnPodRestart" and lws["spec"]["startupPolicy"] == "LeaderCreated"
    leader = template["leaderTemplate"]
    worker = template["workerTemplate"]
    for pod in (leader, worker):
        (container,) = pod["spec"]["containers"]
        assert container["resources"]["limits"] == {"nvidia.com/gpu": 8}
        assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    (lc,), (wc,) = leader["spec"]["containers"], worker["spec"]["containers"]
    assert "readinessProbe" in lc and "startupProbe" in lc
    assert "readinessProbe" not in wc and "startupProbe" not in wc and "livenessProbe" not in wc
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "llama-3-1-405b-instruct", "role": "leader"}
    assert leader["metadata"]["labels"]["role"] == "leader" and worker["metadata"]["labels"]["role"] == "worker"
    assert "kubectl apply --server-side -f https://github.com/kubernetes-sigs/lws/releases/download/v0.10.0/" in out


@pytest.mark.parametrize("argv", [SINGLE, MULTI], ids=["one-node", "two-nodes"])
def test_each_pod_launches_the_command_the_plan_shows(capsys, monkeypatch, argv):
    chosen = _plan(capsys, argv)["chosen"]
    docs, _, _ = _k8s(capsys, *argv)
    template = docs[0]["spec"]["template"] if docs[0]["kind"] == "Deployment" else \
        docs[0]["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
    (container,) = template["spec"]["containers"]
    gpus = container["resources"]["limits"]["nvidia.com/gpu"]
    served = _pod_serves(container["args"], gpus, monkeypatch)
    launched = served["launch"]["argv"]
    planned = chosen["command"]
    assert launched[:3] == planned[:3]  # vllm serve <the same weights>
    want, got = _flags(planned[3:]), _flags(launched[3:])
    assert {k: got.get(k) for k in want} == want  # every flag of the plan's command, with its value
    assert set(got) - set(want) <= {"--port", "--tensor-parallel-size", "--pipeline-parallel-size"}
    assert launched[launched.index("--port") + 1] == str(container["ports"][0]["containerPort"])
    assert served["launch"]["ready_url"].endswith(container["readinessProbe"]["httpGet"]["path"])


def test_options_reach_the_manifests(capsys):
    docs, out, _ = _k8s(capsys, *MULTI, "--name", "llama-405b", "--namespace", "llm", "--image",
                        "registry.example.com/autoquant-vllm:0.1", "--cache-pvc", "hf-cache", "--port", "9000")
    for d in docs:
        check.validate(d)
        assert d["metadata"]["namespace"] == "llm"
    lws, service = docs
    assert lws["metadata"]["name"] == "llama-405b" and service["metadata"]["name"] == "llama-405b-leader"
    assert service["spec"]["ports"][0]["port"] == 9000
    pod = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example.com/autoquant-vllm:0.1"
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "hf-cache"}} in pod["volumes"]
    assert "hostPath" not in out and "built by launchers/containers" not in out


@pytest.mark.parametrize("argv, wanted", [
    (["--name", "Llama_8B"], "--name 'Llama_8B' is not a valid Kubernetes name"),
    (["--name", "l" * 46], "at most 45"),
    (["--namespace", "LLM"], "--namespace 'LLM' is not a valid namespace"),
    (["--cache-pvc", "hf cache"], "--cache-pvc 'hf cache' is not a PersistentVolumeClaim name"),
    (["--port", "0"], "a port is 1-65535"),
], ids=["name", "name-length", "namespace", "pvc", "port"])
def test_a_bad_option_is_one_error_line_and_exit_2_before_planning(capsys, monkeypatch, argv, wanted):
    import autoquant.planner

    def no_planning(*_a, **_k):
        raise AssertionError("planned")

    monkeypatch.setattr(autoquant.planner, "plan", no_planning)
    assert wanted in _error(capsys, [*SINGLE, *argv], 2)


def test_nothing_fits_is_one_error_line_with_the_reason_and_exit_1(capsys):
    line = _error(capsys, ["meta-llama/Llama-3.1-405B-Instruct", "--gpu", "L4:1", "--method", "bf16"], 1)
    assert "nothing to deploy" in line and "does not fit" in line and "autoquant plan" in line


def test_an_engine_serve_does_not_bootstrap_across_nodes_is_one_error_line(capsys):
    argv = [*MULTI[:-1], "trtllm"]
    line = _error(capsys, argv, 2)
    assert "TensorRT-LLM over 2 nodes is not written as a LeaderWorkerSet" in line and "--engine vllm" in line


def test_a_mig_node_is_one_error_line(capsys):
    mig = Path(__file__).parents[1] / "fixtures" / "nodes" / "h100-sxm-mig-3g40gb.json"
    line = _error(capsys, ["meta-llama/Llama-3.1-8B-Instruct", "--hardware", str(mig)], 2)
    assert "the plan is for a MIG slice: autoquant k8s writes whole-GPU resources" in line


def test_an_engine_without_an_image_needs_image(capsys):
    sglang = [*SINGLE[:-1], "sglang"]
    line = _error(capsys, sglang, 2)
    assert "the plan chose SGLang, and launchers/containers has no autoquant image for it: pass --image" in line
    assert "or pin --engine vllm or --engine trtllm" in line
    docs, _, _ = _k8s(capsys, *sglang, "--image", "registry.example.com/autoquant-sglang:1")
    for d in docs:
        check.validate(d)


def test_apple_silicon_is_not_a_kubernetes_node(capsys):
    assert "not a Kubernetes node" in _error(capsys, ["meta-llama/Llama-3.2-1B", "--gpu", "M2-Max"], 2)
