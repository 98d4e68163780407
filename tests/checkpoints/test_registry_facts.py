"""The bundled registry's recorded facts (autoquant/data/checkpoints.yaml) against what they stand for: the recorded
configs of the repos the test fixtures hold, the catalog's base models, and the GGUF file-name rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoquant.catalog.models import spec_from_catalog
from autoquant.checkpoints import gguf_files, registry
from autoquant.quantconfig import parse_quantization

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ENTRIES = registry.entries()


def _recorded(repo: str) -> Path | None:
    for root in (FIXTURES / "hub" / "repos", FIXTURES / "hf-configs"):
        d = root / repo.replace("/", "__")
        if (d / "config.json").is_file():
            return d
    return None


RECORDED = [e for e in ENTRIES if not e.method.startswith("gguf-") and _recorded(e.repo)]


def test_some_entries_have_a_recorded_config():
    assert len(RECORDED) >= 5


@pytest.mark.parametrize("entry", RECORDED, ids=lambda e: e.repo)
def test_recorded_facts_match_the_recorded_config(entry):
    d = _recorded(entry.repo)
    assert d is not None
    config = json.loads((d / "config.json").read_text())
    extra = {n: json.loads((d / n).read_text()) if (d / n).is_file() else None
             for n in ("hf_quant_config.json", "quantize_config.json", "quant_config.json")}
    real = parse_quantization(config, extra["hf_quant_config.json"], extra["quantize_config.json"],
                              extra["quant_config.json"])
    assert real is not None
    said = entry.quant_spec()
    assert real.method == entry.method
    assert real.weight_bits == said.weight_bits
    if said.group_size is not None:
        assert real.group_size == said.group_size
    if said.act_bits is not None:
        assert real.act_bits == said.act_bits
    if entry.intermediate_size is not None:
        assert config["intermediate_size"] == entry.intermediate_size


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.usable_offline], ids=lambda e: f"{e.repo}:{e.method}")
def test_every_usable_entry_has_a_catalog_base(entry):
    # offline, a registry row plans only against a base whose shapes the catalog knows
    assert spec_from_catalog(entry.base) is not None, entry.base


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.method.startswith("gguf-")], ids=lambda e: f"{e.repo}:{e.method}")
def test_gguf_file_names_say_their_type(entry):
    variants = gguf_files.group_variants(entry.files)
    declared = entry.method.removeprefix("gguf-")
    assert {gguf_files.base_type(q) for q in variants} == {gguf_files.base_type(declared)}


def test_the_seeds_llama2_chat_models_have_awq_gptq_and_gguf():
    for size in ("7b", "13b", "70b"):
        methods = {e.method for e in registry.for_base(f"meta-llama/Llama-2-{size}-chat-hf") if e.usable_offline}
        assert {"awq-int4", "gptq-int4", "gguf-q4_k_m"} <= methods, (size, methods)


def test_qwen_72b_quants_record_their_padded_mlp():
    rows = {e.repo: e for e in registry.for_base("Qwen/Qwen2.5-72B-Instruct")}
    assert rows["Qwen/Qwen2.5-72B-Instruct-AWQ"].intermediate_size == 29696
    assert rows["Qwen/Qwen2.5-72B-Instruct-GPTQ-Int4"].intermediate_size == 29696
    assert 29696 % (4 * 128) == 0 and 29568 % (4 * 128) != 0  # why: whole 128-groups per GPU at TP=4
