"""Quality deltas from quality.yaml: interpolation in log(params), family preference, the floor."""

from __future__ import annotations

import pytest

from autoquant.planner import quality
from autoquant.records import Workload


def test_unquantized_is_zero():
    assert quality.ppl_delta("bf16", 8_000_000_000).ppl_delta == 0.0


def test_same_family_rows_preferred():
    q3 = quality.ppl_delta("gguf-q4_k_m", 8_030_000_000, model_id="meta-llama/Llama-3.1-8B-Instruct")
    q2 = quality.ppl_delta("gguf-q4_k_m", 6_740_000_000, model_id="meta-llama/Llama-2-7b-hf")
    assert q3.ppl_delta == pytest.approx(0.1754, abs=0.03)  # Llama-3-8B row
    assert q2.ppl_delta == pytest.approx(0.0825, abs=0.01)  # Llama-2-7B row
    assert "llama3" in q3.source and "llama2" in q2.source


def test_interpolates_in_log_params_between_sizes():
    small = quality.ppl_delta("gguf-q4_k_m", 6_740_000_000, model_id="huggyllama/llama-7b").ppl_delta
    large = quality.ppl_delta("gguf-q4_k_m", 13_020_000_000, model_id="huggyllama/llama-13b").ppl_delta
    mid = quality.ppl_delta("gguf-q4_k_m", 9_400_000_000, model_id="huggyllama/llama-9b")
    assert min(small, large) <= mid.ppl_delta <= max(small, large)
    assert "interpolated" in mid.source


def test_unknown_method_has_no_figure():
    q = quality.ppl_delta("nvfp4", 8_000_000_000)
    assert q.ppl_delta is None and "nvfp4" in q.source


def test_fp8_uses_its_documented_proxy():
    q = quality.ppl_delta("fp8", 70_000_000_000, model_id="meta-llama/Llama-2-70b-hf")
    assert q.ppl_delta is not None and "proxy" in q.source


def test_floor_from_use_case_and_explicit():
    assert quality.quality_floor(Workload(use_case="medical"))[0] == 0.05
    assert quality.quality_floor(Workload(use_case="code"))[0] == 0.2
    assert quality.quality_floor(Workload(max_ppl_delta=0.07, use_case="chat"))[0] == 0.07
    floor, why = quality.quality_floor(Workload())
    assert floor == 0.3 and "default" in why
