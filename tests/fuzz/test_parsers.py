"""Property-based fuzzing of every parser of outside data: strict JSON, config.json (and its quantization
block), GGUF headers, node records and traffic traces. The property is the contract: a valid record whose
figures are finite and in range, or the module's one user error (InputError, GGUFError, RecordError); never
another exception, a hang or a NaN."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoquant.errors import InputError
from autoquant.gguf import GGUFError, read_header
from autoquant.jsonio import loads
from autoquant.modelspec import KEY_BOUNDS, from_hf_config, kv_bytes_per_token
from autoquant.quantconfig import parse_quantization
from autoquant.records import Node, RecordError, from_dict

from .conftest import no_hang

FUZZ = settings.get_profile("fuzz")
FIXTURES = Path(__file__).parent.parent / "fixtures"
CONFIGS = {name: json.loads((FIXTURES / "hf-configs" / name / "config.json").read_text()) for name in (
    "meta-llama__Llama-3.1-8B-Instruct", "deepseek-ai__DeepSeek-V3", "mistralai__Mixtral-8x7B-Instruct-v0.1",
    "google__gemma-2-9b-it", "Qwen__Qwen3-30B-A3B", "TheBloke__Wizard-Vicuna-30B-Uncensored-GPTQ")}

# The values an adversary reaches for first, then anything JSON can hold.
EVIL = st.sampled_from([0, -1, -128, 1, 2**31 - 1, 2**32 - 1, 2**63, 10**30, 10**400, 1.5, -0.0, 1e-320, 1e308,
                        math.nan, math.inf, -math.inf, True, False, None, "", "8", "nan", [], [1, "x"], {}, {"a": 1}])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
VALUES = st.one_of(EVIL, JSON)
KEYS = st.sampled_from(sorted({k.removeprefix("vision.") for k in KEY_BOUNDS} | {
    "architectures", "model_type", "text_config", "vision_config", "rope_scaling", "quantization_config",
    "sliding_window", "sliding_window_pattern", "layer_types", "mlp_only_layers", "tie_word_embeddings",
    "max_position_embeddings", "torch_dtype", "attention_bias", "use_sliding_window"}))


def _assert_sane_spec(spec) -> None:
    assert spec.num_layers >= 1 and spec.hidden_size >= 1 and spec.head_dim >= 1 and spec.max_context >= 1
    for figure in (spec.total_params, spec.active_params, kv_bytes_per_token(spec)):
        assert math.isfinite(figure) and figure >= 0, figure


@FUZZ
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), JSON.map(json.dumps)))
def test_strict_json_gives_a_value_or_one_error(text):
    try:
        with no_hang():
            value = loads(text, "fuzz")
    except InputError:
        return
    json.dumps(value, allow_nan=False)  # what it accepted holds no NaN or inf


@FUZZ
@given(st.sampled_from(sorted(CONFIGS)), st.lists(st.tuples(KEYS, VALUES, st.booleans()), min_size=1, max_size=4))
def test_a_mutated_config_is_a_sane_spec_or_one_error(name, changes):
    config = json.loads(json.dumps(CONFIGS[name]))
    for key, value, nested in changes:
        target = config.setdefault("text_config", {}) if nested and isinstance(config.get("text_config"), dict) \
            else config
        target[key] = value
    try:
        with no_hang():
            spec = from_hf_config(config, "fuzz/model", "fuzz")
            parse_quantization(config)
    except InputError:
        return
    _assert_sane_spec(spec)


@FUZZ
@given(st.dictionaries(st.sampled_from(["quant_method", "bits", "w_bit", "group_size", "q_group_size",
                                        "desc_act", "sym", "version", "zero_point", "quant_algo",
                                        "config_groups", "weights", "num_bits", "type", "strategy",
                                        "kv_cache_scheme", "fmt", "weight_block_size", "activation_scheme"]),
                       VALUES, max_size=6),
       st.sampled_from(["gptq", "awq", "fp8", "compressed-tensors", "modelopt", "bitsandbytes", "gguf", None]))
def test_a_quantization_block_is_parsed_or_one_error(block, method):
    if method is not None:
        block = {**block, "quant_method": method}
    try:
        with no_hang():
            q = parse_quantization({**CONFIGS["meta-llama__Llama-3.1-8B-Instruct"], "quantization_config": block})
    except InputError:
        return
    if q is not None and q.weight_bits is not None:
        assert math.isfinite(q.weight_bits)


def _s(text: str) -> bytes:
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def _kv(key: str, vtype: int, payload: bytes) -> bytes:
    return _s(key) + struct.pack("<I", vtype) + payload


GGUF = b"GGUF" + struct.pack("<IQQ", 3, 0, 7) + b"".join([
    _kv("general.architecture", 8, _s("llama")),
    _kv("general.alignment", 4, struct.pack("<I", 32)),
    _kv("llama.block_count", 4, struct.pack("<I", 16)),
    _kv("llama.embedding_length", 4, struct.pack("<I", 2048)),
    _kv("llama.attention.head_count", 9, struct.pack("<IQ", 4, 2) + struct.pack("<2I", 32, 32)),
    _kv("llama.vocab_size", 4, struct.pack("<I", 32000)),
    _kv("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)),
])


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(GGUF) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, len(GGUF)))
def test_a_corrupted_gguf_header_is_a_spec_or_one_error(tmp_path_factory, flips, cut):
    from autoquant.probes.gguf_file import read_gguf

    data = bytearray(GGUF)
    for offset, byte in flips:
        data[offset] = byte
    path = tmp_path_factory.mktemp("gguf") / "m.gguf"
    path.write_bytes(bytes(data[:max(cut, 4)]) + b"\0" * 32)
    try:
        with no_hang():
            read_header(path)
            spec = read_gguf(path)
    except (InputError, GGUFError):
        return
    _assert_sane_spec(spec)


NODE = json.loads((FIXTURES / "nodes/h100-sxm-8.json").read_text())
NODE_FIELDS = [("cpu", k) for k in NODE["cpu"]] + [("cgroup", k) for k in NODE["cgroup"]] + \
    [("gpus", k) for k in NODE["gpus"][0]] + [(None, k) for k in NODE if k not in ("cpu", "cgroup")]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(NODE_FIELDS), VALUES), min_size=1, max_size=3))
def test_a_mutated_node_record_is_a_node_or_one_error(changes):
    from autoquant.limits import check_node

    node = json.loads(json.dumps(NODE))
    for (section, key), value in changes:
        target = node if section is None else node.get(section)
        if section == "gpus":
            target = target[0] if isinstance(target, list) and target else None
        if isinstance(target, dict):  # an earlier change may have replaced the section itself
            target[key] = value
    try:
        with no_hang():
            check_node(from_dict(Node, node), "fuzz.json")
    except (RecordError, InputError):
        return


CSV_CELLS = st.one_of(st.integers(-5, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                      st.sampled_from(["", "nan", "inf", "-1", "1e400", "x", '"', "2023-11-16 18:15:46.6805900",
                                       "9" * 50]), st.text(max_size=6))


@FUZZ
@given(st.sampled_from(["timestamp,input_tokens,output_tokens", "TIMESTAMP,ContextTokens,GeneratedTokens",
                        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]),
       st.lists(st.lists(CSV_CELLS, min_size=1, max_size=7), min_size=1, max_size=6))
def test_a_csv_trace_is_a_finite_profile_or_one_error(header, rows):
    _profile_or_error(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")


@FUZZ
@given(st.lists(st.dictionaries(st.sampled_from(["timestamp", "input_length", "output_length", "prompt_tokens",
                                                 "completion_tokens", "hash_ids"]), VALUES, max_size=5),
                min_size=1, max_size=5))
def test_a_jsonl_trace_is_a_finite_profile_or_one_error(rows):
    _profile_or_error("\n".join(json.dumps(r) for r in rows) + "\n")


def _profile_or_error(text: str) -> None:
    from autoquant.probes.traffic import parse_trace, profile_requests
    from autoquant.records import to_dict

    try:
        with no_hang():
            fmt, requests = parse_trace(text, name="fuzz")
            profile = profile_requests(requests, fmt=fmt)
    except InputError:
        return
    json.dumps(to_dict(profile), allow_nan=False)  # every figure finite


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "1e400", "9" * 5000])
def test_strict_json_refuses_what_python_accepts(literal):
    with pytest.raises(InputError):
        loads('{"x": ' + literal + "}", "fuzz")
