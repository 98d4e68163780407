"""CPU, cgroup, NUMA, disk, Apple Silicon and the CPU measurements, against fixture roots and fakes.

Fixture roots (tests/fixtures/nodes/roots/) are small filesystem trees: /proc/cpuinfo of a Sapphire
Rapids Xeon and of a Graviton3, cgroup v1/v2 hierarchies. The command runner (sysctl, ioreg) is faked for
macOS, the only boundary faked here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoquant.probes.cgroup import probe_cgroup
from autoquant.probes.cpu import (
    Measurement,
    bandwidth_buffer_bytes,
    cache_dir,
    last_level_cache_bytes,
    measure_bandwidth,
    measure_matmul,
    measured,
    parse_cpuinfo,
    parse_sysctl_flags,
    probe_cpu,
)
from autoquant.probes.hardware import hf_cache_dir, probe
from autoquant.records import CPUInfo

GIB = 1024**3


def test_x86_cpuinfo_with_avx512_and_amx(roots):
    model, flags = parse_cpuinfo((roots / "x86-cgroup-v2/proc/cpuinfo").read_text())
    assert model == "Intel(R) Xeon(R) Platinum 8480+"
    for f in ("sse3", "avx", "avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8",
              "amx_tile", "f16c", "fma", "avx_vnni", "avx512_fp16"):
        assert f in flags, f
    assert "pni" not in flags and "sve" not in flags and "vmx" not in flags  # only llama.cpp-relevant ones


def test_aarch64_cpuinfo_with_sve(roots):
    model, flags = parse_cpuinfo((roots / "aarch64-cgroup-v1/proc/cpuinfo").read_text())
    assert model == "ARM implementer 0x41 part 0xd40"
    for f in ("asimd", "neon", "asimddp", "dotprod", "sve", "i8mm", "bf16", "fphp", "asimdhp", "fp16"):
        assert f in flags, f
    assert "sve2" not in flags and "avx" not in flags


def test_cgroup_v2_takes_the_tightest_ancestor(roots):
    limits, notes = probe_cgroup(roots / "x86-cgroup-v2")
    assert limits.version == 2
    assert limits.memory_limit_bytes == 8 * GIB  # the pod's 8 GiB binds the container's 16 GiB
    assert limits.cpu_limit_cores == 4.0
    assert notes == []


def test_cgroup_v1_memory_and_cfs_quota(roots):
    limits, _ = probe_cgroup(roots / "aarch64-cgroup-v1")
    assert limits.version == 1
    assert limits.memory_limit_bytes == 4 * GIB
    assert limits.cpu_limit_cores == 1.5


@pytest.mark.parametrize("tree", ["cgroup-v2-unlimited", "cgroup-v1-unlimited"])
def test_cgroup_max_and_huge_values_mean_no_limit(roots, tree):
    limits, _ = probe_cgroup(roots / tree)
    assert limits.version in (1, 2)
    assert limits.memory_limit_bytes is None
    assert limits.cpu_limit_cores is None


def test_cgroup_v2_path_outside_the_namespace_uses_the_mount_root(roots):
    limits, _ = probe_cgroup(roots / "cgroup-v2-namespaced")
    assert (limits.version, limits.memory_limit_bytes, limits.cpu_limit_cores) == (2, 2 * GIB, 0.5)


def test_no_cgroup_filesystem(roots):
    limits, notes = probe_cgroup(roots / "bare")
    assert (limits.version, limits.memory_limit_bytes, limits.cpu_limit_cores) == (None, None, None)
    assert any("not mounted" in n for n in notes)


def test_probe_on_a_fixture_root_fills_the_node(fake_pynvml, machines, env, probe_kwargs):
    node = probe(env, fake_pynvml.make_nvml(machines.library_missing()), **probe_kwargs)
    assert node.source == "probe" and node.hostname == "testhost"
    assert node.cpu.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert (node.cpu.physical_cores, node.cpu.logical_cores) == (112, 224)
    assert node.cpu.arch == "x86_64"
    assert node.numa_nodes == 2
    assert node.cgroup.memory_limit_bytes == 8 * GIB
    assert node.usable_ram_bytes() == 8 * GIB
    assert node.ram_available_bytes == 900 * GIB
    assert node.disk_path == env["HF_HUB_CACHE"]  # does not exist yet: free space of its parent
    assert node.disk_free_bytes and node.disk_free_bytes > 0
    assert node.cpu.memory_bandwidth_gbps is None  # measure=False, nothing cached
    assert any(n.startswith("not measured") for n in node.notes)


def test_bare_root_degrades_with_notes(fake_pynvml, machines, env, probe_kwargs, roots):
    node = probe(env, fake_pynvml.make_nvml(machines.library_missing()), **{**probe_kwargs, "root": roots / "bare"})
    assert node.cpu.model == "unknown" and node.cpu.flags == []
    assert node.numa_nodes is None
    assert any("cannot read /proc/cpuinfo" in n for n in node.notes)


def test_hf_cache_dir_precedence(tmp_path):
    assert hf_cache_dir({"HF_HUB_CACHE": "/a/hub", "HF_HOME": "/b"}) == Path("/a/hub")
    assert hf_cache_dir({"HF_HOME": "/b"}) == Path("/b/hub")
    assert hf_cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/huggingface/hub")
    assert hf_cache_dir({"HOME": str(tmp_path)}) == tmp_path / ".cache/huggingface/hub"


def test_cache_dir_precedence(tmp_path):
    assert cache_dir({"AUTOQUANT_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x"}) == Path("/c")
    assert cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/autoquant")
    assert cache_dir({"HOME": str(tmp_path)}) == tmp_path / ".cache/autoquant"


# --- macOS / Apple Silicon (sysctl and ioreg faked) ---------------------------------------------------

MAC_ANSWERS = {
    ("sysctl", "-n", "machdep.cpu.brand_string"): "Apple M2 Max\n",
    ("sysctl", "-n", "hw.memsize"): "68719476736\n",
    ("sysctl", "hw.optional"): "hw.optional.neon: 1\nhw.optional.arm.FEAT_DotProd: 1\n"
    "hw.optional.arm.FEAT_I8MM: 1\nhw.optional.arm.FEAT_BF16: 1\nhw.optional.arm.FEAT_SME: 0\n",
    ("ioreg", "-rc", "AGXAccelerator", "-d", "1"): '  | "gpu-core-count" = 30\n',
}


def fake_run(argv: list[str]) -> str | None:
    return MAC_ANSWERS.get(tuple(argv))


def test_apple_silicon_probe(env, probe_kwargs):
    kwargs = {**probe_kwargs, "system": "Darwin", "machine": "arm64", "run": fake_run, "psutil_mod": None}
    node = probe(env, None, **kwargs)
    assert node.gpus == []
    assert node.apple is not None
    assert node.apple.chip == "Apple M2 Max"
    assert node.apple.unified_memory_bytes == 64 * GIB
    assert node.apple.gpu_cores == 30
    assert node.apple.catalog_key == "M2-Max"
    assert node.cpu.model == "Apple M2 Max"
    assert {"neon", "dotprod", "i8mm", "bf16"} <= set(node.cpu.flags) and "sme" not in node.cpu.flags
    assert node.cpu.memory_bandwidth_gbps == 400.0 and node.cpu.memory_bandwidth_source == "catalog"
    assert node.cgroup.version is None  # no cgroups on macOS


def test_sysctl_flags_for_intel_mac():
    flags = parse_sysctl_flags("hw.optional.avx1_0: 1\nhw.optional.avx2_0: 1\nhw.optional.avx512f: 0\n")
    assert flags == ["avx", "avx2"]


def test_apple_chip_not_in_catalog_is_noted(env, probe_kwargs):
    answers = {**MAC_ANSWERS, ("sysctl", "-n", "machdep.cpu.brand_string"): "Apple M9 Hyper\n"}
    kwargs = {**probe_kwargs, "system": "Darwin", "machine": "arm64", "run": lambda a: answers.get(tuple(a))}
    node = probe(env, None, **kwargs)
    assert node.apple.catalog_key is None
    assert node.cpu.memory_bandwidth_gbps is None
    assert any("not in the GPU catalog" in n for n in node.notes)


# --- CPU measurements and their cache -------------------------------------------------------------------


def test_flag_overrides_bandwidth(fake_pynvml, machines, env, probe_kwargs):
    node = probe(env, fake_pynvml.make_nvml(machines.library_missing()), **probe_kwargs, cpu_bandwidth_gbps=123.0)
    assert (node.cpu.memory_bandwidth_gbps, node.cpu.memory_bandwidth_source) == (123.0, "flag")


def test_measurements_are_cached_per_machine(tmp_path):
    env = {"AUTOQUANT_CACHE_DIR": str(tmp_path)}
    runs = []

    def bw():
        runs.append("bw")
        return 50.0

    def mm():
        runs.append("mm")
        return 400.0

    cpu = CPUInfo(model="Test CPU", logical_cores=8)
    assert measured(cpu, env, bandwidth=bw, matmul=mm) == []
    assert (cpu.memory_bandwidth_gbps, cpu.memory_bandwidth_source) == (50.0, "measured")
    assert (cpu.matmul_gflops, cpu.matmul_gflops_source) == (400.0, "measured")
    again = CPUInfo(model="Test CPU", logical_cores=8)
    measured(again, env, bandwidth=bw, matmul=mm)
    assert again.memory_bandwidth_gbps == 50.0 and runs == ["bw", "mm"]  # second probe: from the cache
    other = CPUInfo(model="Other CPU", logical_cores=8)
    measured(other, env, bandwidth=bw, matmul=mm)  # another CPU model: measured again
    assert runs == ["bw", "mm", "bw", "mm"]
    cache = json.loads((tmp_path / "cpu.json").read_text())
    assert set(cache) == {"Test CPU|8", "Other CPU|8"}
    # --no-measure still uses what is cached
    cached = CPUInfo(model="Test CPU", logical_cores=8)
    assert measured(cached, env, measure=False, bandwidth=bw, matmul=mm) == []
    assert cached.matmul_gflops == 400.0 and len(runs) == 4


def test_measurement_cache_is_shared_by_hosts_with_the_same_cpu(tmp_path, env, probe_kwargs, fake_pynvml, machines):
    # A new pod (another hostname) on the same CPU model reuses the measurement instead of re-running it.
    runs = []
    kwargs = {**probe_kwargs, "measure": True, "bandwidth": lambda: runs.append("bw") or 42.0,
              "matmul": lambda: runs.append("mm") or 420.0}
    first = probe(env, fake_pynvml.make_nvml(machines.library_missing()), **{**kwargs, "hostname": "pod-a"})
    second = probe(env, fake_pynvml.make_nvml(machines.library_missing()), **{**kwargs, "hostname": "pod-b"})
    assert first.cpu.matmul_gflops == second.cpu.matmul_gflops == 420.0
    assert runs == ["bw", "mm"]


def test_corrupt_cache_is_remeasured(tmp_path):
    (tmp_path / "cpu.json").write_text("{not json")
    cpu = CPUInfo(model="X", logical_cores=1)
    measured(cpu, {"AUTOQUANT_CACHE_DIR": str(tmp_path)}, bandwidth=lambda: 10.0, matmul=lambda: 20.0)
    assert cpu.memory_bandwidth_gbps == 10.0
    assert json.loads((tmp_path / "cpu.json").read_text())["X|1"]["matmul_gflops"] == 20.0


def test_real_measurement_with_small_arrays():
    # Really runs numpy: an 8 MiB read and a 128x128 matmul. Any machine manages more than 0.1 GB/s and
    # 0.1 GFLOP/s, and none exceeds 100 TB/s or 1 PFLOP/s on one CPU.
    bw = measure_bandwidth(size_bytes=8 * 1024**2, repeats=3, threads=2)
    gflops = measure_matmul(n=128, repeats=3, budget_s=0.5).value
    assert 0.1 < bw.low <= bw.value <= bw.high < 100_000
    assert (bw.repeats, bw.threads, bw.size_bytes) == (3, 2, 8 * 1024**2)
    assert 0 <= bw.other_load <= 1
    assert 0.1 < gflops < 1_000_000


def test_bandwidth_buffer_is_far_larger_than_the_last_level_cache(tmp_path):
    cache = tmp_path / "sys/devices/system/cpu/cpu0/cache"
    for index, (level, size) in enumerate([(1, "48K"), (2, "2048K"), (3, "491520K")]):
        (cache / f"index{index}").mkdir(parents=True)
        (cache / f"index{index}" / "level").write_text(f"{level}\n")
        (cache / f"index{index}" / "size").write_text(f"{size}\n")
    llc = last_level_cache_bytes(tmp_path)
    assert llc == 480 * 1024**2
    assert bandwidth_buffer_bytes(llc, available=64 * 1024**3) == 4 * llc
    assert bandwidth_buffer_bytes(8 * 1024**2, available=64 * 1024**3) == 1024**3  # never under 1 GiB
    assert bandwidth_buffer_bytes(llc, available=2 * 1024**3) == 512 * 1024**2  # a quarter of free memory
    assert last_level_cache_bytes(tmp_path / "nowhere") is None


def test_a_figure_taken_under_load_is_used_but_not_cached(tmp_path):
    env = {"AUTOQUANT_CACHE_DIR": str(tmp_path)}
    busy = Measurement(22.6, 17.4, 24.3, 7, 2, 1 << 30, other_load=0.5)
    cpu = CPUInfo(model="Busy CPU", logical_cores=2)
    notes = measured(cpu, env, threads=2, bandwidth=lambda: busy, matmul=lambda: 300.0)
    assert cpu.memory_bandwidth_gbps == 22.6 and cpu.memory_bandwidth_source == "measured under load"
    assert cpu.memory_bandwidth_spread_gbps == [17.4, 24.3]
    assert any("not cached" in n for n in notes)
    assert not (tmp_path / "cpu.json").exists()
    quiet = Measurement(33.0, 31.0, 34.0, 7, 2, 1 << 30, other_load=0.02)
    again = CPUInfo(model="Busy CPU", logical_cores=2)
    assert measured(again, env, threads=2, bandwidth=lambda: quiet, matmul=lambda: 300.0) == []
    entry = json.loads((tmp_path / "cpu.json").read_text())["Busy CPU|2"]
    assert entry["memory_bandwidth_gbps"] == 33.0 and entry["bandwidth_threads"] == 2


def test_cached_bandwidth_is_remeasured_for_other_threads_or_an_older_method(tmp_path):
    env = {"AUTOQUANT_CACHE_DIR": str(tmp_path)}
    runs = []

    def bw():
        runs.append("bw")
        return 30.0

    measured(CPUInfo(model="C", logical_cores=4), env, threads=2, bandwidth=bw, matmul=lambda: 1.0)
    measured(CPUInfo(model="C", logical_cores=4), env, threads=2, bandwidth=bw, matmul=lambda: 1.0)
    assert runs == ["bw"]
    measured(CPUInfo(model="C", logical_cores=4), env, threads=4, bandwidth=bw, matmul=lambda: 1.0)
    assert runs == ["bw", "bw"]  # the engine will run 4 threads: one core reads about half of two
    # a copy-based figure cached by an older version (no method) is measured again
    (tmp_path / "cpu.json").write_text(json.dumps({"C|4": {"memory_bandwidth_gbps": 51.0, "matmul_gflops": 60.0}}))
    cpu = CPUInfo(model="C", logical_cores=4)
    measured(cpu, env, threads=4, bandwidth=bw, matmul=lambda: 1.0)
    assert runs == ["bw", "bw", "bw"] and cpu.memory_bandwidth_gbps == 30.0


def test_probe_cpu_without_psutil_uses_os_cpu_count(roots, monkeypatch):
    import builtins
    import os

    real_import = builtins.__import__

    def no_psutil(name, *args, **kwargs):
        if name == "psutil":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psutil)
    cpu, notes = probe_cpu(root=roots / "x86-cgroup-v2")
    assert cpu.logical_cores == os.cpu_count() and cpu.physical_cores is None
    assert any("psutil not installed" in n for n in notes)


def test_missing_psutil_is_noted_once(env, probe_kwargs, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_psutil(name, *args, **kwargs):
        if name == "psutil":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psutil)
    node = probe(env, None, **{**probe_kwargs, "psutil_mod": None})
    assert sum("psutil not installed" in n for n in node.notes) == 1


def test_mac_brand_string_is_read_once(env, probe_kwargs):
    calls = []

    def counting_run(argv):
        calls.append(tuple(argv))
        return MAC_ANSWERS.get(tuple(argv))

    node = probe(env, None, **{**probe_kwargs, "system": "Darwin", "machine": "arm64", "run": counting_run})
    assert node.apple.chip == "Apple M2 Max" == node.cpu.model
    assert calls.count(("sysctl", "-n", "machdep.cpu.brand_string")) == 1


def test_free_bytes_walks_up_to_an_existing_directory(tmp_path):
    from autoquant.probes.hardware import free_bytes

    assert free_bytes(tmp_path / "not" / "yet") == free_bytes(tmp_path) > 0


def test_sm_count_from_cores_uses_cuda_data():
    from autoquant.data import load
    from autoquant.probes.nvml import _cores_per_sm

    assert _cores_per_sm()["9.0"] == load("cuda")["fp32_cores_per_sm"]["9.0"] == 128


class _FakePsutil:
    """psutil at the boundary: every call to cpu_times() adds `step` busy seconds on all CPUs together."""

    def __init__(self, step: float, cpus: int = 2):
        self.step, self.cpus, self.busy = step, cpus, 0.0

    def cpu_count(self):
        return self.cpus

    def cpu_times(self):
        from collections import namedtuple
        self.busy += self.step
        return namedtuple("T", "user system idle")(self.busy, 0.0, 0.0)

    def Process(self):
        from types import SimpleNamespace
        return SimpleNamespace(cpu_times=lambda: SimpleNamespace(user=0.0, system=0.0))


def test_other_load_is_a_share_between_zero_and_one(monkeypatch):
    import sys
    import time

    from autoquant.probes.cpu import _timed

    # Far more busy seconds than the CPUs have (clock-tick noise, or a CPU count below the host's): capped at 1.
    monkeypatch.setitem(sys.modules, "psutil", _FakePsutil(step=100.0))
    assert _timed(lambda: time.sleep(0.25) or 1.0, 1, 1, 0).other_load == 1.0
    # Over a window shorter than a few clock ticks the share is not measured at all.
    monkeypatch.setitem(sys.modules, "psutil", _FakePsutil(step=100.0))
    assert _timed(lambda: 1.0, 1, 1, 0).other_load == 0.0
