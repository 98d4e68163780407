"""Kubernetes manifests for a plan: a Deployment when one server fits one node, a LeaderWorkerSet when it spans
several; a Service in front of the servers either way (`autoquant k8s`, docs/k8s.md).

Pure: a plan record, its node record and a `Target` (names, image, port) in, a list of manifest dicts out. Every
pod runs the same autoquant image with `autoquant serve MODEL` and the chosen configuration's pins as arguments
(`serve_args`), so each pod re-plans the same configuration on the node it lands on. The Kubernetes facts
(images, labels, LeaderWorkerSet policies, probe timings, volume sizes) are data: autoquant/data/kubernetes.yaml.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from autoquant.data import load
from autoquant.errors import RuleError, UsageError
from autoquant.records import Candidate, Checkpoint, Node, Plan

CONTAINER = "autoquant"
HTTP = "http"  # the leader's port name: the probes and the Service target it
NAME_LABEL = "app.kubernetes.io/name"
ROLE_LABEL = "role"  # set by the templates (LeaderWorkerSet sets no role label itself): the Service selects the leader

_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?\Z")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+\Z")


def facts() -> dict:
    return load("kubernetes")


@dataclass(frozen=True)
class Target:
    """What the manifests need besides the plan. `cache_pvc` None: the model cache is a hostPath on each node."""

    name: str
    image: str
    ready_path: str
    port: int = 8000
    namespace: str | None = None
    cache_pvc: str | None = None


@dataclass(frozen=True)
class Layout:
    """How the chosen configuration is placed: `nodes` pods per server (one per node), `replicas` servers,
    `gpus_per_pod` GPUs each (0: CPU only)."""

    nodes: int
    replicas: int
    gpus_per_pod: int

    @property
    def multinode(self) -> bool:
        return self.nodes > 1


# ----------------------------------------------------------------------------------------------- checks


def check_name(name: str) -> str:
    """The --name rule (kubernetes.yaml name_max_chars): a DNS-1035 label short enough for the names derived
    from it."""
    limit = facts()["name_max_chars"]
    if len(name) > limit or not _DNS1035.match(name):
        why = (f"{len(name)} characters, at most {limit} (the StatefulSets and labels LeaderWorkerSet derives from "
               "it must fit 63)") if len(name) > limit else (
            "lower-case letters, digits and '-', starting with a letter and ending with a letter or digit")
        raise UsageError(f"--name {name!r} is not a valid Kubernetes name: {why}")
    return name


def check_namespace(namespace: str) -> str:
    if len(namespace) > 63 or not _DNS1123_LABEL.match(namespace):
        raise UsageError(f"--namespace {namespace!r} is not a valid namespace: a DNS-1123 label (lower-case letters, "
                         "digits and '-', starting and ending with a letter or digit, at most 63 characters)")
    return namespace


def check_claim(claim: str) -> str:
    if len(claim) > 253 or not _DNS1123_SUBDOMAIN.match(claim):
        raise UsageError(f"--cache-pvc {claim!r} is not a PersistentVolumeClaim name: a DNS-1123 subdomain "
                         "(lower-case letters, digits, '-' and '.', at most 253 characters)")
    return claim


def check_image(image: str) -> str:
    if not image.strip() or any(c.isspace() for c in image):
        raise UsageError(f"--image {image!r}: an image reference has no spaces (REGISTRY/NAME:TAG)")
    return image


def default_name(model: str) -> str:
    """A valid --name from the model: `meta-llama/Llama-3.1-8B-Instruct` -> `llama-3-1-8b-instruct`."""
    base = model.rstrip("/").rsplit("/", 1)[-1]
    base = re.sub(r"\.gguf\Z", "", base, flags=re.IGNORECASE)
    name = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"model-{name}".rstrip("-")
    return name[: facts()["name_max_chars"]].rstrip("-")


# ----------------------------------------------------------------------------------------------- the plan


def layout(chosen: Candidate, node: Node) -> Layout:
    """Nodes per server and servers from the estimate (Estimate.nodes, Estimate.replicas). An estimate that says
    one node but needs more GPUs than the node has (a planner that does not fill `nodes` yet) spans
    ceil(GPUs per server / GPUs per node) nodes."""
    replicas = max(1, chosen.replicas)
    node = planned_node(chosen, node)
    per_node = len(node.gpus)
    if chosen.gpu == "cpu" or not per_node:
        return Layout(nodes=1, replicas=replicas, gpus_per_pod=0)
    per_server = max(1, chosen.gpus // replicas)
    nodes = max(1, chosen.nodes)
    if nodes == 1 and per_server > per_node:
        nodes = math.ceil(per_server / per_node)
    per_pod = math.ceil(per_server / nodes)
    if per_pod > per_node:
        raise RuleError(f"the plan puts {per_pod} GPUs on each of {nodes} nodes, but a node has {per_node}")
    return Layout(nodes=nodes, replicas=replicas, gpus_per_pod=per_pod)


def planned_node(chosen: Candidate, node: Node) -> Node:
    """The node type the chosen server runs on: in a mixed cluster (Node.others, planner/cluster.py) the one with
    the planned GPU, holding the server's GPUs per node (the first such type when several could)."""
    def types(n: Node) -> list[Node]:
        return [n, *(t for o in n.others for t in types(o))]

    if chosen.gpu == "cpu":
        same = [t for t in types(node) if not t.gpus]
    else:
        same = [t for t in types(node) if any(g.catalog_key == chosen.gpu for g in t.gpus)]
    if not same:
        return node
    per_server = max(1, chosen.gpus // max(1, chosen.replicas))
    nodes = max(1, chosen.nodes)
    exact = [t for t in same if len(t.gpus) * nodes == per_server]
    fits = [t for t in same if len(t.gpus) * max(nodes, t.nodes) >= per_server]
    return (exact or fits or same)[0]


def gpu_products(chosen: Candidate, node: Node) -> list[str]:
    """The nvidia.com/gpu.product label values of the planned GPU: its NVML names (autoquant/data/gpus.yaml
    nvml_names, and the names a probed node reported for it) with each space as '-', as GPU Feature
    Discovery writes them."""
    from autoquant.catalog.gpus import default_catalog

    spec = default_catalog().find(chosen.gpu)
    node = planned_node(chosen, node)
    names = [g.name for g in node.gpus if node.source != "gpu-flag" and g.catalog_key == chosen.gpu]
    names += list(spec.nvml_names) if spec is not None else []
    return list(dict.fromkeys(n.strip().replace(" ", "-") for n in names if n.strip()))


def checkpoint_arg(checkpoint: Checkpoint | None, model: str) -> str | None:
    """The --checkpoint a pod serves, so that every pod loads the weights planned here: a Hub repo other than the
    model itself. The base model and a package's bundled model need none; a path on this machine is not on the
    cluster's nodes."""
    if checkpoint is None or checkpoint.source in ("base", "package") or checkpoint.repo == model:
        return None
    if checkpoint.source == "local" or not _HUB_ID.match(checkpoint.repo):
        raise UsageError(f"the plan's checkpoint {checkpoint.repo} is a path on this machine, which the cluster's "
                         "nodes do not have: plan with a Hugging Face repo (--checkpoint ORG/NAME)")
    return checkpoint.repo


def serve_args(chosen: Candidate, model: str, port: int, nodes: int = 1) -> list[str]:
    """`autoquant serve` arguments that pin the chosen configuration (vLLM's flag spellings, which serve reads
    for every engine), so each pod plans the same one on its node."""
    from autoquant.facts import default_facts

    args = [model, "--engine", chosen.engine, "--method", chosen.method]
    ckpt = checkpoint_arg(chosen.checkpoint, model)
    if ckpt:
        args += ["--checkpoint", ckpt]
    if chosen.checkpoint is not None and chosen.checkpoint.runtime_quantization:
        args.append("--allow-runtime-quantization")
    if default_facts().engine(chosen.engine).tensor_parallel:
        args += ["--tensor-parallel-size", str(chosen.tp), "--pipeline-parallel-size", str(chosen.pp)]
        if chosen.dp > 1:
            args += ["--data-parallel-size", str(chosen.dp)]
    if chosen.kv_cache_dtype and chosen.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", chosen.kv_cache_dtype]
    if chosen.max_model_len:
        args += ["--max-model-len", str(chosen.max_model_len)]
    if chosen.max_num_seqs:
        args += ["--max-num-seqs", str(chosen.max_num_seqs)]
    if nodes > 1:
        args += ["--nodes", str(nodes)]
    return [*args, "--port", str(port)]


def engine_facts(engine: str) -> dict:
    return facts()["engines"].get(engine) or {}


def default_image(engine: str, gpus: bool) -> str:
    """The image launchers/containers builds for the engine (kubernetes.yaml engines), or one line saying why
    --image is needed."""
    entry = engine_facts(engine)
    if not entry.get("image"):
        from autoquant.facts import default_facts

        others = [e for e, f in facts()["engines"].items() if f.get("image") and (f.get("gpu") or not gpus)]
        raise UsageError(f"the plan chose {default_facts().engine(engine).label}, and launchers/containers has no "
                         "autoquant image for it: pass --image (one with it and autoquant installed, `autoquant "
                         f"serve` as its entrypoint), or pin {' or '.join(f'--engine {e}' for e in others)}")
    if gpus and not entry.get("gpu"):
        from autoquant.facts import default_facts

        raise UsageError(f"the {entry['image']} image (launchers/containers/{entry['dockerfile']}) runs "
                         f"{default_facts().engine(engine).label} on "
                         "the CPU only, and this plan uses GPUs: pass --image with a CUDA build")
    return entry["image"]


def startup_failures(chosen: Candidate) -> int:
    """Startup-probe failures allowed: the engine's start-up deadline plus the weights' download (kubernetes.yaml
    probes.startup), in probe periods."""
    startup = facts()["probes"]["startup"]
    size = chosen.checkpoint.size_bytes if chosen.checkpoint is not None and chosen.checkpoint.size_bytes else None
    per_server = chosen.memory.weights_gb * 1e9 * max(1, chosen.tp) * max(1, chosen.pp) \
        if chosen.memory.weights_gb else 0.0
    weights = float(size or per_server or chosen.memory.host_weights_gb * 1e9)
    seconds = startup["base_s"] + weights / (startup["download_mb_per_s"] * 1e6)
    return max(1, math.ceil(seconds / startup["period_s"]))


# ----------------------------------------------------------------------------------------------- manifests


def manifests(plan: Plan, node: Node, target: Target) -> list[dict]:
    """[Deployment | LeaderWorkerSet, Service] for the plan's chosen configuration."""
    chosen = plan.chosen
    if chosen is None:
        raise RuleError(f"nothing was chosen for {plan.model}: no manifest to write")
    shape = layout(chosen, node)
    check_deployable(plan, node, shape)
    args = serve_args(chosen, model_id(plan), target.port, shape.nodes)
    labels = {NAME_LABEL: target.name}
    if shape.multinode:
        workload = _leader_worker_set(target, shape, args, chosen, node, labels)
        leader = {**labels, ROLE_LABEL: "leader"}
        service = _service(f"{target.name}-leader", target, leader)
    else:
        workload = _deployment(target, shape, args, chosen, node, labels)
        service = _service(target.name, target, labels)
    return [workload, service]


def check_node(node: Node) -> None:
    """Apple silicon (macOS) is not a Kubernetes node: one line, before any planning."""
    if node.apple is not None:
        raise UsageError(f"{node.apple.chip} (Apple silicon, macOS) is not a Kubernetes node: plan for the "
                         "cluster's nodes (--gpu H100-SXM:8, --hardware node.json, --gpu cpu:NAME)")


def check_deployable(plan: Plan, node: Node, shape: Layout) -> None:
    """One line for a plan that these manifests cannot run: Apple GPUs and MIG slices (no whole-GPU resource),
    a multi-node server of an engine whose pods `autoquant serve` does not bootstrap (kubernetes.yaml multinode)."""
    from autoquant.facts import default_facts

    chosen = plan.chosen
    check_node(node)
    if node.gpus and all(g.mig_enabled for g in node.gpus):  # the planner then plans one slice (hardware.py)
        raise RuleError("the plan is for a MIG slice: autoquant k8s writes whole-GPU resources (nvidia.com/gpu); "
                        "plan for whole GPUs")
    engines = default_facts().engines
    spec = engines[chosen.engine]
    if shape.multinode and not on_lws(spec):
        backend = next(iter(spec.multi_node_backends), None)
        why = facts()["not_on_lws"].get(backend) or spec.no_multi_node
        others = " or ".join(f"--engine {e}" for e, s in engines.items() if on_lws(s))
        raise RuleError(f"{spec.label} over {shape.nodes} nodes is not written as a LeaderWorkerSet: "
                        f"{why}; pin {others}, or plan for one node")


def on_lws(spec) -> bool:
    """Whether `autoquant serve` bootstraps one of the engine's multi-node backends on LeaderWorkerSet pods."""
    return bool(set(spec.multi_node_backends) & set(facts()["lws_backends"]))


def model_id(plan: Plan) -> str:
    """The model as the plan names it (Plan.model may add ' (...)' after the id)."""
    return plan.model.split(" (", 1)[0]


def _metadata(name: str, target: Target, labels: dict | None = None) -> dict:
    meta: dict = {"name": name}
    if target.namespace:
        meta["namespace"] = target.namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _deployment(target: Target, shape: Layout, args: list[str], chosen: Candidate, node: Node,
                labels: dict) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(target.name, target, labels),
        "spec": {
            "replicas": shape.replicas,
            "selector": {"matchLabels": dict(labels)},
            # no spare GPUs assumed: replace one pod at a time instead of starting a new one first
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {"metadata": {"labels": dict(labels)},
                         "spec": _pod(target, shape, args, chosen, node, leader=True)},
        },
    }


