"""llama.cpp command lines: llama-cpp-python (python -m llama_cpp.server) and native llama-server."""

import pytest

from autoquant.errors import InputError, UsageError
from autoquant.launchers import llamacpp
from autoquant.launchers.base import ServeOptions
from autoquant.launchers.flags import split_passthrough
from autoquant.records import Checkpoint


def _cand(candidate, path, **kw):
    ck = Checkpoint(repo=path, method="gguf-q4_k_m", files=[path], source="local")
    kw.setdefault("max_num_seqs", 0)
    return candidate(engine="llamacpp", method="gguf-q4_k_m", gpu="cpu", gpus=0, checkpoint=ck, **kw)


def test_python_server_argv(candidate, demo_gguf):
    spec = llamacpp.build(_cand(candidate, demo_gguf, max_model_len=4096), ServeOptions(host="127.0.0.1", port=8101),
                          "google/gemma-3-270m", threads=2, which="python")
    a = spec.argv
    assert a[1:3] == ["-m", "llama_cpp.server"]
    pairs = dict(zip(a[3::2], a[4::2], strict=False))
    assert pairs["--model"] == demo_gguf and pairs["--model_alias"] == "google/gemma-3-270m"
    assert pairs["--n_ctx"] == "4096" and pairs["--n_threads"] == "2" and pairs["--n_gpu_layers"] == "0"
    assert pairs["--host"] == "127.0.0.1" and pairs["--port"] == "8101"
    assert spec.ready_url == "http://127.0.0.1:8101/v1/models"  # no /health in llama-cpp-python


