"""Engine command-line flags: the option lists each engine version accepts (engine_options/*.yaml, generated
from the engines' own parsers where they install), classification of a `vllm serve` style command line, and
which engine can honour which flag. Pure: option lists come in as parsed data.

`classify(tokens, ...)` groups tokens into `Arg`s (a flag and its values) using vLLM's real option schema,
so a flag's value is never taken for MODEL and `--x=v`, `--x_y`, `-O3` and `--json.key v` read as vLLM
reads them. `honour(spec, args)` says whether an engine can carry every one of them (translated, dropped as
meaningless there, or native), else names the flag; the planner rules such an engine out before planning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autoquant.engines.spec import EngineSpec


@dataclass(frozen=True)
class Option:
    name: str  # canonical spelling
    takes_value: bool = True
    nargs: str | None = None  # "+", "*", "?"
    choices: tuple[str, ...] = ()
    negated: bool = False  # this spelling turns the flag off (--no-x, --disable-x)


@dataclass(frozen=True)
class OptionList:
    """One engine version's options: every spelling (aliases included) -> its Option."""

    engine: str
    version: str
    source: str
    options: Mapping[str, Option] = field(default_factory=dict)
    underscores: bool = False  # FlexibleArgumentParser: --max_model_len == --max-model-len

    def lookup(self, spelling: str) -> Option | None:
        if spelling in self.options:
            return self.options[spelling]
        if self.underscores and spelling.startswith("--"):
            return self.options.get("--" + spelling[2:].replace("_", "-"))
        return None

    def __contains__(self, spelling: str) -> bool:
        return self.lookup(spelling) is not None


def option_list(data: Mapping[str, Any], flavor: str | None = None) -> OptionList:
    """engine_options/<engine>-<version>.yaml (parsed) -> OptionList; `flavor` picks one of `flavors`."""
    raw = data.get("options") or {}
    if flavor is not None:
        raw = ((data.get("flavors") or {}).get(flavor) or {}).get("options") or {}
    out: dict[str, Option] = {}
    for name, entry in raw.items():
        entry = entry or {}
        negated = set(entry.get("negated") or ())
        takes = entry.get("takes_value", entry.get("type") != "flag")  # click lists give a type; flag: no value
        base = dict(takes_value=bool(takes), nargs=entry.get("nargs"),
                    choices=tuple(str(c) for c in entry.get("choices") or ()))
        out[str(name)] = Option(str(name), **base)
        for alias in entry.get("aliases") or ():
            out[str(alias)] = Option(str(name), negated=alias in negated, **base)
    return OptionList(engine=str(data.get("engine", "")), version=str(data.get("version", "")),
                      source=str(data.get("source", "")), options=out, underscores=bool(data.get("underscores")))


@dataclass(frozen=True)
class Arg:
    """One flag as given, with its values. `option`: what vLLM's schema says of it (None: not a vLLM flag)."""

    given: str  # the flag as typed (before `=`)
    values: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()  # exactly as given, for passing through verbatim
    option: Option | None = None
    native_to: tuple[str, ...] = ()  # engines whose own option list has this spelling

    @property
    def name(self) -> str:
        """Canonical vLLM name when vLLM knows it, else the spelling given."""
        return self.option.name if self.option else self.given

    @property
    def value(self) -> str | None:
        return self.values[0] if self.values else None


_OPT_LEVEL = re.compile(r"^-O(=?)(\d)$")


def is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _is_flag(token: str) -> bool:
    return token.startswith("-") and token != "-" and not is_number(token)


