"""One server over several nodes: which node this is, what each node runs, and the Ray bootstrap.

Three parts, each usable alone:

- **Role** (`detect_role`, pure: the environment is a parameter). A LeaderWorkerSet pod has
  `LWS_LEADER_ADDRESS`, `LWS_GROUP_SIZE` and `LWS_WORKER_INDEX` (0 = the leader); elsewhere `AUTOQUANT_ROLE`
  (leader | worker), `AUTOQUANT_LEADER` (HOST[:PORT]), `AUTOQUANT_NODES` and, for the backends that rank nodes,
  `AUTOQUANT_NODE_RANK`. A missing or contradictory value is one UsageError line.
- **Commands** (`node_group`): for a planned candidate that spans nodes, per engines.yaml `multi_node` backend,
  the leader's commands, the workers' command and the environment each node sets: vLLM on Ray (`ray start
  --head` then `vllm serve ... --distributed-executor-backend ray`; workers `ray start --address`), vLLM's
  multiprocessing mode (`--nnodes/--node-rank/--master-addr`, workers `--headless`), SGLang
  (`--nnodes/--node-rank/--dist-init-addr`, every node runs launch_server), TensorRT-LLM (one `srun ...
  trtllm-llmapi-launch` line: MPI starts every rank, autoquant does not). The engine's own line is the one its
  launcher built, so every flag rule stays in launchers/<engine>.py.
- **Bootstrap** (`locate`, `RayNode`, `wait_for_cluster`): this node's address toward the leader and the
  interface that holds it (VLLM_HOST_IP, GLOO_SOCKET_IFNAME, NCCL_SOCKET_IFNAME, unless the user set them),
  the Ray head in the background, and a bounded wait for the expected nodes and GPUs with Ray's own API
  (`ray.nodes()`, `ray.cluster_resources()`, in launchers/ray_wait.py under the Python of the `ray` that
  started the head). No socket protocol of autoquant's own: the one socket here is a route lookup (a UDP
  connect sends nothing), as vLLM's get_ip and Ray do.

Facts (ports, timeouts, which variables per backend) are autoquant/data/multinode.yaml.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoquant.errors import EngineError, RuleError, UsageError, shown
from autoquant.records import Candidate, NodeGroup
from autoquant.secrets import scrub

from .base import LaunchSpec, ServeOptions, bracket_host

LEADER, WORKER = "leader", "worker"
LWS_VARS = ("LWS_LEADER_ADDRESS", "LWS_GROUP_SIZE", "LWS_WORKER_INDEX")
# Stand-ins for per-node values in a plan's commands; `autoquant serve` fills them in on each node.
LEADER_IP, NODE_IP, IFNAME, NODE_RANK = "$LEADER_IP", "$NODE_IP", "$IFNAME", "$NODE_RANK"
PLACEHOLDERS = (LEADER_IP, NODE_IP, IFNAME, NODE_RANK)
RAY_WAIT = Path(__file__).with_name("ray_wait.py")
RAY_ARGS_VAR = "AUTOQUANT_RAY_START_ARGS"  # more `ray start` flags for head and workers (shell-quoted)
RAY_BIN_VAR = "AUTOQUANT_RAY_BIN"
# What serve reads for a group (its container entrypoint's interface, beside serve.env_variables())
ENV_VARIABLES = frozenset({"AUTOQUANT_ROLE", "AUTOQUANT_LEADER", "AUTOQUANT_NODES", "AUTOQUANT_NODE_RANK",
                           RAY_ARGS_VAR, RAY_BIN_VAR, *LWS_VARS})
# How a vLLM server's own flags name its executor (vLLM's --distributed-executor-backend values are the
# engines.yaml multi_node backends of vLLM: ray, mp)
EXECUTOR_FLAG = "--distributed-executor-backend"


@functools.cache
def settings() -> Mapping[str, Any]:
    from autoquant.data import load

    return load("multinode")


# --- role ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Role:
    """This node's place in its group, from the environment."""

    role: str  # leader | worker
    nodes: int | None  # the group's size, the leader included (None: told only by the plan)
    leader: str | None  # the leader's host as given (None on a leader told none)
    port: int | None  # the port given with it (None: the backend's own)
    rank: int | None  # 0 on the leader; a worker's index where the environment gives one
    source: str  # the variables it came from, for messages
    peers: tuple[str, ...] = ()  # the workers' addresses where the group names them (LWS pod names)

    @property
    def is_leader(self) -> bool:
        return self.role == LEADER

    def describe(self) -> str:
        size = f" of a {self.nodes}-node group" if self.nodes else ""
        rank = f" {self.rank}" if self.role == WORKER and self.rank is not None else ""
        return f"{self.role}{rank}{size} ({self.source})"


def _get(environ: Mapping[str, str], name: str) -> str | None:
    raw = environ.get(name)
    return raw.strip() if raw is not None and raw.strip() else None