def _leader_worker_set(target: Target, shape: Layout, args: list[str], chosen: Candidate, node: Node,
                       labels: dict) -> dict:
    lws = facts()["lws"]
    return {
        "apiVersion": lws["api_version"],
        "kind": "LeaderWorkerSet",
        "metadata": _metadata(target.name, target, labels),
        "spec": {
            "replicas": shape.replicas,
            "startupPolicy": lws["startup_policy"],
            "leaderWorkerTemplate": {
                "size": shape.nodes,
                "restartPolicy": lws["restart_policy"],
                "leaderTemplate": {"metadata": {"labels": {**labels, ROLE_LABEL: "leader"}},
                                   "spec": _pod(target, shape, args, chosen, node, leader=True)},
                "workerTemplate": {"metadata": {"labels": {**labels, ROLE_LABEL: "worker"}},
                                   "spec": _pod(target, shape, args, chosen, node, leader=False)},
            },
        },
    }


def _service(name: str, target: Target, selector: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, target, {NAME_LABEL: target.name}),
        "spec": {"type": "ClusterIP", "selector": dict(selector),
                 "ports": [{"name": HTTP, "port": target.port, "targetPort": HTTP, "protocol": "TCP"}]},
    }


def _pod(target: Target, shape: Layout, args: list[str], chosen: Candidate, node: Node, leader: bool) -> dict:
    f = facts()
    secret = f["hf_token_secret"]
    cache = f["model_cache"]
    env: list[dict] = [
        {"name": "HF_HOME", "value": cache["mount_path"]},
        {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret["name"], "key": secret["key"],
                                                            "optional": True}}},
    ]
    if shape.multinode:  # this pod's own address for vLLM and Ray (research 1b: VLLM_HOST_IP, one per node)
        env.append({"name": "VLLM_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    container: dict = {
        "name": CONTAINER,
        "image": target.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["autoquant", "serve"],
        "args": list(args),
        "env": env,
    }
    if leader:
        container["ports"] = [{"name": HTTP, "containerPort": target.port, "protocol": "TCP"}]
        probe = f["probes"]
        get = {"httpGet": {"path": target.ready_path, "port": HTTP}}
        container["startupProbe"] = {**get, "periodSeconds": probe["startup"]["period_s"],
                                     "failureThreshold": startup_failures(chosen)}
        container["readinessProbe"] = {**get, "periodSeconds": probe["readiness"]["period_s"],
                                       "timeoutSeconds": probe["readiness"]["timeout_s"],
                                       "failureThreshold": probe["readiness"]["failure_threshold"]}
    if shape.gpus_per_pod:
        container["resources"] = {"limits": {f["gpu"]["resource"]: shape.gpus_per_pod}}
    container["volumeMounts"] = [{"name": "shm", "mountPath": "/dev/shm"},
                                 {"name": "model-cache", "mountPath": cache["mount_path"]}]
    model_cache = ({"persistentVolumeClaim": {"claimName": target.cache_pvc}} if target.cache_pvc
                   else {"hostPath": {"path": cache["host_path"], "type": "DirectoryOrCreate"}})
    pod: dict = {
        "terminationGracePeriodSeconds": f["termination_grace_period_s"],
        "containers": [container],
        "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": f["shm_size"]}},
                    {"name": "model-cache", **model_cache}],
    }
    products = gpu_products(chosen, node) if shape.gpus_per_pod else []
    label = f["gpu"]["product_label"]
    if len(products) == 1:
        pod["nodeSelector"] = {label: products[0]}
    elif products:  # several NVML names for one GPU: any of them
        pod["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": label, "operator": "In", "values": products}]}]}}}
    return pod


# ----------------------------------------------------------------------------------------------- text


def render(docs: list[dict], header: list[str]) -> str:
    """The manifests as one multi-document YAML stream, `header` as comment lines before the first."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data) -> bool:  # the probes share a dict: write it twice, no &id001 anchors
            return True

    comments = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header)
    return comments + yaml.dump_all(docs, Dumper=Dumper, sort_keys=False, explicit_start=True, width=120)
