"""Splitting vLLM-style flags into planner pins, common options and untouched passthrough."""

import pytest

from autoquant.errors import UsageError
from autoquant.launchers.flags import parse_human_int, split_passthrough


def test_pins_common_and_rest_in_order():
    pins, opts = split_passthrough([
        "--enable-prefix-caching", "-tp", "4", "--quantization=awq", "--port", "9000", "--block-size", "16",
        "--served-model-name", "a", "b", "--kv-cache-dtype", "fp8", "--max-num-seqs", "64", "--api-key", "k",
        "-pp=2", "--gpu-memory-utilization", "0.85", "--dtype", "half", "--seed", "1",
    ])
    assert pins.as_kwargs() == {"method": "awq-int4", "tp": 4, "pp": 2, "kv_cache_dtype": "fp8", "max_num_seqs": 64,
                                "memory_fraction": 0.85}
    assert pins.sources["tp"] == "-tp"
    assert (opts.port, opts.served_model_name, opts.api_key) == (9000, ["a", "b"], "k")
    assert (opts.gpu_memory_utilization, opts.dtype) == (0.85, "half")
    assert opts.passthrough == ["--enable-prefix-caching", "--block-size", "16", "--seed", "1"]


@pytest.mark.parametrize("value,method", [("gptq_marlin", "gptq-int4"), ("auto_awq", "awq-int4"),
                                          ("fp8", "fp8"), ("modelopt_fp4", "nvfp4")])
def test_quantization_maps_to_method(value, method):
    pins, opts = split_passthrough(["-q", value])
    assert pins.method == method and opts.unmapped_quantization is None


def test_unmodelled_quantization_pins_vllm_and_is_kept_verbatim():
    pins, opts = split_passthrough(["--quantization", "experts_int8"])
    # vLLM applies it to the model's own 16-bit weights: the plan serves those, the flag goes verbatim
    assert pins.engine == "vllm" and pins.method == "bf16" and opts.unmapped_quantization == "experts_int8"


def test_max_model_len_human_readable():
    assert parse_human_int("--max-model-len", "32k") == 32000
    assert parse_human_int("--max-model-len", "32K") == 32768
    pins, _ = split_passthrough(["--max-model-len", "8192"])
    assert pins.max_model_len == 8192


@pytest.mark.parametrize("argv,needle", [
    (["-tp", "two"], "-tp must be a positive integer"),
    (["--tensor-parallel-size", "0"], "at least 1"),
    (["--port"], "--port needs a value"),
    (["--port", "70000"], "1-65535"),
    (["--dtype", "fp7"], "--dtype must be one of"),
    (["--gpu-memory-utilization", "1.5"], "fraction"),
    (["-tp", "2", "--tensor-parallel-size", "4"], "conflicts"),
    (["--max-model-len", "lots"], "number of tokens"),
])
def test_bad_pinning_flags_are_one_line_errors(argv, needle):
    with pytest.raises(UsageError, match=needle):
        split_passthrough(argv)


@pytest.mark.parametrize("argv,needle", [
    (["-O"], "-O needs a value"),  # vLLM's own parser would fail at start
    (["--lora-modules"], "--lora-modules needs a value"),
    (["-q", "nonsense"], "-q nonsense: not a vLLM quantization method"),  # vLLM's parser takes any string
])
def test_what_vllm_would_refuse_is_refused_here_first(argv, needle):
    with pytest.raises(UsageError, match=needle):
        split_passthrough(argv)
