"""Verification of a candidate checkpoint before anything is chosen.

Predicates return `(ok, reason)` (the shape of vLLM's `_check_marlin_supported`). `verify_found` reads a
candidate's metadata only (config.json, quantization json files, GGUF header; never weights) and returns
one `Checkpoint` per method it provides, each `verified` or rejected with the first failing reason:

1. its quantization, as `parse_quantization` reads it (method, bits, group, zero point/sym, act order);
2. the base link: card `base_model` must name the requested model (aliases allowed), and an
   -Instruct/-it name must match the request's (a quant of the base is not a quant of the Instruct);
3. the architecture and dimensions equal the base's (layers, hidden, heads, KV heads, vocab);
4. per engine, autoquant.engines.compat (the engines' format rules, kernels and their shape limits at the
   given TP, from the candidate's own config: a padded intermediate size passes where the base's would not):
   who can load it (`loadable_by`) and why the others cannot (`not_loadable`); rejected only when the target
   engine (or, with none, every engine) cannot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from autoquant.catalog.models import canonical_id, gguf_architecture
from autoquant.checkpoints import gguf_files, registry
from autoquant.checkpoints.recipes import short_name
from autoquant.checkpoints.sources import Found
from autoquant.engines.compat import Verdict, compat
from autoquant.engines.spec import EngineSpec
from autoquant.errors import InputError, UsageError
from autoquant.facts import default_facts
from autoquant.quantconfig import gguf_quant_spec
from autoquant.records import Checkpoint, ModelSpec, QuantSpec

Result = tuple[bool, str | None]
INSTRUCT_RE = re.compile(r"(?:^|[-_.])(instruct|it|chat)(?:[-_.]|$)", re.IGNORECASE)
UNVERIFIED_OFFLINE = "registry (unverified: config not readable offline)"


@dataclass(frozen=True)
class Target:
    """What the checkpoint must run on: engine, TP and GPU compute capability (any may be unknown)."""

    engine: str | None = None
    tp: int = 1
    capability: str | None = None  # "9.0"; None: no GPU known (kernel capability not checked)


def serves(requested: str, actual: str) -> bool:
    """Does a checkpoint of method `actual` serve `requested` (the same, or listed in its methods.yaml
    `served_by`: FP8 W8A8 weights serve fp8-weight-only)?"""
    return actual == requested or actual in (default_facts().methods.get(requested, {}).get("served_by") or ())


# ---------------------------------------------------------------------------------------------- predicates


def check_base_link(base_models: Iterable[str], base_id: str) -> Result:
    """The card's base_model, when present, must be the requested model (or an alias of it)."""
    bases = [b for b in base_models if b]
    if not bases:
        return True, None
    names = {a.lower() for a in registry.aliases(base_id)}
    if any(b.lower() in names for b in bases):
        return True, None
    return False, f"its base_model is {', '.join(bases)}, not {base_id}"


def check_name_suffix(repo: str, base_id: str) -> Result:
    """-Instruct / -it / -chat in the quant's name must agree with the requested model's name."""
    want = bool(INSTRUCT_RE.search(short_name(base_id)))
    has = bool(INSTRUCT_RE.search(short_name(repo)))
    if want and not has:
        return False, f"name lacks the -Instruct/-it suffix of {short_name(base_id)}: a quant of the base model"
    if has and not want:
        return False, f"name has an -Instruct/-it suffix but {short_name(base_id)} is a base model"
    return True, None


DIMENSIONS = ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "vocab_size")


def check_dimensions(candidate: ModelSpec, base: ModelSpec) -> Result:
    if candidate.architecture and base.architecture and candidate.architecture != base.architecture:
        return False, f"architecture {candidate.architecture} differs from the base's {base.architecture}"
    for name in DIMENSIONS:
        a, b = getattr(candidate, name), getattr(base, name)
        if a and b and a != b:
            return False, f"{name} {a} differs from the base's {b}: not the same model"
    return True, None


def check_gguf_header(facts: dict[str, Any], gtype: str, base: ModelSpec | None) -> Result:
    """GGUF header vs the file name's type and the base model's architecture and dimensions."""
    header_type = facts.get("quant")
    named = gguf_files.base_type(gtype)  # bartowski Q4_K_L / unsloth UD-Q4_K_XL are Q4_K_M files
    if header_type and header_type != named:
        shown = gtype.upper() if named == gtype else f"{gtype.upper()} (a {named.upper()} file)"
        return False, f"header general.file_type is {header_type.upper()}, not {shown} as named"
    if base is None:
        return True, None
    arch = str(facts.get("architecture") or "")
    want = gguf_architecture(base.model_type)
    if arch and arch.lower() != want and arch.lower() != base.model_type.lower():
        return False, f"header architecture {arch} is not {want} ({base.id})"
    pairs = (("num_layers", base.num_layers), ("hidden_size", base.hidden_size), ("num_heads", base.num_heads),
             ("num_kv_heads", base.num_kv_heads))
    for key, want_v in pairs:
        got = facts.get(key)
        if isinstance(got, int) and want_v and got != want_v:
            return False, f"header {key} {got} differs from the base's {want_v}: not the same model"
    return True, None


