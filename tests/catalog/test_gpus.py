"""The GPU catalog: name matching against the real autoquant/data/gpus.yaml, and synthetic nodes."""

from __future__ import annotations

import pytest

from autoquant.catalog.gpus import (
    Catalog,
    all_specs,
    lookup,
    match_nvml_name,
    normalize,
    parse_gpu_flag,
    synthetic_node,
)
from autoquant.errors import NotFoundError, UsageError
from autoquant.records import Node, from_dict, to_dict

GIB = 1024**3
SPECS = all_specs()
EXPECTED_KEYS = (
    "H100-SXM H100-PCIe H100-NVL H200 GH200 B200 A100-40GB-SXM A100-80GB-SXM A100-40GB-PCIe A100-80GB-PCIe A10G "
    "A10 L4 L40 L40S RTX3090 RTX4090 RTX5090 RTX6000-Ada V100-16GB V100-32GB T4 M1 M1-Pro M1-Max M1-Ultra M2 "
    "M2-Pro M2-Max M2-Ultra M3 M3-Pro M3-Max M3-Ultra M4 M4-Pro M4-Max "
    "RTXA6000 A40 A30 L20 RTX4080 RTX4070Ti RTX4060Ti RTX3090Ti RTX3080 RTX3070 RTXPRO6000-Server RTXPRO6000-WS "
    "H20 H800 A800-80GB-SXM"
).split()


def test_catalog_has_every_canonical_key():
    keys = {s.key for s in SPECS}
    assert set(EXPECTED_KEYS) <= keys


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_every_name_of_an_entry_resolves_to_it(spec):
    for name in (spec.key, *spec.aliases, *spec.nvml_names):
        assert lookup(name).key == spec.key, name
        assert lookup(name.upper()).key == spec.key, name
        assert lookup(f"  {name.replace('-', ' ')}  ").key == spec.key, name
    for name in spec.nvml_names:
        assert match_nvml_name(name, spec.memory_bytes).key == spec.key


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_entries_carry_their_figures_and_sources(spec):
    assert spec.vendor in ("nvidia", "apple")
    assert spec.memory_gib and spec.memory_bandwidth_gbps
    assert spec.sources and all(s.url.startswith("http") for s in spec.sources)
    if spec.vendor == "nvidia":
        assert spec.compute_capability and spec.nvml_names


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("H100-SXM", "H100-SXM"),
        ("h100", "H100-SXM"),
        ("NVIDIA H100 80GB HBM3", "H100-SXM"),
        ("nvidia h100 80gb hbm3", "H100-SXM"),
        ("A100 80GB", "A100-80GB-SXM"),
        ("a100_80gb", "A100-80GB-SXM"),
        ("rtx 4090", "RTX4090"),
        ("GeForce RTX 4090", "RTX4090"),
        ("NVIDIA GeForce RTX 4090", "RTX4090"),
        ("L40S", "L40S"),
        ("Tesla T4", "T4"),
        ("M2-Max", "M2-Max"),
        ("Apple M2 Max", "M2-Max"),
        ("b200", "B200"),
        ("h200", "H200"),
    ],
)
def test_lookup_accepts_the_spellings_people_use(name, key):
    assert lookup(name).key == key


def test_unknown_name_suggests_close_matches():
    with pytest.raises(NotFoundError, match=r"unknown GPU 'H1OO-SXM'; did you mean H100-SXM"):
        lookup("H1OO-SXM")
    with pytest.raises(NotFoundError, match=r"did you mean .*A100"):
        lookup("A100-96GB")


def test_nonsense_name_lists_known_gpus():
    with pytest.raises(NotFoundError, match=r"known GPUs: .*H100-SXM"):
        lookup("zzzzzzzz")


def test_normalize_drops_vendor_words_and_separators():
    assert normalize("NVIDIA GeForce RTX_4090") == "rtx4090"
    assert normalize("'NVIDIA L40S'") == "l40s"


