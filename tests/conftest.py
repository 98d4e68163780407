"""Shared fixtures for the core tests (planner, engines): real published configs (tests/fixtures/hf-configs) and
synthetic nodes from the GPU catalog. Nothing is faked: the planner is pure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoquant.catalog.gpus import synthetic_node
from autoquant.modelspec import from_hf_config
from autoquant.records import ModelSpec, Node

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf-configs"


def load_fixture(name: str) -> ModelSpec:
    """ModelSpec of tests/fixtures/hf-configs/<org>__<name>/config.json."""
    config = json.loads((FIXTURES / name / "config.json").read_text())
    return from_hf_config(config, name.replace("__", "/"), "config")


def apple_node(key: str, gib: int) -> Node:
    node = synthetic_node(key)
    node.apple.unified_memory_bytes = gib * 1024**3
    node.ram_total_bytes = gib * 1024**3
    return node


@pytest.fixture(scope="session")
def model():
    return load_fixture


@pytest.fixture(scope="session")
def apple():
    return apple_node


@pytest.fixture(scope="session")
def node():
    return synthetic_node


@pytest.fixture(autouse=True)
def _own_speed_model(monkeypatch):
    """Plans in tests use autoquant's own speed model; the tests of the optional AIConfigurator predictor ask
    for it explicitly (`--predictor aic` or a predictor passed to plan)."""
    monkeypatch.setenv("AUTOQUANT_PREDICTOR", "autoquant")


@pytest.fixture(scope="session")
def openai_fake():
    """tests/fakes/openai_server.py (a fake OpenAI-compatible streaming server), loaded by path: tests/ is not a
    package."""
    import importlib.util
    import sys

    pytest.importorskip("aiohttp")
    name = "autoquant_tests_fake_openai"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "fakes" / "openai_server.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
