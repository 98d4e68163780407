"""The CPU catalog: the real autoquant/data/cpus.yaml, name matching, and `--gpu cpu:NAME` nodes."""

from __future__ import annotations

import pytest

from autoquant.catalog.cpus import Catalog, UnknownCPUError, all_specs, cpu_node, find, lookup, normalize
from autoquant.catalog.gpus import synthetic_node
from autoquant.errors import NotFoundError, UsageError
from autoquant.probes.cpu import _ARM_ALIASES, _ARM_FLAGS, _X86_FLAGS
from autoquant.records import Node, from_dict, to_dict

GIB = 1024**3
SPECS = all_specs()
X86 = [s for s in SPECS if s.arch == "x86_64"]
PROBE_FLAGS = {"x86_64": set(_X86_FLAGS), "arm64": set(_ARM_FLAGS) | set(_ARM_ALIASES.values())}


def test_catalog_covers_the_families():
    keys = {s.key for s in SPECS}
    assert {"EPYC-9654", "EPYC-9754", "EPYC-9554", "EPYC-7763", "EPYC-9965", "Xeon-8480+", "Xeon-8592+", "Xeon-6980P",
            "Xeon-8380", "Ryzen-7950X", "Ryzen-9950X", "Ryzen-5950X", "Threadripper-7980X", "Threadripper-PRO-7995WX",
            "M2-Ultra", "M3-Max", "M4-Max"} <= keys
    assert len(SPECS) >= 18


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_every_name_of_an_entry_resolves_to_it(spec):
    for name in (spec.key, spec.name, *spec.aliases):
        assert lookup(name).key == spec.key, name
        assert lookup(name.upper()).key == spec.key, name
        assert lookup(f"  {name.replace('-', ' ')}  ").key == spec.key, name


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_no_name_is_all_digits(spec):
    # `--gpu cpu:N` reads digits as a core count, so a CPU name must never be one.
    for name in (spec.key, *spec.aliases):
        assert not normalize(name).isdigit(), name


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_entries_carry_their_figures_and_sources(spec):
    assert spec.vendor in ("amd", "intel", "apple") and spec.arch in ("x86_64", "arm64")
    assert spec.cores and spec.threads and spec.threads >= spec.cores
    assert spec.memory_bandwidth_gbps and spec.memory_bandwidth_gbps > 0 and spec.derivation
    assert spec.max_sockets and spec.typical_ram_gib and spec.ram_assumption
    assert spec.sources and all(s.url.startswith("http") for s in spec.sources)
    cited = {f for s in spec.sources for f in s.fields}
    for name in ("cores", "threads", "base_ghz", "boost_ghz", "max_sockets", "memory_channels", "memory_mts",
                 "memory_bandwidth_gbps", "fp32_gflops_peak", "tdp_w"):
        if getattr(spec, name) is not None:
            assert name in cited, f"{spec.key}.{name} has no source"
    if spec.flags:
        assert "flags" in cited


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_flags_use_the_probe_spelling(spec):
    assert spec.flags, spec.key
    assert set(spec.flags) <= PROBE_FLAGS[spec.arch], set(spec.flags) - PROBE_FLAGS[spec.arch]
    if spec.arch == "x86_64":
        assert "avx2" in spec.flags  # every listed x86 part runs llama.cpp's AVX2 kernels
    else:
        assert {"neon", "dotprod"} <= set(spec.flags)


@pytest.mark.parametrize("spec", X86, ids=lambda s: s.key)
def test_x86_bandwidth_is_channels_times_speed_times_eight_bytes(spec):
    assert spec.memory_channels and spec.memory_mts
    assert spec.memory_bandwidth_gbps == pytest.approx(spec.memory_channels * spec.memory_mts * 8 / 1000)
    assert f"{spec.memory_channels} channels x {spec.memory_mts:g} MT/s" in spec.derivation


@pytest.mark.parametrize("spec", [s for s in SPECS if s.fp32_gflops_peak], ids=lambda s: s.key)
def test_fp32_peak_is_cores_times_base_clock_times_flops_per_cycle(spec):
    per_cycle = spec.fp32_gflops_peak / (spec.cores * spec.base_ghz)
    assert per_cycle in (pytest.approx(32), pytest.approx(64)), per_cycle
    assert f"{spec.cores} cores x {spec.base_ghz:g} GHz" in spec.fp32_derivation


