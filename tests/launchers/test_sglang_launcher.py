"""`python -m sglang.launch_server` command lines from hand-made candidates (no planner, no SGLang import),
checked against the 0.5.23 option list kept as versioned data (engine_options/sglang-0.5.23.yaml)."""

import sys

import pytest

from autoquant.data import load
from autoquant.errors import RuleError, UsageError
from autoquant.launchers import sglang
from autoquant.launchers.base import ServeOptions
from autoquant.launchers.build import build
from autoquant.launchers.flags import split_passthrough
from autoquant.records import Checkpoint, QuantSpec

OPTIONS = load("engine_options/sglang-0.5.23")
# every spelling SGLang 0.5.23 accepts -> its option entry (aliases included)
SPELLINGS = {alias: entry or {} for name, entry in OPTIONS["options"].items()
             for alias in [name, *((entry or {}).get("aliases") or ())]}
INTS = {"--port", "--tp-size", "--pp-size", "--dp-size", "--context-length", "--max-running-requests",
        "--random-seed", "--chunked-prefill-size", "--max-lora-rank", "--max-loras-per-batch"}
MODEL = "meta-llama/Llama-3.1-70B-Instruct"


def check_against_option_list(argv):
    """Every option is a full spelling SGLang 0.5.23 has, flags take no value, choices and numbers hold."""
    assert argv[1:3] == ["-m", "sglang.launch_server"]
    i = 3
    while i < len(argv):
        token = argv[i]
        name, eq, inline = token.partition("=")
        assert name in SPELLINGS, f"{name} is not an SGLang 0.5.23 option (abbreviations do not count)"
        entry = SPELLINGS[name]
        i += 1
        if not entry.get("takes_value", True):
            assert not eq, f"{name} takes no value"
            continue
        if eq:
            values = [inline]
        elif entry.get("nargs") in ("+", "*"):
            values = []
            while i < len(argv) and not argv[i].startswith("--"):
                values.append(argv[i])
                i += 1
        else:
            assert i < len(argv) and not argv[i].startswith("--"), f"{name} needs a value"
            values = [argv[i]]
            i += 1
        for value in values:
            if entry.get("choices"):
                assert value in entry["choices"], f"{name} {value}: not one of SGLang's choices"
            if name in INTS:
                assert value.lstrip("-").isdigit(), f"{name} {value}: SGLang wants a plain integer"
            if name == "--mem-fraction-static":
                assert 0 < float(value) <= 1


def _flag(argv, name):
    return argv[argv.index(name) + 1] if name in argv else None


def _sglang(candidate, **kw):
    return candidate(engine="sglang", **kw)


def _build(candidate, tokens=(), **kw):
    _pins, opts = split_passthrough(list(tokens))
    return sglang.build(_sglang(candidate, **kw), opts, MODEL, version="0.5.23")


def test_full_spellings_from_the_plan(candidate, awq_checkpoint, monkeypatch):
    monkeypatch.delenv("AUTOQUANT_ENGINE_BIN_SGLANG", raising=False)
    c = _sglang(candidate, method="awq-int4", tp=4, pp=2, kv="fp8_e4m3", max_model_len=32768, max_num_seqs=128,
                checkpoint=awq_checkpoint)
    spec = sglang.build(c, ServeOptions(port=8001), MODEL, version="0.5.23")
    argv = spec.argv
    check_against_option_list(argv)
    assert argv[:3] == [sys.executable, "-m", "sglang.launch_server"]
    assert _flag(argv, "--model-path") == awq_checkpoint.repo
    assert _flag(argv, "--served-model-name") == MODEL  # clients keep the name they asked for
    assert _flag(argv, "--tp-size") == "4" and _flag(argv, "--pp-size") == "2"
    assert _flag(argv, "--context-length") == "32768"  # a plain integer, never 32K
    assert _flag(argv, "--max-running-requests") == "128"
    assert _flag(argv, "--kv-cache-dtype") == "fp8_e4m3"
    assert (_flag(argv, "--host"), _flag(argv, "--port")) == ("0.0.0.0", "8001")
    # a pre-quantized checkpoint carries its config: no --quantization, and no dtype forced on it
    assert "--quantization" not in argv and "--dtype" not in argv
    assert any("pre-quantized checkpoint (awq)" in n for n in spec.notes)
    for short in ("--tp", "--tensor-parallel-size", "--pp", "--mem-frac", "--max-model-len", "--max-num-seqs"):
        assert short not in argv
    assert spec.engine == "sglang" and spec.flavor == "sglang.launch_server" and spec.version == "0.5.23"


