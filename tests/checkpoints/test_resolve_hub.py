"""Resolution against the Hub, through FakeHub (a fake of the Hub boundary; see conftest.py)."""

from __future__ import annotations

import pytest

from autoquant.checkpoints import resolve, resolve_for_plan
from autoquant.checkpoints.hub import HubSettings
from autoquant.errors import InputError, NotFoundError

L70 = "meta-llama/Llama-3.1-70B-Instruct"


@pytest.fixture
def l70(spec_of):
    return spec_of("meta-llama__Llama-3.1-70B-Instruct", L70)


def by_repo(res, method):
    return {c.repo: c for c in res.candidates[method]}


def test_hugging_quants_awq_found_through_old_base_name_and_verified(l70, fake_hub, settings):
    res = resolve(l70, ["awq-int4"], client=fake_hub, settings=settings)
    ck = res.chosen["awq-int4"]
    assert ck.repo == "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4"
    assert ck.verified and ck.status == "verified" and ck.source == "hub"
    assert ck.quant.group_size == 128 and ck.quant.zero_point is True and ck.quant.format == "gemm"
    assert ck.size_bytes == 9 * 4_400_000_000
    # found by the Hub's base_model:quantized tag on the *old* Meta-Llama-3.1 name
    assert ("search", "base_model:quantized:meta-llama/Meta-Llama-3.1-70B-Instruct|None|None") in fake_hub.calls


def test_gptq_act_order_accepted_on_vllm_with_tp(l70, fake_hub, settings):
    res = resolve(l70, ["gptq-int4"], client=fake_hub, settings=settings, engine="vllm", tp=8)
    ck = by_repo(res, "gptq-int4")["hugging-quants/Meta-Llama-3.1-70B-Instruct-GPTQ-INT4"]
    assert ck.verified
    assert ck.quant.act_order is True and ck.quant.symmetric is True
    assert "k-not-full" in ck.reason


def test_redhat_compressed_tensors_and_nvidia_modelopt_fp8(l70, fake_hub, settings):
    res = resolve(l70, ["fp8"], client=fake_hub, settings=settings)
    found = by_repo(res, "fp8")
    rh = found["RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8"]
    nv = found["nvidia/Llama-3.1-70B-Instruct-FP8"]
    assert rh.verified and rh.quant.quant_method == "compressed-tensors" and rh.quant.dynamic_act is False
    assert nv.verified and nv.quant.quant_method == "modelopt" and nv.quant.kv_cache == "fp8"
    # neuralmagic (registry) and RedHatAI (Hub) are one publisher: listed once
    assert not any(r.lower().startswith("neuralmagic/meta-llama-3.1-70b-instruct-fp8") for r in found)


def test_trtllm_rejects_autoawq_and_accepts_modelopt(l70, fake_hub, settings):
    res = resolve(l70, ["awq-int4", "fp8"], client=fake_hub, settings=settings, engine="trtllm")
    awq = by_repo(res, "awq-int4")["hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4"]
    assert not awq.verified and "TensorRT-LLM" in awq.reason and "AutoAWQ" in awq.reason
    assert res.chosen["awq-int4"] is None
    assert by_repo(res, "fp8")["nvidia/Llama-3.1-70B-Instruct-FP8"].verified


def test_autofp8_redhat_repo(fake_hub, settings, spec_of):
    base = spec_of("meta-llama__Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B-Instruct")
    res = resolve(base, ["fp8"], client=fake_hub, settings=settings)
    ck = res.chosen["fp8"]
    assert ck.repo == "RedHatAI/Meta-Llama-3-8B-Instruct-FP8" and ck.verified
    assert ck.quant.quant_method == "fp8" and ck.quant.dynamic_act is False


def test_bartowski_gguf_by_type_with_subfolder_split_shards(l70, fake_hub, settings):
    res = resolve(l70, ["gguf-q8_0", "gguf-q4_k_m"], client=fake_hub, settings=settings, engine="llamacpp")
    q8 = res.chosen["gguf-q8_0"]
    assert q8.repo == "bartowski/Meta-Llama-3.1-70B-Instruct-GGUF" and q8.verified
    assert q8.files == [
        "Meta-Llama-3.1-70B-Instruct-Q8_0/Meta-Llama-3.1-70B-Instruct-Q8_0-00001-of-00002.gguf",
        "Meta-Llama-3.1-70B-Instruct-Q8_0/Meta-Llama-3.1-70B-Instruct-Q8_0-00002-of-00002.gguf",
    ]
    assert q8.size_bytes == 39_800_000_000 + 35_200_000_000
    assert "2 gguf-split shards" in q8.reason
    q4 = res.chosen["gguf-q4_k_m"]
    assert q4.files == ["Meta-Llama-3.1-70B-Instruct-Q4_K_M.gguf"]
    assert q4.tokenizer == L70  # vLLM's --tokenizer: the base repo under its current name


