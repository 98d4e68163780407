"""`autoquant plan` through cli.main, on a real config directory and a catalog-described node."""

from __future__ import annotations

import json
from pathlib import Path

from autoquant import cli

LLAMA70 = str(Path(__file__).resolve().parents[1] / "fixtures" / "hf-configs" / "meta-llama__Llama-3.1-70B-Instruct")


def test_plan_human_output(capsys):
    rc = cli.main(["plan", LLAMA70, "--gpu", "H100-SXM:2", "--concurrency", "128", "--isl", "512", "--osl", "256",
                   "--use-case", "chat"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "chosen" in out and "alternatives (ranked)" in out and "rejected (" in out
    assert "TTFT / TPOT" in out and "$" in out and "regime" in out


def test_plan_json_is_the_plan_record(capsys):
    rc = cli.main(["plan", LLAMA70, "--gpu", "H100-SXM:2", "--concurrency", "128", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    chosen = data["chosen"]
    for key in ("engine", "method", "tp", "pp", "checkpoint", "command", "memory", "ttft_ms", "tpot_ms",
                "output_tokens_per_s", "per_request_tokens_per_s", "ppl_delta", "cost_per_million_tokens", "regime",
                "max_concurrency", "concurrency"):
        assert key in chosen
    # The chosen configuration names a checkpoint it can get and the exact command `serve` would run.
    assert chosen["checkpoint"]["repo"] and chosen["checkpoint"]["method"] == chosen["method"]
    assert chosen["command"][0] in ("vllm", "trtllm-serve") and chosen["checkpoint"]["repo"] in chosen["command"]
    assert all({"engine", "method", "reason"} <= set(r) for r in data["rejected"])
    assert all(r["reason"] for r in data["rejected"])


def test_plan_pins_narrow_the_space(capsys):
    rc = cli.main(["plan", LLAMA70, "--gpu", "H100-SXM:4", "--engine", "vllm", "--method", "fp8", "--tp", "4",
                   "--allow-runtime-quantization", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert (data["chosen"]["engine"], data["chosen"]["method"], data["chosen"]["tp"]) == ("vllm", "fp8", 4)
    assert not data["alternatives"]
    # No FP8 checkpoint of a local BF16 directory: vLLM quantizes at load time, and the command says so.
    assert data["chosen"]["checkpoint"]["runtime_quantization"] is True
    assert data["chosen"]["command"][data["chosen"]["command"].index("--quantization") + 1] == "fp8"


def test_plan_without_a_checkpoint_says_how_to_make_one(capsys):
    rc = cli.main(["plan", LLAMA70, "--gpu", "H100-SXM:4", "--engine", "vllm", "--method", "awq-int4", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1 and data["chosen"] is None
    reasons = [r["reason"] for r in data["rejected"] if r["method"] == "awq-int4"]
    assert reasons and all("no AWQ" in r and "AutoAWQ" in r for r in reasons)
    # --any-checkpoint plans as if it existed (what-if)
    rc = cli.main(["plan", LLAMA70, "--gpu", "H100-SXM:4", "--engine", "vllm", "--method", "awq-int4",
                   "--any-checkpoint", "--max-ppl-delta", "1", "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["chosen"]["method"] == "awq-int4"


def test_plan_unknown_method_is_one_line_error(capsys):
    rc = cli.main(["plan", LLAMA70, "--gpu", "H100-SXM:2", "--method", "int3"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "unknown method 'int3'" in err


def test_plan_bad_calibration_file_is_one_line_error(capsys, tmp_path):
    bad = tmp_path / "cal.yaml"
    bad.write_text("hello: 1\n")
    rc = cli.main(["plan", LLAMA70, "--gpu", "H100-SXM:2", "--calibration", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and "not a calibration record" in err


def test_plan_calibration_file_changes_the_estimate(capsys, tmp_path):
    cal = tmp_path / "cal.yaml"
    cal.write_text("kernels:\n  cutlass-fp8: {decode_bandwidth_efficiency: 0.2, prefill_compute_efficiency: 0.2}\n")
    args = ["plan", LLAMA70, "--gpu", "H100-SXM:2", "--engine", "vllm", "--method", "fp8", "--tp", "2", "--json",
            "--any-checkpoint"]
    cli.main(args)
    base = json.loads(capsys.readouterr().out)["chosen"]["tpot_ms"]
    cli.main([*args, "--calibration", str(cal)])
    slow = json.loads(capsys.readouterr().out)["chosen"]["tpot_ms"]
    assert slow > 2 * base


def test_plan_over_kv_capacity_queues_on_a_datacenter_engine(capsys):
    # 512 users of a 70B on 2x H100: no engine holds all 512 KV caches; the plan runs what fits and queues
    rc = cli.main(["plan", LLAMA70, "--gpu", "H100-SXM:2", "--concurrency", "512", "--isl", "512", "--osl", "256",
                   "--use-case", "chat", "--json"])
    data = json.loads(capsys.readouterr().out)
    c = data["chosen"]
    assert rc == 0 and c["engine"] in ("vllm", "trtllm") and c["tp"] == 2
    assert c["concurrency"] == 512 and c["max_num_seqs"] < 512
    rc = cli.main(["plan", LLAMA70, "--gpu", "H100-SXM:2", "--concurrency", "512", "--isl", "512", "--osl", "256",
                   "--use-case", "chat"])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("queueing"))
    assert rc == 0 and f"{c['max_num_seqs']} of 512 requests run at once (KV room)" in row


def test_plan_with_tp_larger_than_the_node_is_one_line_error(capsys):
    # Before, the pin only narrowed vLLM/TRT-LLM, so llama.cpp on 1 GPU was "chosen" for --tp 4 on 2 GPUs.
    rc = cli.main(["plan", LLAMA70, "--gpu", "H100-SXM:2", "--tp", "4", "--any-checkpoint"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == ["autoquant: error: TP=4 needs 4 GPUs, this node has 2"]


def test_tp_pin_means_gpu_count_for_llamacpp(capsys):
    rc = cli.main(["plan", LLAMA70, "--gpu", "H100-SXM:4", "--tp", "2", "--engine", "llamacpp", "--any-checkpoint",
                   "--max-ppl-delta", "5", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert all(c["gpus"] == 2 for c in [data["chosen"], *data["alternatives"]])


LLAMA8 = str(Path(__file__).resolve().parents[1] / "fixtures" / "hf-configs" / "meta-llama__Llama-3.1-8B-Instruct")
INTERNAL = ("A6 #", "reference/", "tests/fixtures", ".yaml", "huggingface-cli", "benchmarks/")


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def test_default_plan_fits_one_screen(capsys):
    # A 24 GB GPU rejects many methods for many reasons: the rejections are grouped, not listed one per line.
    for model, gpu in ((LLAMA8, "L4"), (LLAMA70, "H100-SXM:2"), (LLAMA8, "A100-80GB-SXM")):
        rc = cli.main(["plan", model, "--gpu", gpu])
        out = capsys.readouterr().out
        assert rc == 0
        assert len(out.rstrip("\n").splitlines()) <= 40, out
        assert "rejected (" in out and "command" in out


def test_plan_says_nothing_internal(capsys):
    # A catalog id (the bundled config and registry): the path of a local fixture directory is the user's own.
    cli.main(["plan", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "L4", "--json"])
    data = json.loads(capsys.readouterr().out)
    cli.main(["plan", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "L4"])
    human = capsys.readouterr().out
    leaks = [(ref, s) for s in [*_strings(data), human] for ref in INTERNAL if ref in s]
    assert not leaks, leaks[:3]


def test_recipes_say_hf_download(capsys):
    rc = cli.main(["explain", LLAMA8, "--gpu", "L4", "--recipes"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "hf download" in out and "huggingface-cli" not in out
    # one line per recipe; the GGUF types share one line
    assert sum("llama-quantize" in line for line in out.splitlines()) == 1


def test_plan_that_finds_nothing_ends_with_its_ways_out(capsys):
    """70B on one 24 GB card: nothing fits, so the plan ends with the cheapest ways out, each estimated."""
    rc = cli.main(["plan", LLAMA70, "--gpu", "RTX-4090:1"])
    out = capsys.readouterr().out
    assert rc == 1 and "chosen: none" in out
    lines = out.rstrip("\n").splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("ways out (cheapest first"))
    assert head > next(i for i, line in enumerate(lines) if line.startswith("rejected ("))
    ways = lines[head + 1:]
    assert ways and all(line.startswith(f"  {i}. ") for i, line in enumerate(ways, 1))  # the output ends with them
    assert any("--gpu RTX4090:" in w and "tok/s" in w and "TPOT" in w for w in ways)  # more GPUs, estimated
    assert any(w.startswith(f"  {i}. CPU offload") and "layers on the GPU" in w and "RAM" in w
               for i, w in enumerate(ways, 1))
    assert len(lines) <= 40


def test_plan_json_carries_the_ways_out(capsys):
    rc = cli.main(["plan", LLAMA70, "--gpu", "RTX-4090:1", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1 and data["chosen"] is None
    kinds = {w["kind"]: w for w in data["ways_out"]}
    assert {"more_gpus", "cpu_offload"} <= set(kinds)
    more = kinds["more_gpus"]
    assert more["change"].startswith("--gpu RTX4090:") and more["gpus"] == more["estimate"]["gpus"] > 1
    assert more["estimate"]["memory"]["fits"] and more["estimate"]["tpot_ms"] > 0 and more["summary"]
    assert kinds["cpu_offload"]["host_ram_gb"] > 0 and kinds["cpu_offload"]["estimate"]["n_gpu_layers"] > 0
    # a plan that chose something has none
    rc = cli.main(["plan", LLAMA70, "--gpu", "H100-SXM:2", "--concurrency", "128", "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["ways_out"] == []