def test_nvml_match_uses_memory_between_same_named_variants():
    data = {"gpus": {
        "X-40GB": {"vendor": "nvidia", "nvml_names": ["NVIDIA X"], "memory_gib": 40},
        "X-80GB": {"vendor": "nvidia", "nvml_names": ["NVIDIA X"], "memory_gib": 80},
    }}
    cat = Catalog.from_data(data)
    assert cat.match_nvml_name("NVIDIA X", 81559 * 1024**2).key == "X-80GB"
    assert cat.match_nvml_name("NVIDIA X", 40 * GIB).key == "X-40GB"
    assert cat.match_nvml_name("NVIDIA Y", 40 * GIB) is None


def test_nvml_match_real_a100_variants():
    assert match_nvml_name("NVIDIA A100-SXM4-40GB", 40 * GIB).key == "A100-40GB-SXM"
    assert match_nvml_name("NVIDIA A100-SXM4-80GB", 80 * GIB).key == "A100-80GB-SXM"
    assert match_nvml_name("NVIDIA A100-PCIE-40GB", 40 * GIB).key == "A100-40GB-PCIe"
    # An unlisted spelling: longest alias inside the name, memory within 15%.
    assert match_nvml_name("NVIDIA A100-PCIE-80GB", 80 * GIB).key == "A100-80GB-PCIe"
    assert match_nvml_name("NVIDIA RTX A6000", 48 * GIB).key == "RTXA6000"
    assert match_nvml_name("NVIDIA RTX A5000", 24 * GIB) is None


# --- synthetic nodes --------------------------------------------------------------------------------------


def test_h100_sxm_8_is_one_nvlink_domain():
    node = synthetic_node("H100-SXM:8")
    assert node.source == "gpu-flag" and node.gpu_count == 8
    g = node.gpus[0]
    assert (g.name, g.catalog_key, g.compute_capability, g.sm_count) == ("NVIDIA H100 80GB HBM3", "H100-SXM",
                                                                         "9.0", 132)
    assert g.memory_total_bytes == 80 * GIB
    assert node.nvlink_domains == [list(range(8))]
    assert node.topology[0] == ["X"] + ["NV18"] * 7
    assert [g.index for g in node.gpus] == list(range(8))


@pytest.mark.parametrize(
    ("flag", "domains", "link01"),
    [
        ("h100-nvl:4", [[0, 1], [2, 3]], "NV12"),
        ("A100-80GB-PCIe:2", [[0], [1]], "PHB"),
        ("a100-40gb-pcie:4", [[0], [1], [2], [3]], "PHB"),
        ("L40S:4", [[0], [1], [2], [3]], "PHB"),
        ("rtx3090:2", [[0], [1]], "PHB"),
        ("A100-80GB-SXM:8", [list(range(8))], "NV12"),
        ("B200:8", [list(range(8))], "NV18"),
        ("H200:4", [[0, 1, 2, 3]], "NV18"),
        ("GH200", [[0]], "X"),
        ("V100-32GB:8", [[0, 1, 2, 3], [4, 5, 6, 7]], "NV6"),
        ("H100-SXM:16", [list(range(8)), list(range(8, 16))], "NV18"),
    ],
)
def test_synthetic_nvlink_domains(flag, domains, link01):
    node = synthetic_node(flag)
    assert node.nvlink_domains == domains
    n = node.gpu_count
    assert node.topology[0][1 if n > 1 else 0] == link01
    assert all(node.topology[i][i] == "X" for i in range(n))
    assert all(node.topology[i][j] == node.topology[j][i] for i in range(n) for j in range(n))


def test_pcie_machines_with_many_gpus_split_across_sockets():
    node = synthetic_node("L40S:8")
    assert node.topology[0] == ["X", "PHB", "PHB", "PHB", "SYS", "SYS", "SYS", "SYS"]
    assert node.topology[5][6] == "PHB"


def test_quoted_nvml_name_with_count():
    node = synthetic_node("'NVIDIA L40S:4")
    assert node.gpu_count == 4 and node.gpus[0].catalog_key == "L40S"


