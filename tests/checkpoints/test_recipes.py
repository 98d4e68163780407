"""How to make a missing checkpoint: the recipe follows the engine's preferred producer."""

from __future__ import annotations

import pytest

from autoquant.checkpoints.recipes import how_to_make


@pytest.mark.parametrize(("method", "qformat"), [("fp8", "fp8"), ("awq-int4", "int4_awq"),
                                                 ("gptq-int8", "int8_wo"), ("nvfp4", "nvfp4")])
def test_modelopt_export_names_the_methods_qformat(method, qformat):
    how = how_to_make(method, "meta-llama/Llama-3.1-8B-Instruct", producer="modelopt")
    assert f"--quant {qformat} --export_fmt hf" in how


def test_without_a_modelopt_qformat_the_method_keeps_its_own_recipe():
    assert "llama-quantize" in how_to_make("gguf-q4_k_m", "org/M-7B", producer="modelopt")
    assert "scheme='W8A16'" in how_to_make("gptq-int8", "org/M-7B")
