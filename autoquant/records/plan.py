"""Records the planner returns: estimates of one configuration, rejections, the plan."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import QuantSpec

PLAN_SCHEMA_VERSION = 1

REGIMES = ("bandwidth_bound", "transitional", "compute_bound")

@dataclass
class Memory:
    """Per-GPU memory (GB = 1e9 bytes) of one configuration; for llama.cpp on CPU, host RAM."""

    weights_gb: float
    kv_cache_gb: float
    overhead_gb: float
    total_gb: float
    fits: bool
    capacity_gb: float = 0.0  # what the engine may use per device (memory x utilization fraction)
    kv_bytes_per_token: float = 0.0  # per GPU
    activations_gb: float = 0.0
    host_weights_gb: float = 0.0  # llama.cpp partial offload: weights left in RAM


@dataclass(frozen=True)
class Estimate:
    """One fixed configuration evaluated. Field names are the `estimate --json` contract (design.md)."""

    engine: str  # an engine id of autoquant/data/engines.yaml: vllm | trtllm | sglang | llamacpp
    method: str  # bf16 | fp16 | fp8 | fp8-weight-only | int8-sq | awq-int4 | gptq-int4 | nvfp4 | gguf-<type>
    tp: int
    pp: int
    memory: Memory
    max_concurrency: int
    concurrency: int
    ttft_ms: float
    tpot_ms: float
    output_tokens_per_s: float  # all requests together
    per_request_tokens_per_s: float
    ppl_delta: float | None  # None: not measured (kept only when the user set no quality floor)
    cost_per_million_tokens: float | None
    regime: str  # bandwidth_bound | transitional | compute_bound
    kernel: str = ""
    kv_cache_dtype: str = "auto"
    max_model_len: int = 0
    max_num_seqs: int = 0  # M: requests running at once at `concurrency` (the rest queue)
    gpus: int = 1
    gpu: str = ""  # catalog key of the device, or "cpu"
    n_gpu_layers: int | None = None  # llama.cpp
    output_tokens_per_s_at_max: float = 0.0  # at max_running
    # The most requests the configuration runs at once when more arrive: min(max_concurrency, the engine's
    # batch cap its memory budget assumes, a pinned --max-num-seqs); what a server may admit. 0: unknown.
    max_running: int = 0
    ppl_delta_uncertainty: float | None = None
    crossover_batch: float | None = None
    notes: list[str] = field(default_factory=list)
    # Added for the planner: where ppl_delta comes from (quality.yaml rows, interpolation, or why it is unknown)
    ppl_source: str = ""
    # Data parallel: replicas of the TP x PP group inside one server (vLLM --data-parallel-size); `gpus`,
    # the throughputs and max_concurrency are for all replicas together, max_num_seqs is per replica.
    dp: int = 1
    # Why the figures may say little: a TTFT of minutes, under 1 tok/s, outside the fitted range (usefulness.py)
    warnings: list[str] = field(default_factory=list)
    # Which predictor produced ttft_ms / tpot_ms / output_tokens_per_s: "autoquant" (its speed model) or
    # "AIConfigurator <version> SILICON (...)" where the optional aic predictor covers the configuration
    predictor: str = "autoquant"
    # Multi-node: the nodes one server spans (TP within a node's NVLink domain, PP across nodes), and the
    # independent servers (one per node or group of `nodes`, behind one Service) that share the traffic;
    # `gpus` and the throughputs count every replica together.
    nodes: int = 1
    replicas: int = 1


@dataclass
class Checkpoint:
    """A concrete, verified set of weights for a chosen method."""

    repo: str  # HF repo id, local path, or "pkg:<python package>"
    method: str
    revision: str | None = None
    files: list[str] = field(default_factory=list)  # GGUF file(s) when the method is gguf-*
    source: str = "registry"  # explicit | local | cache | registry | hub | package | base (runtime quantization)
    verified: bool = False
    reason: str = ""  # why it was accepted, or why not
    quant: QuantSpec | None = None
    tokenizer: str | None = None  # base repo for GGUF in vLLM
    size_bytes: int | None = None
    runtime_quantization: bool = False  # vLLM quantizes BF16 weights to FP8 at load time
    # Added by checkpoint resolution (autoquant/checkpoints):
    status: str = ""  # verified | unverified (registry facts, offline) | unconfirmed | rejected
    base: str | None = None  # the base model id it was resolved for
    local_path: str | None = None  # where it is on this machine (local folder/file, cache snapshot, assembled package)
    # Added for the planner: the checkpoint's own MLP width when it differs from the base model's (e.g. padded
    # so Marlin's shape rules hold at a TP size); the planner checks shapes on it when status is "verified".
    intermediate_size: int | None = None
    # Per engine (autoquant.engines.compat on its format and quant facts): who can load it, and why not.
    loadable_by: list[str] = field(default_factory=list)
    not_loadable: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeGroup:
    """How the nodes of one server that spans several are started (launchers/multinode.py): the commands the
    leader runs, in order (a Ray head first, kept running in the background), the command every worker runs,
    and the environment each node sets before its first command. In a plan, `$LEADER_IP`, `$NODE_IP` (this
    node's own address), `$IFNAME` (the interface that holds it) and `$NODE_RANK` stand for per-node values;
    `autoquant serve` on each node fills them in from its role (LeaderWorkerSet or AUTOQUANT_ROLE)."""

    backend: str  # engines.yaml multi_node.backends: ray | mp | sglang | mpi
    nodes: int  # nodes the server spans, the leader included
    leader: list[list[str]] = field(default_factory=list)
    worker: list[list[str]] = field(default_factory=list)  # the same on every worker ($NODE_RANK aside)
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Candidate(Estimate):
    checkpoint: Checkpoint | None = None
    command: list[str] = field(default_factory=list)
    # A server spanning nodes: what each node runs (`command` is the engine's own line on the leader)
    multi_node: NodeGroup | None = None


@dataclass(frozen=True)
class Rejection:
    engine: str
    method: str
    reason: str
    tp: int | None = None
    pp: int | None = None
    rule: str = ""  # id of the rule that rejected it
    scope: str = ""  # engine | checkpoint | method | config: what the rule is about (autoquant.engines.compat)


@dataclass(frozen=True)
class WayOut:
    """One way out of a plan that chose nothing (autoquant/planner/ways_out.py): a change of hardware, checkpoint,
    placement, model or constraint, and the configuration the planner then chooses, estimated."""

    kind: str  # more_gpus | more_nodes | any_checkpoint | cpu_offload | smaller_model | relax_slo | relax_quality
    #            | relax_both | unpin
    change: str  # what to change, as flags or in words: "--gpu RTX4090:2", "--max-ppl-delta 0.42"
    summary: str  # the one line `plan` prints
    estimate: Candidate | None = None  # what the planner chooses after the change; None: not a way out (notes say why)
    model: str = ""  # the model planned (another one for smaller_model)
    hardware: str = ""  # the hardware planned, as Plan.hardware says it
    gpus: int = 0  # GPUs in all
    quality_floor: float | None = None  # the floor the estimate was held to
    host_ram_gb: float | None = None  # cpu_offload: host RAM the weights left in RAM and the OS reserve need
    notes: list[str] = field(default_factory=list)
    also_needs: str = ""  # what else it takes (cpu_offload: the SLO it misses); such ways are listed after the rest


@dataclass(frozen=True)
class Plan:
    model: str
    hardware: str  # one-line description of the node
    chosen: Candidate | None
    alternatives: list[Candidate] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    workload: dict = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # why the chosen one wins
    schema_version: int = PLAN_SCHEMA_VERSION
    # Only when nothing was chosen (`plan`, `explain`): the cheapest changes that get a plan, each estimated
    ways_out: list[WayOut] = field(default_factory=list)
