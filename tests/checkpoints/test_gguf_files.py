"""GGUF file-name parsing, grouping and header facts (pure; the reader is tested in tests/probes)."""

from __future__ import annotations

import pytest

from autoquant.checkpoints.gguf_files import group_variants, header_facts, parse_name
from autoquant.gguf import SkippedArray


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


def test_header_facts():
    meta = {"general.architecture": "llama", "general.file_type": 7, "llama.block_count": 80,
            "tokenizer.ggml.tokens": SkippedArray(128256)}
    facts = header_facts(meta)
    assert (facts["quant"], facts["num_layers"], facts["vocab_size"]) == ("q8_0", 80, 128256)
    assert header_facts({**meta, "llama.vocab_size": 7})["vocab_size"] == 7
    assert header_facts({"tokenizer.ggml.tokens": ["a", "b"]})["vocab_size"] == 2
    assert header_facts({"general.file_type": 9999})["quant"] is None


def test_letter_byte_splits_group_and_need_cat():
    # TheBloke's files over 50 GB: `-split-a`, `-split-b`, the count left unsaid
    from autoquant.checkpoints.gguf_files import group_variants

    v = group_variants(["llama-2-70b-chat.Q6_K.gguf-split-b", "llama-2-70b-chat.Q6_K.gguf-split-a",
                        "llama-2-70b-chat.Q4_K_M.gguf", "llama-2-70b-chat.Q8_0.gguf-split-b"])
    assert v["q6_k"].kind == "parts" and v["q6_k"].complete
    assert v["q6_k"].files == ["llama-2-70b-chat.Q6_K.gguf-split-a", "llama-2-70b-chat.Q6_K.gguf-split-b"]
    assert "cat" in v["q6_k"].problem
    assert v["q4_k_m"].kind == "single" and not v["q4_k_m"].problem
    assert not v["q8_0"].complete  # split-a missing


def test_a_letter_split_with_a_gap_is_incomplete():
    from autoquant.checkpoints.gguf_files import group_variants

    v = group_variants(["m.Q8_0.gguf-split-a", "m.Q8_0.gguf-split-c"])["q8_0"]
    assert not v.complete and "2 of 3" in v.problem