def test_isa_by_generation():
    assert "amx_tile" in lookup("Xeon-8480+").flags and "avx512_fp16" in lookup("Xeon-8592+").flags
    assert "avx512_bf16" in lookup("EPYC-9654").flags and "amx_tile" not in lookup("EPYC-9654").flags
    assert "avx512f" not in lookup("EPYC-7763").flags and "avx512f" not in lookup("Core-i9-14900K").flags
    assert "avx512_bf16" not in lookup("Xeon-8380").flags and "avx512_vnni" in lookup("Xeon-8380").flags
    assert "sme" in lookup("M4-Max").flags and "sve" not in lookup("M4-Max").flags


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("EPYC-9654", "EPYC-9654"),
        ("epyc 9654", "EPYC-9654"),
        ("AMD EPYC 9654 96-Core Processor", "EPYC-9654"),
        ("Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz", "Xeon-8480+"),
        ("xeon platinum 8592+", "Xeon-8592+"),
        ("Intel Xeon 6980P", "Xeon-6980P"),
        ("ryzen 9 7950x", "Ryzen-7950X"),
        ("threadripper pro 7995wx", "Threadripper-PRO-7995WX"),
        ("Apple M2 Ultra", "M2-Ultra"),
        ("i9-14900K", "Core-i9-14900K"),
    ],
)
def test_lookup_accepts_the_spellings_people_use(name, key):
    assert lookup(name).key == key


def test_unknown_name_is_a_usage_error_with_suggestions():
    with pytest.raises(UsageError, match=r"unknown CPU 'EPYC-9655X'; did you mean .*EPYC-9654") as info:
        lookup("EPYC-9655X")
    assert isinstance(info.value, NotFoundError) and isinstance(info.value, UnknownCPUError)
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match=r"known CPUs: .*EPYC-9654"):
        lookup("zzzzzzzz")
    assert find("") is None and find("zzzzzzzz") is None


def test_catalog_from_data_reads_a_minimal_entry():
    cat = Catalog.from_data({"cpus": {"X-1": {"vendor": "amd", "name": "AMD X 1", "cores": 8, "aliases": ["x one"]}}})
    assert cat.lookup("x one").cores == 8 and cat.lookup("AMD X 1").key == "X-1"


# --- `--gpu cpu:NAME[:SOCKETS]` ---------------------------------------------------------------------------


def test_cpu_flag_with_a_name_builds_a_catalog_cpu_node():
    spec = lookup("EPYC-9654")
    node = synthetic_node("cpu:EPYC-9654")
    assert node.source == "gpu-flag" and node.gpus == [] and node.apple is None
    cpu = node.cpu
    assert cpu.model == "AMD EPYC 9654" and cpu.arch == "x86_64"
    assert (cpu.physical_cores, cpu.logical_cores) == (96, 192)
    assert cpu.memory_bandwidth_gbps == pytest.approx(460.8) and cpu.memory_bandwidth_source == "catalog"
    assert cpu.matmul_gflops == pytest.approx(spec.fp32_gflops_peak) and cpu.matmul_gflops_source == "catalog (peak)"
    assert "avx512_bf16" in cpu.flags
    assert node.ram_total_bytes == int(spec.typical_ram_gib * GIB)
    assert any("ASSUMED" in n and "RAM" in n for n in node.notes)


def test_sockets_multiply_the_per_socket_figures():
    one, two = synthetic_node("cpu:EPYC-9654"), synthetic_node("cpu:EPYC-9654:2")
    assert two.cpu.physical_cores == 2 * one.cpu.physical_cores
    assert two.cpu.memory_bandwidth_gbps == pytest.approx(2 * one.cpu.memory_bandwidth_gbps)
    assert two.ram_total_bytes == 2 * one.ram_total_bytes
    with pytest.raises(UsageError, match="at most 2 socket"):
        synthetic_node("cpu:EPYC-9654:4")


def test_apple_cpu_only_node_has_no_apple_gpu():
    node = synthetic_node("cpu:M4-Max")
    assert node.apple is None and node.gpus == []
    assert node.cpu.arch == "arm64" and node.cpu.memory_bandwidth_gbps == 546 and node.cpu.matmul_gflops is None


def test_cpu_core_count_still_means_cores():
    node = synthetic_node("cpu:16")
    assert (node.cpu.physical_cores, node.cpu.logical_cores) == (16, 16) and node.cpu.model == "unknown"
    assert node.cpu.memory_bandwidth_gbps is None and node.ram_total_bytes is None
    assert synthetic_node("cpu").cpu.physical_cores is None


def test_unknown_cpu_flag_is_one_line():
    with pytest.raises(UsageError, match=r"^unknown CPU 'EPYC-9999'; did you mean") as info:
        synthetic_node("cpu:EPYC-9999")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_every_entry_makes_a_node_that_round_trips(spec):
    node = cpu_node(spec, spec.max_sockets)
    assert node.cpu.memory_bandwidth_gbps == pytest.approx(spec.memory_bandwidth_gbps * spec.max_sockets)
    assert to_dict(from_dict(Node, to_dict(node))) == to_dict(node)


def test_planner_sees_a_cpu_device():
    from autoquant.planner.hardware import device_of

    device = device_of(synthetic_node("cpu:Xeon-8480+"))
    assert device.kind == "cpu" and device.bandwidth_gbps == pytest.approx(307.2)
    assert device.host_ram_gb and device.host_ram_gb > 500
    assert device.peak("gguf") == pytest.approx(lookup("Xeon-8480+").fp32_gflops_peak / 1000)
