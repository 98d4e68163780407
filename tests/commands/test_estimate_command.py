"""`autoquant estimate` through cli.main: the design.md JSON fields, and rule errors."""

from __future__ import annotations

import json
from pathlib import Path

from autoquant import cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

LLAMA8 = str(Path(__file__).resolve().parents[1] / "fixtures" / "hf-configs" / "meta-llama__Llama-3.1-8B-Instruct")
FIELDS = ("memory", "max_concurrency", "concurrency", "ttft_ms", "tpot_ms", "output_tokens_per_s",
          "per_request_tokens_per_s", "ppl_delta", "cost_per_million_tokens", "regime")


def test_estimate_json_fields(capsys):
    rc = cli.main(["estimate", LLAMA8, "--engine", "vllm", "--method", "awq-int4", "--gpu", "A100-80GB-SXM",
                   "--concurrency", "8", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    for key in FIELDS:
        assert key in data
    assert set(data["memory"]) >= {"weights_gb", "kv_cache_gb", "overhead_gb", "total_gb", "fits"}
    assert data["concurrency"] == 8 and data["memory"]["fits"] is True
    assert data["regime"] in ("bandwidth_bound", "transitional", "compute_bound")


def test_estimate_ruled_out_config_is_exit_2_one_line(capsys):
    rc = cli.main(["estimate", LLAMA8, "--engine", "vllm", "--method", "fp8", "--gpu", "A100-80GB-SXM", "--json"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert captured.err.count("\n") == 1
    assert "needs compute capability 8.9, A100-80GB-SXM has 8.0" in captured.err


def test_estimate_tp_beyond_gpus_is_an_error(capsys):
    rc = cli.main(["estimate", LLAMA8, "--engine", "vllm", "--method", "bf16", "--tp", "8", "--gpu", "H100-SXM:2"])
    assert rc == 2 and "TP=8 needs 8 GPUs" in capsys.readouterr().err


def test_estimate_requires_engine_and_method(capsys):
    rc = cli.main(["estimate", LLAMA8, "--gpu", "H100-SXM"])
    assert rc == 2 and "--engine" in capsys.readouterr().err


def test_estimate_human_output(capsys):
    rc = cli.main(["estimate", LLAMA8, "--engine", "llamacpp", "--method", "gguf-q4_k_m", "--gpu", "RTX4090"])
    out = capsys.readouterr().out
    assert rc == 0 and "memory per GPU" in out and "llamacpp / gguf-q4_k_m" in out


def test_estimate_on_undescribed_cpu_is_one_line_error(capsys):
    # `--gpu cpu:2` says nothing about RAM or bandwidth: the error says how to describe the machine.
    rc = cli.main(["estimate", LLAMA8, "--engine", "llamacpp", "--method", "gguf-q4_k_m", "--gpu", "cpu:2"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "RAM is unknown" in err and "--hardware" in err


def test_estimate_on_unmeasured_cpu_is_one_line_error(capsys, tmp_path):
    # A saved CPU node whose bandwidth was never measured: speed cannot be estimated, said in one line.
    node = json.loads((FIXTURES / "nodes" / "cpu-2core.json").read_text())
    node["cpu"]["memory_bandwidth_gbps"] = None
    path = tmp_path / "node.json"
    path.write_text(json.dumps(node))
    rc = cli.main(["estimate", LLAMA8, "--engine", "llamacpp", "--method", "gguf-q4_k_m", "--hardware", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "memory bandwidth" in err


def test_estimate_missing_calibration_file(capsys, tmp_path):
    rc = cli.main(["estimate", LLAMA8, "--engine", "vllm", "--method", "bf16", "--gpu", "H100-SXM",
                   "--calibration", str(tmp_path / "none.yaml")])
    assert rc == 2 and "no such calibration file" in capsys.readouterr().err


def test_estimate_json_with_unmeasured_quality_reads_back_as_an_estimate(capsys):
    from autoquant.records import Estimate, from_dict

    rc = cli.main(["estimate", LLAMA8, "--engine", "vllm", "--method", "nvfp4", "--gpu", "H100-SXM",
                   "--concurrency", "8", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["ppl_delta"] is None
    assert from_dict(Estimate, data).ppl_delta is None


def test_estimate_over_kv_capacity_reports_the_queue_once(capsys):
    rc = cli.main(["estimate", LLAMA8, "--engine", "llamacpp", "--method", "gguf-q4_k_m", "--gpu", "RTX4090",
                   "--concurrency", "64", "--isl", "30000", "--osl", "2000"])
    out = capsys.readouterr().out
    assert rc == 0 and "(fits)" in out
    assert out.count("of 64 requests run at once (KV room); the rest queue") == 1