def test_single_gpu_defaults_emit_no_parallel_or_kv_flags(candidate):
    argv = sglang.build(_sglang(candidate), ServeOptions(), "m", version="0.5.23").argv
    check_against_option_list(argv)
    assert "--tp-size" not in argv and "--pp-size" not in argv and "--kv-cache-dtype" not in argv
    assert _flag(argv, "--dtype") == "bfloat16" and _flag(argv, "--model-path") == "m"
    assert _flag(argv, "--port") == "8000"  # vLLM's default port, not SGLang's 30000


@pytest.mark.parametrize("kv,expected", [("fp8", "fp8_e4m3"), ("fp8_e4m3", "fp8_e4m3"), ("fp8_e5m2", "fp8_e5m2"),
                                         ("auto", None)])
def test_kv_cache_dtype_in_sglang_spelling(candidate, kv, expected):
    argv = sglang.build(_sglang(candidate, kv=kv), ServeOptions(), "m", version="0.5.23").argv
    check_against_option_list(argv)
    assert _flag(argv, "--kv-cache-dtype") == expected


def test_vllm_kv_flag_fp8_becomes_fp8_e4m3(candidate):
    pins, opts = split_passthrough(["--kv-cache-dtype", "fp8"])
    spec = sglang.build(_sglang(candidate, kv=pins.kv_cache_dtype), opts, "m", version="0.5.23")
    assert _flag(spec.argv, "--kv-cache-dtype") == "fp8_e4m3" and spec.argv.count("--kv-cache-dtype") == 1


def test_kv_cache_dtype_sglang_lacks_is_refused(candidate):
    with pytest.raises(UsageError, match="^--kv-cache-dtype fp8_inc has no SGLang equivalent"):
        sglang.build(_sglang(candidate, kv="fp8_inc"), ServeOptions(), "m", version="0.5.23")


def test_common_options(candidate):
    spec = _build(candidate, ["--served-model-name", "my-model", "--gpu-memory-utilization", "0.85",
                              "--dtype", "half", "--host", "10.0.0.5", "--port", "9000"])
    argv = spec.argv
    check_against_option_list(argv)
    assert _flag(argv, "--served-model-name") == "my-model"
    assert _flag(argv, "--mem-fraction-static") == "0.85" and "--gpu-memory-utilization" not in argv
    assert _flag(argv, "--dtype") == "half" and argv.count("--dtype") == 1
    assert spec.ready_url == "http://10.0.0.5:9000/health"


def test_several_served_names_are_refused(candidate):
    """SGLang's --served-model-name is one string: the second name would vanish (clients asking for it: 404)."""
    with pytest.raises(UsageError, match="^--served-model-name a b: SGLang serves one model name"):
        _build(candidate, ["--served-model-name", "a", "b"])


def test_runtime_fp8_gets_quantization_fp8(candidate, runtime_fp8_checkpoint):
    spec = sglang.build(_sglang(candidate, method="fp8", checkpoint=runtime_fp8_checkpoint), ServeOptions(),
                        "meta-llama/Llama-3.1-8B-Instruct", version="0.5.23")
    check_against_option_list(spec.argv)
    assert _flag(spec.argv, "--quantization") == "fp8"
    assert _flag(spec.argv, "--model-path") == runtime_fp8_checkpoint.repo
    assert not any("pre-quantized" in n for n in spec.notes)


