"""The GGUF model probe (probes/gguf_file.read_gguf) over the core reader (autoquant.gguf)."""

from __future__ import annotations

import pytest

from autoquant.gguf import read_header
from autoquant.gguf import reader as gguf_reader
from autoquant.probes import gguf_file


def test_gguf_file_walked_once_for_probe_and_verification(gemma_gguf):
    """read_gguf (tensors) and verification (header only) share one cached walk of the file."""
    gguf_reader._read_path.cache_clear()
    gguf_file.read_gguf(gemma_gguf)
    header = read_header(gemma_gguf)
    assert header.tensors == [] and header.meta["general.architecture"] == "gemma3"
    info = gguf_reader._read_path.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    with pytest.raises(TypeError):
        header.meta["x"] = 1  # shared: read-only
