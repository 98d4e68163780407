"""The user's `vllm serve` flags, read once: planner pins, the options every engine carries, and the rest.

`autoquant serve MODEL --port 8000 -tp 4 --enable-prefix-caching` is a drop-in for `vllm serve`. Every token
is classified against vLLM's own option schema (autoquant/data/engine_options/vllm-*.yaml, generated from its
parser) by autoquant.engines.flags. The flags in READ_FLAGS pin a decision (quantization, parallelism,
KV-cache dtype, context length, batch) or name something every engine must carry (host, port, served name,
API key, dtype, memory fraction): they are read into `Pins` and `ServeOptions`. Every flag also stays, as
given, in `ServeOptions.user_args`, which the vLLM launcher passes through verbatim; other engines get the
translations in their spec (engines.yaml `flags`).
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from autoquant.argtypes import in_range, max_number_chars, positive_int
from autoquant.engines.flags import Arg, OptionList, classify, is_number, option_list
from autoquant.errors import UsageError, shown
from autoquant.facts import option_data

from .base import ServeOptions

__all__ = ["READ_FLAGS", "SERVER_FLAGS", "Pins", "classify_tokens", "is_number", "parse_human_int",
           "split_passthrough", "vllm_options"]


@dataclass
class Pins:
    """Constraints for the planner, each from a flag the user gave (None: the planner decides)."""

    engine: str | None = None
    method: str | None = None
    tp: int | None = None
    pp: int | None = None
    dp: int | None = None
    kv_cache_dtype: str | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    memory_fraction: float | None = None
    sources: dict[str, str] = field(default_factory=dict)  # pin -> the flag it came from

    def as_kwargs(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "sources" and v is not None}


@functools.cache  # the option lists are immutable data: built once per process
def vllm_options(version: str | None = None) -> OptionList:
    return option_list(option_data("vllm", version))


@functools.cache
def native_option_lists() -> dict[str, list[OptionList]]:
    """engine -> its own option lists (flavors included), for the engines whose options are not vLLM's."""
    from autoquant.facts import default_facts, option_list_names

    from . import versions

    out: dict[str, list[OptionList]] = {}
    for eid, spec in default_facts().engines.items():
        name = spec.flags.get("options")
        if not name or spec.takes_vllm_flags or name not in option_list_names():
            continue
        # the list of the installed version (the newest shipped at or below it), else the assumed one
        data = option_data(str(name), versions.engine_version(eid) or spec.flags.get("assumed_version"))
        flavors = list(data.get("flavors") or {})
        out[eid] = [option_list(data, f) for f in flavors] if flavors else [option_list(data)]
    return out


def classify_tokens(tokens: Sequence[str]) -> tuple[list[Arg], list[str]]:
    return classify(tokens, vllm_options(), native_option_lists())


def _rules() -> Mapping:
    from autoquant.facts import default_facts

    return default_facts().engine("vllm").flags


# --- the flags autoquant reads -----------------------------------------------------------------------------

Reader = Callable[[Arg, Pins, ServeOptions], None]


def _quantization(arg: Arg, pins: Pins, opts: ServeOptions) -> None:
    q = (arg.value or "").strip().lower()
    to_method = _rules()["quantization_to_method"]
    if q in to_method:
        if to_method[q]:
            _pin(pins, "method", to_method[q], arg.given)
    else:
        known = _rules().get("quantization_methods") or ()
        if known and q not in known:
            raise UsageError(f"{arg.given} {arg.value}: not a vLLM quantization method (it takes "
                             f"{', '.join(known)})")
        # a vLLM method autoquant does not model (experts_int8, torchao, ...): vLLM applies it to the model's own
        # 16-bit weights at load time; the flag is kept verbatim, which only vLLM understands
        opts.unmapped_quantization = arg.value
        _pin(pins, "engine", "vllm", arg.given)
        _pin(pins, "method", "bf16", arg.given)


def _dtype(arg: Arg, pins: Pins, opts: ServeOptions) -> None:
    choices = arg.option.choices if arg.option else ()
    if choices and arg.value not in choices:
        raise UsageError(f"--dtype must be one of {', '.join(choices)}, not {arg.value!r}")
    opts.dtype = arg.value


def _memory_fraction(arg: Arg, pins: Pins, opts: ServeOptions) -> None:
    try:
        frac = float(arg.value or "")
    except ValueError:
        frac = -1.0
    if not 0 < frac <= 1:
        raise UsageError(f"--gpu-memory-utilization must be a fraction in (0, 1], not {arg.value!r}")
    opts.gpu_memory_utilization = frac
    _pin(pins, "memory_fraction", frac, arg.given)


def _port(arg: Arg, pins: Pins, opts: ServeOptions) -> None:
    port = positive_int(arg.value or "", arg.given)
    if not 0 < port < 65536:
        raise UsageError(f"--port must be 1-65535, not {arg.value}")
    opts.port = port


def _host(arg: Arg, pins: Pins, opts: ServeOptions) -> None:
    opts.host = check_host(arg.value or "", arg.given)


