"""`autoquant explain` through cli.main: regime, crossover, why, what flips it."""

from __future__ import annotations

import json
from pathlib import Path

from autoquant import cli

LLAMA8 = str(Path(__file__).resolve().parents[1] / "fixtures" / "hf-configs" / "meta-llama__Llama-3.1-8B-Instruct")


def test_explain_words(capsys):
    rc = cli.main(["explain", LLAMA8, "--gpu", "H100-SXM:1", "--concurrency", "8"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Regime:" in out and "Crossover batch on H100-SXM" in out and "B* =" in out
    assert "Why it wins:" in out and "What would flip it:" in out
    assert "more users" in out and "quality floor" in out and "GPU" in out


def test_explain_json(capsys):
    rc = cli.main(["explain", LLAMA8, "--gpu", "A100-80GB-SXM:1", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["plan"]["chosen"] and data["explanation"]


def test_explain_unknown_gpu_is_one_line_error(capsys):
    rc = cli.main(["explain", LLAMA8, "--gpu", "H900"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("autoquant: error: unknown GPU")


LLAMA70 = str(Path(__file__).resolve().parents[1] / "fixtures" / "hf-configs" / "meta-llama__Llama-3.1-70B-Instruct")


def test_explain_70b_on_2_h100_flips_stay_on_datacenter_engines(capsys):
    # before queueing, 512 users flipped to llama.cpp Q3_K_S (TPOT 1.5 s) and a tighter floor to Q4_K_S
    # --any-checkpoint: the fixture is a local BF16 directory with no quantized siblings; plan the whole space
    rc = cli.main(["explain", LLAMA70, "--gpu", "H100-SXM:2", "--concurrency", "128", "--isl", "512", "--osl", "256",
                   "--use-case", "chat", "--any-checkpoint"])
    out = capsys.readouterr().out
    flips = out.split("What would flip it:")[1].split("Rejected (")[0]
    assert rc == 0 and "llama.cpp" not in flips
    # --any-checkpoint: W8A16 (+0.002 ppl) is the next-best quality that fits without queueing
    assert "the choice becomes gptq-int8 on vLLM TP=2" in flips


def test_explain_of_a_plan_that_finds_nothing_ends_with_its_ways_out(capsys):
    llama70 = LLAMA8.replace("Llama-3.1-8B-Instruct", "Llama-3.1-70B-Instruct")
    rc = cli.main(["explain", llama70, "--gpu", "RTX-4090:1", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1 and data["plan"]["chosen"] is None and data["plan"]["ways_out"]
    head = data["explanation"].index("Ways out (cheapest first: fewest GPUs, then GPU-seconds per output token):")
    assert data["explanation"][head + 1:] == [f"  - {w['summary']}" for w in data["plan"]["ways_out"]]
