"""Rejections grouped by reason for the one-screen plan (autoquant.planner.summary)."""

from __future__ import annotations

from autoquant.planner.summary import MAX_LINE, group_rejections
from autoquant.records import Rejection

GGUF = [f"gguf-{t}" for t in ("q2_k", "q3_k_m", "q4_0", "q4_k_m", "q5_k_m", "q6_k", "q8_0")]


def test_missing_checkpoints_are_one_line_counting_gguf_types():
    rejected = [Rejection("llamacpp", m, f"{m} on llama.cpp: no {m} checkpoint found for org/model", rule="checkpoint", scope="method")
                for m in GGUF]
    lines = group_rejections(rejected, "org/model")
    assert len(lines) == 1
    assert "7 GGUF types" in lines[0] and "explain org/model --recipes" in lines[0]


def test_the_same_engine_rule_for_several_engines_is_one_line():
    rejected = [Rejection(e, "nvfp4", "nvfp4 needs compute capability 10.0 or newer", rule="cc") for e in
                ("vllm", "sglang", "trtllm")] + [Rejection("vllm", "fp8", "fp8: quality: +0.40 ppl exceeds the 0.3 "
                                                            "floor", rule="quality")]
    lines = group_rejections(rejected, "m")
    assert len(lines) == 2
    # what the user can act on (the floor) comes before the engines' rules
    assert lines[0].startswith("over the 0.3 ppl quality floor") and "fp8 (+0.40)" in lines[0]
    assert lines[1].startswith("nvfp4 on ") and lines[1].count("nvfp4") == 2


def test_lines_are_clipped():
    long = "x" * 500
    lines = group_rejections([Rejection("vllm", "fp8", long, rule="r")], "m")
    assert len(lines[0]) <= MAX_LINE and lines[0].endswith("…")