@pytest.mark.parametrize("method,quant", [
    ("fp8", QuantSpec(method="fp8", quant_method="compressed-tensors", weight_bits=8, weight_type="float", act_bits=8)),
    ("gptq-int4", QuantSpec(method="gptq-int4", quant_method="gptq", weight_bits=4, group_size=128)),
])
def test_prequantized_checkpoint_gets_no_quantization(candidate, method, quant):
    ck = Checkpoint(repo=f"org/m-{method}", method=method, quant=quant, verified=True)
    spec = sglang.build(_sglang(candidate, method=method, checkpoint=ck), ServeOptions(), "m", version="0.5.23")
    check_against_option_list(spec.argv)
    assert "--quantization" not in spec.argv and _flag(spec.argv, "--model-path") == ck.repo


def test_runtime_quantization_sglang_cannot_do_is_a_rule_error(candidate):
    ck = Checkpoint(repo="org/m", method="awq-int4", runtime_quantization=True)
    with pytest.raises(RuleError, match="does not quantize at load time"):
        sglang.build(_sglang(candidate, method="awq-int4", checkpoint=ck), ServeOptions(), "m", version="0.5.23")


def test_checkpoint_revision(candidate):
    ck = Checkpoint(repo="org/m", method="bf16", revision="abc123")
    argv = sglang.build(_sglang(candidate, checkpoint=ck), ServeOptions(), "m", version="0.5.23").argv
    check_against_option_list(argv)
    assert _flag(argv, "--revision") == "abc123"


def test_api_key_is_passed_and_redacted(candidate):
    spec = _build(candidate, ["--api-key", "sk-secret-123"])
    assert _flag(spec.argv, "--api-key") == "sk-secret-123"  # SGLang 0.5 has no environment spelling
    assert "sk-secret-123" not in spec.command_line() and "--api-key ***" in spec.command_line()
    assert "sk-secret-123" not in " ".join(spec.redacted_argv())
    check_against_option_list(spec.argv)


def test_secret_passthrough_values_are_redacted_through_dispatch(candidate):
    _pins, opts = split_passthrough(["--api-key", "k-1", "--served-model-name", "x"])
    spec = build(_sglang(candidate), opts, "m")
    assert "k-1" not in spec.command_line()


@pytest.mark.parametrize("tokens,expected", [
    (["--enforce-eager"], ["--disable-cuda-graph"]),
    (["--seed", "7"], ["--random-seed", "7"]),
    (["--tokenizer", "org/tok"], ["--tokenizer-path", "org/tok"]),
    (["--max-num-batched-tokens", "8192"], ["--chunked-prefill-size", "8192"]),
    (["--max_num_batched_tokens", "4096"], ["--chunked-prefill-size", "4096"]),  # vLLM's underscore spelling
    (["--trust-remote-code"], ["--trust-remote-code"]),
    (["--revision", "v2"], ["--revision", "v2"]),
    (["--chat-template", "t.jinja"], ["--chat-template", "t.jinja"]),
    (["--download-dir", "/models"], ["--download-dir", "/models"]),
    (["--uvicorn-log-level", "warning"], ["--log-level-http", "warning"]),
    (["--enable-log-requests"], ["--log-requests"]),
    (["--enable-lora", "--lora-modules", "a=/p/a", "b=/p/b", "--max-lora-rank", "64", "--max-loras", "4"],
     ["--enable-lora", "--lora-paths", "a=/p/a", "b=/p/b", "--max-lora-rank", "64", "--max-loras-per-batch", "4"]),
    (["--tool-call-parser", "llama3"], ["--tool-call-parser", "llama3"]),
    (["--tool-call-parser=hermes"], ["--tool-call-parser=hermes"]),
    (["--reasoning-parser", "qwen3"], ["--reasoning-parser", "qwen3"]),
    # SGLang's own options, given as such, pass verbatim
    (["--disable-radix-cache", "--schedule-policy", "lpm"], ["--disable-radix-cache", "--schedule-policy", "lpm"]),
    (["--attention-backend", "fa3"], ["--attention-backend", "fa3"]),
])
def test_vllm_flags_translate_to_sglang(candidate, tokens, expected):
    spec = _build(candidate, tokens)
    check_against_option_list(spec.argv)
    assert spec.argv[-len(expected):] == expected
    assert spec.notes == []