def test_apple_chip_is_unified_memory_without_cuda_gpus():
    node = synthetic_node("M2-Max")
    assert node.gpus == [] and node.apple is not None
    assert node.apple.catalog_key == "M2-Max" and node.apple.chip == "Apple M2 Max"
    assert node.apple.unified_memory_bytes == 96 * GIB == node.ram_total_bytes
    assert node.cpu.memory_bandwidth_gbps == 400.0 and node.cpu.memory_bandwidth_source == "catalog"


def test_cpu_nodes():
    node = synthetic_node("cpu")
    assert node.gpus == [] and node.apple is None
    assert node.cpu.logical_cores is None and node.cpu.memory_bandwidth_gbps is None
    node = synthetic_node("CPU:16")
    assert node.cpu.logical_cores == 16 and node.cpu.physical_cores == 16


def test_named_cpu_node_comes_from_the_cpu_catalog():
    node = synthetic_node("cpu:EPYC-9654")
    assert node.gpus == [] and node.apple is None and node.source == "gpu-flag"
    assert node.cpu.model == "AMD EPYC 9654" and node.cpu.physical_cores == 96
    assert node.cpu.memory_bandwidth_source == "catalog" and node.cpu.memory_bandwidth_gbps > 0
    two = synthetic_node("cpu:epyc 9654:2")
    assert two.cpu.physical_cores == 192
    assert two.cpu.memory_bandwidth_gbps == pytest.approx(2 * node.cpu.memory_bandwidth_gbps)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_every_entry_makes_a_node_that_round_trips(spec):
    node = synthetic_node(spec.key if spec.is_apple else f"{spec.key}:2")
    assert to_dict(from_dict(Node, to_dict(node))) == to_dict(node)


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("H100-SXM:0", UsageError, "COUNT must be at least 1"),
        ("H100-SXM:-2", UsageError, "COUNT must be at least 1"),
        ("H100-SXM:x", UsageError, "COUNT must be a positive integer"),
        (":8", UsageError, "missing the GPU name"),
        ("", UsageError, "--gpu needs a name"),
        ("M3-Max:2", UsageError, "one per machine"),
        ("Z9000:2", NotFoundError, "unknown GPU 'Z9000'"),
        ("cpu:", UsageError, "core count or a CPU"),
        ("cpu:0", UsageError, "COUNT must be at least 1"),
        ("cpu:EPYC-9999", UsageError, "unknown CPU 'EPYC-9999'; did you mean"),
        ("cpu:EPYC-9654:x", UsageError, "COUNT must be a positive integer"),
        ("cpu:M4-Max:2", UsageError, "at most 1 socket"),
    ],
)
def test_bad_gpu_flags(text, error, message):
    with pytest.raises(error, match=message):
        synthetic_node(text)


def test_parse_gpu_flag():
    assert parse_gpu_flag("H100-SXM:8") == ("H100-SXM", 8)
    assert parse_gpu_flag("a100-80gb") == ("a100-80gb", None)
    assert parse_gpu_flag(" 'NVIDIA L40S:4' ") == ("NVIDIA L40S", 4)
    assert parse_gpu_flag("cpu:16") == ("cpu", 16)
    assert parse_gpu_flag("cpu:EPYC-9654") == ("cpu:EPYC-9654", None)
    assert parse_gpu_flag("cpu:EPYC-9654:2") == ("cpu:EPYC-9654", 2)


# --- the entries added for workstation, consumer and China-market parts -------------------------------

