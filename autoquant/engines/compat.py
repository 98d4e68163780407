"""`compat`: the one place engine x checkpoint format x method x device x TP rules are evaluated.

The planner's gates, the checkpoint verifier and the launchers all ask it; the rules are data (EngineSpec,
from engines.yaml). A predicate returns a `Verdict` (the shape of vLLM's `_check_marlin_supported`, plus the
rule id and its source), and on success names the kernel that would run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from autoquant.engines.shapes import linear_shapes
from autoquant.engines.spec import EngineSpec, FormatRule, KernelChoice
from autoquant.records import ModelSpec, QuantSpec


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""
    rule: str = ""
    source: str = ""
    kernel: str = ""  # the kernel that runs it, when ok
    # what the verdict is about: engine (any method on this device), checkpoint (its format), method (the
    # method on this GPU), config (this TP / KV dtype / shape)
    scope: str = ""

    def __bool__(self) -> bool:
        return self.ok


class DeviceLike(Protocol):
    kind: str  # cuda | apple | cpu
    key: str
    capability: str | None

    @property
    def cpu(self) -> Any: ...


@dataclass(frozen=True)
class Weights:
    """What kernel constraints read of the weights: bits, group (-1 per channel), zero point, act order."""

    bits: int
    group: int
    zero_point: bool
    integer: bool
    act_order: bool = False


def capability_tuple(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    parts = str(text).split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None


def _fmt(template: str, **values: Any) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template


def _fail(reason: str, rule: str, source: str = "", scope: str = "config") -> Verdict:
    return Verdict(False, reason, rule, source, scope=scope)


# ------------------------------------------------------------------------------------------- the checks


def check_device(engine: EngineSpec, device: DeviceLike | None) -> Verdict:
    if device is None:
        return Verdict(True)
    label = engine.label
    if device.kind not in engine.devices:
        reason = engine.device_reasons.get(device.kind, "{engine} does not run on this device")
        return _fail(_fmt(reason, engine=label), f"{device.kind}-not-{engine.id}", scope="engine")
    if device.kind == "cuda" and engine.min_capability:
        cap = capability_tuple(device.capability)
        if cap is None or cap < (capability_tuple(engine.min_capability) or (0, 0)):
            return _fail(f"{label} supports compute capability {engine.min_capability} and newer, {device.key} has "
                         f"{device.capability or 'none'}", f"{engine.id}-min-capability", engine.min_capability_source,
                         scope="engine")
    if device.kind == "cpu":
        cpu = device.cpu
        arch = (getattr(cpu, "arch", "") or "").lower().replace("amd64", "x86_64")
        need = engine.requires_cpu_flag.get(arch)
        flags = {f.lower() for f in getattr(cpu, "flags", ()) or ()}
        if need and flags and str(need["flag"]) not in flags:
            return _fail(str(need["reason"]), str(need.get("rule") or f"{engine.id}-cpu-flag"),
                         str(need.get("source", "")), scope="engine")
    return Verdict(True)


def _matches(rule: FormatRule, quant: QuantSpec) -> bool:
    for key, want in rule.when.items():
        have = getattr(quant, key, None)
        if isinstance(want, list):
            if have not in want:
                return False
        elif have != want:
            return False
    return True


def _norm(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def check_format(engine: EngineSpec, quant: QuantSpec) -> Verdict:
    """Can this engine load a checkpoint in this format at all? The first matching rule decides."""
    values = {f: getattr(quant, f) for f in quant.__dataclass_fields__}
    for rule in engine.formats:
        if not _matches(rule, quant):
            continue
        if rule.reject is not None:
            return _fail(_fmt(rule.reject, engine=engine.label, **values), rule.id, rule.source, "checkpoint")
        for req in rule.require:
            have = _norm(getattr(quant, req.field, None))
            if (req.allowed is not None and have not in req.allowed) or (req.refused is not None and have in req.refused):
                return _fail(_fmt(req.reason, engine=engine.label, **values), rule.id, rule.source, "checkpoint")
        return Verdict(True, rule=rule.id, source=rule.source)
    return Verdict(True)


def weights_of(subject: QuantSpec | str, method_facts: Mapping[str, Mapping[str, Any]]) -> Weights:
    if isinstance(subject, QuantSpec):
        q = subject
        default = method_facts.get(q.method, {})
        group = q.group_size if q.group_size is not None else _group(default.get("group"))
        zp = bool(q.zero_point if q.zero_point is not None else True) if q.quant_method in ("awq", "awq_marlin") \
            else q.symmetric is False
        return Weights(bits=int(q.weight_bits or default.get("bits") or 16), group=group, zero_point=zp,
                       integer=q.weight_type == "int" and q.container != "gguf", act_order=bool(q.act_order))
    m = method_facts.get(subject, {})
    return Weights(bits=int(m.get("bits") or 16), group=_group(m.get("group")), zero_point=bool(m.get("zero_point")),
                   integer="zero_point" in m)


def _group(value: Any) -> int:
    return -1 if value in (None, "channel") else int(value)


# Kernel constraints, by the name engines.yaml gives them: (params, weights, model, tp) -> (ok, reason)
Check = Callable[[Mapping[str, Any], Weights, ModelSpec | None, int], tuple[bool, str]]


def _marlin_types(p: Mapping[str, Any], w: Weights, model: ModelSpec | None, tp: int) -> tuple[bool, str]:
    if not w.integer:
        return True, ""  # FP8/FP4 Marlin: no integer type table
    allowed = p["bits_with_zero_point" if w.zero_point else "bits_without_zero_point"]
    if w.bits not in allowed:
        kind = "with zero points (AWQ)" if w.zero_point else "symmetric (GPTQ)"
        return False, f"Marlin supports {kind} {'/'.join(map(str, allowed))}-bit weights, not {w.bits}-bit"
    if w.group not in p["group_sizes"]:
        return False, f"Marlin supports group sizes {p['group_sizes']}, not {w.group}"
    return True, ""


def _marlin_shapes(p: Mapping[str, Any], w: Weights, model: ModelSpec | None, tp: int) -> tuple[bool, str]:
    if model is None:
        return True, ""
    n_min, k_min = int(p["min_thread_n"]), int(p["min_thread_k"])
    group = w.group
    for name, k, n, _ in linear_shapes(model, tp):
        if n % n_min:
            return False, f"{name} output {n} per GPU at TP={tp} is not a multiple of {n_min} (Marlin)"
        if k % k_min:
            return False, (f"{name} input {k * tp} at TP={tp} -> {k} per GPU, {k} % {k_min} != 0 "
                           f"(Marlin needs input size per partition divisible by {k_min})")
        if group > 0 and k % group:
            return False, f"{name} input {k} per GPU at TP={tp} is not a multiple of group size {group}"
    if model.is_moe and model.moe_intermediate_size:
        inter = model.moe_intermediate_size // tp
        hid_mult = int(p["moe_hidden_multiple"])
        need = max(n_min, group)  # check_moe_marlin_supports_layer: % max(GPTQ_MARLIN_MIN_THREAD_N, group)
        if model.hidden_size % hid_mult:
            return False, f"MoE hidden size {model.hidden_size} is not a multiple of {hid_mult} (MoE Marlin)"
        if inter % need:
            return False, (f"MoE expert intermediate {model.moe_intermediate_size} at TP={tp} -> {inter} per GPU, "
                           f"not a multiple of {need} (MoE Marlin)")
    return True, ""


def _machete(p: Mapping[str, Any], w: Weights, model: ModelSpec | None, tp: int) -> tuple[bool, str]:
    if w.group not in p["group_sizes"]:
        return False, f"Machete supports group sizes {p['group_sizes']}, not {w.group}"
    if w.act_order and tp > 1:
        return False, "act-order with the input partitioned across GPUs (TP > 1) is not supported by Machete"
    if model is None:
        return True, ""
    k_mult, n_mult = int(p["in_multiple"]), int(p["out_multiple"])
    for name, k, n, _ in linear_shapes(model, tp):
        if k % k_mult or n % n_mult:
            return False, (f"{name} {k}x{n} per GPU at TP={tp}: Machete needs input % {k_mult} and output % "
                           f"{n_mult}")
    return True, ""


CONSTRAINTS: dict[str, Check] = {"marlin_types": _marlin_types, "marlin_shapes": _marlin_shapes, "machete": _machete}


def check_tp(model: ModelSpec | None, tp: int) -> Verdict:
    """Tensor-parallel divisibility: attention heads split evenly; KV heads split or replicate."""
    if tp <= 1 or model is None:
        return Verdict(True)
    if model.num_heads % tp:
        return _fail(f"TP={tp}: {model.num_heads} attention heads are not divisible by TP={tp}", "tp-heads")
    kv = model.num_kv_heads
    if not model.is_mla and kv % tp and tp % kv:
        return _fail(f"TP={tp}: {kv} KV heads neither divide nor are divisible by TP={tp}", "tp-heads")
    if not model.is_moe and model.intermediate_size % tp:
        return _fail(f"TP={tp}: MLP width {model.intermediate_size} is not divisible by TP={tp}", "tp-heads")
    return Verdict(True)


def _in_range(choice: KernelChoice, cap: tuple[int, int] | None) -> bool:
    if cap is None:
        return True  # no GPU known: every kernel is possible
    lo = capability_tuple(choice.min_capability) or (0, 0)
    hi = capability_tuple(choice.max_capability) or (99, 9)
    return lo <= cap <= hi


def _resolve_kernel(kernel: str, device: DeviceLike | None) -> str:
    """A kernel named per backend (`llamacpp-{backend}`) for the device it runs on."""
    if "{backend}" not in kernel:
        return kernel
    kind = device.kind if device is not None else "cpu"
    return kernel.replace("{backend}", {"cuda": "cuda", "apple": "metal"}.get(kind, "cpu"))


def method_label(engine: EngineSpec, method: str) -> str:
    return str(engine.method_facts.get(method, {}).get("label", method))


def check_kernel(engine: EngineSpec, subject: QuantSpec | str, device: DeviceLike | None, tp: int,
                 model: ModelSpec | None) -> Verdict:
    """The kernel the engine runs this method (or these weights) with here, or why there is none."""
    method = subject.method if isinstance(subject, QuantSpec) else subject
    choices = engine.kernels_for(method)
    if choices is None:
        return check_method(engine, method)
    gpu_cap = capability_tuple(device.capability) if device is not None and device.kind == "cuda" else None
    if device is not None and device.kind == "cuda" and gpu_cap is None:
        gpu_cap = (0, 0)
    weights = weights_of(subject, engine.method_facts)
    values = dict(engine=engine.label, method=method, method_label=method_label(engine, method),
                  gpu=device.key if device is not None else "this GPU",
                  capability=(device.capability if device is not None else None) or "none")
    cap_failure: Verdict | None = None
    shape_failure: Verdict | None = None
    for choice in choices:
        if not _in_range(choice, gpu_cap):
            if cap_failure is None:
                need = choice.min_capability if gpu_cap is not None and gpu_cap < (
                    capability_tuple(choice.min_capability) or (0, 0)) else choice.max_capability
                reason = _fmt(choice.reason, need=need, **values) if choice.reason else (
                    f"{method} on {engine.label}: needs compute capability {choice.min_capability}"
                    + (f" to {choice.max_capability}" if choice.max_capability else "")
                    + f" ({choice.kernel}), {values['gpu']} has {values['capability']}")
                cap_failure = _fail(reason, choice.rule or f"{engine.id}-{choice.kernel}-capability", choice.source,
                                    "method")
            continue
        failed = None
        for name in choice.constraints:
            ok, why = CONSTRAINTS[name](engine.constraint_params.get(name, {}), weights, model, tp)
            if not ok:
                failed = _fail(f"{method} on {engine.label} ({choice.kernel}): {why}", name,
                               str(engine.constraint_params.get(name, {}).get("source", "")))
                break
        if failed is not None:
            shape_failure = failed
            continue
        return Verdict(True, rule=choice.rule, source=choice.source, kernel=_resolve_kernel(choice.kernel, device))
    # (a Verdict is falsy when not ok: compare with None)
    if shape_failure is not None:
        return shape_failure
    if cap_failure is not None:
        return cap_failure
    return _fail(f"no kernel for {method} on {engine.label}", f"{engine.id}-no-kernel")


def check_method(engine: EngineSpec, method: str) -> Verdict:
    """Does the engine run this method at all (on some GPU)?"""
    if engine.kernels_for(method) is not None:
        return Verdict(True)
    found = engine.unsupported(method)
    if found is None:
        return _fail(f"{method_label(engine, method)} is not a method {engine.label} runs", f"{engine.id}-no-{method}",
                     scope="method")
    rule, reason, pattern = found
    return _fail(reason, rule, scope="engine" if "*" in pattern else "method")


def check_kv(engine: EngineSpec, kv_cache_dtype: str | None, device: DeviceLike | None) -> Verdict:
    if kv_cache_dtype is None:
        return Verdict(True)
    kv = engine.kv_from_vllm.get(kv_cache_dtype, kv_cache_dtype)
    if kv not in engine.kv_dtypes:
        return _fail(f"--kv-cache-dtype {kv_cache_dtype} has no {engine.label} equivalent (it takes "
                     f"{', '.join(engine.kv_dtypes)})", "kv-dtype", engine.kv_source)
    need = engine.kv_requires.get(kv)
    if need and device is not None and device.kind == "cuda":
        cap = capability_tuple(device.capability) or (0, 0)
        if cap < (capability_tuple(need.get("min_capability")) or (0, 0)):
            return _fail(_fmt(str(need["reason"]), gpu=device.key, capability=device.capability or "none"),
                         "kv-dtype", engine.kv_source)
    return Verdict(True)


def compat(engine: EngineSpec, subject: QuantSpec | str, device: DeviceLike | None = None, tp: int = 1, *,
           model: ModelSpec | None = None, kv_cache_dtype: str | None = None) -> Verdict:
    """Can `engine` run `subject` (a checkpoint's QuantSpec, or a method id) on `device` at TP=`tp`?

    `device` None: no GPU known (capability and device rules not checked); `model`: the shapes to check
    kernel and TP rules against (the checkpoint's own, e.g. a padded MLP width, when it has them)."""
    checks: list[Callable[[], Verdict]] = [lambda: check_device(engine, device)]
    method = subject.method if isinstance(subject, QuantSpec) else subject
    if isinstance(subject, QuantSpec):
        checks.append(lambda: check_format(engine, subject))
        if subject.method == "other":
            checks.append(lambda: _fail(f"{engine.label}: unsupported quantization ({subject.quant_method})",
                                        "unsupported-quantization", scope="checkpoint"))
    checks.append(lambda: check_method(engine, method))
    if engine.tensor_parallel:
        checks.append(lambda: check_tp(model, tp))
    checks.append(lambda: check_kernel(engine, subject, device, tp if engine.tensor_parallel else 1, model))
    checks.append(lambda: check_kv(engine, kv_cache_dtype, device))
    kernel = ""
    for check in checks:
        verdict = check()
        if not verdict.ok:
            return verdict
        kernel = verdict.kernel or kernel
    return Verdict(True, kernel=kernel)
