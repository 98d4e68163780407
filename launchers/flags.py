"""vLLM-style flags given to `autoquant serve`: pins for the planner, common options, and the rest.

`autoquant serve MODEL --port 8000 -tp 4 --enable-prefix-caching` is a drop-in for `vllm serve`. Flags that
pin a decision (quantization, parallelism, KV-cache dtype, context length, dtype, memory fraction, batch)
are taken out of the passthrough and become planner constraints, so the launcher emits the planner's
consistent value once instead of fighting it. Host, port, served name and API key become `ServeOptions`,
translated per engine. Everything else is passed through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autoquant.argtypes import positive_int
from autoquant.errors import UsageError

from .base import ServeOptions

# canonical flag -> aliases (vLLM spellings; `--flag=value` is accepted for each)
_VALUE_FLAGS = {
    "--quantization": ("-q",),
    "--tensor-parallel-size": ("-tp",),
    "--pipeline-parallel-size": ("-pp",),
    "--kv-cache-dtype": (),
    "--max-model-len": (),
    "--dtype": (),
    "--gpu-memory-utilization": (),
    "--max-num-seqs": (),
    "--host": (),
    "--port": (),
    "--api-key": (),
}
# nargs="+" in vLLM: every following token up to the next flag
_MULTI_FLAGS = {"--served-model-name": ()}

def _rules() -> dict:
    from autoquant.data import load

    return load("engines_flags")["vllm"]


@dataclass
class Pins:
    """Constraints for the planner, each from a flag the user gave (None: the planner decides)."""

    engine: str | None = None
    method: str | None = None
    tp: int | None = None
    pp: int | None = None
    kv_cache_dtype: str | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    sources: dict[str, str] = field(default_factory=dict)  # pin -> the flag it came from

    def as_kwargs(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "sources" and v is not None}


def split_passthrough(extra: list[str]) -> tuple[Pins, ServeOptions]:
    """Parse pinning and common flags out of `extra` (vLLM spellings); the rest stays in order."""
    pins, opts = Pins(), ServeOptions()
    rest: list[str] = []
    lookup = {a: c for c, aliases in _VALUE_FLAGS.items() for a in (c, *aliases)}
    multi = {a: c for c, aliases in _MULTI_FLAGS.items() for a in (c, *aliases)}
    i = 0
    while i < len(extra):
        token = extra[i]
        name, eq, inline = token.partition("=") if token.startswith("-") else (token, "", "")
        if name in lookup:
            flag = lookup[name]
            if eq:
                value = inline
            elif i + 1 < len(extra):
                i += 1
                value = extra[i]
            else:
                raise UsageError(f"{name} needs a value")
            _apply(flag, name, value, pins, opts)
        elif name in multi:
            values = [inline] if eq else []
            while not eq and i + 1 < len(extra) and not extra[i + 1].startswith("-"):
                i += 1
                values.append(extra[i])
            if not values:
                raise UsageError(f"{name} needs at least one name")
            opts.served_model_name = values
        else:
            rest.append(token)
        i += 1
    opts.passthrough = rest
    opts.pinned = set(pins.sources)
    return pins, opts


def _apply(flag: str, given: str, value: str, pins: Pins, opts: ServeOptions) -> None:
    if flag == "--quantization":
        q = value.strip().lower()
        to_method = _rules()["quantization_to_method"]
        if q in to_method:
            method = to_method[q]
            if method:
                _pin(pins, "method", method, given)
        else:
            # a vLLM method autoquant does not model: keep it verbatim, which only vLLM understands
            opts.unmapped_quantization = value
            _pin(pins, "engine", "vllm", given)
    elif flag == "--tensor-parallel-size":
        _pin(pins, "tp", positive_int(value, given), given)
    elif flag == "--pipeline-parallel-size":
        _pin(pins, "pp", positive_int(value, given), given)
    elif flag == "--kv-cache-dtype":
        _pin(pins, "kv_cache_dtype", value, given)
    elif flag == "--max-model-len":
        _pin(pins, "max_model_len", parse_human_int(given, value), given)
    elif flag == "--max-num-seqs":
        _pin(pins, "max_num_seqs", positive_int(value, given), given)
    elif flag == "--dtype":
        dtypes = _rules()["dtypes"]
        if value not in dtypes:
            raise UsageError(f"--dtype must be one of {', '.join(dtypes)}, not {value!r}")
        opts.dtype = value
    elif flag == "--gpu-memory-utilization":
        try:
            frac = float(value)
        except ValueError:
            frac = -1.0
        if not 0 < frac <= 1:
            raise UsageError(f"--gpu-memory-utilization must be a fraction in (0, 1], not {value!r}")
        opts.gpu_memory_utilization = frac
    elif flag == "--host":
        opts.host = value
    elif flag == "--port":
        port = positive_int(value, given)
        if not 0 < port < 65536:
            raise UsageError(f"--port must be 1-65535, not {value}")
        opts.port = port
    elif flag == "--api-key":
        opts.api_key = value


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
        if text and text[-1] in units:
            n = int(float(text[:-1]) * units[text[-1]])
        else:
            n = int(text)
    except ValueError:
        raise UsageError(f"{flag} expects a number of tokens like 8192 or 32k, not {value!r}") from None
    if n < 1:
        raise UsageError(f"{flag} must be positive, not {value!r} (autoquant picks the length when it is omitted)")
    return n


def flag_names(argv: list[str]) -> list[str]:
    """The flag tokens of a passthrough list (`--a=1` -> `--a`)."""
    return [t.partition("=")[0] for t in argv if t.startswith("-") and not is_number(t)]


def is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False