@pytest.mark.parametrize("flag", ["--enable-prefix-caching", "--enable-chunked-prefill", "--enable-auto-tool-choice",
                                  "--disable-log-requests", "--disable-log-stats"])
def test_meaningless_flags_are_dropped_with_a_note(candidate, flag):
    spec = _build(candidate, [flag])
    check_against_option_list(spec.argv)
    assert flag not in spec.argv
    assert any(n.startswith(f"{flag}: ") and "nothing to pass" in n for n in spec.notes)


def test_dropped_and_translated_together(candidate):
    spec = _build(candidate, ["--enable-auto-tool-choice", "--tool-call-parser", "llama3", "--enable-prefix-caching"])
    assert spec.argv[-2:] == ["--tool-call-parser", "llama3"] and len(spec.notes) == 2


def test_planner_flags_are_read_not_passed(candidate):
    """-tp/--max-model-len/--max-num-seqs pin the plan; the launcher spells the plan's values itself."""
    pins, opts = split_passthrough(["-tp", "2", "--max-model-len", "32K", "--max-num-seqs", "64", "-q", "fp8"])
    assert (pins.tp, pins.max_model_len, pins.max_num_seqs, pins.method) == (2, 32768, 64, "fp8")
    spec = sglang.build(_sglang(candidate, tp=2, max_model_len=32768, max_num_seqs=64), opts, "m", version="0.5.23")
    argv = spec.argv
    check_against_option_list(argv)
    assert _flag(argv, "--tp-size") == "2" and _flag(argv, "--context-length") == "32768"
    assert argv.count("--context-length") == 1 and "-tp" not in argv and "-q" not in argv


def test_data_parallel_is_read_and_spelled_from_the_plan(candidate):
    pins, opts = split_passthrough(["--data-parallel-size", "2"])
    assert pins.dp == 2
    spec = sglang.build(_sglang(candidate, dp=2), opts, "m", version="0.5.23")
    check_against_option_list(spec.argv)
    assert _flag(spec.argv, "--dp-size") == "2" and "--data-parallel-size" not in spec.argv


def _one_line_usage_error(candidate, tokens, needle):
    with pytest.raises(UsageError) as exc:
        _build(candidate, tokens)
    message = str(exc.value)
    assert "\n" not in message and message.startswith(needle), message
    return message


@pytest.mark.parametrize("tokens,needle", [
    (["--generation-config", "auto"], "--generation-config has no sglang.launch_server equivalent"),
    (["--hf-overrides", "{}"], "--hf-overrides has no sglang.launch_server equivalent"),
    (["--swap-space", "4"], "--swap-space"),
    (["--tp", "2"], "--tp has no sglang.launch_server equivalent"),  # a prefix SGLang's argparse would take
    (["--tool-call-parser", "llama3_json"], "--tool-call-parser llama3_json: sglang.launch_server's --tool-call-parser takes"),
    (["--reasoning-parser", "deepseek_r1"], "--reasoning-parser deepseek_r1: sglang.launch_server's --reasoning-parser takes"),
])
def test_flags_sglang_cannot_carry_are_one_line_errors(candidate, tokens, needle):
    message = _one_line_usage_error(candidate, tokens, needle)
    assert "SGLang was chosen" in message


def test_tool_call_parser_choices_come_from_the_option_list():
    choices = SPELLINGS["--tool-call-parser"]["choices"]
    assert "llama3" in choices and "llama3_json" not in choices


