"""`autoquant k8s MODEL [plan options] > deploy.yaml`: the plan as Kubernetes manifests.

    autoquant k8s meta-llama/Llama-3.1-8B-Instruct --gpu H100-SXM:1 > deploy.yaml
    autoquant k8s meta-llama/Llama-3.1-405B-Instruct --gpu H100-SXM:8 --nodes 2 --method bf16 --engine vllm \\
        --image registry.example.com/autoquant-vllm:0.1 --cache-pvc hf-cache --namespace llm > deploy.yaml

Plans as `autoquant plan` does (the same options), then writes a Deployment when the chosen server fits one node,
or a LeaderWorkerSet (one pod per node of a server) when it spans several, and a Service in front of the leader
(autoquant/k8s.py builds them; the Kubernetes facts are autoquant/data/kubernetes.yaml). Every pod runs
`autoquant serve MODEL` with the chosen configuration's pins, so it re-plans the same one on its node.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from autoquant.commands._options import (
    add_hardware_options,
    add_predictor_option,
    add_workload_options,
    nonempty,
)
from autoquant.commands.plan import add_pin_options
from autoquant.errors import RuleError
from autoquant.output import say


class NothingToDeploy(RuleError):
    """The plan chose nothing: exit 1, as `autoquant plan` does then."""

    exit_code = 1


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, not {port}")
    return port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from autoquant.launchers.base import ServeOptions

    parser.usage = "autoquant k8s MODEL [plan options] [--name NAME] [--namespace NS] [--image IMAGE] [--cache-pvc PVC]"
    parser.add_argument("model", metavar="MODEL", type=nonempty, help="Hugging Face id (org/name) the pods serve")
    parser.add_argument("--offline", action="store_true", help="do not contact the Hub: local, cache, catalog only")
    parser.add_argument("--calibration", metavar="FILE", help="efficiency factors that override the defaults")
    parser.add_argument("--uncalibrated", action="store_true",
                        help="ignore this node's measurements (autoquant calibrate): the speed model alone")
    k = parser.add_argument_group("kubernetes")
    k.add_argument("--name", type=nonempty, default=None,
                   help="name of the Deployment or LeaderWorkerSet and its Service (default: from MODEL)")
    k.add_argument("--namespace", type=nonempty, default=None, help="namespace of every object (default: kubectl's)")
    k.add_argument("--image", type=nonempty, default=None,
                   help="the autoquant image the pods run (default: the engine's image from launchers/containers, "
                        "e.g. autoquant-vllm: push it to a registry the cluster pulls from)")
    k.add_argument("--cache-pvc", metavar="PVC", type=nonempty, default=None,
                   help="PersistentVolumeClaim for the model cache (HF_HOME; default: a hostPath on each node)")
    k.add_argument("--port", type=_port, default=ServeOptions().port,
                   help=f"the server's port, and the Service's (default {ServeOptions().port})")
    add_predictor_option(parser)
    add_pin_options(parser)
    parser.add_argument("--allow-runtime-quantization", action="store_true",
                        help="let vLLM quantize BF16 weights to FP8 at load time when no FP8 checkpoint exists")
    parser.add_argument("--checkpoint", metavar="REPO", type=nonempty, default=None,
                        help="serve this checkpoint (a Hugging Face repo) for its method")
    add_hardware_options(parser)
    add_workload_options(parser)


def run(args: argparse.Namespace) -> int:
    from autoquant import k8s
    from autoquant.api import attach_commands
    from autoquant.commands.plan import load_inputs, plan_kwargs
    from autoquant.commands.serve import _first_reason
    from autoquant.launchers.build import server_batch_cap
    from autoquant.planner import plan

    # names first: a bad one is an error before any planning
    name = k8s.check_name(args.name) if args.name is not None else k8s.default_name(args.model)
    namespace = k8s.check_namespace(args.namespace) if args.namespace is not None else None
    claim = k8s.check_claim(args.cache_pvc) if args.cache_pvc is not None else None
    image = k8s.check_image(args.image) if args.image is not None else None

    model, node, workload, calibration = load_inputs(args)
    k8s.check_node(node)
    kwargs = plan_kwargs(args, calibration, model, node)
    result = plan(model, node, workload, **kwargs)
    if result.chosen is None:
        raise NothingToDeploy(f"nothing to deploy: no configuration runs {args.model} on {result.hardware}: "
                              f"{_first_reason(result, args)} (`autoquant plan` lists the ways out)")
    # what serve would launch (the server's batch cap), and its command for the header
    result = attach_commands(result, args.model, node=node)
    chosen = server_batch_cap(result.chosen, pinned=False)
    shape = k8s.layout(chosen, node)
    k8s.check_deployable(result, node, shape)
    image = image or k8s.default_image(chosen.engine, gpus=shape.gpus_per_pod > 0)
    target = k8s.Target(name=name, namespace=namespace, image=image, port=args.port, cache_pvc=claim,
                        ready_path=k8s.engine_facts(chosen.engine).get("ready_path", "/health"))
    from dataclasses import replace

    docs = k8s.manifests(replace(result, chosen=chosen), node, target)
    sys.stdout.write(k8s.render(docs, _header(result, chosen, shape, target, args)))
    sys.stdout.flush()
    kind, service = docs[0]["kind"], docs[1]["metadata"]["name"]
    pods = (f"{shape.replicas} group(s) of {shape.nodes} pods" if shape.multinode
            else f"{shape.replicas} pod(s)")
    gpus = f", {shape.gpus_per_pod} GPU(s) each" if shape.gpus_per_pod else ""
    say(f"{kind} {name}: {pods}{gpus}; Service {service} on port {args.port}")
    return 0


def _header(result, chosen, shape, target, args: argparse.Namespace) -> list[str]:
    from autoquant import k8s

    f = k8s.facts()
    par = f"TP={chosen.tp} PP={chosen.pp}" + (f" DP={chosen.dp}" if chosen.dp > 1 else "")
    where = (f"{shape.nodes} nodes per server (a LeaderWorkerSet group), {shape.gpus_per_pod} GPUs per node"
             if shape.multinode else
             f"{shape.gpus_per_pod} GPU(s) per pod" if shape.gpus_per_pod else "CPU only")
    lines = [f"autoquant k8s: {k8s.model_id(result)} on {result.hardware}",
             f"plan: {chosen.engine} / {chosen.method}, {par}, max model len {chosen.max_model_len}; {where}; "
             f"{shape.replicas} replica(s)"]
    if chosen.command:
        lines.append(f"{'the leader runs' if shape.multinode else 'each pod runs'}: {shlex.join(chosen.command)}")
    entry = k8s.engine_facts(chosen.engine)
    if args.image is None:
        lines.append(f"image: {target.image}, built by launchers/containers/{entry['dockerfile']} "
                     f"(docker build -f launchers/containers/{entry['dockerfile']} -t {target.image} .); push it "
                     "where the cluster pulls from and pass --image")
    if shape.gpus_per_pod:
        lines.append("needs: the NVIDIA device plugin (nvidia.com/gpu) and GPU Feature Discovery "
                     f"({f['gpu']['product_label']} node labels)")
    if shape.multinode:
        lines.append(f"needs: LeaderWorkerSet v0.10.0 or later: {f['lws']['install']}")
    secret = f["hf_token_secret"]
    ns = f" -n {target.namespace}" if target.namespace else ""
    lines.append(f"HF_TOKEN (optional) from the Secret {secret['name']}: kubectl create secret generic "
                 f"{secret['name']}{ns} --from-literal={secret['key']}=hf_...")
    if target.cache_pvc is None:
        lines.append(f"model cache: hostPath {f['model_cache']['host_path']} on each node; where hostPath is not "
                     "allowed (Pod Security baseline/restricted), pass --cache-pvc NAME")
    return lines