@dataclass(frozen=True)
class _GPU:
    """The GPU a checkpoint must run on, as compat reads it, when only its compute capability is known."""

    capability: str
    kind: str = "cuda"
    cpu: object = None

    @property
    def key(self) -> str:
        return "this GPU"


def engine_verdicts(quant: QuantSpec | str, target: Target, shapes: ModelSpec | None,
                    engines: Mapping[str, EngineSpec] | None = None) -> dict[str, Verdict]:
    """engine -> can it load this checkpoint here (format, quant facts, kernels and shapes at target.tp)?
    Only target.engine when one is given. The one rule set: autoquant.engines.compat."""
    specs = engines if engines is not None else default_facts().engines
    device = _GPU(target.capability) if target.capability else None
    if target.engine and target.engine not in specs:
        raise UsageError(f"unknown engine {target.engine!r}: choose one of {', '.join(specs)}")
    chosen = [target.engine] if target.engine else list(specs)
    # the methods these weights may be served as (FP8 W8A8 weights run as fp8-weight-only below SM89)
    subjects = [quant]
    if isinstance(quant, QuantSpec):
        subjects += [replace(quant, method=m) for m in default_facts().methods
                     if m != quant.method and serves(m, quant.method)]
    out = {}
    for eid in chosen:
        spec = specs[eid]
        verdicts = [compat(spec, q, device, target.tp if spec.tensor_parallel else 1, model=shapes) for q in subjects]
        out[eid] = next((v for v in verdicts if v.ok), verdicts[0])
    return out


def _loader_failure(verdicts: Mapping[str, Verdict], target: Target, ckpt: Checkpoint) -> str | None:
    """Record who can load it; the reason to reject it when the target engine (or, with none, every engine)
    cannot."""
    ckpt.loadable_by = [e for e, v in verdicts.items() if v.ok]
    ckpt.not_loadable = {e: v.reason for e, v in verdicts.items() if not v.ok}
    if ckpt.loadable_by:
        return None
    if target.engine:
        return ckpt.not_loadable[target.engine]
    return "no engine can load it: " + "; ".join(f"{e}: {why}" for e, why in ckpt.not_loadable.items())


# ---------------------------------------------------------------------------------------------- candidates


def _first_failure(*results: Result) -> str | None:
    for ok, reason in results:
        if not ok:
            return reason or "rejected"
    return None


def _read(found: Found, name: str) -> dict[str, Any] | None:
    return found.read_json(name) if found.read_json else None


def _weights_bytes(found: Found) -> int | None:
    sizes = [s for p, s in found.files if p.endswith((".safetensors", ".bin", ".pt", ".pth"))]
    if not sizes or any(s is None for s in sizes):
        return None
    return sum(s for s in sizes if s is not None)


def _candidate_spec(config: dict[str, Any], repo: str) -> ModelSpec | None:
    from autoquant.modelspec import from_hf_config

    try:
        return from_hf_config(config, repo, "config")
    except (InputError, KeyError, TypeError, ValueError):
        return None


def own_intermediate_size(spec: ModelSpec | None, base: ModelSpec | None) -> int | None:
    """The checkpoint's MLP width when its config differs from the base's (e.g. Qwen2.5-72B quants padded
    from 29568 to 29696 for Marlin at TP=4), so the planner uses the checkpoint's own shapes; else None."""
    if spec is None or not spec.intermediate_size:
        return None
    if base is not None and spec.intermediate_size == base.intermediate_size:
        return None
    return int(spec.intermediate_size)


def _describe(quant: QuantSpec) -> str:
    parts = [quant.quant_method, f"{quant.weight_bits:g}-bit"]
    if quant.act_bits:
        parts.append(f"A{quant.act_bits}")
    if quant.group_size is not None:
        parts.append("per-channel" if quant.group_size == -1 else f"g{quant.group_size}")
    if quant.zero_point is not None:
        parts.append("zero point" if quant.zero_point else "no zero point")
    elif quant.symmetric is not None:
        parts.append("sym" if quant.symmetric else "asym")
    if quant.act_order:
        parts.append("act-order")
    if quant.dynamic_act is not None:
        parts.append("dynamic act" if quant.dynamic_act else "static act")
    if quant.format:
        parts.append(str(quant.format))
    return " ".join(parts)


