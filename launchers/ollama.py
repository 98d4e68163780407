"""Ollama: the plan's llama.cpp configuration, served by Ollama.

Ollama is not an engine of its own here. It runs the same GGUF through llama.cpp (0.32 starts llama-server with
`-c num_ctx*parallel -np parallel -ngl num_gpu -t num_thread`), so the planner plans llama.cpp (same checkpoint,
same speed model) and this launcher flavor writes the plan as a Modelfile:

- `autoquant ollama MODEL` writes it for the user (`ollama create NAME -f Modelfile`, `ollama run NAME`);
- `autoquant serve MODEL --engine ollama` starts `ollama serve` on --host/--port (OLLAMA_HOST), runs
  `ollama create` once /api/version answers, and is ready when /v1/models lists the model; an Ollama already
  answering there (the system service) is used instead of starting one.

The Modelfile's syntax is Ollama's own (autoquant/data/ollama-modelfile.yaml), and autoquant.modelfile checks
every file written against it. No TEMPLATE is written: see `template_lines`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from autoquant import __version__
from autoquant import modelfile as mf
from autoquant.errors import EngineError, RuleError, UsageError
from autoquant.gguf import GGUFError, read_header
from autoquant.probes.engines import env_var
from autoquant.records import Candidate

from .base import LaunchSpec, ServeOptions, ServerCheck, Step, bracket_host
from .llamacpp import gguf_source

ENGINE = "llamacpp"  # what the planner plans for Ollama: the same GGUF through the same llama.cpp
FLAVOR = "ollama"
MARK = "Modelfile written by autoquant"  # the first comment: a file autoquant may overwrite
BIN_ENV = env_var(FLAVOR)  # AUTOQUANT_ENGINE_BIN_OLLAMA: engine discovery's one rule for the name


def _server() -> dict:
    return mf.syntax()["server"]


def binary(environ: dict[str, str] | None = None) -> str | None:
    """The `ollama` executable as engine discovery finds it (autoquant.probes.engines, the install `ollama`:
    AUTOQUANT_ENGINE_BIN_OLLAMA, this environment, PATH; `autoquant probe` lists the same), else None."""
    from autoquant.probes.engines import installed

    rec = installed("ollama", environ)
    if rec is not None and not rec.usable:
        raise EngineError(f"{'; '.join(rec.notes) or BIN_ENV + ' names nothing runnable'}: point it at the "
                          "ollama program")
    return rec.path if rec is not None else None


def check_installed(environ: dict[str, str] | None = None) -> str:
    """The `ollama` executable, or one error line saying how to install it and what to do without it."""
    found = binary(environ)
    if not found:
        raise EngineError(f"--engine ollama needs the ollama executable, which is not on PATH (nor in "
                          f"{BIN_ENV}): install Ollama from {_server()['install']}, or write a "
                          "Modelfile with `autoquant ollama MODEL` and `ollama create` it where Ollama runs")
    return found


@dataclass(frozen=True)
class Modelfile:
    """A plan written as a Modelfile: its text, the Ollama model name, the FROM reference, what `ollama serve`
    itself needs for the plan (server-wide variables), and notes for the user."""

    text: str
    name: str
    source: str
    local: bool
    server_env: tuple[tuple[str, str], ...]
    notes: tuple[str, ...]


def name_for(model: str, given: str | None = None) -> str:
    """The Ollama model name: `given` (checked), else `model` when Ollama takes it as a name (an HF id such as
    google/gemma-3-270m is namespace/model), else one made from it (a file path)."""
    if given:
        bad = mf.name_problem(given)
        if bad:
            raise UsageError(f"{given!r} is not an Ollama model name: {bad}")
        return given
    if model.lower().endswith(".gguf") or os.path.exists(model) or mf.name_problem(model):
        return mf.name_for(model)
    return model


def modelfile(candidate: Candidate, model: str, name: str, threads: int | None = None,
              layers: int | None = None, plan_line: str = "") -> Modelfile:
    """The Modelfile for a llama.cpp candidate. `model`: what the plan was made for (the GGUF is resolved from
    the candidate's checkpoint as serve resolves it); `layers`: the model's transformer blocks, for "all
    layers" when the GGUF's own header is not on this machine; `plan_line`: one line on the plan, kept as a
    comment."""
    from autoquant.facts import default_facts

    if candidate.engine != ENGINE:
        raise RuleError(f"Ollama runs GGUF files through llama.cpp: the plan chose {candidate.engine} "
                        f"{candidate.method} (pin --engine llamacpp or --method gguf-<type>)")
    spec = default_facts().engine(ENGINE)
    server = _server()
    path, remote = gguf_source(candidate, model)
    meta: dict = {}
    if remote is None:
        source = _local_source(candidate, path)
        try:
            meta = dict(read_header(path).meta)
        except (OSError, GGUFError):
            meta = {}
    else:
        quant = default_facts().methods.get(candidate.method, {}).get("gguf_type")
        if not quant:
            raise RuleError(f"{candidate.method} names no GGUF type for an hf.co reference: download the file "
                            f"(`autoquant pull {model}`) and write the Modelfile again")
        source = mf.syntax()["hub_reference"].format(repo=remote[0], quant=quant)
    arch = str(meta.get("general.architecture") or "")
    blocks = meta.get(f"{arch}.block_count") if arch else None
    blocks = int(blocks) if isinstance(blocks, int) else layers

    lines = [mf.comment(f"{MARK} {__version__} (Ollama {mf.ollama_version()} Modelfile syntax) for {model}: "
                        f"llama.cpp {candidate.method}, the plan autoquant made, for Ollama, which runs llama.cpp")]
    if plan_line:
        lines.append(mf.comment(plan_line))
    lines.append(mf.comment("the GGUF file" if remote is None else
                            f"not on this machine: Ollama pulls {remote[0]} ({', '.join(remote[1])}) from Hugging Face"))
    lines.append(mf.instruction("FROM", source))
    notes: list[str] = []
    if candidate.max_model_len:
        lines += [mf.comment("context per request: the plan's max model len"),
                  mf.parameter("num_ctx", candidate.max_model_len)]
    else:
        lines.append(mf.comment("num_ctx is left to Ollama (OLLAMA_CONTEXT_LENGTH): this plan fixes no context"))
    if threads:
        lines += [mf.comment("CPU threads: the physical cores this process may use, as llama.cpp gets them"),
                  mf.parameter("num_thread", threads)]
    else:
        lines.append(mf.comment("num_thread is left to Ollama: the plan is for a machine whose cores are not "
                                "known here, and Ollama counts them where it runs"))
    lines += _gpu_lines(candidate, blocks)
    # the prompt batch the plan's memory budget was sized with (llama.cpp's per-batch logits rows): written
    # so the Modelfile fixes what the estimate assumed, whatever Ollama's default becomes
    batch = int(default_facts().engine("llamacpp").memory["logits_rows"])
    lines += [mf.comment("prompt tokens per batch: what the plan's memory budget assumes (engines.yaml llamacpp "
                         "memory.logits_rows)"), mf.parameter("num_batch", batch)]
    env: list[tuple[str, str]] = [(server["parallel_env"], str(max(1, candidate.max_num_seqs or 1)))]
    if (candidate.max_num_seqs or 1) > 1:
        lines.append(mf.comment(f"the plan runs {candidate.max_num_seqs} requests at once: Ollama sets that for "
                                f"the whole server, {server['parallel_env']}={candidate.max_num_seqs} ollama serve "
                                "(each request gets num_ctx)"))
    kv = candidate.kv_cache_dtype or spec.kv_default
    cache = spec.kv_from_vllm.get(kv, kv)
    if cache != "f16":
        if cache not in server["kv_cache_types"]:
            raise RuleError(f"KV cache {cache}: Ollama's KV cache types are {', '.join(server['kv_cache_types'])} "
                            f"({server['kv_cache_env']}); pin --kv-cache-dtype q8_0 or leave it to the plan")
        env.append((server["kv_cache_env"], cache))
        lines.append(mf.comment(f"KV cache {cache}: Ollama sets it for the whole server, "
                                f"{server['kv_cache_env']}={cache} ollama serve"))
    template, template_notes = template_lines(meta, remote is not None, name, spec.flags.get("instruct_markers", ()))
    lines += template
    notes += template_notes
    return Modelfile(text=mf.render(lines), name=name, source=source, local=remote is None,
                     server_env=tuple(env), notes=tuple(notes))


def _local_source(candidate: Candidate, path: str) -> str:
    """FROM for a GGUF on this machine: the file, or for a split GGUF the folder of its shards (Ollama reads
    every *.gguf of a FROM folder and joins the shards: parser.go filesForModel, server/create.go)."""
    ckpt = candidate.checkpoint
    shards = {os.path.basename(f) for f in (ckpt.files if ckpt else []) if f.endswith(".gguf")}
    if len(shards) <= 1:
        return os.path.abspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    present = {f for f in os.listdir(folder) if f.endswith(".gguf")}
    if present != shards:
        raise RuleError(f"{path} is one of {len(shards)} shards of a split GGUF, and Ollama reads a split GGUF from a "
                        f"folder that holds only its shards: put them in a folder of their own (now {folder} has "
                        f"{len(present)} .gguf files)")
    return folder


def _gpu_lines(candidate: Candidate, blocks: int | None) -> list[mf.Line]:
    """num_gpu: the layers llama.cpp offloads in the plan; every layer (blocks + the output layer, as Ollama
    and the planner count them) when it runs wholly on the GPU(s), 0 on the CPU."""
    layers = candidate.n_gpu_layers
    on_cpu = candidate.gpu in ("", "cpu") or candidate.gpus == 0
    if layers is None:
        layers = 0 if on_cpu else -1
    if layers == 0:
        return [mf.comment("layers on the GPU: none, the plan runs on the CPU"), mf.parameter("num_gpu", 0)]
    if layers > 0:
        return [mf.comment(f"layers on the GPU: {layers}, the plan's partial offload (the rest run on the CPU)"),
                mf.parameter("num_gpu", layers)]
    if blocks is None:
        return [mf.comment("num_gpu is left to Ollama (it offloads what fits): this model's layer count is not "
                           "known here")]
    where = f"{candidate.gpus} GPUs: Ollama splits the layers across them" if candidate.gpus > 1 else "the GPU"
    return [mf.comment(f"layers on the GPU: all of them, {blocks} blocks + the output layer, on {where}"),
            mf.parameter("num_gpu", blocks + 1)]


def template_lines(meta: dict, remote: bool, name: str, markers=()) -> tuple[list[mf.Line], list[str]]:
    """No TEMPLATE, and a comment saying why. A GGUF's tokenizer.chat_template is Jinja, Ollama's TEMPLATE is Go
    text/template: on `ollama create` FROM a GGUF, Ollama detects the template itself (it matches the Jinja to
    its own library and adds that template's stop parameters), and a TEMPLATE line would replace that. A GGUF
    with no chat template is a completion model in Ollama ({{ .Prompt }}): the comment and a note say so."""
    data = mf.syntax()
    if remote:
        return [mf.comment(f"no TEMPLATE: the GGUF is not read here, and when Ollama pulls it, it takes the chat "
                           f"template from it: {data['template_detection']}")], []
    if meta.get("tokenizer.chat_template"):
        return [mf.comment("no TEMPLATE: the GGUF has a chat template (tokenizer.chat_template, Jinja), and Ollama's "
                           f"TEMPLATE is Go text/template; {data['template_detection']}")], []
    words = {w for key in ("general.finetune", "general.name")
             for w in str(meta.get(key) or "").lower().replace("-", " ").replace("_", " ").split()}
    if words & {m.lower() for m in markers}:
        text = (f"no TEMPLATE, and the GGUF has no chat template although its name marks an instruct tune: Ollama "
                f"will send prompts as given ({data['template_default']}); add a TEMPLATE in Go text/template "
                "syntax for its chat format, or use a GGUF that has its template")
        return [mf.comment(text)], [f"{name}: {text}"]
    text = (f"completion model: the GGUF has no chat template (a base model), so Ollama sends prompts as given "
            f"({data['template_default']}); use it to continue text (`ollama run {name} \"Once upon a time\"`, "
            "/api/generate, /v1/completions), not to chat")
    return [mf.comment(text)], [f"{name} is a {text}"]


# -- serve --engine ollama -------------------------------------------------------------------------------------
def build(candidate: Candidate, options: ServeOptions, model: str, threads: int | None = None,
          run_dir: str | None = None, layers: int | None = None, **_: object) -> LaunchSpec:
    """`ollama serve` on --host/--port, then `ollama create NAME -f FILE` once it answers /api/version; ready
    when /v1/models lists NAME. `model` is the name clients ask for: the Ollama model is created under it
    (or one Ollama takes, made from it)."""
    from autoquant.facts import default_facts

    from .build import check_launch
    from .flags import classify_tokens
    from .trtllm import _default_run_dir

    spec = default_facts().engine(ENGINE)
    if options.api_key:
        raise UsageError("--api-key: Ollama's server has no API key (put an authenticating proxy in front of it, "
                         "or use --engine llamacpp)")
    if options.dtype not in (None, "auto"):
        raise UsageError(f"--dtype {options.dtype} has no Ollama equivalent (GGUF weights carry their type)")
    if options.unmapped_quantization:
        raise UsageError(f"--quantization {options.unmapped_quantization} has no Ollama equivalent")
    dropped: list[str] = []
    for arg in classify_tokens(list(options.passthrough))[0]:
        why = (spec.flags.get("drop") or {}).get(arg.name) or (spec.flags.get("drop") or {}).get(arg.given)
        if why is None:
            raise UsageError(f"{arg.given} has no Ollama equivalent: `ollama serve` takes no flags (its settings are "
                             "OLLAMA_* variables and the Modelfile's PARAMETER lines; `autoquant ollama MODEL` writes "
                             "a Modelfile to edit)")
        dropped.append(f"{arg.given}: {why}; nothing to pass")
    check_launch(spec, candidate, replace(options, user_args=[], passthrough=[]), None, FLAVOR)
    names = list(options.served_model_name)
    name = name_for(model, names[0] if names else None)
    notes = [f"served as {name}: Ollama serves a model under one name (not {', '.join(names[1:])})"] \
        if len(names) > 1 else []
    if not names and name != model:
        notes.append(f"served as {name}: {model!r} is not an Ollama model name")
    made = modelfile(candidate, model, name, threads, layers)
    exe = binary() or "ollama"
    server = _server()
    host = options.host or "0.0.0.0"
    bind = bracket_host(host)
    path = os.path.join(run_dir or _default_run_dir(), f"ollama-{options.port}.Modelfile")
    launch = LaunchSpec(
        engine=ENGINE, argv=[exe, *server["command"]], flavor=FLAVOR, host=host, port=options.port,
        env={server["host_env"]: f"{bind}:{options.port}", **dict(made.server_env)},
        ready_path=server["models_path"], served_names=mf.served_ids(name), files={path: made.text},
        reuse=ServerCheck(server["version_path"], "version"),
        notes=[*notes, *made.notes, *dropped],
    )
    up = ServerCheck(server["version_path"], "version")
    create = [exe, *(a.format(name=name, modelfile=path) for a in server["create"])]
    # the client reads OLLAMA_HOST too: it must reach the server where it listens (loopback for a wildcard bind)
    client = ((server["host_env"], f"{launch.connect_host}:{options.port}"),)
    launch.after_start.append(Step(argv=tuple(create), after=up, env=client))
    launch.notes.append(f"once `ollama serve` answers {up.path}: {launch.step_line(launch.after_start[0])}")
    return launch