def classify(tokens: Sequence[str], vllm: OptionList, natives: Mapping[str, Iterable[OptionList]] | None = None
             ) -> tuple[list[Arg], list[str]]:
    """(flags with their values, bare tokens no flag took) in order, as vLLM's own parser would group them."""
    natives = natives or {}
    args: list[Arg] = []
    bare: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not _is_flag(token):
            bare.append(token)
            i += 1
            continue
        m = _OPT_LEVEL.match(token)
        if m:  # -O3 / -O=3: --optimization-level
            opt = vllm.lookup("--optimization-level")
            args.append(Arg(token, (m.group(2),), (token,), opt, _native(token, natives)))
            i += 1
            continue
        given, eq, inline = token.partition("=")
        base = given.split(".", 1)[0] if given.startswith("--") and "." in given else given  # --json.key
        opt = vllm.lookup(base) or (vllm.lookup("--optimization-level") if given == "-O" else None)
        native = _native(given, natives)
        takes = opt.takes_value if opt is not None else _native_takes_value(given, natives)
        values: list[str] = []
        used = [token]
        if eq:
            values.append(inline)
        elif takes:
            multi = opt is not None and opt.nargs in ("+", "*")
            optional = opt is not None and opt.nargs == "?"
            while i + 1 < len(tokens) and (not _is_flag(tokens[i + 1]) or (not values and not multi and not optional
                                                                          and _looks_like_value(tokens[i + 1]))):
                i += 1
                values.append(tokens[i])
                used.append(tokens[i])
                if not multi:
                    break
        args.append(Arg(given, tuple(values), tuple(used), opt, native))
        i += 1
    return args, bare


def _looks_like_value(token: str) -> bool:
    """A value that starts with '-' (a negative number is not a flag; JSON never starts with '-')."""
    return is_number(token)


def _native(given: str, natives: Mapping[str, Iterable[OptionList]]) -> tuple[str, ...]:
    return tuple(e for e, lists in natives.items() if any(given in ol for ol in lists))


def _native_takes_value(given: str, natives: Mapping[str, Iterable[OptionList]]) -> bool:
    for lists in natives.values():
        for ol in lists:
            opt = ol.lookup(given)
            if opt is not None:
                return opt.takes_value
    return True  # unknown: assume `--flag value`, as argparse-style engines mostly take


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """Leading numeric release of a PEP 440-ish string: '0.33.0' -> (0, 33, 0), '1.0.0rc4' -> (1, 0, 0)."""
    if not text:
        return None
    m = re.match(r"v?(\d+(?:\.\d+)*)", text.strip())
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def at_least(version: str | None, minimum: str, unknown: bool = True) -> bool:
    """version >= minimum; `unknown` is the answer when the version cannot be read (not installed here)."""
    have, need = parse_version(version), parse_version(minimum)
    if have is None or need is None:
        return unknown
    width = max(len(have), len(need))
    return have + (0,) * (width - len(have)) >= need + (0,) * (width - len(need))


@dataclass(frozen=True)
class Honour:
    """How one engine carries one user flag: its own tokens, or a reason it cannot."""

    ok: bool
    tokens: tuple[str, ...] = ()
    reason: str = ""
    dropped: str = ""  # carried as nothing, because it means nothing there (said in a note)


def honour_arg(spec: EngineSpec, arg: Arg, version: str | None, flavor: str | None = None,
               targets: Sequence[OptionList] = ()) -> Honour:
    """Can `spec` (at `version`; llama.cpp: `flavor` server|python, None: unknown) carry this flag, and as what?

    engines.yaml `flags.translate` entries: {to: FLAG} (or per flavor {server: F, python: F}), {via: plan} (the
    launcher carries it from the plan or the common options), optionally `since: VERSION`; `drop`: flags that
    mean nothing there (carried as nothing, with a note); `refuse`: flags it cannot carry, and why."""
    flags = spec.flags
    if spec.takes_vllm_flags:
        if arg.option is None and arg.native_to and spec.id not in arg.native_to:
            return Honour(False, reason=f"{arg.given} is not a vLLM flag ({'/'.join(arg.native_to)} has it): "
                                        f"pass --engine {arg.native_to[0]}")
        return Honour(True, arg.tokens)
    known = _vllm_spellings(flags)
    if spec.id in arg.native_to and arg.given not in known and arg.name not in known:
        return _honour_native(spec, arg, targets)  # the engine's own option, given as such
    where = _where(spec, flavor, None)
    for key in (arg.given, arg.name):
        entry = (flags.get("translate") or {}).get(key)
        if entry is not None:
            since = entry.get("since")
            have = version or flags.get("assumed_version")
            if since and not at_least(have, str(since), unknown=False):
                shown = version or f"{have} (assumed: not installed here)"
                return Honour(False, reason=f"{arg.given}: {where.split()[0]} {shown} has no equivalent "
                                            f"(added in {since})")
            if entry.get("via") == "plan":
                return Honour(True)
            flavors = {k: v for k, v in entry.items() if k in ("server", "python")}
            if flavors:
                target = flavors.get(flavor) if flavor else None
                if flavor is None and all(flavors.get(f) for f in ("server", "python")):
                    target = flavors["server"]
            else:
                target = entry.get("to")
            if not target:
                return Honour(False, reason=f"{arg.given} has no {where} equivalent")
            bad = _outside_choices(target, arg.values, targets)
            if bad:
                return Honour(False, reason=f"{arg.given} {bad[0]}: {where}'s {target} takes {', '.join(bad[1])}")
            return Honour(True, (f"{target}={arg.values[0]}",) if _inline(arg) else (target, *arg.values))
        if key in (flags.get("drop") or {}):
            return Honour(True, dropped=str(flags["drop"][key]))
        if key in (flags.get("refuse") or {}):
            return Honour(False, reason=str(flags["refuse"][key]))
    return Honour(False, reason=f"{arg.given} has no {where} equivalent")


