"""LaunchSpec URLs, llama.cpp threads under a cgroup quota, secrets redacted by build(), cache paths, data."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoquant.data import load
from autoquant.launchers import cache, trtllm
from autoquant.launchers.base import LaunchSpec, ServeOptions, is_secret_name
from autoquant.launchers.build import build
from autoquant.launchers.llamacpp import threads_for
from autoquant.paths import autoquant_cache_dir
from autoquant.records import CgroupLimits, CPUInfo, Node


@pytest.mark.parametrize("host,ready,url", [
    (None, "http://127.0.0.1:8000/health", "http://127.0.0.1:8000/v1"),
    ("0.0.0.0", "http://127.0.0.1:8000/health", "http://127.0.0.1:8000/v1"),
    ("::", "http://[::1]:8000/health", "http://[::1]:8000/v1"),
    ("10.1.2.3", "http://10.1.2.3:8000/health", "http://10.1.2.3:8000/v1"),
    ("fd00::5", "http://[fd00::5]:8000/health", "http://[fd00::5]:8000/v1"),
])
def test_ready_url_probes_the_bound_address(host, ready, url):
    spec = LaunchSpec(engine="vllm", argv=["vllm"], host=host, port=8000)
    assert spec.ready_url == ready and spec.url == url


def _cgroup_root(tmp_path: Path, cpu_max: str) -> Path:
    """A fake filesystem root: cgroup v2 mounted, this process in /, cpu.max as given."""
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text("0::/\n")
    cg = tmp_path / "sys/fs/cgroup"
    cg.mkdir(parents=True)
    (cg / "cgroup.controllers").write_text("cpu memory\n")
    (cg / "cpu.max").write_text(cpu_max + "\n")
    return tmp_path


def test_threads_honour_the_cgroup_quota_without_a_node(tmp_path):
    # cache-hit and demo paths: no node, the quota is read from the (fake) cgroup filesystem
    assert threads_for(root=_cgroup_root(tmp_path, "100000 100000")) == 1
    unlimited = threads_for(root=_cgroup_root(tmp_path / "u", "max 100000"))
    assert unlimited == threads_for(root=tmp_path / "nothing-mounted") >= 1


def test_threads_for_a_probed_and_a_described_node():
    probed = Node(source="probe", cpu=CPUInfo(physical_cores=64, logical_cores=128),
                  cgroup=CgroupLimits(version=2, cpu_limit_cores=1.5))
    assert threads_for(probed) == 1
    described = Node(source="file", cpu=CPUInfo(physical_cores=32, logical_cores=64),
                     cgroup=CgroupLimits(version=2, cpu_limit_cores=8.0))
    assert threads_for(described) == 8


def test_build_redacts_passthrough_and_environment_secrets(monkeypatch, candidate):
    monkeypatch.setenv("HF_TOKEN", "hf_envsecret")
    opts = ServeOptions(passthrough=["--hf-token", "hf_flagsecret", "--enforce-eager"])
    spec = build(candidate(), opts, "org/model")
    line = spec.command_line()
    assert "hf_flagsecret" not in line and "***" in line and "hf_envsecret" in spec.secrets
    assert is_secret_name("HF_TOKEN") and is_secret_name("--api-key") and not is_secret_name("--port")


def test_one_cache_dir_rule(tmp_path):
    assert cache.cache_dir({"AUTOQUANT_CACHE_DIR": str(tmp_path)}) == str(tmp_path / "decisions")
    assert cache.cache_dir({"XDG_CACHE_HOME": "/x"}) == "/x/autoquant/decisions"
    assert autoquant_cache_dir({"HOME": str(tmp_path)}, "run") == tmp_path / ".cache/autoquant/run"


def test_trtllm_run_dir_follows_the_cache_dir(monkeypatch, tmp_path, candidate):
    monkeypatch.delenv("AUTOQUANT_RUN_DIR", raising=False)
    monkeypatch.setenv("AUTOQUANT_CACHE_DIR", str(tmp_path))
    spec = trtllm.build(candidate(engine="trtllm", method="fp8", kv="fp8"), ServeOptions(), "m", version="1.0")
    (path,) = spec.files
    assert path.startswith(str(tmp_path / "run"))
    assert f"free_gpu_memory_fraction: {trtllm.kv_free_fraction()}" in spec.files[path]
    assert trtllm.kv_free_fraction() == load("engines")["engines"]["trtllm"]["memory"]["fraction"]


def _proc_gpus(root: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        d = root / f"proc/driver/nvidia/gpus/0000:0{i}:00.0"
        d.mkdir(parents=True)
        (d / "information").write_text(f"Model: \t {name}\nGPU UUID: \t GPU-{i}aaaaaaa-0000\n")
    return root


@pytest.mark.parametrize("cvd,expected", [
    (None, ["A", "B"]), ("1", ["B"]), ("", []), ("0,7,1", ["A"]), ("GPU-1a", ["B"]), ("MIG-xyz", ["MIG"]),
])
def test_fingerprint_gpus_honour_cuda_visible_devices(tmp_path, cvd, expected):
    root = _proc_gpus(tmp_path, ["A", "B"])
    env = {} if cvd is None else {"CUDA_VISIBLE_DEVICES": cvd}
    assert cache.visible_gpus(env, root) == expected
    assert cache.hardware_fingerprint(env, root)["gpus"] == expected


def test_fingerprint_reads_cpu_and_cgroup_through_the_probes(tmp_path):
    root = _cgroup_root(tmp_path, "200000 100000")
    (root / "proc/cpuinfo").write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: avx2\n")
    fp = cache.hardware_fingerprint({}, root)
    assert fp["cpu"] == "Test CPU 9000" and fp["cgroup_cpu"] == 2.0 and fp["gpus"] == []


def test_version_gates_come_from_data():
    from autoquant.engines.flags import honour
    from autoquant.launchers.flags import classify_tokens

    engines = load("engines")["engines"]
    since = engines["trtllm"]["flags"]["translate"]["--served-model-name"]["since"]
    served, _ = classify_tokens(["--served-model-name", "x"])
    from autoquant.facts import default_facts

    assert honour(default_facts().engine("trtllm"), served, since)[0]
    assert not honour(default_facts().engine("trtllm"), served, "1.0")[0]
    assert "--swap-space" in engines["vllm"]["flags"]["removed"]
    assert engines["vllm"]["flags"]["quantization_to_method"]["awq_marlin"] == "awq-int4"
