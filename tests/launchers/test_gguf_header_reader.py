"""The minimal GGUF header reader, on a synthetic file and on the real demo model."""

import struct

import pytest

from autoquant.launchers.gguf_header import GGUFHeaderError, read_metadata


def _s(text):
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def test_synthetic_header(tmp_path):
    kvs = [
        _s("general.architecture") + struct.pack("<I", 8) + _s("llama"),
        _s("llama.context_length") + struct.pack("<I", 4) + struct.pack("<I", 8192),
        _s("tokenizer.ggml.tokens") + struct.pack("<I", 9) + struct.pack("<IQ", 8, 2) + _s("a") + _s("bc"),
        _s("tokenizer.chat_template") + struct.pack("<I", 8) + _s("{{x}}"),
    ]
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs))
    meta = read_metadata(str(path))
    assert meta == {"general.architecture": "llama", "llama.context_length": 8192,
                    "tokenizer.ggml.tokens": None, "tokenizer.chat_template": "{{x}}"}


def test_not_gguf(tmp_path):
    (tmp_path / "x.gguf").write_bytes(b"NOPE")
    with pytest.raises(GGUFHeaderError):
        read_metadata(str(tmp_path / "x.gguf"))


def test_demo_model_header(demo_gguf):
    meta = read_metadata(demo_gguf)
    assert meta["general.architecture"] == "gemma3" and meta["gemma3.context_length"] == 32768
    assert "tokenizer.chat_template" not in meta
