"""NVIDIA AIConfigurator as an optional predictor: the pure mapping (always), real AIC calls (aiconfigurator is a
test dependency, pyproject [test]), and import hygiene (importing the module does not import AIC)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autoquant.data import load as load_data
from autoquant.planner.predictor import Figures, PredictRequest
from autoquant.predictors import aiconfigurator as aic

ROOT = Path(__file__).resolve().parents[2]
LLAMA_8B = "meta-llama__Llama-3.1-8B-Instruct"
LLAMA_70B = "meta-llama__Llama-3.1-70B-Instruct"


def request(model, **kw) -> PredictRequest:
    base = dict(model=model, gpu="H100-SXM", engine="vllm", method="bf16", kv_cache_dtype="auto", tp=1, pp=1,
                concurrency=16, isl=1024, osl=256)
    return PredictRequest(**{**base, **kw})


# ---- pure mapping ----

def test_h100_vllm_fp8_with_fp8_kv(model):
    q = aic.query_for(request(model(LLAMA_8B), method="fp8", kv_cache_dtype="fp8"))
    assert (q.system, q.backend, q.gemm, q.kv) == ("h100_sxm", "vllm", "fp8", "fp8")
    assert (q.version, q.fmha) == ("0.24.0", "bfloat16")  # vLLM's database has no fp8 context FMHA


def test_fp8_kv_fmha_follows_the_backend(model):
    m = model(LLAMA_8B)
    assert aic.query_for(request(m, engine="sglang", method="fp8", kv_cache_dtype="fp8_e4m3")).fmha == "fp8"
    assert aic.query_for(request(m, engine="trtllm", method="fp8", kv_cache_dtype="fp8")).fmha == "fp8"
    assert aic.query_for(request(m, engine="trtllm")).fmha == "bfloat16"


def test_a100_fp8_is_not_covered(model):
    m = model(LLAMA_8B)
    assert aic.query_for(request(m, gpu="A100-80GB-SXM", method="fp8")) is None
    assert aic.query_for(request(m, gpu="A100-80GB-SXM", engine="trtllm", kv_cache_dtype="fp8")) is None
    q = aic.query_for(request(m, gpu="A100-80GB-SXM", engine="trtllm", method="awq-int4"))
    assert (q.system, q.version, q.gemm) == ("a100_sxm", "1.0.0", "int4_wo")


def test_unknown_gpu_engine_method_or_kv_is_not_covered(model):
    m = model(LLAMA_8B)
    assert aic.system_for("NoSuchGPU") is None
    assert aic.query_for(request(m, gpu="NoSuchGPU")) is None
    assert aic.query_for(request(m, gpu="H100-PCIe")) is None  # AIC ships no h100_pcie data
    assert aic.query_for(request(m, engine="llamacpp")) is None
    assert aic.query_for(request(m, method="gguf-q4_k_m")) is None
    assert aic.query_for(request(m, method="nvfp4")) is None  # Blackwell only
    assert aic.query_for(request(m, gpu="B200", method="nvfp4")).gemm == "nvfp4"
    assert aic.query_for(request(m, kv_cache_dtype="fp8_e5m2")) is None


def test_the_table_names_only_known_ids():
    t = aic.table()
    assert set(t["systems"]["map"]) <= set(load_data("gpus")["gpus"])
    assert set(t["backends"]["map"]) <= set(load_data("engines")["engines"])
    assert set(t["gemm_quant"]["map"]) <= set(load_data("methods")["methods"])
    assert set(t["kv_cache"]["map"]) <= set(load_data("methods")["kv_cache_dtypes"])
    assert set(t["systems"]["map"].values()) == set(t["coverage"]["systems"])
    for section in ("systems", "backends", "gemm_quant", "kv_cache", "fmha_with_fp8_kv", "architectures",
                    "coverage"):
        assert t[section]["source"].startswith(("aiconfigurator 0.12.0 ", "aiconfigurator_core 0.12.0 ")), section
    for system, cells in t["coverage"]["systems"].items():
        for backend, cell in cells.items():
            assert backend in t["backends"]["map"].values(), (system, backend)
            assert "bfloat16" in cell["gemm"] and "bfloat16" in cell["kv"], (system, backend)


def test_model_config_for_a_dense_llama(model):
    m = model(LLAMA_8B)
    config = aic.model_config(m)
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"],
            config["num_key_value_heads"], config["head_dim"], config["intermediate_size"],
            config["vocab_size"]) == (32, 4096, 32, 8, 128, 14336, 128256)
    assert aic.model_config(model("mistralai__Mistral-7B-Instruct-v0.3"))["architectures"] == ["LlamaForCausalLM"]
    assert aic.model_config(model("Qwen__Qwen3-8B"))["architectures"] == ["Qwen3ForCausalLM"]


@pytest.mark.parametrize("name", ["Qwen__Qwen3-30B-A3B", "deepseek-ai__DeepSeek-V3", "google__gemma-2-9b-it",
                                  "microsoft__phi-4", "mistralai__Mixtral-8x7B-Instruct-v0.1"])
def test_models_aic_cannot_describe(model, name):
    assert aic.model_config(model(name)) is None


def test_current_version_prefers_the_system_override():
    doc = {"defaults": {"vllm": {"current": "0.24.0"}}, "overrides": {"a100_sxm": {"vllm": {"current": "0.14.0"}}}}
    assert aic.current_version(doc, "h100_sxm", "vllm") == "0.24.0"
    assert aic.current_version(doc, "a100_sxm", "vllm") == "0.14.0"
    assert aic.current_version(doc, "h100_sxm", "trtllm") is None


def test_load_is_none_without_the_package(monkeypatch):
    monkeypatch.setattr(aic, "available", lambda: False)
    assert aic.load() is None


def test_importing_the_module_does_not_import_aiconfigurator():
    code = ("import sys\nimport autoquant, autoquant.predictors.aiconfigurator as a\na.available()\n"
            "print([m for m in ('aiconfigurator', 'aiconfigurator_core') if m in sys.modules])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ---- real AIC calls ----

@pytest.fixture(scope="module")
def predictor():
    pytest.importorskip("aiconfigurator")
    p = aic.load()
    assert p is not None
    return p


def test_figures_equal_cli_estimate_s_own(predictor, model):
    from aiconfigurator.cli.api import cli_estimate

    figures = predictor(request(model(LLAMA_8B)))
    # AIC's bundled base config has the Instruct model's shapes: the written config.json must give the same call
    r = cli_estimate("meta-llama/Meta-Llama-3.1-8B", "h100_sxm", mode="agg", backend_name="vllm",
                     backend_version="0.24.0", database_mode="SILICON", isl=1024, osl=256, batch_size=16,
                     tp_size=1, pp_size=1, gemm_quant_mode="bfloat16", kvcache_quant_mode="bfloat16",
                     fmha_quant_mode="bfloat16")
    assert figures == Figures(ttft_ms=r.ttft, tpot_ms=r.tpot, output_tokens_per_s=r.tokens_per_second,
                              memory_gb=r.memory, source="AIConfigurator 0.12.0 SILICON (h100_sxm, vllm 0.24.0, agg)")
    assert predictor(request(model(LLAMA_8B))) == figures  # the config.json directory is reused


def test_a_model_that_does_not_fit_is_none(predictor, model):
    assert predictor(request(model(LLAMA_70B))) is None  # 70B bf16 on one 80 GiB H100: AIC raises OOM
    assert predictor(request(model(LLAMA_70B), tp=4)) is not None


def test_uncovered_requests_do_not_reach_aic(predictor, model):
    m = model(LLAMA_8B)
    assert predictor(request(m, gpu="A100-80GB-SXM", method="fp8")) is None
    assert predictor(request(model("Qwen__Qwen3-30B-A3B"))) is None
    assert predictor(request(m, concurrency=0)) is None


def test_coverage_versions_are_aic_s_current_slots():
    pytest.importorskip("aiconfigurator")
    from aiconfigurator_core.sdk.perf_database import get_version_slots

    for system, cells in aic.table()["coverage"]["systems"].items():
        for backend, cell in cells.items():
            assert get_version_slots(system, backend)["current"] == cell["version"], (system, backend)


def _published_agg_rows():
    doc = yaml.safe_load((ROOT / "benchmarks/published/aiconfigurator.yaml").read_text())
    return [r for r in doc["rows"] if r["mode"] == "agg"]


@pytest.mark.parametrize("row", _published_agg_rows(),
                         ids=lambda r: f"{r['backend']}-{r['gemm_quant']}-kv{r['kv_dtype']}-fmha{r['fmha']}-tp{r['tp']}")
def test_published_agg_rows_are_reproduced(predictor, model, row):
    """benchmarks/published/aiconfigurator.yaml (scripts/aic_reference.py, bundled base configs), through the
    written Instruct config.json: by PredictRequest where autoquant's ids reach that cell, else by Query."""
    m = model({"Llama-3.1-8B": LLAMA_8B, "Llama-3.1-70B": LLAMA_70B}[row["model"]])
    method = {"bfloat16": "bf16", "fp8": "fp8"}.get(row["gemm_quant"])
    req = request(m, gpu={"h100_sxm": "H100-SXM", "h200_sxm": "H200"}[row["system"]], engine=row["backend"],
                  method=method or "bf16", kv_cache_dtype="auto" if row["kv_dtype"] == "bfloat16" else "fp8",
                  tp=row["tp"], pp=row["pp"], concurrency=row["batch"], isl=row["isl"], osl=row["osl"])
    q = aic.query_for(req)
    if method and q is not None and q.fmha == row["fmha"]:
        f = predictor(req)
    else:  # fp8_static (no autoquant method maps to it) or an fmha the mapping would not pick
        q = aic.Query(row["system"], row["backend"], row["backend_version"], row["gemm_quant"], row["kv_dtype"],
                      row["fmha"])
        f = predictor.estimate(m, q, isl=row["isl"], osl=row["osl"], concurrency=row["batch"], tp=row["tp"],
                               pp=row["pp"])
    assert (round(f.ttft_ms, 3), round(f.tpot_ms, 3), round(f.output_tokens_per_s, 1), round(f.memory_gb, 2)) == (
        row["ttft_ms"], row["tpot_ms"], row["output_tokens_per_s"], row["memory_gb"])
    assert f.source == f"AIConfigurator 0.12.0 SILICON ({row['system']}, {row['backend']} {row['backend_version']}, agg)"


