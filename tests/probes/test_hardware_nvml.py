"""The hardware probe's GPU part, driven through a fake pynvml (the only thing faked: the NVML library).

Machines are data in tests/fakes/machines.py; the real `probe()` code runs against them.
"""

from __future__ import annotations

import pytest

from autoquant.probes.hardware import probe
from autoquant.probes.nvml import nvlink_domains
from autoquant.records import Node, from_dict, to_dict


def run_probe(fake_pynvml, machine: dict, env: dict, probe_kwargs: dict, **extra) -> Node:
    nvml = fake_pynvml.make_nvml(machine)
    node = probe(env, nvml, **probe_kwargs, **extra)
    assert nvml.calls[-1] == "nvmlShutdown" or "nvmlInit" not in nvml.calls[1:]  # always shut down
    return node


def gpu_notes(node: Node) -> list[str]:
    """Notes other than the expected 'not measured' one (these tests run with measure=False)."""
    return [n for n in node.notes if not n.startswith("not measured")]


def test_h100_sxm_8_nvswitch_is_one_nvlink_domain(fake_pynvml, machines, env, probe_kwargs):
    node = run_probe(fake_pynvml, machines.h100_sxm_8(), env, probe_kwargs)
    assert node.gpu_count == 8
    g = node.gpus[0]
    assert g.name == "NVIDIA H100 80GB HBM3"
    assert g.catalog_key == "H100-SXM"
    assert g.compute_capability == "9.0"
    assert g.memory_total_bytes == 81559 * 1024**2
    assert g.memory_free_bytes == (81559 - 512) * 1024**2
    assert g.sm_count == 132  # catalog figure (NVML reports 16896 CUDA cores)
    assert (g.max_sm_clock_mhz, g.max_mem_clock_mhz) == (1980, 2619)
    assert g.power_limit_w == 700.0
    assert (g.pcie_gen, g.pcie_width) == (5, 16)
    assert g.numa_node == 0 and node.gpus[4].numa_node == 1
    assert g.cpu_affinity == list(range(56)) and node.gpus[7].cpu_affinity == list(range(56, 112))
    assert g.mig_enabled is False and g.uuid.startswith("GPU-")
    assert node.nvlink_domains == [list(range(8))]
    # 18 links each into the NVSwitches: nvidia-smi shows NV18 between every pair.
    assert all(node.topology[i][j] == ("X" if i == j else "NV18") for i in range(8) for j in range(8))
    assert node.driver_version == "550.54.15"
    assert node.cuda_driver_version == "12.4"
    assert gpu_notes(node) == []


def test_two_a100_pcie_without_nvlink(fake_pynvml, machines, env, probe_kwargs):
    node = run_probe(fake_pynvml, machines.a100_pcie_2(), env, probe_kwargs)
    assert [g.catalog_key for g in node.gpus] == ["A100-80GB-PCIe"] * 2
    assert node.nvlink_domains == [[0], [1]]
    assert node.topology == [["X", "SYS"], ["SYS", "X"]]  # one card per socket
    assert node.cuda_driver_version == "12.2"


def test_four_l40s_pcie_levels(fake_pynvml, machines, env, probe_kwargs):
    node = run_probe(fake_pynvml, machines.l40s_pcie_4(), env, probe_kwargs)
    assert [g.catalog_key for g in node.gpus] == ["L40S"] * 4
    assert node.nvlink_domains == [[0], [1], [2], [3]]
    assert node.topology[0] == ["X", "PIX", "NODE", "NODE"]  # GPUs 0,1 share a PCIe switch
    assert node.topology[2][3] == "PIX"
    assert node.gpus[0].sm_count == 142


def test_single_rtx4090(fake_pynvml, machines, env, probe_kwargs):
    node = run_probe(fake_pynvml, machines.rtx4090_1(), env, probe_kwargs)
    assert node.gpu_count == 1
    assert node.gpus[0].catalog_key == "RTX4090"
    assert node.topology == [["X"]]
    assert node.nvlink_domains == [[0]]


