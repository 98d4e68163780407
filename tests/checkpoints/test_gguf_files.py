"""GGUF file-name parsing, grouping and header reading (pure)."""

from __future__ import annotations

import io
import struct

import pytest

from autoquant.checkpoints.gguf_files import (
    GGUFHeaderError,
    group_variants,
    header_facts,
    parse_name,
    read_header,
)


@pytest.mark.parametrize("path,quant", [
    ("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", "q4_k_m"),
    ("qwen2.5-7b-instruct-q4_k_m.gguf", "q4_k_m"),
    ("mixtral-8x7b-instruct-v0.1.Q4_K_M.gguf", "q4_k_m"),
    ("Meta-Llama-3.1-8B-Instruct-IQ4_XS.gguf", "iq4_xs"),
    ("Meta-Llama-3.1-8B-Instruct-Q6_K_L.gguf", "q6_k_l"),
    ("Llama-3.3-70B-Instruct-UD-Q4_K_XL.gguf", "ud-q4_k_xl"),
    ("BF16/Qwen3-30B-A3B-BF16-00001-of-00002.gguf", "bf16"),
    ("gemma-3-27b-it-f16-00001-of-00002.gguf", "f16"),
    ("model-Q4_K.gguf", "q4_k_m"),
])
def test_quant_from_name(path, quant):
    assert parse_name(path).quant == quant


def test_non_weight_files_skipped():
    assert parse_name("mmproj-model-f16.gguf") is None
    assert parse_name("gemma-2-27b-it.mmproj-f16.gguf") is None
    assert parse_name("Meta-Llama-3.1-70B-Instruct.imatrix") is None


def test_split_shards_and_parts_grouped():
    v = group_variants([
        ("A-Q8_0/A-Q8_0-00002-of-00002.gguf", 2), ("A-Q8_0/A-Q8_0-00001-of-00002.gguf", 1),
        ("A.Q5_K_M.gguf.part1of2", 5), ("A.Q5_K_M.gguf.part2of2", 6), ("A-Q6_K-00001-of-00003.gguf", 1),
    ])
    assert v["q8_0"].kind == "split" and v["q8_0"].files[0].endswith("00001-of-00002.gguf") and v["q8_0"].size_bytes == 3
    assert v["q5_k_m"].kind == "parts" and "cat" in v["q5_k_m"].problem
    assert not v["q6_k"].complete and "1 of 3" in v["q6_k"].problem


def _kv_string(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def test_read_header_stops_before_tensors():
    body = b"GGUF" + struct.pack("<IQQ", 3, 99, 2)
    body += _kv_string("general.architecture") + struct.pack("<I", 8) + _kv_string("llama")
    body += _kv_string("general.file_type") + struct.pack("<II", 4, 7)
    meta = read_header(io.BytesIO(body + b"\xff" * 16))  # trailing bytes (tensor table) are never parsed
    assert header_facts(meta)["quant"] == "q8_0" and meta["__tensor_count__"] == 99


def test_read_header_rejects_non_gguf():
    with pytest.raises(GGUFHeaderError, match="not a GGUF"):
        read_header(io.BytesIO(b"PK\x03\x04" + b"\0" * 20))