def test_the_request_is_unchanged_by_the_call(predictor, model):
    req = request(model(LLAMA_8B), method="fp8", kv_cache_dtype="fp8")
    before = json.dumps(dataclasses.asdict(req), sort_keys=True, default=str)
    predictor(req)
    assert json.dumps(dataclasses.asdict(req), sort_keys=True, default=str) == before


def test_plan_with_the_aic_predictor_shows_aic_s_figures(predictor, model, capsys, monkeypatch):
    from autoquant import cli

    monkeypatch.setenv("AUTOQUANT_PREDICTOR", "aic")
    rc = cli.main(["plan", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100-SXM:1", "--engine", "vllm",
                   "--method", "bf16", "--concurrency", "16", "--isl", "1024", "--osl", "256", "--json",
                   "--any-checkpoint", "--offline"])
    chosen = json.loads(capsys.readouterr().out)["chosen"]
    own = predictor(PredictRequest(model=model("meta-llama__Llama-3.1-8B-Instruct"), gpu="H100-SXM", engine="vllm",
                                   method="bf16", kv_cache_dtype="auto", tp=1, pp=1, concurrency=16, isl=1024,
                                   osl=256))
    assert rc == 0 and chosen["predictor"] == own.source
    assert chosen["tpot_ms"] == pytest.approx(own.tpot_ms, abs=1e-3)
    assert chosen["output_tokens_per_s"] == pytest.approx(own.output_tokens_per_s, rel=1e-4)