def test_h100_in_mig_mode_lists_its_slices(fake_pynvml, machines, env, probe_kwargs):
    node = run_probe(fake_pynvml, machines.h100_mig(), env, probe_kwargs)
    mig, whole = node.gpus
    assert mig.mig_enabled and not whole.mig_enabled
    assert [s.profile for s in mig.mig_slices] == ["3g.40gb", "3g.40gb"]
    assert [s.memory_bytes for s in mig.mig_slices] == [40320 * 1024**2] * 2
    assert [s.sm_count for s in mig.mig_slices] == [60, 60]
    assert [s.gpu_instance_id for s in mig.mig_slices] == [1, 2]
    assert all(s.uuid.startswith("MIG-") and s.gpu_index == 0 for s in mig.mig_slices)
    assert any("GPU 0 is in MIG mode" in n for n in node.notes)
    assert node.nvlink_domains == [[0], [1]]  # no NVLink peer access in MIG mode
    assert node.topology[0][1] == "PIX"  # the two share a PCIe switch in this machine


def test_mig_uuid_in_cuda_visible_devices_exposes_one_slice(fake_pynvml, machines, env, probe_kwargs):
    machine = machines.h100_mig()
    slice_uuid = machine["gpus"][0]["mig"]["slices"][1]["uuid"]
    node = run_probe(fake_pynvml, machine, {**env, "CUDA_VISIBLE_DEVICES": slice_uuid}, probe_kwargs)
    (g,) = node.gpus
    assert g.index == 0 and g.physical_index == 0
    assert g.uuid == slice_uuid
    assert g.name == "NVIDIA H100 80GB HBM3 MIG 3g.40gb"
    assert g.memory_total_bytes == 40320 * 1024**2
    assert g.sm_count == 60
    assert [s.gpu_instance_id for s in g.mig_slices] == [2]
    assert node.cuda_visible_devices == slice_uuid
    assert not any("MIG mode" in n for n in node.notes)  # one slice chosen: nothing to warn about


def test_mig_slice_profile_from_attributes_when_name_lacks_it(fake_pynvml, machines, env, probe_kwargs):
    machine = machines.h100_mig()
    for s in machine["gpus"][0]["mig"]["slices"]:
        s["name"] = "NVIDIA H100 80GB HBM3"  # some drivers name a MIG device like its parent
    node = run_probe(fake_pynvml, machine, env, probe_kwargs)
    assert [s.profile for s in node.gpus[0].mig_slices] == ["3g.39gb", "3g.39gb"]


def test_nvml_library_missing_degrades_to_no_gpus(fake_pynvml, machines, env, probe_kwargs):
    node = run_probe(fake_pynvml, machines.library_missing(), env, probe_kwargs)
    assert node.gpus == [] and node.topology == [] and node.nvlink_domains == []
    assert any("NVML library not found" in n for n in node.notes)
    assert node.cpu.logical_cores == 224  # the rest of the probe still ran
    assert node.ram_total_bytes == 1024**4


def test_driver_not_loaded_note(fake_pynvml, machines, env, probe_kwargs):
    node = run_probe(fake_pynvml, machines.driver_not_loaded(), env, probe_kwargs)
    assert node.gpus == []
    assert any("driver not loaded" in n for n in node.notes)