def test_refusal_through_dispatch(candidate):
    _pins, opts = split_passthrough(["--generation-config", "auto"])
    with pytest.raises(UsageError, match="^--generation-config has no sglang.launch_server equivalent"):
        build(_sglang(candidate), opts, "m")


@pytest.mark.parametrize("tokens,needle", [
    (["--tp-size", "2"], "--tp-size: autoquant sets SGLang's --tp-size from the plan; pin it with --tensor-parallel-size"),
    (["--pp-size", "2"], "--pp-size: autoquant sets SGLang's --pp-size from the plan; pin it with --pipeline-parallel-size"),
    (["--context-length", "4096"], "--context-length: autoquant sets SGLang's --context-length from the plan"),
    (["--max-running-requests", "9"], "--max-running-requests: autoquant sets"),
    (["--mem-fraction-static", "0.8"], "--mem-fraction-static: autoquant sets"),
    (["--model-path", "x"], "--model-path: autoquant sets SGLang's --model-path from the plan; give the model as MODEL"),
    (["--model", "x"], "--model: autoquant sets SGLang's --model-path"),
])
def test_sglang_spellings_of_planned_options_are_refused(candidate, tokens, needle):
    """Passed through, they would follow the planned value and win: a TP-2 server on a TP-1 plan."""
    _one_line_usage_error(candidate, tokens, needle)


@pytest.mark.parametrize("tokens,needle", [
    (["--attention-backend", "FLASH_ATTN"], "--attention-backend FLASH_ATTN: SGLang's --attention-backend takes"),
    (["--tokenizer-mode", "mistral"], "--tokenizer-mode mistral: SGLang's --tokenizer-mode takes auto, slow"),
    (["--load-format", "tensorizer"], "--load-format tensorizer: SGLang's --load-format takes"),
])
def test_shared_flag_with_a_value_sglang_lacks_is_refused(candidate, tokens, needle):
    _one_line_usage_error(candidate, tokens, needle)


def test_unmapped_quantization(candidate):
    with pytest.raises(UsageError, match="^--quantization experts_int8 has no SGLang equivalent"):
        sglang.build(_sglang(candidate), ServeOptions(unmapped_quantization="experts_int8"), "m", version="0.5.23")
    spec = sglang.build(_sglang(candidate), ServeOptions(unmapped_quantization="w8a8_int8"), "m", version="0.5.23")
    assert _flag(spec.argv, "--quantization") == "w8a8_int8"
    check_against_option_list(spec.argv)


@pytest.mark.parametrize("host,url", [(None, "http://127.0.0.1:8000/health"), ("0.0.0.0", "http://127.0.0.1:8000/health"),
                                      ("::", "http://[::1]:8000/health"), ("127.0.0.1", "http://127.0.0.1:8000/health")])
def test_readiness_is_health_on_a_reachable_host(candidate, host, url):
    spec = sglang.build(_sglang(candidate), ServeOptions(host=host), "m", version="0.5.23")
    assert spec.ready_path == "/health" and spec.ready_url == url
    assert spec.url == url.replace("/health", "/v1")
    assert _flag(spec.argv, "--host") == (host or "0.0.0.0")


def test_engine_binary_override(candidate, monkeypatch):
    monkeypatch.setenv("AUTOQUANT_ENGINE_BIN_SGLANG", "/opt/sglang/bin/python")
    argv = sglang.build(_sglang(candidate), ServeOptions(), "m", version="0.5.23").argv
    assert argv[:3] == ["/opt/sglang/bin/python", "-m", "sglang.launch_server"]


def test_version_detection_can_be_skipped(candidate):
    spec = sglang.build(_sglang(candidate), ServeOptions(), "m", detect_version=False)
    assert spec.version is None
    check_against_option_list(spec.argv)


def test_dispatch_reaches_the_sglang_launcher(candidate):
    spec = build(_sglang(candidate, tp=2), ServeOptions(), "m")
    assert spec.engine == "sglang" and spec.argv[1:3] == ["-m", "sglang.launch_server"]
    check_against_option_list(spec.argv)
