"""Estimates that say when they are useless: minutes of TTFT, under 1 tok/s, outside the fitted range."""

from __future__ import annotations

from autoquant.planner import estimate
from autoquant.records import Workload


def test_a_fitted_configuration_carries_no_warning(model, node):
    e = estimate(model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:1"),
                 Workload(concurrency=16, isl=1024, osl=256), engine="vllm", method="bf16")
    assert e.warnings == [] and e.predictor == "autoquant"


def test_a_queue_of_minutes_is_flagged(model, node):
    e = estimate(model("meta-llama__Llama-3.1-70B-Instruct"), node("H100-SXM:2"),
                 Workload(concurrency=4096, isl=8192, osl=512), engine="vllm", method="fp8", tp=2)
    assert e.ttft_ms > 60_000
    assert any(w.startswith("TTFT ") and "min" in w for w in e.warnings)


def test_a_crawl_under_one_token_a_second_is_flagged(model, node):
    # 75 GB of Q8_0 weights through a desktop's two DDR4 channels (51 GB/s): a token every few seconds
    e = estimate(model("meta-llama__Llama-3.1-70B-Instruct"), node("cpu:Ryzen-5950X"), Workload(concurrency=1),
                 engine="llamacpp", method="gguf-q8_0")
    assert e.per_request_tokens_per_s < 1
    assert any(w.startswith("decode ") for w in e.warnings)


def test_a_gpu_class_without_fitted_rows_is_flagged(model, node):
    e = estimate(model("meta-llama__Llama-3.1-8B-Instruct"), node("L4:1"), Workload(concurrency=4),
                 engine="vllm", method="bf16")
    assert any("outside the fitted range" in w and "ada-gddr" in w for w in e.warnings)


def test_a_model_far_beyond_the_fitted_sizes_is_flagged(model, node):
    e = estimate(model("meta-llama__Llama-3.2-1B"), node("H100-SXM:1"), Workload(concurrency=4),
                 engine="trtllm", method="bf16")
    assert any("model size" in w for w in e.warnings)