def _whole(name: str, raw: str, lowest: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{name}={shown(raw)} is not a whole number") from None
    if value < lowest:
        raise UsageError(f"{name}={value} must be {lowest} or more")
    return value


def _size(name: str, raw: str) -> int:
    from autoquant.limits import bound, describe_bound

    value = _whole(name, raw, 1)
    if value > bound("nodes")[1]:
        raise UsageError(f"{name}={value} is more nodes than autoquant plans for ({describe_bound('nodes')})")
    return value


_HOST = re.compile(r"[A-Za-z0-9_.-]+|[0-9A-Fa-f:.]+(%[\w.-]+)?")


def parse_address(raw: str, name: str) -> tuple[str, int | None]:
    """HOST, HOST:PORT, [IPV6]:PORT or a bare IPv6 address -> (host, port or None)."""
    text = raw.strip()
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::([^:]*))?", text)
    if bracketed:
        host, port = bracketed.group(1), bracketed.group(2)
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, None
    if not host or not _HOST.fullmatch(host):
        raise UsageError(f"{name}={shown(raw)} is not HOST or HOST:PORT")
    if port is None:
        return host, None
    try:
        number = int(port)
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise UsageError(f"{name}={shown(raw)}: the port must be a number from 1 to 65535")
    return host, number


def lws_peers(leader: str, size: int) -> tuple[str, ...]:
    """The worker pods' addresses of a LeaderWorkerSet group: the leader is `<lws>-<group>` and its workers
    `<lws>-<group>-<index>`, under the same subdomain (LWS pod naming, docs/research/multinode.md 3)."""
    first, dot, rest = leader.partition(".")
    return tuple(f"{first}-{i}{dot}{rest}" for i in range(1, size))


def detect_role(environ: Mapping[str, str], nodes_flag: int | None = None) -> Role | None:
    """This node's role in a multi-node group, or None when the environment names none (one node). `nodes_flag`
    is serve's --nodes as given on the command line, which must agree with the group's size."""
    lws = {k: _get(environ, k) for k in LWS_VARS}
    role_raw = _get(environ, "AUTOQUANT_ROLE")
    leader_raw = _get(environ, "AUTOQUANT_LEADER")
    nodes_raw = _get(environ, "AUTOQUANT_NODES")
    rank_raw = _get(environ, "AUTOQUANT_NODE_RANK")
    role_env = role_raw.lower() if role_raw else None
    if role_env is not None and role_env not in (LEADER, WORKER):
        raise UsageError(f"AUTOQUANT_ROLE={shown(role_raw)} is not a role: leader or worker")
    nodes_env = _size("AUTOQUANT_NODES", nodes_raw) if nodes_raw else None
    rank_env = _whole("AUTOQUANT_NODE_RANK", rank_raw, 0) if rank_raw else None

    if any(lws.values()):
        missing = [k for k, v in lws.items() if v is None]
        if missing:
            given = ", ".join(f"{k}={v}" for k, v in lws.items() if v is not None)
            raise UsageError(f"{' and '.join(missing)} not set, but {given} is: a LeaderWorkerSet pod has all of "
                             f"{', '.join(LWS_VARS)} (set the missing one, or unset the others off LWS)")
        size = _size("LWS_GROUP_SIZE", lws["LWS_GROUP_SIZE"])
        index = _whole("LWS_WORKER_INDEX", lws["LWS_WORKER_INDEX"], 0)
        if index >= size:
            raise UsageError(f"LWS_WORKER_INDEX={index} but LWS_GROUP_SIZE={size}: a pod's index is 0 (the leader) "
                             f"to {size - 1}")
        role = LEADER if index == 0 else WORKER
        if role_env is not None and role_env != role:
            raise UsageError(f"AUTOQUANT_ROLE={role_env} but LWS_WORKER_INDEX={index} makes this pod the {role}: "
                             "unset AUTOQUANT_ROLE in a LeaderWorkerSet")
        if nodes_env is not None and nodes_env != size:
            raise UsageError(f"AUTOQUANT_NODES={nodes_env} disagrees with LWS_GROUP_SIZE={size} (the "
                             "LeaderWorkerSet's size): unset AUTOQUANT_NODES or make them equal")
        if rank_env is not None and rank_env != index:
            raise UsageError(f"AUTOQUANT_NODE_RANK={rank_env} disagrees with LWS_WORKER_INDEX={index}: unset it")
        host, port = parse_address(lws["LWS_LEADER_ADDRESS"], "LWS_LEADER_ADDRESS")
        if leader_raw:
            other, other_port = parse_address(leader_raw, "AUTOQUANT_LEADER")
            if other.lower() != host.lower():
                raise UsageError(f"AUTOQUANT_LEADER={leader_raw} disagrees with LWS_LEADER_ADDRESS={host}: in a "
                                 "LeaderWorkerSet the leader is its pod (AUTOQUANT_LEADER may only add a port)")
            port = other_port or port
        found = Role(role, size, host, port, index, f"LeaderWorkerSet: LWS_WORKER_INDEX={index}, "
                     f"LWS_GROUP_SIZE={size}", lws_peers(host, size))
        nodes_from = "LWS_GROUP_SIZE"
    else:
        if role_env is None:
            stray = [n for n, v in (("AUTOQUANT_LEADER", leader_raw), ("AUTOQUANT_NODE_RANK", rank_raw)) if v]
            if stray:
                raise UsageError(f"{' and '.join(stray)} set but AUTOQUANT_ROLE is not: set AUTOQUANT_ROLE=leader on "
                                 "the leader and AUTOQUANT_ROLE=worker on the others")
            return None
        host, port = parse_address(leader_raw, "AUTOQUANT_LEADER") if leader_raw else (None, None)
        if role_env == WORKER and host is None:
            raise UsageError("AUTOQUANT_ROLE=worker needs the leader's address: set AUTOQUANT_LEADER=HOST[:PORT]")
        if role_env == LEADER and rank_env not in (None, 0):
            raise UsageError(f"AUTOQUANT_ROLE=leader with AUTOQUANT_NODE_RANK={rank_env}: the leader is rank 0")
        if role_env == WORKER and rank_env == 0:
            raise UsageError("AUTOQUANT_ROLE=worker with AUTOQUANT_NODE_RANK=0: rank 0 is the leader; workers are "
                             "1 and up")
        if role_env == WORKER and rank_env is not None and nodes_env is not None and rank_env >= nodes_env:
            raise UsageError(f"AUTOQUANT_NODE_RANK={rank_env} but AUTOQUANT_NODES={nodes_env}: ranks are 0 "
                             f"(the leader) to {nodes_env - 1}")
        rank = 0 if role_env == LEADER else rank_env
        found = Role(role_env, nodes_env, host, port, rank, f"AUTOQUANT_ROLE={role_env}")
        nodes_from = "AUTOQUANT_NODES"
    if nodes_flag is not None and found.nodes is not None and nodes_flag != found.nodes:
        raise UsageError(f"--nodes {nodes_flag} disagrees with {nodes_from}={found.nodes}: this group has "
                         f"{found.nodes} nodes")
    if found.role == WORKER and found.nodes == 1:
        raise UsageError(f"a worker in a 1-node group ({nodes_from}=1): a group of one node has no workers")
    return found