def check_host(value: str, flag: str = "--host") -> str:
    """A bind address: an IP literal or an RFC 1123 host name (engines pass it to getaddrinfo/uvicorn; a
    space or ';' there is a mistake, and never something to hand on)."""
    import ipaddress
    import re

    try:
        ipaddress.ip_address(value.strip("[]"))
        return value
    except ValueError:
        pass
    label = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
    if len(value) <= 253 and re.fullmatch(rf"{label}(\.{label})*\.?", value):
        return value
    raise UsageError(f"{flag} must be an IP address or a host name (e.g. 0.0.0.0, 127.0.0.1, ::), not {shown(value)}")


def _set(attr: str) -> Reader:
    def read(arg: Arg, pins: Pins, opts: ServeOptions) -> None:
        setattr(opts, attr, arg.value)
    return read


def _pinner(name: str, parse: Callable[[str, str], object]) -> Reader:
    def read(arg: Arg, pins: Pins, opts: ServeOptions) -> None:
        _pin(pins, name, parse(arg.value or "", arg.given), arg.given)
    return read


def _served_names(arg: Arg, pins: Pins, opts: ServeOptions) -> None:
    opts.served_model_name = list(arg.values)


def _count(bound: str) -> Callable[[str, str], int]:
    def parse(value: str, flag: str) -> int:
        return in_range(positive_int(value, flag), bound, flag)
    return parse


def _kv(value: str, flag: str) -> str:
    return value


def _human(value: str, flag: str) -> int:
    return parse_human_int(flag, value)


# canonical vLLM flag -> what reading it does. Each engine's spec says how it carries these (engines.yaml
# flags.translate `via: plan`: from the plan or ServeOptions, in its own spelling).
READ_FLAGS: dict[str, Reader] = {
    "--quantization": _quantization,
    "--tensor-parallel-size": _pinner("tp", _count("gpus_per_node")),
    "--pipeline-parallel-size": _pinner("pp", _count("nodes")),
    "--data-parallel-size": _pinner("dp", _count("gpus_per_node")),
    "--kv-cache-dtype": _pinner("kv_cache_dtype", _kv),
    "--max-model-len": _pinner("max_model_len", _human),
    "--max-num-seqs": _pinner("max_num_seqs", _count("concurrency")),
    "--dtype": _dtype,
    "--gpu-memory-utilization": _memory_fraction,
    "--host": _host,
    "--port": _port,
    "--api-key": _set("api_key"),
    "--served-model-name": _served_names,
}


# Flags every OpenAI-compatible server has: they leave the choice of engine to autoquant (serve.flag_rulings).
SERVER_FLAGS = frozenset({"--host", "--port", "--api-key", "--served-model-name"})


def split_passthrough(tokens: Sequence[str]) -> tuple[Pins, ServeOptions]:
    """Read pins and common options out of the user's engine flags. `user_args` keeps every token as given;
    `passthrough` keeps the flags autoquant does not read, in order (for engines that translate them)."""
    args, bare = classify_tokens(list(tokens))
    return read_args(args, bare)


def read_args(args: Sequence[Arg], bare: Sequence[str] = ()) -> tuple[Pins, ServeOptions]:
    if bare:
        raise UsageError(f"{bare[0]!r} is not the value of a flag (one MODEL, given first as with vllm serve)")
    pins, opts = Pins(), ServeOptions()
    rest: list[str] = []
    user: list[str] = []
    for arg in args:
        user.extend(arg.tokens)
        if arg.option is not None and arg.option.takes_value and arg.option.nargs not in ("?", "*") \
                and not arg.values:
            raise UsageError(f"{arg.given} needs a value")
        reader = READ_FLAGS.get(arg.name) if arg.option is not None else None
        if reader is None:
            rest.extend(arg.tokens)
            continue
        if not arg.values or (arg.option and arg.option.takes_value and arg.values == ("",)):
            raise UsageError(f"{arg.given} needs a value")
        reader(arg, pins, opts)
    opts.passthrough = rest
    opts.user_args = user
    opts.pinned = set(pins.sources)
    return pins, opts


def _pin(pins: Pins, name: str, value, flag: str) -> None:
    old = getattr(pins, name)
    if old is not None and old != value:
        raise UsageError(f"{flag} {value} conflicts with {pins.sources.get(name)} {old}")
    setattr(pins, name, value)
    pins.sources[name] = flag


def parse_human_int(flag: str, value: str) -> int:
    """vLLM's human_readable_int: 4096, 32k (=32000), 32K (=32768), 1m/1M."""
    text = value.strip()
    units = {"k": 1000, "K": 1024, "m": 1000**2, "M": 1024**2, "g": 1000**3, "G": 1024**3}
    try:
        if len(text) > max_number_chars():
            raise ValueError(text)
        if text and text[-1] in units:
            n = int(float(text[:-1]) * units[text[-1]])  # int(inf) / int(nan) raise too (infk, nank)
        else:
            n = int(text)
    except (ValueError, OverflowError):
        raise UsageError(f"{flag} expects a number of tokens like 8192 or 32k, not {shown(value)}") from None
    if n < 1:
        raise UsageError(f"{flag} must be positive, not {value!r} (autoquant picks the length when it is omitted)")
    return in_range(n, "context_tokens", flag)


def split_env(var: str, raw: str) -> list[str]:
    """A variable that holds several tokens, split as a shell would; an unbalanced quote is the user's
    error (one line naming the variable), not a traceback from shlex."""
    try:
        return shlex.split(raw)
    except ValueError as exc:
        raise UsageError(f"{var}={raw!r} cannot be split into arguments: {str(exc).lower()} "
                         "(quote as in a shell)") from None