def _header_gguf(path, **meta) -> str:
    """A header-only GGUF (gguf-py's own writer) carrying `meta` as strings: enough for the launcher's read."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "gemma3")
    for key, value in meta.items():
        writer.add_string(key, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return str(path)


@pytest.mark.parametrize("which", ["python", "server"])
def test_base_model_gguf_gets_no_chat_format_and_a_completions_notice(candidate, demo_gguf, which):
    # the demo GGUF is the base Gemma 3 270M (general.name 'Gemma 3 270m', no finetune, no chat template)
    spec = llamacpp.build(_cand(candidate, demo_gguf), ServeOptions(), "google/gemma-3-270m", which=which)
    assert "--chat_format" not in spec.argv and "--chat-template" not in spec.argv
    notice = [n for n in spec.notes if "base model" in n]
    assert len(notice) == 1 and "google/gemma-3-270m" in notice[0] and "/v1/completions" in notice[0]


@pytest.mark.parametrize(("which", "flag"), [("python", "--chat_format"), ("server", "--chat-template")])
def test_instruct_gguf_without_template_gets_its_architectures_format(candidate, tmp_path, which, flag):
    # an instruct tune converted without its template: llama-cpp-python alone would fall back to llama-2
    path = _header_gguf(tmp_path / "it.gguf", **{"general.name": "Gemma 3 270m It", "general.finetune": "it"})
    spec = llamacpp.build(_cand(candidate, path), ServeOptions(), "google/gemma-3-270m-it", which=which)
    assert spec.argv[spec.argv.index(flag) + 1] == "gemma"
    assert not [n for n in spec.notes if "base model" in n]


def test_gguf_with_its_own_template_gets_no_format_and_no_notice(candidate, tmp_path):
    path = _header_gguf(tmp_path / "t.gguf", **{"tokenizer.chat_template": "{{ messages }}"})
    spec = llamacpp.build(_cand(candidate, path), ServeOptions(), "m", which="python")
    assert "--chat_format" not in spec.argv and not [n for n in spec.notes if "base model" in n]


def test_users_chat_format_replaces_the_notice(candidate, demo_gguf):
    _p, opts = split_passthrough(["--chat_format", "chatml"])
    spec = llamacpp.build(_cand(candidate, demo_gguf), opts, "google/gemma-3-270m", which="python")
    assert spec.argv.count("--chat_format") == 1 and spec.argv[spec.argv.index("--chat_format") + 1] == "chatml"
    assert not [n for n in spec.notes if "base model" in n]


def test_python_server_quantized_kv_uses_ints_and_explicit_bool(candidate, demo_gguf):
    spec = llamacpp.build(_cand(candidate, demo_gguf, kv="q8_0"), ServeOptions(), "m", which="python")
    a = spec.argv
    assert a[a.index("--type_k") + 1] == "8" and a[a.index("--type_v") + 1] == "8"
    assert a[a.index("--flash_attn") + 1] == "true"


def test_native_server_argv(candidate, demo_gguf):
    spec = llamacpp.build(_cand(candidate, demo_gguf, kv="q8_0", max_model_len=2048, max_num_seqs=4),
                          ServeOptions(served_model_name=["a", "b"], api_key="s3cret"), "m", threads=4,
                          which="server")
    a = spec.argv
    assert a[0] == "llama-server" and a[a.index("-m") + 1] == demo_gguf
    assert a[a.index("-np") + 1] == "4" and a[a.index("-c") + 1] == "8192"  # -c is the total over slots
    assert a[a.index("-fa") + 1] == "on"  # never a bare -fa
    assert a[a.index("-ctk") + 1] == "q8_0" and a[a.index("--alias") + 1] == "a,b"
    assert spec.env == {"LLAMA_API_KEY": "s3cret"} and "s3cret" not in spec.command_line()
    assert spec.ready_path == "/health"


def test_api_key_python_env_and_ready_header(candidate, demo_gguf):
    spec = llamacpp.build(_cand(candidate, demo_gguf), ServeOptions(api_key="k1"), "m", which="python")
    assert spec.env == {"API_KEY": "k1", "PYTHONSAFEPATH": "1"} and "k1" not in spec.argv
    assert spec.ready_headers == {"Authorization": "Bearer k1"}


def test_native_passthrough_kept_vllm_flag_refused(candidate, demo_gguf):
    _p, opts = split_passthrough(["--verbose", "true", "--seed", "3"])
    spec = llamacpp.build(_cand(candidate, demo_gguf), opts, "m", which="python")
    assert spec.argv[-4:] == ["--verbose", "true", "--seed", "3"]
    _p, opts = split_passthrough(["--block-size", "16"])
    with pytest.raises(UsageError, match="^--block-size has no llama-cpp-python equivalent"):
        llamacpp.build(_cand(candidate, demo_gguf), opts, "m", which="python")


@pytest.mark.parametrize("opts,kw,needle", [
    (ServeOptions(dtype="bfloat16"), {}, "--dtype bfloat16 has no llama.cpp equivalent"),
    (split_passthrough(["--gpu-memory-utilization", "0.9"])[1], {}, "--gpu-memory-utilization has no llama.cpp"),
    (ServeOptions(), {"kv": "fp8"}, "--kv-cache-dtype fp8 has no llama.cpp equivalent"),
    (ServeOptions(pinned={"max_num_seqs"}), {"max_num_seqs": 8}, "--max-num-seqs 8 has no llama-cpp-python"),
])
def test_untranslatable_flags_are_errors(candidate, demo_gguf, opts, kw, needle):
    with pytest.raises(UsageError, match=needle):
        llamacpp.build(_cand(candidate, demo_gguf, **kw), opts, "m", which="python")


def test_missing_gguf_is_an_input_error(candidate, tmp_path):
    with pytest.raises(InputError, match="no local GGUF file"):
        llamacpp.build(_cand(candidate, str(tmp_path / "nope.gguf")), ServeOptions(), "m", which="python")


def test_flavor_selection(monkeypatch):
    assert llamacpp.flavor({"AUTOQUANT_LLAMACPP_FLAVOR": "python"}) == "python"
    assert llamacpp.flavor({"AUTOQUANT_ENGINE_BIN_LLAMACPP": "/x/llama-server"}) == "server"
    monkeypatch.setattr(llamacpp.shutil, "which", lambda name: None)
    assert llamacpp.flavor({}) == "python"


def _remote(candidate, files):
    ck = Checkpoint(repo="bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", method="gguf-q4_k_m", files=files,
                    source="registry")
    return candidate(engine="llamacpp", method="gguf-q4_k_m", gpu="RTX4090", gpus=1, checkpoint=ck, max_num_seqs=1)


def test_remote_gguf_is_downloaded_by_the_engine(candidate):
    # A registry/Hub GGUF not on this machine: the engine fetches it (no separate pull needed).
    c = _remote(candidate, ["Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"])
    server = llamacpp.build(c, ServeOptions(), "meta-llama/Llama-3.1-8B-Instruct", which="server").argv
    assert server[server.index("-hfr") + 1] == "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"
    assert server[server.index("-hff") + 1] == "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf" and "-m" not in server
    py = llamacpp.build(c, ServeOptions(), "meta-llama/Llama-3.1-8B-Instruct", which="python").argv
    assert py[py.index("--hf_model_repo_id") + 1] == "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"
    assert py[py.index("--model") + 1] == "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"


def test_remote_split_gguf_needs_llama_server_or_a_pull(candidate):
    shards = [f"Q8_0/Meta-Llama-3.1-70B-Instruct-Q8_0-0000{i}-of-00002.gguf" for i in (1, 2)]
    c = _remote(candidate, shards)
    server = llamacpp.build(c, ServeOptions(), "m", which="server").argv
    assert server[server.index("-hff") + 1] == shards[0]  # llama-server follows the -0000N-of-0000M shards
    with pytest.raises(InputError, match="split GGUF"):
        llamacpp.build(c, ServeOptions(), "m", which="python")


def test_python_server_turns_off_logits_all_unless_asked(candidate, demo_gguf):
    # logits_all (the server's default) keeps n_ctx x vocab float32 scores: 32 GiB for Gemma 3 at 32k context
    a = llamacpp.build(_cand(candidate, demo_gguf), ServeOptions(), "m", which="python").argv
    assert a[a.index("--logits_all") + 1] == "false"
    _p, opts = split_passthrough(["--logits_all", "true"])
    a = llamacpp.build(_cand(candidate, demo_gguf), opts, "m", which="python").argv
    assert a.count("--logits_all") == 1 and a[a.index("--logits_all") + 1] == "true"


def test_python_server_queues_requests_instead_of_cutting_the_running_answer(candidate, demo_gguf):
    # interrupt_requests (the server's default) ends a streamed answer with [DONE] when another request waits
    a = llamacpp.build(_cand(candidate, demo_gguf), ServeOptions(), "m", which="python").argv
    assert a[a.index("--interrupt_requests") + 1] == "false"
    _p, opts = split_passthrough(["--interrupt_requests", "true"])
    a = llamacpp.build(_cand(candidate, demo_gguf), opts, "m", which="python").argv
    assert a.count("--interrupt_requests") == 1 and a[a.index("--interrupt_requests") + 1] == "true"
