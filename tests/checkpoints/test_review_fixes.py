"""Regression tests for the checkpoint/probe review: one cache-dir rule, one offline rule and one memoised
reachability probe, one rename table, one GGUF architecture table, name-only GGUF variants, one GGUF
QuantSpec, one cached GGUF walk, and 8-bit GPTQ names. Faked only at the boundary: the socket connect."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from autoquant.catalog import models as catalog
from autoquant.checkpoints import gguf_files, hub, registry
from autoquant.checkpoints.hub import HfHubClient, HubSettings, HubUnavailable, hf_cache_dir
from autoquant.checkpoints.verify import check_base_link, check_gguf_header, guess_method
from autoquant.quantconfig import from_gguf_file_type, gguf_quant_spec


# 1. the Hub cache directory ------------------------------------------------------------------------------
def test_hf_cache_dir_follows_huggingface_hub_precedence(tmp_path):
    assert hf_cache_dir({"HF_HUB_CACHE": "/a", "HUGGINGFACE_HUB_CACHE": "/b", "HF_HOME": "/c"}) == Path("/a")
    assert hf_cache_dir({"HUGGINGFACE_HUB_CACHE": "/b", "HF_HOME": "/c"}) == Path("/b")
    assert hf_cache_dir({"HF_HOME": "/c", "XDG_CACHE_HOME": "/x"}) == Path("/c/hub")
    assert hf_cache_dir({"XDG_CACHE_HOME": "/x", "HOME": str(tmp_path)}) == Path("/x/huggingface/hub")
    assert hf_cache_dir({"HOME": str(tmp_path)}) == tmp_path / ".cache/huggingface/hub"


def test_all_three_cache_dir_users_agree(monkeypatch, tmp_path):
    from autoquant.probes.hardware import hf_cache_dir as hardware_dir
    from autoquant.probes.model import hub_cache_dir

    for key in ("HF_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    want = tmp_path / "xdg" / "huggingface" / "hub"
    assert hub_cache_dir() == want and Path(HubSettings.from_env().cache_dir) == want
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", str(tmp_path / "legacy"))
    env = dict(__import__("os").environ)
    assert hub_cache_dir() == hardware_dir(env) == Path(HubSettings.from_env().cache_dir) == tmp_path / "legacy"


# 2. one offline rule, one reachability probe ------------------------------------------------------------
def test_transformers_offline_is_named_as_itself():
    s = HubSettings.from_env({"TRANSFORMERS_OFFLINE": "1", "HOME": "/nonexistent"})
    assert s.offline and s.offline_reason == "TRANSFORMERS_OFFLINE"
    with pytest.raises(HubUnavailable, match="TRANSFORMERS_OFFLINE is set"):
        HfHubClient(s).repo_info("a/b")
    # huggingface_hub reads TRANSFORMERS_OFFLINE only when HF_HUB_OFFLINE is unset
    assert not HubSettings.from_env({"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1", "HOME": "/x"}).offline


def test_one_reachability_probe_per_command(monkeypatch):
    from autoquant.probes.model import load_model

    calls = []

    def refuse(address, timeout=None):  # the boundary: the network is down
        calls.append(address)
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(hub, "_REACHABILITY", {})
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HTTPS_PROXY", "https_proxy",
                "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    assert load_model("mistralai/Mixtral-8x7B-v0.1", cache_dir="/nonexistent").source == "catalog"
    with pytest.raises(HubUnavailable, match="Network is unreachable"):
        HfHubClient(HubSettings()).repo_info("a/b")  # the resolver's client: no second probe
    assert len(calls) == 1


def test_proxy_skips_the_probe(monkeypatch):
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("probed behind a proxy"))
    assert hub.hub_unreachable("https://hub.example", proxy=True) is None


# 3. one rename table -------------------------------------------------------------------------------------
def test_llama3_renames_agree_everywhere():
    assert check_base_link(["meta-llama/Meta-Llama-3-8B-Instruct"], "meta-llama/Llama-3-8B-Instruct") == (True, None)
    assert check_base_link(["meta-llama/Llama-3-8B-Instruct"], "meta-llama/Meta-Llama-3-8B-Instruct") == (True, None)
    assert "meta-llama/Llama-3-8B-Instruct" in registry.aliases("meta-llama/Meta-Llama-3-8B-Instruct")
    assert catalog.canonical_id("meta-llama/llama-3-8b-instruct") == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert catalog.canonical_id("meta-llama/Meta-Llama-3.1-8B") == "meta-llama/Llama-3.1-8B"
    assert check_base_link(["meta-llama/Meta-Llama-3-8B"], "meta-llama/Llama-3-8B-Instruct")[0] is False


# 4. one GGUF architecture table --------------------------------------------------------------------------
def _base(model_type: str) -> SimpleNamespace:
    return SimpleNamespace(id="CohereForAI/c4ai-command-r-v01", model_type=model_type, num_layers=40,
                           hidden_size=8192, num_heads=64, num_kv_heads=64)


def test_command_r_gguf_matches_a_cohere_base():
    facts = {"architecture": "command-r", "quant": "q4_k_m", "num_layers": 40, "hidden_size": 8192}
    assert check_gguf_header(facts, "q4_k_m", _base("cohere")) == (True, None)
    assert catalog.model_type_of_gguf("command-r") == "cohere"
    assert catalog.gguf_architecture("cohere") == "command-r"
    assert catalog.model_type_of_gguf("llama") == "llama" and catalog.gguf_architecture("mistral") == "llama"
    assert check_gguf_header({**facts, "architecture": "llama"}, "q4_k_m", _base("cohere"))[0] is False


# 5. name-only GGUF variants ------------------------------------------------------------------------------
@pytest.mark.parametrize(("named", "header"), [("q4_k_l", "q4_k_m"), ("q3_k_xl", "q3_k_l"), ("q6_k_l", "q6_k"),
                                                ("ud-q4_k_xl", "q4_k_m"), ("ud-iq1_s", "iq1_s")])
def test_name_only_variants_compare_their_base_type(named, header):
    assert gguf_files.base_type(named) == header
    assert check_gguf_header({"quant": header}, named, None) == (True, None)


def test_real_mismatch_still_rejected():
    ok, reason = check_gguf_header({"quant": "q2_k"}, "q4_k_l", None)
    assert not ok and "Q2_K" in reason and "Q4_K_L" in reason
    assert gguf_files.parse_name("Llama-3.1-8B-Instruct-Q4_K_L.gguf").quant == "q4_k_l"


# 6. one GGUF QuantSpec -----------------------------------------------------------------------------------
def test_gguf_quant_spec_is_the_same_everywhere():
    f16 = gguf_quant_spec("f16")
    assert f16.weight_type == "float" and f16.weight_bits == 16
    assert from_gguf_file_type(1) == f16  # LlamaFileType.MOSTLY_F16 == 1
    entry = registry.RegistryEntry(repo="a/b-GGUF", base="a/b", method="gguf-f16", files=("b-F16.gguf",))
    assert entry.quant_spec() == f16
    assert gguf_quant_spec("ud-q4_k_xl").weight_bits == gguf_quant_spec("q4_k_xl").weight_bits > 4


# 8. 8-bit GPTQ names -------------------------------------------------------------------------------------
@pytest.mark.parametrize("repo", ["someone/Llama-3.1-8B-Instruct-gptq-8bit", "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int8",
                                  "someone/Qwen2.5-7B-Instruct-Int8-GPTQ", "someone/x-8bit-gptq",
                                  "RedHatAI/x-quantized.w8a16"])
def test_gptq_int8_names_in_any_order(repo):
    assert guess_method(repo, []) == "gptq-int8"


def test_gptq_int4_names_unchanged():
    assert guess_method("hugging-quants/Meta-Llama-3.1-8B-Instruct-GPTQ-INT4", []) == "gptq-int4"
    assert guess_method("TheBloke/Llama-2-7B-GPTQ", []) == "gptq-int4"
