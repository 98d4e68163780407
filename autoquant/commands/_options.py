"""Option groups shared by every command that plans, and their resolution into records.

Hardware: `--hardware node.json` (repeatable, or a JSON list of node records: a cluster) | `--gpu NAME[:COUNT]` |
this node (probe; `--gpu cpu` too, on a CPU-only machine); `--nodes N`; `--fabric ID`, `--inter-node-gbps GBPS`.
Workload: `--concurrency N|max --isl --osl --traffic FILE --ttft-ms --tpot-ms --min-tps --use-case
--max-ppl-delta --objective --gpu-hour-cost --max-model-len`.
"""

from __future__ import annotations

import argparse
from typing import Any

from autoquant import jsonio
from autoquant.argtypes import bounded, in_range, positive_int
from autoquant.errors import InputError, UsageError
from autoquant.limits import check_node
from autoquant.records import Node, Workload, from_dict
from autoquant.records.workload import OBJECTIVES

USE_CASES = ("chat", "code", "medical", "summarization")


def nonempty(text: str) -> str:
    """argparse `type=` for a value that must say something: `--gpu ''` (a script's unset variable) is an
    error, not the option left out, which would silently probe this node (or serve the demo) instead."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty value")
    return text


def add_hardware_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("hardware (default: probe this node)")
    g.add_argument("--hardware", metavar="NODE_JSON", type=nonempty, action="append",
                   help="a node record saved by `autoquant probe --save`; repeat it (or give a JSON list of records) "
                        "for a cluster: identical nodes are pooled, a mixed list is planned per node type")
    g.add_argument(
        "--gpu",
        metavar="NAME[:COUNT]",
        type=nonempty,
        help="describe a machine you are not on, e.g. H100-SXM:8, a100-80gb, 'NVIDIA L40S:4', M2-Max, cpu:EPYC-9654:2; "
             "'cpu' alone is this CPU-only machine, probed",
    )
    g.add_argument("--nodes", type=bounded("nodes", integer=True), default=None, help="identical nodes available (default 1)")
    from autoquant.catalog.fabrics import fabric_ids

    g.add_argument("--fabric", choices=fabric_ids(), default=None,
                   help="how the nodes reach each other, for the pipeline hop between nodes (bandwidth and latency "
                        "from autoquant/data/fabrics.yaml; default: 8x NDR 400 Gb/s assumed)")
    g.add_argument("--inter-node-gbps", metavar="GBPS", type=bounded("inter_node_gbps"), default=None,
                   help="GB/s one way out of one node, all its NICs together (8x NDR 400 Gb/s = 400), instead of "
                        "the fabric's figure")
    g.add_argument(
        "--cpu-bandwidth",
        metavar="GBPS",
        type=bounded("cpu_bandwidth_gbps"),
        default=None,
        help="CPU memory bandwidth in GB/s, instead of the measured (or catalog) figure",
    )


def add_workload_options(parser: argparse.ArgumentParser, engine_flags: bool = False) -> None:
    """`engine_flags`: the command also takes vLLM's flags (serve), so --max-model-len is left to them."""
    g = parser.add_argument_group("workload")
    g.add_argument("--concurrency", type=nonempty, default=None, metavar="N|max", help="concurrent requests (default 1)")
    g.add_argument("--isl", type=bounded("tokens", integer=True), default=None, help="input tokens per request (default 512)")
    g.add_argument("--osl", type=bounded("tokens", integer=True), default=None, help="output tokens per request (default 256)")
    g.add_argument("--traffic", metavar="FILE", type=nonempty, help="a traffic sample (CSV/JSONL trace) to profile")
    if not engine_flags:
        g.add_argument("--max-model-len", type=bounded("context_tokens", integer=True), default=None, help="context each request must reach")
    g.add_argument("--ttft-ms", type=bounded("milliseconds"), default=None, help="time-to-first-token SLO")
    g.add_argument("--tpot-ms", type=bounded("milliseconds"), default=None, help="time-per-output-token SLO")
    g.add_argument("--min-tps", type=bounded("tokens_per_s"), default=None, help="per-request output tokens/s floor")
    g.add_argument("--use-case", choices=USE_CASES, default=None, help="quality floor from the use case")
    g.add_argument("--max-ppl-delta", type=bounded("ppl_delta"), default=None, help="max perplexity increase")
    g.add_argument("--objective", choices=OBJECTIVES, default=None, help="what to optimise: balanced (default: cost x latency x quality), cost, latency, throughput, or quality (the best quality that meets every SLO, then cost)")
    g.add_argument("--gpu-hour-cost", type=bounded("usd_per_gpu_hour"), default=None, help="USD per GPU-hour")


PREDICTORS = ("auto", "aic", "autoquant")


def add_predictor_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictor", choices=PREDICTORS, default=None,
                        help="who times the best candidates: aic = NVIDIA AIConfigurator where its database covers "
                             "them (pip install 'autoquant[aic]'), autoquant = its own model only; auto (default, "
                             "or $AUTOQUANT_PREDICTOR) = aic when installed")


def resolve_predictor(args: argparse.Namespace):
    """The outside predictor the planner re-scores with, or None (autoquant's own model only)."""
    import os

    choice = getattr(args, "predictor", None) or os.environ.get("AUTOQUANT_PREDICTOR") or "auto"
    if choice not in PREDICTORS:
        raise UsageError(f"AUTOQUANT_PREDICTOR={choice!r}: choose one of {', '.join(PREDICTORS)}")
    if choice == "autoquant":
        return None
    from autoquant.predictors import aiconfigurator

    if not aiconfigurator.available():
        if choice == "aic":
            raise UsageError("--predictor aic: aiconfigurator is not installed (pip install 'autoquant[aic]')")
        return None
    return aiconfigurator.load()