def test_gguf_on_vllm_says_plugin(l70, fake_hub, settings):
    # one rule with the planner (engines.yaml vllm formats): GGUF on vLLM needs the out-of-tree plugin
    res = resolve(l70, ["gguf-q4_k_m"], client=fake_hub, settings=settings, engine="vllm")
    assert res.chosen["gguf-q4_k_m"] is None
    assert "vllm-gguf-plugin" in res.candidates["gguf-q4_k_m"][0].reason
    anyone = resolve(l70, ["gguf-q4_k_m"], client=fake_hub, settings=settings).chosen["gguf-q4_k_m"]
    assert anyone.loadable_by == ["llamacpp"] and "vllm-gguf-plugin" in anyone.not_loadable["vllm"]


def test_gguf_not_loadable_by_trtllm(l70, fake_hub, settings):
    res = resolve(l70, ["gguf-q4_k_m"], client=fake_hub, settings=settings, engine="trtllm")
    assert res.chosen["gguf-q4_k_m"] is None
    assert "cannot load GGUF" in res.candidates["gguf-q4_k_m"][0].reason


def test_mradermacher_part_files_need_cat_merge(fake_hub, settings, spec_of):
    base = spec_of("Qwen__Qwen2.5-72B", "Qwen/Qwen2.5-72B-Instruct")
    res = resolve(base, ["gguf-q5_k_m", "gguf-q4_k_m"], client=fake_hub, settings=settings)
    q5 = by_repo(res, "gguf-q5_k_m")["mradermacher/Qwen2.5-72B-Instruct-GGUF"]
    assert not q5.verified and "cat" in q5.reason
    assert q5.files == ["Qwen2.5-72B-Instruct.Q5_K_M.gguf.part1of2", "Qwen2.5-72B-Instruct.Q5_K_M.gguf.part2of2"]
    assert res.chosen["gguf-q5_k_m"] is None
    assert res.chosen["gguf-q4_k_m"].repo == "mradermacher/Qwen2.5-72B-Instruct-GGUF"


def test_qwen_awq_and_unsupported_group_size(fake_hub, settings, spec_of):
    base = spec_of("Qwen__Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct")
    res = resolve(base, ["awq-int4"], client=fake_hub, settings=settings, engine="vllm", tp=1)
    found = by_repo(res, "awq-int4")
    assert found["Qwen/Qwen2.5-7B-Instruct-AWQ"].verified
    g256 = found["testorg/Qwen2.5-7B-Instruct-AWQ-g256"]
    assert not g256.verified and "256" in g256.reason and "Marlin" in g256.reason
    assert res.chosen["awq-int4"].repo == "Qwen/Qwen2.5-7B-Instruct-AWQ"


def test_wrong_base_model_link_is_rejected(fake_hub, settings, spec_of):
    base = spec_of("Qwen__Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct")
    res = resolve(base, ["awq-int4"], client=fake_hub, settings=settings)
    graelo = by_repo(res, "awq-int4")["graelo/Qwen2.5-7B-Instruct-1M-AWQ"]
    assert not graelo.verified
    assert graelo.reason == "its base_model is Qwen/Qwen2.5-7B, not Qwen/Qwen2.5-7B-Instruct"


def test_72b_unpadded_rejected_for_marlin_at_tp4_padded_accepted(fake_hub, settings, spec_of, make_hub):
    base = spec_of("Qwen__Qwen2.5-72B", "Qwen/Qwen2.5-72B-Instruct")
    res = resolve(base, ["gptq-int4"], client=fake_hub, settings=settings, engine="vllm", tp=4)
    found = by_repo(res, "gptq-int4")
    unpadded = found["testorg/Qwen2.5-72B-Instruct-GPTQ-Int4-unpadded"]
    assert not unpadded.verified
    assert "29568" in unpadded.reason and "TP=4" in unpadded.reason and "7392" in unpadded.reason
    official = found["Qwen/Qwen2.5-72B-Instruct-GPTQ-Int4"]  # Qwen pads to 29696 = 232 x 128
    assert official.verified
    assert res.chosen["gptq-int4"].repo == "Qwen/Qwen2.5-72B-Instruct-GPTQ-Int4"
    # at TP=1 both shapes are fine
    res1 = resolve(base, ["gptq-int4"], client=make_hub(), settings=settings, engine="vllm", tp=1)
    assert by_repo(res1, "gptq-int4")["testorg/Qwen2.5-72B-Instruct-GPTQ-Int4-unpadded"].verified