def test_pynvml_not_importable(monkeypatch, env, probe_kwargs):
    import builtins

    real_import = builtins.__import__

    def no_pynvml(name, *args, **kwargs):
        if name == "pynvml":
            raise ImportError("No module named 'pynvml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    node = probe(env, None, **probe_kwargs)
    assert node.gpus == []
    assert any("nvidia-ml-py (pynvml) is not installed" in n for n in node.notes)


def test_driver_error_mid_probe_keeps_the_rest(fake_pynvml, machines, env, probe_kwargs):
    node = run_probe(fake_pynvml, machines.driver_error_on_gpu1(), env, probe_kwargs)
    assert node.gpu_count == 4
    assert node.gpus[1].power_limit_w is None
    assert [g.power_limit_w for g in (node.gpus[0], node.gpus[2], node.gpus[3])] == [350.0] * 3
    assert node.gpus[1].memory_total_bytes == 46068 * 1024**2  # everything else about GPU 1 still probed
    assert node.gpus[1].compute_capability == "8.9"
    assert gpu_notes(node) == ["GPU 1: nvmlDeviceGetPowerManagementLimit failed (Unknown); left unknown"]


def test_old_driver_without_core_count_or_numa(fake_pynvml, machines, env, probe_kwargs):
    node = run_probe(fake_pynvml, machines.old_driver(), env, probe_kwargs)
    g = node.gpus[0]
    assert g.sm_count == 128  # from the catalog, not NVML
    assert g.numa_node is None
    assert node.cuda_driver_version == "12.6"  # fell back to nvmlSystemGetCudaDriverVersion
    assert gpu_notes(node) == []  # NotSupported is "unknown", not an error


def test_unknown_gpu_gets_sm_count_from_cores(fake_pynvml, machines, env, probe_kwargs):
    node = run_probe(fake_pynvml, machines.unknown_gpu(), env, probe_kwargs)
    g = node.gpus[0]
    assert g.catalog_key is None
    assert g.sm_count == 64  # 8192 CUDA cores / 128 per SM (CC 8.6)


def test_cuda_visible_devices_reorders_and_hides(fake_pynvml, machines, env, probe_kwargs):
    node = run_probe(fake_pynvml, machines.h100_sxm_8(), {**env, "CUDA_VISIBLE_DEVICES": "1,0"}, probe_kwargs)
    assert [g.index for g in node.gpus] == [0, 1]
    assert [g.physical_index for g in node.gpus] == [1, 0]
    assert node.nvlink_domains == [[0, 1]]
    assert node.topology == [["X", "NV18"], ["NV18", "X"]]


def test_cuda_visible_devices_by_uuid_and_prefix(fake_pynvml, machines, env, probe_kwargs):
    machine = machines.l40s_pcie_4()
    u3, u2 = machine["gpus"][3]["uuid"], machine["gpus"][2]["uuid"]
    cvd = f"{u3},{u2[:14]}"  # full UUID, then a unique prefix (CUDA accepts both)
    node = run_probe(fake_pynvml, machine, {**env, "CUDA_VISIBLE_DEVICES": cvd}, probe_kwargs)
    assert [g.physical_index for g in node.gpus] == [3, 2]
    assert [g.uuid for g in node.gpus] == [u3, u2]
    assert node.topology == [["X", "PIX"], ["PIX", "X"]]


def test_cuda_visible_devices_invalid_entry_ends_the_list(fake_pynvml, machines, env, probe_kwargs):
    node = run_probe(fake_pynvml, machines.l40s_pcie_4(), {**env, "CUDA_VISIBLE_DEVICES": "2,9,0"}, probe_kwargs)
    assert [g.physical_index for g in node.gpus] == [2]
    assert any("'9' matches no GPU" in n for n in node.notes)


def test_cuda_visible_devices_empty_means_no_gpus(fake_pynvml, machines, env, probe_kwargs):
    node = run_probe(fake_pynvml, machines.h100_sxm_8(), {**env, "CUDA_VISIBLE_DEVICES": ""}, probe_kwargs)
    assert node.gpus == []
    assert any("CUDA_VISIBLE_DEVICES is empty" in n for n in node.notes)


def test_direct_nvlink_bridges_pair_gpus(fake_pynvml, machines, env, probe_kwargs):
    # H100 NVL style: bridges join 0-1 and 2-3 with 12 links each, no NVSwitch.
    machine = machines.l40s_pcie_4()
    for a, b in ((0, 1), (2, 3)):
        machine["gpus"][a]["nvlinks"] = [{"to": b}] * 12
        machine["gpus"][b]["nvlinks"] = [{"to": a}] * 12
    node = run_probe(fake_pynvml, machine, env, probe_kwargs)
    assert node.nvlink_domains == [[0, 1], [2, 3]]
    assert node.topology[0] == ["X", "NV12", "NODE", "NODE"]


def test_node_record_round_trips_through_json(fake_pynvml, machines, env, probe_kwargs):
    node = run_probe(fake_pynvml, machines.h100_mig(), env, probe_kwargs)
    again = from_dict(Node, to_dict(node))
    assert to_dict(again) == to_dict(node)


@pytest.mark.parametrize(
    ("edges", "n", "domains"),
    [
        ([], 3, [[0], [1], [2]]),
        ([(0, 1), (1, 2), (0, 2)], 3, [[0, 1, 2]]),
        ([(0, 1), (2, 3)], 4, [[0, 1], [2, 3]]),
        # DGX-1 hybrid cube mesh: quads fully connected, plus i <-> i+4
        ([(a, b) for q in (0, 4) for a in range(q, q + 4) for b in range(a + 1, q + 4)]
         + [(i, i + 4) for i in range(4)], 8,
         [[0, 1, 2, 3], [0, 4], [1, 5], [2, 6], [3, 7], [4, 5, 6, 7]]),
    ],
)
def test_nvlink_domains_are_maximal_cliques(edges, n, domains):
    adj = [[False] * n for _ in range(n)]
    for a, b in edges:
        adj[a][b] = adj[b][a] = True
    assert nvlink_domains(adj) == domains
