"""The GGUF type tables (autoquant/gguf/types.py) against the `gguf` package they were copied from."""

from __future__ import annotations

import importlib.metadata

import pytest

from autoquant.gguf import types

gguf = pytest.importorskip("gguf")


def _same_version() -> bool:
    return f"gguf {importlib.metadata.version('gguf')}" == types.GENERATED_FROM


def test_ggml_types_match_the_package():
    package = {int(t): (t.name, block, size) for t, (block, size) in gguf.GGML_QUANT_SIZES.items()}
    known = {k: v for k, v in types.GGML_TYPES.items() if k in package}
    assert known == {k: v for k, v in package.items() if k in types.GGML_TYPES}, "a type changed: regenerate"
    missing = sorted(set(package) - set(types.GGML_TYPES))
    assert not missing, f"gguf {importlib.metadata.version('gguf')} has new types {missing}: python scripts/gguf_types.py"
    if _same_version():  # an older gguf may lack newer types; the version copied from has exactly these
        assert set(types.GGML_TYPES) == set(package), "types.py lists types gguf does not have"


def test_llama_file_types_match_the_package():
    package = {int(m): m.name for m in gguf.LlamaFileType}
    assert {k: v for k, v in types.LLAMA_FILE_TYPES.items() if k in package} == {
        k: v for k, v in package.items() if k in types.LLAMA_FILE_TYPES}, "a file type changed: regenerate"
    missing = sorted(set(package) - set(types.LLAMA_FILE_TYPES))
    assert not missing, f"gguf has new file types {missing}: python scripts/gguf_types.py"
    if _same_version():
        assert set(types.LLAMA_FILE_TYPES) == set(package), "types.py lists file types gguf does not have"


def test_lookups():
    assert types.ggml_type_size(12) == (256, 144)  # Q4_K
    assert types.ggml_type_size(4) is None  # Q4_2: gone from ggml
    assert types.file_type_name(15) == "Q4_K_M" and types.file_type_name(0) == "F32"
    assert types.file_type_name(9999) is None
