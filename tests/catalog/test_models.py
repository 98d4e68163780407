"""The bundled model catalog: every entry parses, matches its published total, and agrees with the fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoquant import data
from autoquant.catalog import models as catalog
from autoquant.errors import NotFoundError
from autoquant.modelspec import from_hf_config

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hf-configs"
ENTRIES = data.load("models")["models"]

REQUIRED = [  # the brief's list: one id per family member
    "meta-llama/Llama-2-7b-chat-hf", "meta-llama/Llama-2-13b-hf", "meta-llama/Llama-2-70b-chat-hf",
    "meta-llama/Meta-Llama-3-8B-Instruct", "meta-llama/Meta-Llama-3-70B", "meta-llama/Llama-3.1-405B-Instruct",
    "meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-3B", "meta-llama/Llama-3.3-70B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.1", "mistralai/Mistral-7B-Instruct-v0.2", "mistralai/Mistral-7B-Instruct-v0.3",
    "mistralai/Mixtral-8x7B-v0.1", "mistralai/Mixtral-8x22B-Instruct-v0.1",
    *[f"Qwen/Qwen2.5-{s}-Instruct" for s in ("0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B")],
    *[f"Qwen/Qwen3-{s}" for s in ("0.6B", "1.7B", "4B", "8B", "14B", "32B", "30B-A3B", "235B-A22B")],
    *[f"google/gemma-2-{s}" for s in ("2b", "9b-it", "27b-it")],
    *[f"google/gemma-3-{s}" for s in ("270m", "1b-it", "4b-it", "12b-it", "27b-it")],
    "microsoft/Phi-3-mini-4k-instruct", "microsoft/Phi-3-mini-128k-instruct", "microsoft/Phi-3-medium-4k-instruct",
    "microsoft/phi-4", "deepseek-ai/DeepSeek-V3", "deepseek-ai/DeepSeek-R1",
]


@pytest.mark.parametrize("model_id", REQUIRED)
def test_required_models_are_catalogued(model_id):
    assert catalog.find(model_id) is not None


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["ids"][0])
def test_entry_is_sourced_and_within_2_percent(entry):
    assert entry["params_source"] and entry["config_source"]
    spec = catalog.spec_from_catalog(entry["ids"][0])
    assert spec.source == "catalog" and spec.published_params == entry["published_params"]
    assert abs(spec.total_params / entry["published_params"] - 1) < 0.02
    if entry.get("published_active_params"):
        assert abs(spec.active_params / entry["published_active_params"] - 1) < 0.02


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e["config_source"].startswith("fixture:")],
                         ids=lambda e: e["ids"][0])
def test_entry_agrees_with_its_fixture(entry):
    name = entry["config_source"].split()[0].removeprefix("fixture:")
    fixture = from_hf_config(json.loads((FIXTURES / name / "config.json").read_text()), "f", "config")
    ours = catalog.spec_from_catalog(entry["ids"][0])
    for field in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim", "intermediate_size",
                  "vocab_size", "tie_word_embeddings", "num_experts", "experts_per_token", "kv_lora_rank",
                  "sliding_window_layers", "total_params"):
        assert getattr(ours, field) == getattr(fixture, field), field


def test_lookup_is_case_insensitive_and_knows_meta_renames():
    a = catalog.find("meta-llama/Meta-Llama-3.1-70B-Instruct")
    b = catalog.find("META-LLAMA/llama-3.1-70b-instruct")
    assert a is not None and a is b
    assert catalog.spec_from_catalog("meta-llama/Meta-Llama-3.1-70B-Instruct").id == "meta-llama/Llama-3.1-70B-Instruct"
    assert catalog.find("meta-llama/Llama-3-8B-Instruct") is catalog.find("meta-llama/Meta-Llama-3-8B-Instruct")


def test_multimodal_gemma3_has_vision_tower():
    spec = catalog.spec_from_catalog("google/gemma-3-27b-it")
    assert spec.multimodal and spec.vision_params > 0 and spec.num_layers == 62 and spec.vocab_size == 262208
    assert spec.sliding_window_layers == 52  # 62 - 62 // 6


def test_deepseek_catalog_carries_fp8_and_mtp():
    spec = catalog.spec_from_catalog("deepseek-ai/DeepSeek-R1")
    assert spec.quantization is not None and spec.quantization.method == "fp8"
    assert spec.mtp_params > 0 and spec.published_active_params == 37_000_000_000


def test_unknown_model():
    assert catalog.find("nobody/nothing") is None
    with pytest.raises(NotFoundError, match="not in the bundled model catalog"):
        catalog.spec_from_catalog("nobody/nothing")
    assert "meta-llama/Llama-3.1-8B" in catalog.known_ids()