def _honour_native(spec: EngineSpec, arg: Arg, targets: Sequence[OptionList]) -> Honour:
    """An engine's own option passes verbatim, unless it sets what autoquant sets from the plan
    (flags.planned) or takes a value its declared choices lack."""
    opt = next((o for o in (ol.lookup(arg.given) for ol in targets) if o is not None), None)
    name = opt.name if opt is not None else arg.given
    planned = spec.flags.get("planned") or {}
    if name in planned:
        return Honour(False, reason=f"{arg.given}: autoquant sets {spec.label}'s {name} from the plan; {planned[name]}")
    bad = _outside_choices(name, arg.values, targets) if opt is not None and opt.takes_value else None
    if bad:
        return Honour(False, reason=f"{arg.given} {bad[0]}: {spec.label}'s {name} takes {', '.join(bad[1])}")
    return Honour(True, arg.tokens)


def _inline(arg: Arg) -> bool:
    return len(arg.tokens) == 1 and "=" in arg.tokens[0] and len(arg.values) == 1


def _outside_choices(target: str, values: Sequence[str], targets: Sequence[OptionList]
                     ) -> tuple[str, tuple[str, ...]] | None:
    """(the first value the target option's declared choices lack, those choices), or None. A value valid
    in vLLM (a parser name, a KV dtype) need not be valid under the other engine's same-named flag."""
    for ol in targets:
        opt = ol.lookup(target)
        if opt is not None and opt.choices:
            for v in values:
                if v not in opt.choices:
                    return v, opt.choices
            return None
    return None


def _vllm_spellings(flags: Mapping[str, Any]) -> set[str]:
    return set(flags.get("translate") or {}) | set(flags.get("drop") or {}) | set(flags.get("refuse") or {})


def _where(spec: EngineSpec, flavor: str | None, version: str | None) -> str:
    names = spec.flags.get("cli_name") or spec.label
    name = str(names.get(flavor, spec.label) if isinstance(names, Mapping) else names)
    return f"{name} {version}" if version else name


def translate(spec: EngineSpec, args: Iterable[Arg], version: str | None = None,
              flavor: str | None = None, targets: Sequence[OptionList] = ()) -> tuple[list[str], list[str]]:
    """(the engine's argv for these flags, notes on what was dropped); UsageError-worthy flags raise ValueError
    with the reason (callers turn it into the user's one line)."""
    out: list[str] = []
    notes: list[str] = []
    for arg in args:
        h = honour_arg(spec, arg, version, flavor, targets)
        if not h.ok:
            raise ValueError(h.reason)
        out.extend(h.tokens)
        if h.dropped:
            notes.append(f"{arg.given}: {h.dropped}; nothing to pass")
    return out, notes


def honour(spec: EngineSpec, args: Iterable[Arg], version: str | None = None,
           flavor: str | None = None, targets: Sequence[OptionList] = ()) -> tuple[bool, str]:
    """(True, "") when the engine can carry every flag, else (False, the first flag it cannot, and why).
    `targets`: the engine's own option lists (their declared choices are checked)."""
    for arg in args:
        h = honour_arg(spec, arg, version, flavor, targets)
        if not h.ok:
            return False, h.reason
    return True, ""
