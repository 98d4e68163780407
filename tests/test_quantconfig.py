"""parse_quantization / from_gguf_file_type on real published configs and the quoted examples (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoquant.errors import InputError
from autoquant.quantconfig import from_gguf_file_type, nominal_gguf_bits, parse_quantization

FIXTURES = Path(__file__).parent / "fixtures" / "hf-configs"


def load(name: str, file: str = "config.json") -> dict:
    return json.loads((FIXTURES / name / file).read_text())


def test_unquantized_is_none():
    assert parse_quantization(load("meta-llama__Llama-3.1-8B-Instruct")) is None


def test_modelopt_fp8_from_hf_quant_config():
    q = parse_quantization(load("nvidia__Llama-3.1-70B-Instruct-FP8"),
                           hf_quant_config=load("nvidia__Llama-3.1-70B-Instruct-FP8", "hf_quant_config.json"))
    assert (q.method, q.quant_method, q.producer) == ("fp8", "modelopt", "modelopt")
    assert (q.weight_bits, q.weight_type, q.act_bits, q.kv_cache) == (8.0, "float", 8, "fp8")
    assert q.ignore == ["lm_head"]


@pytest.mark.parametrize(("algo", "method", "bits"), [
    ("NVFP4", "nvfp4", 4.0), ("W4A16_AWQ", "awq-int4", 4.0), ("FP8", "fp8", 8.0), ("W4A8_AWQ", "other", 4.0),
])
def test_modelopt_algos(algo, method, bits):
    q = parse_quantization({}, hf_quant_config={"producer": {"name": "modelopt"}, "quantization": {"quant_algo": algo}})
    assert (q.method, q.weight_bits, q.producer) == (method, bits, "modelopt")


def test_modelopt_inline_quantization_config():
    q = parse_quantization({"quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4",
                                                    "kv_cache_quant_algo": "FP8", "producer": {"name": "modelopt"}}})
    assert (q.method, q.kv_cache, q.group_size) == ("nvfp4", "fp8", 16)


def test_hf_quant_config_takes_precedence():
    q = parse_quantization(load("example__awq-gemm-int4"),
                           hf_quant_config={"quantization": {"quant_algo": "FP8"}})
    assert q.method == "fp8" and q.quant_method == "modelopt"


def test_gptq_act_order_fixture():
    q = parse_quantization(load("TheBloke__Genz-70b-GPTQ"))
    assert (q.method, q.weight_bits, q.group_size, q.act_order, q.symmetric) == ("gptq-int4", 4.0, 128, True, True)
    assert q.format == "gptq" and q.producer == "autogptq"


def test_gptq_from_quantize_config_json_only():
    config = load("TheBloke__Wizard-Vicuna-30B-Uncensored-GPTQ")
    config.pop("quantization_config")
    q = parse_quantization(config, quantize_config=load("TheBloke__Wizard-Vicuna-30B-Uncensored-GPTQ",
                                                        "quantize_config.json"))
    assert (q.method, q.group_size, q.act_order) == ("gptq-int4", -1, True)


def test_gptq_quoted_example_and_int8():
    q = parse_quantization(load("example__gptq-int4-v1"))
    assert (q.method, q.act_order, q.format) == ("gptq-int4", False, "gptq")
    q8 = parse_quantization({"quantization_config": {"quant_method": "gptq", "bits": 8, "group_size": 128,
                                                     "meta": {"quantizer": ["gptqmodel:1.7.0"]}}})
    assert (q8.method, q8.producer) == ("gptq-int8", "gptqmodel")


def test_awq_quoted_example():
    q = parse_quantization(load("example__awq-gemm-int4"))
    assert (q.method, q.quant_method, q.group_size, q.zero_point, q.format) == ("awq-int4", "awq", 128, True, "gemm")
    assert q.ignore == ["mlp.gate."] and q.producer == "autoawq"


def test_legacy_awq_quant_config_json():
    q = parse_quantization({}, quant_config={"zero_point": True, "q_group_size": 128, "w_bit": 4, "version": "GEMM"})
    assert (q.method, q.group_size, q.format) == ("awq-int4", 128, "gemm")


def test_autofp8_static_per_tensor():
    q = parse_quantization(load("RedHatAI__Meta-Llama-3-8B-Instruct-FP8"))
    assert (q.method, q.quant_method, q.dynamic_act, q.weight_block_size) == ("fp8", "fp8", False, None)


@pytest.mark.parametrize("name", ["Qwen__Qwen3-32B-FP8", "deepseek-ai__DeepSeek-V3", "Qwen__Qwen3-30B-A3B-FP8"])
def test_fp8_block(name):
    q = parse_quantization(load(name))
    assert (q.method, q.weight_block_size, q.dynamic_act, q.format) == ("fp8", [128, 128], True, "e4m3")


def test_compressed_tensors_fp8_dynamic():
    q = parse_quantization(load("example__ct-fp8-dynamic"))
    assert (q.method, q.quant_method, q.producer) == ("fp8", "compressed-tensors", "llm-compressor")
    assert (q.weight_type, q.act_bits, q.dynamic_act, q.group_size) == ("float", 8, True, -1)
    assert q.format == "float-quantized" and q.ignore == ["lm_head"]


def test_compressed_tensors_w4a16_is_gptq_int4():
    q = parse_quantization(load("example__ct-w4a16"))
    assert (q.method, q.format, q.group_size, q.act_bits) == ("gptq-int4", "pack-quantized", 128, None)


def _ct(weights: dict, acts: dict | None = None, fmt: str = "x", **extra) -> dict:
    group = {"targets": ["Linear"], "weights": weights, "input_activations": acts}
    return {"quantization_config": {"quant_method": "compressed-tensors", "format": fmt,
                                    "config_groups": {"group_0": group}, **extra}}


def test_compressed_tensors_other_schemes():
    int8 = parse_quantization(_ct({"num_bits": 8, "type": "int", "strategy": "channel"},
                                  {"num_bits": 8, "type": "int", "dynamic": True}, "int-quantized"))
    assert int8.method == "int8-sq"
    w8a16 = parse_quantization(_ct({"num_bits": 8, "type": "float", "strategy": "channel"}))
    assert w8a16.method == "fp8-weight-only"
    nvfp4 = parse_quantization(_ct({"num_bits": 4, "type": "float", "group_size": 16},
                                   {"num_bits": 4, "type": "float"}, "nvfp4-pack-quantized"))
    assert nvfp4.method == "nvfp4"
    block = parse_quantization(_ct({"num_bits": 8, "type": "float", "strategy": "block", "block_structure": [128, 128]},
                                   {"num_bits": 8, "type": "float", "dynamic": True},
                                   kv_cache_scheme={"num_bits": 8, "type": "float"}))
    assert block.weight_block_size == [128, 128] and block.kv_cache == "fp8"


def test_legacy_compression_config_key():
    config = load("example__ct-fp8-dynamic")
    config["compression_config"] = config.pop("quantization_config")
    assert parse_quantization(config).method == "fp8"


def test_fbgemm_and_auto_round():
    assert parse_quantization({"quantization_config": {"quant_method": "fbgemm_fp8",
                                                       "modules_to_not_convert": ["lm_head"]}}).method == "fp8"
    ar = parse_quantization({"quantization_config": {"quant_method": "intel/auto-round", "bits": 4,
                                                     "group_size": 128, "sym": True}})
    assert (ar.method, ar.producer) == ("gptq-int4", "auto-round")


@pytest.mark.parametrize(("qc", "quant_method", "bits"), [
    ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}, "bitsandbytes", 4.0),
    ({"quant_method": "exl2", "bits": 4.65}, "exl2", 4.65),
    ({"quant_method": "something-new"}, "something-new", 0.0),
])
def test_unsupported_methods_are_other(qc, quant_method, bits):
    q = parse_quantization({"quantization_config": qc})
    assert (q.method, q.quant_method, q.weight_bits) == ("other", quant_method, bits)


@pytest.mark.parametrize("config", [
    {"quantization_config": ["awq"]},
    {"quantization_config": {"quant_method": "awq", "bits": "four"}},
    {"quantization_config": {"quant_method": "gptq"}},
    {"quantization_config": {"quant_method": "gptq", "bits": 4, "desc_act": "yes"}},
    {"quantization_config": {"quant_method": "compressed-tensors", "config_groups": {}}},
    {"quantization_config": {"quant_method": "fp8", "weight_block_size": "128x128"}},
])
def test_malformed_quantization_configs(config):
    with pytest.raises(InputError):
        parse_quantization(config)


def test_modelopt_without_algo_is_input_error():
    with pytest.raises(InputError, match="quant_algo"):
        parse_quantization({}, hf_quant_config={"producer": {"name": "modelopt"}, "quantization": {}})


@pytest.mark.parametrize(("file_type", "method", "fmt", "bits"), [
    (15, "gguf-q4_k_m", "Q4_K_M", 4.5),  # Q4_K: 144 bytes per 256 weights (gguf.GGML_QUANT_SIZES)
    (17, "gguf-q5_k_m", "Q5_K_M", 5.5),
    (7, "gguf-q8_0", "Q8_0", 8.5),
    (1, "gguf-f16", "F16", 16.0),
    (32, "gguf-bf16", "BF16", 16.0),
])
def test_gguf_file_types(file_type, method, fmt, bits):
    q = from_gguf_file_type(file_type)
    assert (q.method, q.format, q.weight_bits, q.container, q.quant_method) == (method, fmt, bits, "gguf", "gguf")


def test_gguf_measured_bits_override_nominal():
    assert from_gguf_file_type(15, weight_bits=4.85).weight_bits == 4.85
    assert nominal_gguf_bits("IQ3_M") > 3  # falls back to IQ3_S's block size


def test_gguf_unknown_file_type():
    with pytest.raises(InputError, match="not a llama.cpp file type"):
        from_gguf_file_type(9999)