def resolve_node(args: argparse.Namespace) -> Node:
    """The hardware a command plans for: a saved record, a described GPU, or this node."""
    if getattr(args, "hardware", None) and getattr(args, "gpu", None):
        raise UsageError("give either --hardware or --gpu, not both")
    gpu = getattr(args, "gpu", None)
    hardware = getattr(args, "hardware", None)
    if isinstance(hardware, str):  # a caller that set one path
        hardware = [hardware]
    if hardware:
        from autoquant.planner.cluster import pool

        node = pool([n for path in hardware for n in load_nodes(path)], nodes=getattr(args, "nodes", None))
    elif gpu and not means_this_cpu_node(gpu):
        from autoquant.catalog.gpus import synthetic_node

        node = synthetic_node(gpu)
    else:
        from autoquant.probes.hardware import probe

        node = probe(
            measure=not getattr(args, "no_measure", False),
            cpu_bandwidth_gbps=getattr(args, "cpu_bandwidth", None),
        )
        if gpu:
            require_cpu_only(node)
    if getattr(args, "nodes", None) and not hardware:  # with --hardware, pool() applied it
        node.nodes = args.nodes
    for name in ("fabric", "inter_node_gbps"):
        if getattr(args, name, None) is not None:
            for each in (node, *node.others):
                setattr(each, name, getattr(args, name))
    if getattr(args, "cpu_bandwidth", None):
        node.cpu.memory_bandwidth_gbps = float(args.cpu_bandwidth)
        node.cpu.memory_bandwidth_source = "flag"
    return node


def means_this_cpu_node(gpu: str) -> bool:
    """`--gpu cpu` (any case), with nothing after it: this machine, probed, when it is CPU-only. `cpu:N` and
    `cpu:NAME` describe another machine (autoquant.catalog.gpus.synthetic_node)."""
    return gpu.strip().strip("'\"").strip().lower() == "cpu"


def require_cpu_only(node: Node) -> None:
    """`--gpu cpu` on a machine with GPUs: one line naming the two ways to describe a CPU-only machine."""
    if node.gpus:
        names = [g.name for g in node.gpus]
        shown = ", ".join(f"{names.count(n)}x {n}" for n in dict.fromkeys(names))
    elif node.apple is not None:
        shown = f"the {node.apple.chip} GPU"
    else:
        return
    from autoquant.catalog.cpus import example_keys

    raise UsageError(
        f"--gpu cpu means this machine, and it has GPUs ({shown}): for a CPU-only machine, save its probe "
        "there (`autoquant probe --save node.json`) and plan with --hardware node.json, or name its CPU from the "
        f"catalog with --gpu cpu:NAME[:SOCKETS] ({', '.join(f'cpu:{k}' for k in example_keys())}, ...)"
    )


def load_json_record(path: str, what: str, hint: str) -> Any:
    """The JSON in the `what` file at `path` (a node record, a plan), or one line saying why it cannot be
    read; `hint` says how to make a good one."""
    try:
        return jsonio.load(path, path)
    except jsonio.JSONInputError as exc:
        raise InputError(f"{path} is not a {what} file: {exc.reason} ({hint})") from None
    except FileNotFoundError:
        raise InputError(f"no such {what} file: {path} ({hint})") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a {what} file ({hint})") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None


def load_node(path: str) -> Node:
    """The one node record in `path` (a cluster's list of records: `load_nodes`)."""
    nodes = load_nodes(path)
    if len(nodes) != 1:
        raise InputError(f"{path} holds {len(nodes)} node records; one is needed here")
    return nodes[0]


def load_nodes(path: str) -> list[Node]:
    """The node records in `path`: one record, or a JSON list of them (a cluster), each checked."""
    from autoquant.limits import bound

    data = load_json_record(path, "hardware", f"make one with `autoquant probe --save {path}`")
    records = data if isinstance(data, list) else [data]
    if not records or len(records) > bound("nodes")[1]:
        raise InputError(f"{path}: {len(records)} node records; a cluster of 1..{int(bound('nodes')[1])} is planned")
    out = []
    for i, rec in enumerate(records):
        where = path if len(records) == 1 else f"{path}[{i}]"
        if not isinstance(rec, dict) or "gpus" not in rec or "cpu" not in rec:
            raise InputError(f"{where} is not a node record (expected the output of `autoquant probe --json`)")
        node = check_node(from_dict(Node, rec), where)
        for j, other in enumerate(node.others):  # a saved cluster: its other node types, checked alike
            check_node(other, f"{where}.others[{j}]")
        node.source = "file"
        out.append(node)
    return out


def resolve_workload(args: argparse.Namespace) -> Workload:
    """Flags over a traffic profile over defaults."""
    if getattr(args, "traffic", None):
        from autoquant.probes.traffic import profile_file

        workload = profile_file(args.traffic).workload
    else:
        workload = Workload()
    conc = getattr(args, "concurrency", None)
    if conc is not None:
        workload.concurrency = parse_concurrency(conc)
        workload.concurrency_distribution = []
    for name in ("isl", "osl", "max_model_len", "ttft_ms", "tpot_ms", "min_tps", "use_case", "max_ppl_delta",
                 "objective", "gpu_hour_cost"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(workload, name, value)
    return workload


def parse_concurrency(text: str) -> int | None:
    """`max` (None: as many as the configuration runs at once) or a positive integer."""
    if str(text).lower() == "max":
        return None
    return in_range(positive_int(text, "--concurrency"), "concurrency", "--concurrency")
