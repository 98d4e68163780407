"""Compatibility rules: predicates returning `(ok, reason)`, in the shape of vLLM's
`_check_marlin_supported`. The rules themselves are data (autoquant/data/engines.yaml); this module
evaluates them. The checkpoint verifier imports `check_marlin_supported` and `check_marlin_shapes`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from autoquant.planner import facts, memory
from autoquant.planner.hardware import Device
from autoquant.records import ModelSpec

Result = tuple[bool, str | None]


def _cap(text: str | None) -> tuple[int, int] | None:
    return facts.capability_tuple(text)


def check_marlin_supported(quant_bits: int, group_size: int, zero_point: bool, capability: str) -> Result:
    """Can vLLM's Marlin run this weight type here (bits, group size, zero point, compute capability)?"""
    m = facts.marlin()
    cap = _cap(capability)
    need = str(m["min_capability"])
    if cap is None:
        return False, f"Marlin needs a CUDA GPU with compute capability {need}"
    if cap < (_cap(need) or (0, 0)):
        return False, f"Marlin needs compute capability {need}, this GPU has {capability}"
    allowed_bits = m["bits_with_zero_point" if zero_point else "bits_without_zero_point"]
    if quant_bits not in allowed_bits:
        kind = "with zero points (AWQ)" if zero_point else "symmetric (GPTQ)"
        return False, f"Marlin supports {kind} {'/'.join(map(str, allowed_bits))}-bit weights, not {quant_bits}-bit"
    groups = m["group_sizes"]
    if group_size not in groups:
        return False, f"Marlin supports group sizes {groups}, not {group_size}"
    return True, None


def linear_shapes(model: ModelSpec, tp: int) -> Iterator[tuple[str, int, int]]:
    """(name, input size, output size) per tensor-parallel partition of every linear layer."""
    h, d = model.hidden_size, model.head_dim
    heads_tp = model.num_heads // tp
    kv_tp = memory.kv_heads_per_gpu(model, tp)  # KV heads replicated when tp > kv heads (vLLM)
    if not model.is_mla:
        yield "qkv_proj", h, (heads_tp + 2 * kv_tp) * d
        yield "o_proj", heads_tp * d, h
    dense_layers = model.num_layers if not model.is_moe else model.first_k_dense_layers
    if dense_layers:
        inter = model.intermediate_size // tp
        yield "gate_up_proj", h, 2 * inter
        yield "down_proj", inter, h
    if model.is_moe and model.shared_expert_intermediate_size:
        shared = model.shared_expert_intermediate_size // tp
        yield "shared_expert.gate_up_proj", h, 2 * shared
        yield "shared_expert.down_proj", shared, h


def check_marlin_shapes(model: ModelSpec, tp: int, group_size: int) -> Result:
    """Marlin's per-partition shape limits (output % 64, input % 128, input % group) for every linear."""
    m = facts.marlin()
    n_min, k_min = int(m["min_thread_n"]), int(m["min_thread_k"])
    for name, k, n in linear_shapes(model, tp):
        if n % n_min:
            return False, f"{name} output {n} per GPU at TP={tp} is not a multiple of {n_min} (Marlin)"
        if k % k_min:
            full = k * tp
            return False, (f"{name} input {full} at TP={tp} -> {k} per GPU, {k} % {k_min} != 0 "
                           f"(Marlin needs input size per partition divisible by {k_min})")
        if group_size > 0 and k % group_size:
            return False, f"{name} input {k} per GPU at TP={tp} is not a multiple of group size {group_size}"
    if model.is_moe and model.moe_intermediate_size:
        inter = model.moe_intermediate_size // tp
        hid_mult = int(m["moe_hidden_multiple"])
        # check_moe_marlin_supports_layer: intermediate per partition % max(GPTQ_MARLIN_MIN_THREAD_N, group) == 0
        need = max(n_min, group_size)
        if model.hidden_size % hid_mult:
            return False, f"MoE hidden size {model.hidden_size} is not a multiple of {hid_mult} (MoE Marlin)"
        if inter % need:
            return False, (f"MoE expert intermediate {model.moe_intermediate_size} at TP={tp} -> {inter} per GPU, "
                           f"not a multiple of {need} (MoE Marlin)")
    return True, None