def verify_found(found: Found, base_id: str, base: ModelSpec | None, target: Target,
                 methods: set[str] | None = None) -> list[Checkpoint]:
    """One Checkpoint per method this candidate provides (only `methods` when given)."""
    common = _common_checks(found, base_id)
    if found.is_gguf:
        return _verify_gguf(found, base_id, base, target, methods, common)
    return _verify_safetensors(found, base_id, base, target, methods, common)


def _common_checks(found: Found, base_id: str) -> str | None:
    if found.package is not None:
        return None  # the registry declares which bases a package serves
    checks = [check_base_link(found.base_models, base_id)]
    if found.source in ("hub", "cache", "registry"):
        checks.append(check_name_suffix(found.repo, base_id))
    return _first_failure(*checks)


def _verify_safetensors(found: Found, base_id: str, base: ModelSpec | None, target: Target,
                        methods: set[str] | None, common: str | None) -> list[Checkpoint]:
    guess = found.registry.method if found.registry else guess_method(found.repo, [])
    try:
        config = _read(found, "config.json") or {}
        quant_files = {n: _read(found, n) for n in ("hf_quant_config.json", "quantize_config.json", "quant_config.json")}
    except InputError as exc:
        return [_rejected(found, guess or "other", f"unreadable metadata: {exc}", base_id)]
    from autoquant.quantconfig import parse_quantization

    try:
        quant = parse_quantization(config, quant_files["hf_quant_config.json"],
                                   quant_files["quantize_config.json"], quant_files["quant_config.json"])
    except InputError as exc:
        return [_rejected(found, guess or "other", f"malformed quantization config: {exc}", base_id)]
    if quant is None:
        if not config:
            return [_rejected(found, guess or "other", "no config.json: cannot verify", base_id)]
        return [_rejected(found, guess or "bf16", "not quantized: no quantization_config", base_id)]
    method = quant.method
    if methods is not None and not any(serves(m, method) for m in methods):
        if guess and guess in methods:
            return [_rejected(found, guess, f"named like {guess} but its config says {method} ({_describe(quant)})",
                              base_id, quant)]
        return []
    if method == "other":
        return [_rejected(found, guess or "other", f"unsupported quantization ({_describe(quant)})", base_id, quant)]
    spec = _candidate_spec(config, found.repo) if config else None
    ckpt = Checkpoint(repo=found.repo, method=method, revision=found.revision, source=found.source,
                      quant=quant, size_bytes=_weights_bytes(found),
                      intermediate_size=own_intermediate_size(spec, base))
    _set_extra(ckpt, base=base_id, local_path=found.local_path)
    failure = common or _first_failure(check_dimensions(spec, base) if spec and base else (True, None)) \
        or _loader_failure(engine_verdicts(quant, target, spec or base), target, ckpt)
    if failure:
        return [_finish(ckpt, False, failure, "rejected")]
    note = f"verified: {_describe(quant)}"
    if quant.act_order and target.tp > 1 and target.engine in ckpt.loadable_by:
        note += " (act-order under TP: Marlin's k-not-full path, correct but slower)"
    if spec is None and base is not None:
        note += "; dimensions not compared (config.json unreadable as a model config)"
    return [_finish(ckpt, True, note, "verified")]


def _verify_gguf(found: Found, base_id: str, base: ModelSpec | None, target: Target,
                 methods: set[str] | None, common: str | None) -> list[Checkpoint]:
    variants = gguf_files.group_variants(found.files)
    out = []
    for gtype, variant in sorted(variants.items()):
        method = f"gguf-{gtype}"
        if methods is not None and method not in methods:
            continue
        quant = gguf_quant_spec(gtype)
        files = variant.files
        ckpt = Checkpoint(repo=found.repo, method=method, revision=found.revision, files=list(files),
                          source=found.source, quant=quant, tokenizer=_canonical(base_id),
                          size_bytes=variant.size_bytes)
        local = found.local_path
        if found.source in ("cache", "local") and found.local_path and not found.local_path.endswith(".gguf"):
            local = f"{found.local_path.rstrip('/')}/{files[0]}"
        _set_extra(ckpt, base=base_id, local_path=local)
        failure = common or (variant.problem or None) or _loader_failure(engine_verdicts(quant, target, base),
                                                                         target, ckpt)
        if failure:
            out.append(_finish(ckpt, False, failure, "rejected"))
            continue
        header = found.read_header(files[0]) if found.read_header else None
        if header is None:
            out.append(_finish(ckpt, False, "GGUF header not readable: type taken from the file name only",
                               "unverified"))
            continue
        facts = gguf_files.header_facts(header)
        ok, reason = check_gguf_header(facts, gtype, base)
        if not ok:
            out.append(_finish(ckpt, False, reason or "header mismatch", "rejected"))
            continue
        note = f"verified by GGUF header: {facts.get('architecture')} {str(facts.get('quant') or gtype).upper()}"
        if variant.kind == "split":
            note += f", {len(files)} gguf-split shards (llama.cpp loads them from the first)"
        out.append(_finish(ckpt, True, note, "verified"))
    return out


