"""vLLM command lines from hand-made candidates (no planner, no vLLM import)."""

import pytest

from autoquant.errors import RuleError, UsageError
from autoquant.launchers import vllm
from autoquant.launchers.base import ServeOptions
from autoquant.records import Checkpoint, QuantSpec


def _flag(argv, name):
    return argv[argv.index(name) + 1] if name in argv else None


def test_prequantized_checkpoint_never_gets_quantization(candidate, awq_checkpoint, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no vLLM found: the bare program (a vllm on PATH would be its path)
    c = candidate(method="awq-int4", tp=2, kv="fp8", max_model_len=8192, max_num_seqs=128, checkpoint=awq_checkpoint)
    spec = vllm.build(c, ServeOptions(port=8001), "meta-llama/Llama-3.1-70B-Instruct", version="0.33.0")
    argv = spec.argv
    assert argv[:3] == ["vllm", "serve", awq_checkpoint.repo]
    assert "--quantization" not in argv and "-q" not in argv
    assert _flag(argv, "--tensor-parallel-size") == "2"
    assert _flag(argv, "--kv-cache-dtype") == "fp8"
    assert _flag(argv, "--max-model-len") == "8192" and _flag(argv, "--max-num-seqs") == "128"
    assert _flag(argv, "--served-model-name") == "meta-llama/Llama-3.1-70B-Instruct"
    assert "--swap-space" not in argv and "--pipeline-parallel-size" not in argv
    assert spec.ready_url == "http://127.0.0.1:8001/health"


def test_runtime_fp8_gets_quantization_fp8(candidate, runtime_fp8_checkpoint):
    spec = vllm.build(candidate(method="fp8", checkpoint=runtime_fp8_checkpoint), ServeOptions(),
                      "meta-llama/Llama-3.1-8B-Instruct", version="0.33.0")
    assert _flag(spec.argv, "--quantization") == "fp8"


def test_user_quantization_hint_for_prequantized_is_dropped(candidate, awq_checkpoint):
    # `-q awq` became the planner pin method=awq-int4; the checkpoint carries its own config
    from autoquant.launchers.flags import split_passthrough

    _pins, opts = split_passthrough(["-q", "awq", "--enable-prefix-caching"])
    spec = vllm.build(candidate(method="awq-int4", checkpoint=awq_checkpoint), opts, "m", version="0.33.0")
    assert "--quantization" not in spec.argv and spec.argv[-1] == "--enable-prefix-caching"


def test_passthrough_untouched_and_user_flag_wins(candidate):
    opts = ServeOptions(passthrough=["--tokenizer", "my/tok", "--enable-chunked-prefill", "--block-size", "32"])
    spec = vllm.build(candidate(), opts, "m", version="0.33.0")
    assert spec.argv[-5:] == opts.passthrough
    assert spec.argv.count("--tokenizer") == 1


def test_api_key_goes_to_env_and_is_redacted(candidate):
    spec = vllm.build(candidate(), ServeOptions(api_key="sk-secret-123"), "m", version="0.33.0")
    assert spec.env == {"VLLM_API_KEY": "sk-secret-123"}
    assert "sk-secret-123" not in " ".join(spec.argv)
    assert "sk-secret-123" not in spec.command_line() and "VLLM_API_KEY=***" in spec.command_line()


def test_api_key_in_passthrough_is_redacted_in_print(candidate):
    spec = vllm.build(candidate(), ServeOptions(passthrough=["--hf-token", "hf_abc"]), "m", version="0.33.0")
    spec.secrets.append("hf_abc")
    assert "hf_abc" not in spec.command_line()


def test_bf16_emits_dtype(candidate):
    spec = vllm.build(candidate(method="bf16"), ServeOptions(), "m", version="0.33.0")
    assert _flag(spec.argv, "--dtype") == "bfloat16"


def test_removed_swap_space_is_refused(candidate):
    with pytest.raises(UsageError, match="--swap-space.*removed"):
        vllm.build(candidate(), ServeOptions(passthrough=["--swap-space", "4"]), "m", version="0.33.0")


def _gguf_candidate(candidate, tokenizer):
    q = QuantSpec(method="gguf-q4_k_m", quant_method="gguf", weight_bits=4.89, container="gguf")
    ck = Checkpoint(repo="unsloth/Qwen3-0.6B-GGUF", method="gguf-q4_k_m", files=["Qwen3-0.6B-Q4_K_M.gguf"],
                    quant=q, tokenizer=tokenizer, source="registry")
    return candidate(method="gguf-q4_k_m", checkpoint=ck)


def test_gguf_needs_plugin_on_new_vllm(candidate, monkeypatch):
    # the plugin is looked for beside the vLLM that runs (whatever vLLM is on this machine's PATH)
    monkeypatch.setattr(vllm.versions, "beside_engine", lambda engine, dist: None)
    with pytest.raises(RuleError, match="vllm-gguf-plugin"):
        vllm.build(_gguf_candidate(candidate, "Qwen/Qwen3-0.6B"), ServeOptions(), "Qwen/Qwen3-0.6B", version="0.33.0")


def test_gguf_with_plugin_has_tokenizer(candidate, monkeypatch):
    monkeypatch.setattr(vllm.versions, "beside_engine", lambda engine, dist: "1.0" if "plugin" in dist else None)
    spec = vllm.build(_gguf_candidate(candidate, "Qwen/Qwen3-0.6B"), ServeOptions(), "Qwen/Qwen3-0.6B",
                      version="0.33.0")
    assert spec.argv[2] == "unsloth/Qwen3-0.6B-GGUF:Q4_K_M"
    assert _flag(spec.argv, "--tokenizer") == "Qwen/Qwen3-0.6B" and "--quantization" not in spec.argv


def test_gguf_without_tokenizer_is_an_error(candidate):
    with pytest.raises(RuleError, match="--tokenizer"):
        vllm.build(_gguf_candidate(candidate, None), ServeOptions(), "m", version="0.23.0")


def test_engine_binary_is_injectable(candidate, monkeypatch):
    monkeypatch.setenv("AUTOQUANT_ENGINE_BIN_VLLM", "/opt/fake/vllm")
    assert vllm.build(candidate(), ServeOptions(), "m", version="0.33.0").argv[0] == "/opt/fake/vllm"


def test_readiness_reads_the_served_name_with_the_api_key(candidate, monkeypatch):
    # /v1/models must name what this vLLM serves (another server's 200 is not ready), and it wants the key
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    spec = vllm.build(candidate(), ServeOptions(api_key="sk-k1", served_model_name=["chat"]), "m", version="0.33.0")
    assert spec.served_names == ["chat"] and spec.ready_headers == {"Authorization": "Bearer sk-k1"}
    monkeypatch.setenv("VLLM_API_KEY", "sk-env")
    spec = vllm.build(candidate(), ServeOptions(), "org/m", version="0.33.0")
    assert spec.served_names == ["org/m"] and spec.ready_headers == {"Authorization": "Bearer sk-env"}