# (key, one alias, memory GiB, bandwidth GB/s, dense bf16 TFLOPS, dense fp8 TFLOPS or None)
NEW_GPUS = [
    ("RTXA6000", "rtx a6000", 48, 768, 154.8, None),
    ("A40", "nvidia a40", 48, 696, 149.7, None),
    ("A30", "nvidia a30", 24, 933, 165, None),
    ("L20", "nvidia l20", 48, 864, None, None),
    ("RTX4080", "geforce rtx 4080", 16, 716.8, 97.5, 194.9),
    ("RTX4070Ti", "rtx 4070 ti", 12, 504, 80.2, 160.4),
    ("RTX4060Ti", "rtx 4060 ti", 16, 288, 44.1, 88.3),
    ("RTX3090Ti", "rtx 3090 ti", 24, 1008, 80, None),
    ("RTX3080", "rtx 3080", 10, 760, 59.5, None),
    ("RTX3070", "rtx 3070", 8, 448, 40.6, None),
    ("RTXPRO6000-Server", "rtx pro 6000 server edition", 96, 1792, 503.8, 1007.6),
    ("RTXPRO6000-WS", "rtx pro 6000", 96, 1792, 503.8, 1007.6),
    ("H20", "hgx h20", 96, 4000, 148, 296),
    ("H800", "h800 sxm", 80, 3350, 989.5, 1979),
    ("A800-80GB-SXM", "a800", 80, 2039, 312, None),
]


@pytest.mark.parametrize(("key", "alias", "mem", "bw", "bf16", "fp8"), NEW_GPUS, ids=[g[0] for g in NEW_GPUS])
def test_new_entries_resolve_and_carry_dense_figures(key, alias, mem, bw, bf16, fp8):
    spec = lookup(key)
    assert spec.key == key and lookup(alias).key == key
    for name in spec.nvml_names:
        assert match_nvml_name(name, spec.memory_bytes).key == key
    assert spec.memory_gib == mem and spec.memory_bandwidth_gbps == pytest.approx(bw)
    assert spec.bf16_tflops == (pytest.approx(bf16) if bf16 is not None else None)
    assert spec.fp8_tflops == (pytest.approx(fp8) if fp8 is not None else None)
    # INT8 runs at 2x the BF16 rate (4x on GeForce, whose BF16 is the half-rate FP32-accumulate figure);
    # a sparse INT8 next to a dense BF16 would break this.
    if spec.bf16_tflops and spec.int8_tops:
        assert 1.99 * spec.bf16_tflops <= spec.int8_tops <= 4.01 * spec.bf16_tflops
    cited = {f for s in spec.sources for f in s.fields}
    for name in ("memory_gib", "memory_bandwidth_gbps", "fp16_tflops", "bf16_tflops", "fp8_tflops", "int8_tops",
                 "fp4_tflops", "nvlink_gbps", "pcie_gen", "pcie_gbps", "sm_count", "tdp_w"):
        if getattr(spec, name) is not None:
            assert name in cited, f"{key}.{name} has no source"


def test_china_market_parts_are_dense_figures():
    # H20: 148 TFLOPS FP16 / 296 FP8 dense (the sparse pair would be 296 / 592); NVLink kept at 900 GB/s.
    h20 = lookup("H20")
    assert (h20.bf16_tflops, h20.fp8_tflops, h20.nvlink_gbps) == (148, 296, 900)
    # H800 / A800: H100 / A100 compute with NVLink cut to 400 GB/s.
    assert lookup("H800").fp8_tflops == lookup("H100-SXM").fp8_tflops and lookup("H800").nvlink_gbps == 400
    assert lookup("A800").bf16_tflops == lookup("A100-80GB-SXM").bf16_tflops and lookup("A800").nvlink_gbps == 400


def test_geforce_entries_use_fp32_accumulate_rates():
    # GeForce FP16-with-FP32-accumulate is half the FP16-accumulate rate, so bf16 is a quarter of int8.
    for key in ("RTX4080", "RTX4070Ti", "RTX4060Ti", "RTX3090Ti", "RTX3080", "RTX3070"):
        spec = lookup(key)
        assert spec.int8_tops == pytest.approx(4 * spec.bf16_tflops, rel=0.01), key


def test_same_named_variants_resolve_to_the_one_entry():
    # The 8 GB RTX 4060 Ti and the 12 GB RTX 3080 report the same NVML names as the listed variants.
    assert match_nvml_name("NVIDIA GeForce RTX 4060 Ti", 8 * GIB).key == "RTX4060Ti"
    assert match_nvml_name("NVIDIA GeForce RTX 3080", 12 * GIB).key == "RTX3080"