def check_plan(role: Role, planned: int, replicas: int = 1) -> None:
    """UsageError when the group's size is not the number of nodes the plan's server spans."""
    if role.nodes is None and planned > 1:
        return  # told only by the plan
    # a worker of a group of unknown size is still a worker: a one-node plan has none (it must not start a
    # server of its own beside the leader's)
    nodes = role.nodes or (1 if role.is_leader else None)
    if nodes == planned:
        return
    if planned == 1:
        why = (f" ({replicas} independent one-node servers: give each its own one-node group or Deployment)"
               if replicas > 1 else "")
        spans = (f"pin a configuration that spans {nodes} nodes (--pipeline-parallel-size {nodes})" if nodes
                 else "plan for several nodes (--nodes N, or AUTOQUANT_NODES on every node)")
        raise UsageError(f"this node is the {role.describe()}, but the plan's server runs on one node{why}: serve "
                         f"it from one-node groups (autoquant k8s writes a Deployment then), or {spans}")
    raise UsageError(f"this node is the {role.describe()}, but the plan's server spans {planned} nodes: make the "
                     f"group {planned} nodes, or plan for {nodes} (--nodes {nodes})")


# --- commands ------------------------------------------------------------------------------------------
def spanned_nodes(candidate: Candidate, gpus_per_node: int | None = None) -> int:
    """The nodes one server of `candidate` spans: the plan's own figure, else (a plan made before plans had
    it) its GPUs over a node's."""
    if candidate.nodes > 1:
        return candidate.nodes
    world = max(1, candidate.tp) * max(1, candidate.pp) * max(1, candidate.dp)
    if gpus_per_node and world > gpus_per_node:
        return -(-world // gpus_per_node)
    return 1


def _spec(engine: str):
    from autoquant.facts import default_facts

    return default_facts().engine(engine)


def backend_for(engine: str, options: ServeOptions | None = None) -> str:
    """The engine's way across nodes (engines.yaml multi_node, default first); for a vllm serve line, the
    user's own --distributed-executor-backend when it is one of them."""
    spec = _spec(engine)
    backends = spec.multi_node_backends
    if not backends:
        raise RuleError(spec.no_multi_node)
    given = _user_value(options, EXECUTOR_FLAG) if spec.takes_vllm_flags else None
    if given is not None:
        if given not in backends:
            raise UsageError(f"{EXECUTOR_FLAG} {given} runs on one node; across nodes {spec.label} takes "
                             f"{' or '.join(backends)}")
        return given
    return backends[0]


def _user_value(options: ServeOptions | None, flag: str) -> str | None:
    if options is None:
        return None
    from .flags import classify_tokens

    args, _ = classify_tokens(list(options.user_args or options.passthrough))
    return next((a.value for a in args if a.name == flag), None)


def _program(argv: Sequence[str]) -> str:
    """`vllm serve`, `sglang.launch_server`: the engine command in words."""
    if len(argv) > 2 and argv[1] == "-m":
        return argv[2]
    name = os.path.basename(argv[0])
    return f"`{name} serve`" if list(argv[1:2]) == ["serve"] else f"`{name}`"


def _ranks(nodes: int) -> str:
    return "rank 1" if nodes == 2 else f"ranks 1 to {nodes - 1}"


def ray_args(environ: Mapping[str, str]) -> list[str]:
    from .flags import split_env

    return split_env(RAY_ARGS_VAR, environ.get(RAY_ARGS_VAR, ""))


def _refuse_own(argv: Sequence[str], flags: Sequence[str], backend: str) -> None:
    given = [f for f in flags if any(a == f or a.startswith(f + "=") for a in argv[1:])]
    if given:
        raise UsageError(f"{given[0]} is set per node by autoquant for a {backend} group (from the node's role): "
                         "drop it")


def node_group(candidate: Candidate, launch: LaunchSpec, options: ServeOptions | None = None, *,
               nodes: int | None = None, leader_ip: str = LEADER_IP, node_ip: str = NODE_IP,
               rank: int | str = NODE_RANK, port: int | None = None, ray: str = "ray",
               extra_ray_args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> NodeGroup:
    """What each node of `candidate`'s server runs. `launch` is the engine's LaunchSpec as its launcher built
    it (for a candidate with nodes > 1). The addresses default to the plan's stand-ins; serve passes this
    node's: `node_ip` is the worker's own address on a worker (a leader's own is `leader_ip`)."""
    nodes = nodes or candidate.nodes
    backend = backend_for(candidate.engine, options)
    builder = _BUILDERS.get(backend)
    if builder is None:
        raise RuleError(f"{_spec(candidate.engine).label} spans nodes with {backend}, which autoquant does not "
                        "start")
    leader, worker, notes = builder(candidate, launch, nodes, leader_ip, node_ip, rank, port, ray,
                                    list(extra_ray_args))
    if env is None:
        stand_in = {"VLLM_HOST_IP": NODE_IP, "GLOO_SOCKET_IFNAME": IFNAME, "NCCL_SOCKET_IFNAME": IFNAME}
        env = {k: stand_in[k] for k in settings()["env"].get(backend, []) if k in stand_in}
    return NodeGroup(backend=backend, nodes=nodes, leader=leader, worker=worker, env=dict(env), notes=notes)


def _ray(candidate, launch, nodes, leader_ip, node_ip, rank, port, ray, extra):
    port = port or int(settings()["ray"]["port"])
    world = candidate.tp * candidate.pp * max(1, candidate.dp)
    head = [ray, "start", "--head", "--node-ip-address", leader_ip, "--port", str(port), "--disable-usage-stats",
            "--block", *extra]
    join = [ray, "start", "--address", f"{bracket_host(leader_ip)}:{port}", "--node-ip-address", node_ip,
            "--disable-usage-stats", "--block", *extra]
    notes = [
        f"leader: the Ray head first (it stays in the foreground with --block: its own shell, or &), then, once "
        f"`ray status` lists {nodes} nodes and {world} GPUs, {_program(launch.argv)} on the leader only; each of the {nodes - 1} other node(s) runs the worker line, which stays in the foreground",
    ]
    if "mp" in _spec(candidate.engine).multi_node_backends:
        notes.append("without Ray: autoquant serve ... --distributed-executor-backend mp on every node (vLLM's "
                     "multiprocessing mode: --nnodes/--node-rank/--master-addr, --headless on the workers)")
    return [head, list(launch.argv)], [join], notes


def _vllm_mp(candidate, launch, nodes, leader_ip, node_ip, rank, port, ray, extra):
    argv = list(launch.argv)
    _refuse_own(argv, ("--nnodes", "-n", "--node-rank", "-r", "--master-addr", "--headless"), "multiprocessing")
    common = ["--nnodes", str(nodes)]
    addr = ["--master-addr", leader_ip] + (["--master-port", str(port)] if port else [])
    leader = [*argv, *common, "--node-rank", "0", *addr]
    worker = [*argv, *common, "--node-rank", str(rank), *addr, "--headless"]
    return [leader], [worker], [f"every node runs {_program(argv)}; rank 0 (the leader) serves "
                                f"HTTP, {_ranks(nodes)} run headless"]


def _sglang(candidate, launch, nodes, leader_ip, node_ip, rank, port, ray, extra):
    argv = list(launch.argv)
    _refuse_own(argv, ("--nnodes", "--node-rank", "--dist-init-addr", "--nccl-init-addr"), "SGLang")
    addr = f"{bracket_host(leader_ip)}:{port or int(settings()['sglang']['dist_init_port'])}"
    common = ["--nnodes", str(nodes), "--dist-init-addr", addr]
    return ([[*argv, *common, "--node-rank", "0"]], [[*argv, *common, "--node-rank", str(rank)]],
            [f"every node runs sglang.launch_server; rank 0 (the leader) serves HTTP, {_ranks(nodes)} run its "
             "schedulers only"])


def _mpi(candidate, launch, nodes, leader_ip, node_ip, rank, port, ray, extra):
    argv = list(launch.argv)
    world = candidate.tp * candidate.pp
    folder = os.path.dirname(argv[0]) if os.path.isabs(argv[0]) else ""
    launcher = os.path.join(folder, "trtllm-llmapi-launch") if folder else "trtllm-llmapi-launch"
    line = ["srun", "-N", str(nodes), "--ntasks", str(world), f"--ntasks-per-node={world // nodes}",
            "--mpi=pmix", launcher, *argv]
    notes = [f"TensorRT-LLM runs as one MPI world of {world} ranks (one per GPU) that Slurm starts on all {nodes} "
             "nodes at once: run this line in a Slurm allocation of them (rank 0 serves HTTP); autoquant serve "
             "does not start TensorRT-LLM node by node. TensorRT-LLM's docs call the Slurm path experimental; with "
             f"Open MPI, `mpirun -np {world} -H NODE1:{world // nodes},NODE2:{world // nodes} trtllm-llmapi-launch "
             "trtllm-serve ...` follows from trtllm-llmapi-launch (which reads OMPI_COMM_WORLD_RANK) but is not "
             "documented"]
    if launch.files:
        notes.append(f"{', '.join(sorted(launch.files))} must be at the same path on every node (shared storage)")
    return [line], [], notes


_BUILDERS: dict[str, Callable] = {"ray": _ray, "mp": _vllm_mp, "sglang": _sglang, "mpi": _mpi}


def redacted(group: NodeGroup, launch: LaunchSpec) -> NodeGroup:
    """The group with the launch's secrets masked in every command (for printing and plans)."""
    from dataclasses import replace

    return replace(group, leader=[[launch.redact(a) for a in c] for c in group.leader],
                   worker=[[launch.redact(a) for a in c] for c in group.worker])


def shell_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """argv (and env) as one shell line; the stand-ins ($LEADER_IP ...) stay unquoted so a shell fills them in."""
    def word(token: str) -> str:
        rest = token
        for p in PLACEHOLDERS:
            rest = rest.replace(p, "")
        if rest != token and "$" not in rest and re.fullmatch(r"[\w@%+=:,./\[\]-]*", rest):
            return token
        return shlex.quote(token)

    pairs = [f"{k}={word(v)}" for k, v in (env or {}).items()]
    return " ".join([*pairs, *(word(a) for a in argv)])


def command_lines(group: NodeGroup, role: str | None = None) -> list[tuple[str, str]]:
    """(label, line) rows for a human: the environment, the leader's commands, the workers'; with `role`,
    that node's only (the environment is then its own)."""
    rows = []
    if group.env:
        where = "this node's, before its commands" if role else "on every node, before its commands"
        rows.append(("env", f"{shell_line([], group.env)}  ({where})"))
    if role in (None, LEADER):
        rows += [("leader", shell_line(c)) for c in group.leader]
    if role in (None, WORKER):
        rows += [("worker", shell_line(c)) for c in group.worker]
    return rows


def plan_notes(group: NodeGroup) -> list[str]:
    """What a plan's reader needs beyond the commands: the stand-ins, and how autoquant runs it for them."""
    if group.backend == "mpi":
        return []
    used = {p for c in [*group.leader, *group.worker] for a in c for p in PLACEHOLDERS if p in a}
    used |= {p for v in group.env.values() for p in PLACEHOLDERS if p in v}
    words = {LEADER_IP: "the leader's address on the network the nodes share",
             NODE_IP: "each node's own address there (Ray's --node-ip-address and VLLM_HOST_IP: one per node)",
             IFNAME: "the interface that holds it (`ip -o addr show` lists them)",
             NODE_RANK: f"the worker's rank ({_ranks(group.nodes)})"}
    notes = ["; ".join(f"{p}: {words[p]}" for p in PLACEHOLDERS if p in used)] if used else []
    notes.append(f"or let autoquant run each node: save the plan (--json > plan.json), then AUTOQUANT_ROLE=leader "
                 f"AUTOQUANT_NODES={group.nodes} autoquant serve --plan plan.json on the leader and "
                 f"AUTOQUANT_ROLE=worker AUTOQUANT_LEADER={LEADER_IP} AUTOQUANT_NODES={group.nodes}"
                 + (f" AUTOQUANT_NODE_RANK={NODE_RANK}" if NODE_RANK in used else "")
                 + " autoquant serve --plan plan.json on each worker (in Kubernetes: autoquant k8s, a "
                 "LeaderWorkerSet)")
    return notes


# --- this node: address and interface -------------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    """Where this node stands: the leader's address, its own toward it, and the interface that holds it."""

    leader_ip: str
    node_ip: str
    ifname: str | None
    env: dict[str, str] = field(default_factory=dict)  # what autoquant sets on this node
    notes: list[str] = field(default_factory=list)  # what it set and kept, in words


def resolve(host: str) -> list[str]:
    """The addresses `host` resolves to, IPv4 first ([] when it does not, yet)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        return []
    found: list[str] = []
    for _family, *_rest, address in sorted(infos, key=lambda i: i[0] != socket.AF_INET):
        ip = str(address[0]).split("%")[0]
        if ip not in found:
            found.append(ip)
    return found


def route_source(destination: str) -> str | None:
    """This machine's source address toward `destination`: a UDP connect() only consults the routing table
    (no packet is sent), as vLLM's get_ip and Ray's own node-IP detection do."""
    family = socket.AF_INET6 if ":" in destination else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((destination, 9))
            return str(s.getsockname()[0]).split("%")[0]
    except OSError:
        return None


def local_addresses() -> dict[str, str]:
    """address -> the interface that holds it (psutil.net_if_addrs)."""
    import psutil

    out: dict[str, str] = {}
    for name, addresses in psutil.net_if_addrs().items():
        for a in addresses:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                out.setdefault(str(a.address).split("%")[0], name)
    return out


def locate(role: Role, environ: Mapping[str, str], backend: str, *, wait_s: float = 0.0,
           resolver: Callable[[str], list[str]] = resolve, router: Callable[[str], str | None] = route_source,
           interfaces: Callable[[], dict[str, str]] = local_addresses,
           sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Placement:
    """This node's address toward the leader, the interface that holds it, and the variables to set (the user's
    own VLLM_HOST_IP, GLOO_SOCKET_IFNAME, NCCL_SOCKET_IFNAME win). A worker retries the leader's name for up to
    `wait_s` seconds (a LeaderWorkerSet publishes it once the leader's pod has an address)."""
    local = interfaces()
    user_ip = _get(environ, "VLLM_HOST_IP")
    if role.is_leader:
        mine = None
        if role.leader:
            got = resolver(role.leader)
            mine = next((ip for ip in got if ip in local), None)
            if got and mine is None and user_ip not in got:
                raise UsageError(f"this node is the {role.describe()}, but {role.leader} resolves to "
                                 f"{', '.join(got[:3])}, not an address of this machine "
                                 f"({', '.join(sorted(local)[:6])}): is this node the leader?")
        node_ip = user_ip or mine or router(str(settings()["route_probe"])) or "127.0.0.1"
        leader_ip = node_ip
        toward = "its address"
    else:
        deadline = clock() + wait_s
        while True:
            got = resolver(role.leader or "")
            if got or clock() >= deadline:
                break
            sleep(min(float(settings()["ray"]["resolve_retry_s"]), max(0.0, deadline - clock())))
        if not got:
            raise EngineError(f"the leader {role.leader} does not resolve to an address"
                              + (f" after {wait_s:.0f} s (--join-timeout)" if wait_s else "")
                              + f" ({role.source}): is the leader up, and is its name right?")
        leader_ip = got[0]
        node_ip = user_ip or router(leader_ip) or ""
        if not node_ip:
            raise EngineError(f"no route from this machine to the leader {leader_ip}: set VLLM_HOST_IP to this "
                              "node's address on the nodes' network")
        toward = f"this node's address toward the leader {leader_ip}"
    ifname = local.get(node_ip)
    values = {"VLLM_HOST_IP": node_ip, "GLOO_SOCKET_IFNAME": ifname, "NCCL_SOCKET_IFNAME": ifname}
    env: dict[str, str] = {}
    kept: list[str] = []
    unknown: list[str] = []
    for name in settings()["env"].get(backend, []):
        if _get(environ, name) is not None:
            kept.append(f"{name}={environ[name].strip()}")
        elif values.get(name) is None:
            unknown.append(name)
        else:
            env[name] = str(values[name])
    notes = []
    if env:
        where = f"{ifname} holds {node_ip}, {toward}" if ifname else f"{node_ip}: {toward}"
        notes.append(f"set {' '.join(f'{k}={v}' for k, v in env.items())} ({where})")
    if kept:
        notes.append(f"kept yours: {' '.join(kept)}")
    if unknown:
        notes.append(f"{' and '.join(unknown)} not set: no interface of this machine holds {node_ip} (set "
                     f"{unknown[0]} yourself if the engine's traffic takes the wrong interface)")
    return Placement(leader_ip=leader_ip, node_ip=node_ip, ifname=ifname, env=env, notes=notes)


# --- the Ray processes ----------------------------------------------------------------------------------
def ray_binary(engine_executable: str, environ: Mapping[str, str], required: bool = False) -> str:
    """The `ray` to start nodes with: AUTOQUANT_RAY_BIN, else the one beside the engine (vLLM's own Ray, which
    its driver must match), else beside autoquant's Python, else PATH's. `required` (the Ray backend): an
    engine in an environment of its own with no ray there is an error, not autoquant's Ray: vLLM imports ray
    from its own environment, and the workers Ray starts on each node run the Python of the ray that started
    that node, which must have vLLM."""
    explicit = _get(environ, RAY_BIN_VAR)
    if explicit:
        return explicit
    from autoquant.probes.engines import shebang_python

    folders = []
    if os.path.isabs(engine_executable):
        folders.append(os.path.dirname(engine_executable))
        python = shebang_python(engine_executable, environ)
        if python:
            folders.append(os.path.dirname(python))
    own = os.path.dirname(sys.executable)
    if required and os.path.isfile(engine_executable) and own not in folders and not any(
            os.access(os.path.join(f, "ray"), os.X_OK) for f in folders):
        raise EngineError(f"{engine_executable} runs in an environment of its own, which has no ray: pip install "
                          f"ray there ({folders[-1]}/python -m pip install ray), as vLLM imports ray from its own "
                          f"environment and each node's Ray workers must run vLLM's Python; or point {RAY_BIN_VAR} "
                          "at a ray installed beside vLLM")
    folders.append(own)
    for folder in folders:
        path = os.path.join(folder, "ray")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return shutil.which("ray", path=environ.get("PATH")) or "ray"


def ray_python(ray: str, environ: Mapping[str, str]) -> str:
    """The Python of that `ray` (its console script's shebang), which has the cluster's Ray version."""
    from autoquant.probes.engines import shebang_python

    path = ray if os.path.isabs(ray) else (shutil.which(ray, path=environ.get("PATH")) or "")
    return (shebang_python(path, environ) if path else None) or sys.executable


def _no_ray(program: str) -> str:
    return (f"{program} not found: install Ray where the engine is (pip install ray in vLLM's environment, or "
            f"autoquant[ray] here), or point {RAY_BIN_VAR} at its ray")


class RayNode:
    """A `ray start --block` this autoquant started, in its own process group. Stopping it signals its PID
    (never `ray stop`, which ends every Ray process on the machine, nor the group first: the head then waits
    30 s to drain through a GCS already dead)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: Callable[[str], None] | None = None):
        from autoquant.output import say

        self.argv = list(argv)
        self.env = dict(env)
        self.log = log or say
        self.proc: subprocess.Popen | None = None
        self.started = threading.Event()
        self.tail: collections.deque[str] = collections.deque(maxlen=20)

    def start(self) -> None:
        from .process import _die_with_parent

        try:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        except FileNotFoundError:
            raise EngineError(_no_ray(self.argv[0])) from None
        except OSError as exc:
            raise EngineError(f"{self.argv[0]} cannot be started: {exc.strerror or exc}") from None
        from .process import pump_output

        self.marker = str(settings()["ray"]["started_line"])
        # `ray start` prints its command lines and addresses; redacted as the engine's output is
        threading.Thread(target=pump_output, args=(self.proc.stdout, self.tail, lambda text: scrub(text, []), self._line),
                         daemon=True).start()

    def _line(self, line: str) -> None:
        if self.marker in line:
            self.started.set()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_started(self, timeout: float) -> None:
        """Until `ray start` says the node is up; EngineError when it exits first or takes longer."""
        deadline = time.monotonic() + timeout
        while not self.started.wait(0.1):
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                self._say_tail()
                raise EngineError(f"{' '.join(self.argv[:3])} exited with code {code} before the node started")
            if time.monotonic() > deadline:
                self._say_tail()
                self.stop()
                raise EngineError(f"{' '.join(self.argv[:3])} did not start in {timeout:g} s; it was stopped")

    def _say_tail(self) -> None:
        for line in list(self.tail)[-10:]:
            self.log(f"| {line}")

    def stop(self) -> int | None:
        """SIGTERM to `ray start`, sent again every resend_s (one that arrives while it is still connecting is
        not acted on); SIGKILL to its whole process group after stop_grace_s; then any process left in the
        group (a child that outlived it) gets SIGKILL too. Its exit status."""
        proc = self.proc
        if proc is None:
            return None
        cfg = settings()["ray"]
        grace, resend = float(cfg["stop_grace_s"]), float(cfg["resend_s"])
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=min(resend, max(0.05, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                pass
        if proc.poll() is None:
            self.log(f"{' '.join(self.argv[:3])} still running {grace:g} s after SIGTERM; SIGKILL to its process "
                     f"group (pgid {proc.pid})")
        _kill_group_when_left(proc.pid, settle=0.0 if proc.poll() is None else 2.0)
        return proc.wait()


def _kill_group_when_left(pgid: int, settle: float) -> None:
    """SIGKILL to process group `pgid` if any member is still there after `settle` seconds."""
    deadline = time.monotonic() + settle
    while True:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class ClusterState:
    nodes: list[dict] = field(default_factory=list)  # alive: {ip, name, gpus}
    gpus: float = 0.0
    ok: bool = False


def _count(n: float) -> str:
    return f"{n:g}"


def describe_state(state: ClusterState) -> str:
    by_ip: dict[str, list[float]] = {}
    for n in state.nodes:
        by_ip.setdefault(n.get("ip") or n.get("name") or "?", []).append(float(n.get("gpus") or 0))
    parts = [f"{ip}" + (f" x{len(g)}" if len(g) > 1 else "") + f" ({_count(sum(g))} GPUs)"
             for ip, g in sorted(by_ip.items())]
    return ", ".join(parts) or "none"


def wait_for_cluster(address: str, nodes: int, gpus: float, timeout: float, python: str, *,
                     head: RayNode | None = None, peers: Sequence[str] = (), poll: float | None = None,
                     log: Callable[[str], None] | None = None) -> ClusterState:
    """Until `nodes` nodes and `gpus` GPUs are alive in the cluster at `address` (launchers/ray_wait.py, Ray's
    API), at most `timeout` seconds; EngineError naming who is missing when they do not join."""
    from autoquant.output import say

    log = log or say
    poll = float(settings()["ray"]["poll_s"]) if poll is None else poll
    argv = [python, str(RAY_WAIT), "--address", address, "--nodes", str(nodes), "--gpus", _count(gpus),
            "--timeout", _count(timeout), "--poll", _count(poll)]
    env = {**os.environ, "PYTHONSAFEPATH": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    from .process import _die_with_parent

    try:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
    except OSError as exc:
        raise EngineError(f"{python} cannot be started to wait for the Ray cluster: {exc.strerror or exc}") from None
    states: queue.Queue = queue.Queue()
    errors: collections.deque[str] = collections.deque(maxlen=10)

    def read_out() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            try:
                states.put(json.loads(line))
            except ValueError:
                errors.append(line.rstrip("\n"))
        states.put(None)

    def read_err() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            errors.append(line.rstrip("\n"))

    threading.Thread(target=read_out, daemon=True).start()
    threading.Thread(target=read_err, daemon=True).start()
    # ray.init and the first ray.nodes() come on top of the wait itself; past this the driver is stuck
    hard = time.monotonic() + timeout + 30.0
    state = ClusterState()
    head_died = False
    try:
        while True:
            try:
                got = states.get(timeout=0.2)
            except queue.Empty:
                got = False
            if got is None:
                break
            if got:
                state = ClusterState(nodes=list(got.get("nodes") or []), gpus=float(got.get("gpus") or 0),
                                     ok=bool(got.get("ok")))
                log(f"Ray cluster at {address}: {len(state.nodes)} of {nodes} nodes, {_count(state.gpus)} of "
                    f"{_count(gpus)} GPUs ({describe_state(state)})")
                if state.ok:
                    break
            if head is not None and not head.alive():
                head_died = True
                break
            if time.monotonic() > hard:
                break
    finally:  # also on Stopped (a signal while waiting): the driver must not outlive the wait
        if proc.poll() is None:
            _kill_group_when_left(proc.pid, settle=5.0 if state.ok else 0.0)
        proc.wait()
    if state.ok:
        return state
    if head_died:
        raise EngineError(f"the Ray head exited (code {head.proc.returncode if head and head.proc else '?'}) "
                          f"while waiting for {nodes} nodes")
    if proc.returncode not in (0, 3, -signal.SIGKILL) and not state.nodes:
        for line in list(errors)[-5:]:
            log(f"| {line}")
        raise EngineError(f"waiting for the Ray cluster at {address} failed ({python} exited with code "
                          f"{proc.returncode}): is ray installed for that Python?")
    raise EngineError(missing_message(state, nodes, gpus, timeout, peers))


def missing_message(state: ClusterState, nodes: int, gpus: float, timeout: float,
                    peers: Sequence[str] = ()) -> str:
    joined = len(state.nodes)
    lacking = [f"{nodes - joined} node(s)"] if joined < nodes else []
    if state.gpus < gpus:
        lacking.append(f"{_count(gpus - state.gpus)} GPU(s)")
    who = ""
    if peers and joined < nodes:
        who = f"; expected the worker pods {', '.join(peers)}"
    return (f"the Ray cluster did not form in {timeout:g} s (--join-timeout): expected {nodes} nodes and "
            f"{_count(gpus)} GPUs, joined {joined} node(s) with {_count(state.gpus)} GPUs ({describe_state(state)}); "
            f"missing {' and '.join(lacking) or 'nothing'}{who}. Every Ray process autoquant started was stopped")


def exec_program(argv: Sequence[str], env: Mapping[str, str]) -> None:  # pragma: no cover - replaces the process
    """Replace this process with `argv` (a worker's `ray start --block` or headless engine: it is the pod)."""
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], list(argv), dict(env))
    except FileNotFoundError:
        raise EngineError(_no_ray(argv[0]) if os.path.basename(argv[0]) == "ray" else
                          f"{argv[0]} not found") from None
    except OSError as exc:
        raise EngineError(f"{argv[0]} cannot be started: {exc.strerror or exc}") from None


class Stopped(Exception):
    """A SIGTERM or SIGINT arrived while the group was forming (before the engine started)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class RayLeader:
    """The leader of a Ray group: the head in the background, the bounded wait for the group, then (the
    caller) the engine; `stop()` ends the head whatever happened."""

    def __init__(self, group: NodeGroup, address: str, env: Mapping[str, str], world: float, *,
                 python: str, join_timeout: float, peers: Sequence[str] = (),
                 log: Callable[[str], None] | None = None):
        self.group, self.address, self.world = group, address, world
        self.python, self.join_timeout, self.peers = python, join_timeout, peers
        self.head = RayNode(group.leader[0], env, log)
        self.log = self.head.log

    def start(self) -> ClusterState:
        """Start the head and wait until every node and GPU has joined; Stopped on SIGTERM/SIGINT, EngineError
        (naming who is missing) at the timeout. The head keeps running on success."""
        def stop_now(signum, _frame):
            raise Stopped(signum)

        previous = {s: signal.signal(s, stop_now) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.log(f"starting the Ray head: {shell_line(self.head.argv)}")
            self.head.start()
            self.head.wait_started(float(settings()["ray"]["head_start_timeout_s"]))
            self.log(f"waiting up to {self.join_timeout:g} s (--join-timeout) for {self.group.nodes} nodes and "
                     f"{_count(self.world)} GPUs to join {self.address}")
            return wait_for_cluster(self.address, self.group.nodes, self.world, self.join_timeout, self.python,
                                    head=self.head, peers=self.peers, log=self.log)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def stop(self) -> None:
        if self.head.proc is not None:
            code = self.head.stop()
            self.log(f"Ray head stopped ({'exit code ' + str(code) if code is not None else 'not started'})")