def check_tp(model: ModelSpec, tp: int) -> Result:
    """vLLM/TRT-LLM tensor-parallel divisibility: attention heads split evenly; KV heads split or replicate."""
    if tp == 1:
        return True, None
    if model.num_heads % tp:
        return False, f"{model.num_heads} attention heads are not divisible by TP={tp}"
    kv = model.num_kv_heads
    if not model.is_mla and kv % tp and tp % kv:
        return False, f"{kv} KV heads neither divide nor are divisible by TP={tp}"
    if not model.is_moe and model.intermediate_size % tp:
        return False, f"MLP width {model.intermediate_size} is not divisible by TP={tp}"
    return True, None


def _fmt(template: str, **values: Any) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError):
        return template


def check_engine_method(engine: str, method: str, device: Device) -> tuple[bool, str | None, str]:
    """The data-driven rules of engines.yaml: (ok, reason, rule id) for this engine/method on this device."""
    cap = _cap(device.capability)
    values = dict(engine=facts.engine_label(engine), method=method, method_label=facts.method_label(method),
                  gpu=device.key, capability=device.capability or "none", arch=device.architecture or "")
    for rule in facts.rules():
        if engine not in rule.get("engines", [engine]):
            continue
        if "methods" in rule and method not in rule["methods"]:
            continue
        if "methods_prefix" in rule and not method.startswith(rule["methods_prefix"]):
            continue
        if "methods_not_prefix" in rule and method.startswith(rule["methods_not_prefix"]):
            continue
        if "device" in rule and rule["device"] != device.kind:
            continue
        reason = _fmt(str(rule.get("reason", "")), min_capability=rule.get("min_capability"),
                      max_capability=rule.get("max_capability"), **values)
        rid = str(rule.get("id", ""))
        if "min_capability" in rule:
            if device.kind != "cuda":
                continue  # capability rules concern CUDA devices; device rules cover the rest
            if cap is None or cap < (_cap(str(rule["min_capability"])) or (0, 0)):
                return False, reason, rid
            continue
        if "max_capability" in rule:
            if device.kind == "cuda" and cap is not None and cap > (_cap(str(rule["max_capability"])) or (99, 9)):
                return False, reason, rid
            continue
        if "requires_cpu_flag" in rule:
            arch = (device.cpu.arch or "").lower()
            flags = {f.lower() for f in device.cpu.flags}
            if arch in [a.lower() for a in rule.get("cpu_arch", [])] and flags and \
                    rule["requires_cpu_flag"] not in flags:
                return False, reason, rid
            continue
        return False, reason, rid
    return True, None, ""


def check_method_shapes(model: ModelSpec, method: str, tp: int, capability: str | None) -> Result:
    """Marlin checks where vLLM runs the method on a Marlin kernel at this capability (methods.yaml `kernels`:
    e.g. GPTQ on SM90 runs Machete, NVFP4 below SM100 runs FP4 Marlin)."""
    m = facts.methods().get(method, {})
    if not facts.kernel_for(method, "vllm", capability, "cuda").startswith("marlin-"):
        return True, None
    group = m.get("group")
    group = -1 if group in (None, "channel") else int(group)
    bits = int(m["bits"])
    if "zero_point" in m:  # integer weights (AWQ/GPTQ): Marlin's supported types
        ok, reason = check_marlin_supported(bits, group, bool(m["zero_point"]), capability or "")
        if not ok:
            return ok, reason
    ok, reason = check_marlin_shapes(model, tp, group)
    if not ok:
        return False, f"{method} on vLLM (Marlin): {reason}"
    return True, None