def test_quant_of_the_base_not_offered_for_instruct(settings, spec_of, make_hub):
    base = spec_of("Qwen__Qwen2.5-72B", "Qwen/Qwen2.5-72B-Instruct")
    res = resolve(base, ["int8-sq"], client=make_hub(unreachable=True), settings=settings)
    assert all(c.repo != "neuralmagic/Qwen2.5-72B-quantized.w8a8" for c in res.candidates["int8-sq"])
    base_only = spec_of("Qwen__Qwen2.5-72B", "Qwen/Qwen2.5-72B")
    res2 = resolve(base_only, ["int8-sq"], client=make_hub(unreachable=True), settings=settings)
    assert res2.chosen["int8-sq"].repo == "neuralmagic/Qwen2.5-72B-quantized.w8a8"


def test_gated_repo_rejected_with_repo_and_hf_token(fake_hub, settings, spec_of):
    base = spec_of("meta-llama__Meta-Llama-3.1-405B", "meta-llama/Llama-3.1-405B-Instruct")
    res = resolve(base, ["fp8"], client=fake_hub, settings=settings)
    gated = by_repo(res, "fp8")["meta-llama/Llama-3.1-405B-Instruct-FP8"]
    assert not gated.verified
    assert "meta-llama/Llama-3.1-405B-Instruct-FP8" in gated.reason and "HF_TOKEN" in gated.reason


def test_explicit_gated_repo_is_an_error_naming_repo_and_token(fake_hub, settings, spec_of):
    base = spec_of("meta-llama__Meta-Llama-3.1-405B", "meta-llama/Llama-3.1-405B-Instruct")
    with pytest.raises(InputError, match=r"meta-llama/Llama-3.1-405B-Instruct-FP8.*HF_TOKEN"):
        resolve(base, ["fp8"], client=fake_hub, settings=settings, checkpoint="meta-llama/Llama-3.1-405B-Instruct-FP8")


def test_explicit_repo_of_another_method_is_an_error(l70, fake_hub, settings):
    with pytest.raises(InputError, match="is awq-int4, not fp8"):
        resolve(l70, ["fp8"], client=fake_hub, settings=settings,
                checkpoint="hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4")


def test_explicit_missing_path_is_input_error(l70, fake_hub, settings):
    with pytest.raises(InputError, match="no such checkpoint path"):
        resolve(l70, ["awq-int4"], client=fake_hub, settings=settings, checkpoint="./nowhere/model-awq")


def test_explicit_unknown_repo_offline_is_not_found(l70, settings, make_hub):
    with pytest.raises(NotFoundError, match="not cached here"):
        resolve(l70, ["awq-int4"], client=make_hub(unreachable=True), settings=settings,
                checkpoint="someone/Llama-3.1-70B-Instruct-AWQ")


def test_resolve_for_plan_maps_methods(l70, fake_hub, settings, monkeypatch):
    monkeypatch.setattr(HubSettings, "from_env", classmethod(lambda cls, env=None: settings))
    out = resolve_for_plan(l70, ["bf16", "awq-int4", "nvfp4", "fp8"], node=None, client=fake_hub, offline=False,
                           engine="vllm", tp=4)
    assert out["bf16"][0].repo == L70 and out["bf16"][0].source == "base"
    assert out["awq-int4"][0].repo == "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4"
    assert out["nvfp4"] == []
    assert out["fp8"] and not any(c.runtime_quantization for c in out["fp8"])


def test_runtime_fp8_is_the_planners_not_resolutions(settings, monkeypatch, spec_of, make_hub, node):
    # resolution lists checkpoints that exist; quantizing at load time is an engine's fact (engines.yaml
    # quantize_at_load), which the planner applies when --allow-runtime-quantization is given
    from autoquant.planner import plan
    from autoquant.records import Workload

    monkeypatch.setattr(HubSettings, "from_env", classmethod(lambda cls, env=None: settings))
    base = spec_of("Qwen__Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct")
    ckpts = resolve_for_plan(base, ["fp8"], node=None, client=make_hub(), offline=False)
    assert ckpts["fp8"] == []
    p = plan(base, node("H100-SXM"), Workload(), method="fp8", checkpoints=ckpts, allow_runtime_quantization=True)
    ck = p.chosen.checkpoint
    assert p.chosen.engine == "vllm" and ck.runtime_quantization and ck.repo == "Qwen/Qwen2.5-7B-Instruct"


def test_for_one_engine_its_publishers_checkpoint_is_the_one_shown(monkeypatch, settings):
    # `autoquant checkpoints MODEL --engine trtllm` says what the planner would take for TensorRT-LLM
    from autoquant.catalog.models import spec_from_catalog

    monkeypatch.setattr(HubSettings, "from_env", classmethod(lambda cls, env=None: settings))
    base = spec_from_catalog("meta-llama/Llama-3.1-70B-Instruct")
    trt = resolve(base, ["fp8"], offline=True, engine="trtllm", settings=settings)
    assert trt.chosen["fp8"].repo == "nvidia/Llama-3.1-70B-Instruct-FP8"
