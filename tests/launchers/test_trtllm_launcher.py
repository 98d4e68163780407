"""trtllm-serve command lines, checked against the 1.0 option list kept as versioned test data."""

from pathlib import Path

import pytest
import yaml

from autoquant.data import load
from autoquant.errors import RuleError, UsageError
from autoquant.launchers import trtllm
from autoquant.launchers.base import ServeOptions
from autoquant.launchers.build import build
from autoquant.launchers.flags import split_passthrough
from autoquant.records import Checkpoint

OPTIONS = load("engine_options/trtllm-1.0")


def check_against_option_list(argv):
    """Every option exists in trtllm-serve 1.0, flags take no value, typed values parse."""
    assert argv[1] in OPTIONS["subcommands"] and not argv[2].startswith("-")
    i = 3
    while i < len(argv):
        name = argv[i]
        assert name in OPTIONS["options"], f"{name} is not a trtllm-serve 1.0 option"
        kind = OPTIONS["options"][name]["type"]
        if kind == "flag":
            i += 1
            continue
        value = argv[i + 1]
        if kind == "int":
            int(value)
        elif kind == "float":
            float(value)
        elif kind == "choice":
            assert value in OPTIONS["options"][name]["choices"]
        i += 2


def _fp8_ckpt():
    return Checkpoint(repo="nvidia/Llama-3.1-70B-Instruct-FP8", method="fp8", verified=True)


def test_legacy_spellings_and_extra_yaml(candidate, tmp_path):
    c = candidate(engine="trtllm", method="fp8", tp=4, pp=2, kv="fp8", max_model_len=16384, max_num_seqs=128,
                  checkpoint=_fp8_ckpt())
    spec = trtllm.build(c, ServeOptions(port=8002), "meta-llama/Llama-3.1-70B-Instruct", version="1.0.0",
                        run_dir=str(tmp_path))
    argv = spec.argv
    check_against_option_list(argv)
    assert argv[:3] == ["trtllm-serve", "serve", "nvidia/Llama-3.1-70B-Instruct-FP8"]
    for flag, value in [("--tp_size", "4"), ("--pp_size", "2"), ("--max_batch_size", "128"),
                        ("--max_seq_len", "16384"), ("--backend", "pytorch"), ("--host", "0.0.0.0")]:
        assert argv[argv.index(flag) + 1] == value
    path = argv[argv.index("--extra_llm_api_options") + 1]
    extra = yaml.safe_load(spec.files[path])
    assert extra == {"kv_cache_config": {"dtype": "fp8", "free_gpu_memory_fraction": 0.9}}
    assert extra["kv_cache_config"]["dtype"] in OPTIONS["extra_llm_api_options"]["kv_cache_config"]["dtype"]
    spec.write_files()
    assert yaml.safe_load(Path(path).read_text()) == extra


def test_no_yaml_when_nothing_needs_it(candidate, tmp_path):
    spec = trtllm.build(candidate(engine="trtllm", method="fp8", checkpoint=_fp8_ckpt()), ServeOptions(), "m",
                        version="1.0.0", run_dir=str(tmp_path))
    assert spec.files == {} and "--extra_llm_api_options" not in spec.argv
    check_against_option_list(spec.argv)


def test_vllm_flags_translate_or_fail_with_their_name(candidate):
    _pins, opts = split_passthrough(["--trust-remote-code", "--log_level", "debug", "--enable-prefix-caching"])
    spec = trtllm.build(candidate(engine="trtllm"), opts, "m", version="1.0.0")
    check_against_option_list(spec.argv)
    assert "--trust_remote_code" in spec.argv and spec.argv[-2:] == ["--log_level", "debug"]
    assert any("--enable-prefix-caching" in n and "block" in n for n in spec.notes)  # on by default there
    _pins, opts = split_passthrough(["--enable-lora"])
    with pytest.raises(UsageError, match="^--enable-lora has no trtllm-serve"):
        build(candidate(engine="trtllm"), opts, "m")


@pytest.mark.parametrize("argv,needle", [
    (["--api-key", "k"], "--api-key has no trtllm-serve equivalent"),
    (["--gpu-memory-utilization", "0.8"], "--gpu-memory-utilization has no trtllm-serve equivalent"),
    (["--served-model-name", "x"], "--served-model-name"),
])
def test_unsupported_common_flags_are_errors(candidate, argv, needle):
    _pins, opts = split_passthrough(argv)
    with pytest.raises(UsageError, match=needle):
        build(candidate(engine="trtllm"), opts, "m")  # trtllm-serve not installed here: the 1.0 option list


def test_unmapped_quantization_is_an_error(candidate):
    with pytest.raises(UsageError, match="experts_int8"):
        trtllm.build(candidate(engine="trtllm"), ServeOptions(unmapped_quantization="experts_int8"), "m",
                     version="1.0.0")


def test_served_model_name_on_new_trtllm(candidate):
    spec = trtllm.build(candidate(engine="trtllm"), ServeOptions(served_model_name=["x"]), "m", version="1.3.0")
    assert spec.argv[spec.argv.index("--served_model_name") + 1] == "x"


def test_bad_kv_dtype_and_runtime_quantization(candidate, runtime_fp8_checkpoint):
    with pytest.raises(UsageError, match="fp8_e5m2 has no TensorRT-LLM equivalent"):
        trtllm.build(candidate(engine="trtllm", kv="fp8_e5m2"), ServeOptions(), "m", version="1.0.0")
    with pytest.raises(RuleError, match="does not quantize at load time"):
        build(candidate(engine="trtllm", method="fp8", checkpoint=runtime_fp8_checkpoint), ServeOptions(), "m")
