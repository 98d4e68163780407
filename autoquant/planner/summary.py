"""A plan's rejections grouped by reason, one line each, for the human output (every rejection, in full, stays in
`plan --json` and `explain`). Pure: rejection records in, sentences out."""

from __future__ import annotations

import re
from collections.abc import Sequence

from autoquant.facts import Facts
from autoquant.planner import facts
from autoquant.records import Rejection

MAX_LINE = 200
_SLO = re.compile(r"misses the (.+?) SLO: ([\d.,]+) ?(ms|tok/s)? [<>] ([\d.,]+ ?(?:ms|tok/s)?)")
_QUALITY = re.compile(r"quality: \+([\d.]+) ppl exceeds the ([\d.]+) floor")


def _methods(methods: Sequence[str]) -> str:
    """'awq-int4, nvfp4' with four or more GGUF types counted, not listed."""
    ggufs = [m for m in methods if m.startswith("gguf-")]
    rest = [m for m in methods if not m.startswith("gguf-")]
    if len(ggufs) >= 4:
        return ", ".join([*rest, f"{len(ggufs)} GGUF types"])
    return ", ".join(dict.fromkeys(methods))


def _subjects(pairs: Sequence[tuple[str, str]], fx: Facts | None = None) -> str:
    """(method, engine) pairs as 'awq-int4, nvfp4 on vLLM, SGLang; 12 GGUF types on llama.cpp'."""
    by_engines: dict[tuple[str, ...], list[str]] = {}
    engines_of: dict[str, list[str]] = {}
    for method, engine in pairs:
        engines_of.setdefault(method, [])
        if engine not in engines_of[method]:
            engines_of[method].append(engine)
    for method, engines in engines_of.items():
        by_engines.setdefault(tuple(engines), []).append(method)
    parts = []
    for engines, methods in by_engines.items():
        labels = ", ".join(facts.engine_label(e, fx) for e in engines)
        parts.append(f"{_methods(methods)} on {labels}" if "*" not in methods else labels)
    return "; ".join(parts)


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 1].rstrip() + "…"


_ORDER = ("checkpoint", "quality", "slo", "memory", "speed")  # what the user can act on comes first


def group_rejections(rejected: Sequence[Rejection], model_id: str, fx: Facts | None = None) -> list[str]:
    """One line per reason, naming the methods and engines it covers: the checkpoint, quality, SLO and memory
    reasons first (the user can act on them), then the engines' rules, most common first."""
    groups: dict[tuple[int, str, bool], list[tuple[str, str]]] = {}

    def add(rule: str, key: str, method: str, engine: str, subject_first: bool = False) -> None:
        rank = _ORDER.index(rule) if rule in _ORDER else len(_ORDER)
        groups.setdefault((rank, key, subject_first), []).append((method, engine))

    for r in rejected:
        label = facts.engine_label(r.engine, fx)
        methods = [m.strip() for m in r.method.split(",")]
        text = r.reason
        lead = f"{r.method} on "
        if text.startswith(lead) and ": " in text:
            text = text.split(": ", 1)[1]
        for method in methods:
            if r.rule == "checkpoint" and "--allow-runtime-quantization" in r.reason:
                add(r.rule, "no checkpoint found; the engine can quantize the BF16 weights at load time "
                    "(--allow-runtime-quantization)", method, r.engine)
            elif r.rule == "checkpoint" and r.scope == "method":  # none exists (scope config: none loads here)
                add(r.rule, f"no checkpoint found (`autoquant explain {model_id} --recipes` shows how to make one)",
                    method, r.engine)
            elif r.rule == "checkpoint":
                add(r.rule, "the checkpoints found cannot be loaded there (`autoquant explain` says why)", method,
                    r.engine)
            elif r.rule == "quality" and (m := _QUALITY.search(r.reason)):
                add(r.rule, f"over the {m.group(2)} ppl quality floor", f"{method} (+{float(m.group(1)):.2f})",
                    r.engine)
            elif r.rule == "quality":
                add(r.rule, "quality unknown under a floor that was set", method, r.engine)
            elif r.rule == "slo" and (m := _SLO.search(r.reason)):
                add(r.rule, f"misses the {m.group(1)} SLO ({m.group(4).strip()})", method, r.engine)
            elif r.rule == "memory":
                add(r.rule, "does not fit in memory", method, r.engine)
            elif r.rule == "speed":
                add(r.rule, "no speed figure for this GPU", method, r.engine)
            else:  # an engine's rule: the same sentence for several engines or methods is one line
                add(r.rule, text.replace(label, "{engine}"), method, r.engine, subject_first=True)
    lines = []
    for (_, key, subject_first), pairs in sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[1]))):
        subjects = _subjects(pairs, fx)
        if subject_first:
            labels = {facts.engine_label(e, fx) for _, e in pairs}
            text = key.replace("{engine}", labels.pop() if len(labels) == 1 else "the engine")
            lines.append(_clip(f"{subjects}: {text}"))
        else:
            lines.append(_clip(f"{key}: {subjects}"))
    return lines
