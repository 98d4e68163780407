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


def test_qwen3_and_qwen2_are_separate_families():
    from autoquant.planner.quality import family

    assert family("Qwen/Qwen3-8B") == "qwen3" and family("Qwen/Qwen3-30B-A3B-FP8") == "qwen3"
    assert family("Qwen/Qwen2.5-72B-Instruct") == "qwen2" and family("Qwen/Qwen2-7B-Instruct") == "qwen2"


def test_a_family_with_its_own_figures_uses_them():
    from autoquant.planner.quality import ppl_delta

    q = ppl_delta("awq-int4", int(32.8e9), "Qwen/Qwen3-32B")
    assert q.source.startswith("qwen3 rows") and q.ppl_delta > 0.5  # the Qwen3 study: AWQ W4 g128 costs ~0.9 ppl
    assert ppl_delta("gptq-int4", int(8e9), "meta-llama/Llama-3.1-8B-Instruct").source.startswith("llama3 rows")


def test_a_borrowed_figure_says_so_and_widens_its_uncertainty():
    from autoquant.planner.quality import ppl_delta

    q = ppl_delta("awq-int4", int(72.7e9), "Qwen/Qwen2.5-72B-Instruct")
    assert q.source.startswith("no qwen2 perplexity figure for awq-int4: the median of")
    assert q.uncertainty is not None and q.uncertainty >= q.ppl_delta  # +-100% of a borrowed delta at least
    # the family's own published measurement, in its own unit
    assert "Qwen2-72B-Instruct awq-int4 keeps 98.9% of its 16-bit accuracy" in q.source
    # borrowing pools families, not one family's rows: a single very sensitive family cannot set the figure
    assert q.ppl_delta < 0.94
