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


@pytest.mark.parametrize(("name", "fam"), [
    ("huggyllama/llama-30b", "llama1"), ("huggyllama/llama-13b", "llama1"), ("meta-llama/Meta-Llama-3-8B", "llama3"),
    ("meta-llama/Llama-3.1-70B-Instruct", "llama3"), ("meta-llama/Llama-2-13b-hf", "llama2"),
])
def test_family_is_not_fooled_by_a_size_that_starts_with_a_version_digit(name, fam):
    assert quality.family(name) == fam


def test_w8a16_has_measured_deltas_far_below_w8a8_and_w4a16():
    for model, params in (("meta-llama/Llama-2-7b-hf", 6_740_000_000), ("meta-llama/Llama-3.1-70B-Instruct",
                                                                          70_550_000_000)):
        w8a16 = quality.ppl_delta("gptq-int8", params, model_id=model)
        w8a8 = quality.ppl_delta("int8-sq", params, model_id=model)
        w4a16 = quality.ppl_delta("gptq-int4", params, model_id=model)
        assert w8a16.ppl_delta is not None and "proxy" not in w8a16.source
        assert 0 <= w8a16.ppl_delta < 0.01 < w8a8.ppl_delta < w4a16.ppl_delta


def test_a_tight_floor_plans_w8a16_where_bf16_would_queue(model, node):
    from autoquant.planner import plan

    p = plan(model("meta-llama__Llama-3.1-70B-Instruct"), node("H100-SXM:2"),
             Workload(concurrency=128, isl=512, osl=256, max_ppl_delta=0.05))
    c = p.chosen
    assert c is not None and c.method == "gptq-int8" and c.kernel == "machete-int8"
    assert c.ppl_delta is not None and c.ppl_delta < 0.01 and c.max_num_seqs >= 128  # no queue, unlike BF16