def verify_registry_offline(entry: registry.RegistryEntry, base_id: str, base: ModelSpec | None,
                            target: Target) -> Checkpoint:
    """A registry entry whose config cannot be read (offline): published facts only, flagged unverified."""
    quant = entry.quant_spec()
    ckpt = Checkpoint(repo=entry.repo, method=entry.method, revision=entry.revision, files=list(entry.files),
                      source="registry", quant=quant,
                      tokenizer=_canonical(base_id) if entry.method.startswith("gguf-") else None,
                      intermediate_size=entry.intermediate_size)
    # Shapes: the base's, with the MLP width the row records where the repo pads it (its config is not
    # readable offline).
    shapes = base
    if base is not None and entry.intermediate_size and entry.intermediate_size != base.intermediate_size:
        shapes = replace(base, intermediate_size=int(entry.intermediate_size))
    _set_extra(ckpt, base=base_id)
    problems = [check_name_suffix(entry.repo, base_id), check_base_link([entry.base], base_id)]
    if entry.method.startswith("gguf-"):
        variant = gguf_files.group_variants(entry.files).get(entry.method.removeprefix("gguf-"))
        if variant and variant.problem:
            problems.append((False, variant.problem))
    failure = _first_failure(*problems)
    if failure is None and quant.quant_method != "unknown":
        failure = _loader_failure(engine_verdicts(quant, target, shapes), target, ckpt)
    if failure:
        suffix = " (shapes assumed from the base model)" if "Marlin" in failure and shapes is base else ""
        return _finish(ckpt, False, f"{failure}{suffix}", "rejected")
    if not entry.usable_offline:
        why = "pattern-derived, existence unconfirmed" if entry.status != "seen" else "quant facts incomplete"
        return _finish(ckpt, False, f"registry (unverified: {why}; config not readable offline)", "unconfirmed")
    # the row's evidence (where its facts were read) stays in checkpoints.yaml: provenance, not a user message
    return _finish(ckpt, False, f"{UNVERIFIED_OFFLINE}; planned on the bundled registry's recorded facts",
                   "unverified")


def _canonical(base_id: str) -> str:
    """The current id of a base repo (models.yaml `renames`), the tokenizer repo GGUF serving names."""
    return canonical_id(base_id)


def _rejected(found: Found, method: str, reason: str, base_id: str, quant: QuantSpec | None = None) -> Checkpoint:
    ckpt = Checkpoint(repo=found.repo, method=method, revision=found.revision, source=found.source, quant=quant)
    _set_extra(ckpt, base=base_id, local_path=found.local_path)
    return _finish(ckpt, False, reason, "rejected")


def _set_extra(ckpt: Checkpoint, **values: Any) -> None:
    for key, value in values.items():
        if hasattr(ckpt, key):
            setattr(ckpt, key, value)


def _finish(ckpt: Checkpoint, verified: bool, reason: str, status: str) -> Checkpoint:
    ckpt.verified = verified
    ckpt.reason = reason
    _set_extra(ckpt, status=status)
    return ckpt


# ---------------------------------------------------------------------------------------------- names


_NAME_METHODS = (
    (re.compile(r"gguf", re.I), "gguf"),
    (re.compile(r"nvfp4|[-_.]fp4(?:$|[-_.])", re.I), "nvfp4"),
    (re.compile(r"awq", re.I), "awq-int4"),
    # 8-bit GPTQ in either word order: -GPTQ-Int8, -Int8-GPTQ, -gptq-8bit, -8bit-gptq; W8A16 (llm-compressor).
    (re.compile(r"(?=.*gptq)(?=.*(?:^|[-_.])(?:int8|8[-_.]?bits?)(?:$|[-_.])).*|w8a16", re.I), "gptq-int8"),
    (re.compile(r"gptq|w4a16|int4", re.I), "gptq-int4"),
    (re.compile(r"w8a8|int8", re.I), "int8-sq"),
    (re.compile(r"fp8", re.I), "fp8"),
)


def guess_method(repo: str, tags: Iterable[str]) -> str | None:
    """A hint from the name and tags (never trusted: the config decides). "gguf" for GGUF repos."""
    name = short_name(repo)
    tagset = {t.lower() for t in tags}
    if "gguf" in tagset:
        return "gguf"
    for pattern, method in _NAME_METHODS:
        if pattern.search(name):
            return method
    for tag, method in (("awq", "awq-int4"), ("gptq", "gptq-int4"), ("fp8", "fp8")):
        if tag in tagset:
            return method
    return None
