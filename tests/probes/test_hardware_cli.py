"""`autoquant probe` through `autoquant.cli.main`, on THIS machine (nothing faked) and with --gpu/--hardware."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
import pytest

from autoquant.cli import main

NODES = Path(__file__).resolve().parents[1] / "fixtures" / "nodes"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOQUANT_CACHE_DIR", str(tmp_path / "aq-cache"))


def run_json(capsys, *argv: str) -> dict:
    assert main(["probe", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def _cgroup_file_limits() -> tuple[int | None, float | None]:
    """Read this machine's cgroup limits straight from the files (what `cat` shows), independently."""
    base = Path("/sys/fs/cgroup")
    mem = cpu = None
    if (base / "cgroup.controllers").exists():
        own = Path("/proc/self/cgroup").read_text().split("::", 1)[1].strip().lstrip("/")
        d = base / own if (base / own).is_dir() else base
        if (d / "memory.max").exists() and (t := (d / "memory.max").read_text().strip()) != "max":
            mem = int(t)
        if (d / "cpu.max").exists():
            q, p = (d / "cpu.max").read_text().split()
            cpu = None if q == "max" else int(q) / int(p)
    else:
        lines = dict(ln.split(":", 2)[1:] for ln in Path("/proc/self/cgroup").read_text().splitlines())
        mdir = base / "memory" / lines.get("memory", "/").lstrip("/")
        mdir = mdir if mdir.is_dir() else base / "memory"
        if (mdir / "memory.limit_in_bytes").exists():
            v = int((mdir / "memory.limit_in_bytes").read_text())
            mem = v if v < 1 << 60 else None
        cdir = base / "cpu" / next((v for k, v in lines.items() if "cpu" in k.split(",")), "/").lstrip("/")
        cdir = cdir if cdir.is_dir() else base / "cpu"
        if (cdir / "cpu.cfs_quota_us").exists():
            q = int((cdir / "cpu.cfs_quota_us").read_text())
            cpu = q / int((cdir / "cpu.cfs_period_us").read_text()) if q > 0 else None
    return mem, cpu


def test_probe_json_on_this_machine_matches_the_os(capsys):
    node = run_json(capsys, "--json", "--no-measure")
    assert node["schema_version"] == 1 and node["source"] == "probe"
    assert node["cpu"]["logical_cores"] == os.cpu_count()  # nproc
    vm = psutil.virtual_memory()
    assert node["ram_total_bytes"] == vm.total  # free -b, "total"
    assert abs(node["ram_available_bytes"] - vm.available) < 512 * 1024**2
    mem, cpu = _cgroup_file_limits()
    assert node["cgroup"]["memory_limit_bytes"] == mem
    assert node["cgroup"]["cpu_limit_cores"] == (round(cpu, 3) if cpu else None)
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        assert node["cgroup"]["version"] == 2
    elif Path("/sys/fs/cgroup/memory").is_dir():
        assert node["cgroup"]["version"] == 1
    if not Path("/dev/nvidia0").exists():
        assert node["gpus"] == [] and node["notes"]  # says why there are no GPUs


def test_probe_human_output_has_the_sections(capsys):
    assert main(["probe", "--no-measure", "--cpu-bandwidth", "42"]) == 0
    out = capsys.readouterr().out
    for heading in ("CPU", "Memory and limits", "model cache", "cgroup memory limit"):
        assert heading in out
    assert "42.0 GB/s (flag)" in out


def test_probe_gpu_flag_prints_the_synthetic_node(capsys):
    node = run_json(capsys, "--gpu", "H100-SXM:8", "--json")
    assert node["source"] == "gpu-flag"
    assert len(node["gpus"]) == 8
    assert node["nvlink_domains"] == [list(range(8))]
    assert node["gpus"][0]["catalog_key"] == "H100-SXM"


def test_probe_gpu_flag_human_tables(capsys):
    assert main(["probe", "--gpu", "H100-NVL:4"]) == 0
    out = capsys.readouterr().out
    assert "NVIDIA H100 NVL" in out
    assert "NVLink domains: [0,1]  [2,3]" in out
    assert "NV12" in out


def test_probe_save_and_read_back(capsys, tmp_path):
    path = tmp_path / "node.json"
    assert main(["probe", "--gpu", "l40s:4", "--save", str(path)]) == 0
    assert f"saved to {path}" in capsys.readouterr().out
    saved = json.loads(path.read_text())
    assert saved["gpus"][0]["catalog_key"] == "L40S"
    again = run_json(capsys, "--hardware", str(path), "--json")
    assert again["source"] == "file"
    assert again["gpus"] == saved["gpus"]


@pytest.mark.parametrize("fixture", ["cpu-2core.json", "h100-sxm-8.json"])
def test_saved_node_fixtures_load(capsys, fixture):
    node = run_json(capsys, "--hardware", str(NODES / fixture), "--json")
    assert node["source"] == "file"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gpu", "H1000:8"], "unknown GPU 'H1000'; did you mean"),
        (["--gpu", "H100-SXM:0"], "COUNT must be at least 1"),
        (["--gpu", "H100-SXM:eight"], "COUNT must be a positive integer"),
        (["--gpu", "M2-Max:2"], "an Apple chip is one per machine"),
        (["--gpu", "H100-SXM", "--hardware", "x.json"], "give either --hardware or --gpu"),
        (["--cpu-bandwidth", "-3"], "expected a positive number"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, message):
    assert main(["probe", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autoquant: error: ") and message in err
    assert len(err.splitlines()) == 1


def test_save_to_unwritable_path_is_one_line(capsys, tmp_path):
    assert main(["probe", "--gpu", "cpu:4", "--save", str(tmp_path / "missing-dir" / "n.json")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_gpu_flag_and_help_never_touch_nvml_or_numpy():
    # A fresh interpreter, so modules imported by other tests do not count.
    import subprocess
    import sys

    code = (
        "import sys, io, contextlib\n"
        "from autoquant.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main([]); main(['probe', '--gpu', 'H100-SXM:8', '--json'])\n"
        "print(sorted(m for m in ('pynvml', 'numpy', 'torch', 'psutil') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
