"""Traffic profiling on the real Azure 2023 code trace and on small hand-made traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoquant.cli import main
from autoquant.errors import InputError
from autoquant.probes.traffic import Request, parse_trace, profile_file, profile_requests

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
AZURE = FIXTURES / "traces" / "azure_llm_2023_code" / "AzureLLMInferenceTrace_code.csv"


def test_azure_trace_parses_every_row_with_crlf_and_7_digit_fractions():
    prof = profile_file(AZURE)
    assert prof.format == "azure"
    assert prof.requests == 8819
    # The trace spans about one hour (18:17:03 -> 19:14:19).
    assert 3400 < prof.duration_s < 3500
    # Lengths computed independently from the CSV.
    assert prof.isl["max"] == 7437 and prof.osl["max"] == 1899
    assert prof.isl["p50"] == 1469 and prof.osl["p50"] == 13
    assert prof.workload.isl == round(prof.isl["mean"]) == 2048
    assert prof.workload.max_model_len % 256 == 0
    assert prof.workload.max_model_len >= prof.isl["p99"]


def test_concurrency_distribution_is_time_weighted_and_sums_to_one():
    prof = profile_file(AZURE)
    dist = prof.workload.concurrency_distribution
    assert abs(sum(b.fraction for b in dist) - 1.0) < 1e-3
    assert prof.concurrency["p50"] <= prof.concurrency["p95"] <= prof.concurrency["max"]
    assert prof.workload.concurrency == max(1, int(prof.concurrency["p95"]))


def test_slower_decode_means_more_requests_in_flight():
    fast = profile_file(AZURE, tpot_ms=10)
    slow = profile_file(AZURE, tpot_ms=100)
    assert slow.concurrency["mean"] > 5 * fast.concurrency["mean"]


def test_replay_counts_overlap_exactly():
    # Two requests overlapping for 1 s of a 3 s span: each lasts 2 s (0 ms TTFT, 20 tokens x 100 ms).
    reqs = [Request(0.0, 10, 20), Request(1.0, 10, 20)]
    prof = profile_requests(reqs, tpot_ms=100, ttft_ms=0)
    dist = {b.concurrency: b.fraction for b in prof.workload.concurrency_distribution}
    assert dist == pytest.approx({1: 2 / 3, 2: 1 / 3})
    assert prof.workload.concurrency == 2


def test_jsonl_mooncake_milliseconds_are_converted():
    lines = [json.dumps({"timestamp": t, "input_length": 100, "output_length": 10}) for t in (0, 50_000, 100_000_000)]
    fmt, reqs = parse_trace("\n".join(lines))
    assert fmt == "jsonl"
    assert reqs[-1].arrival_s == pytest.approx(100_000.0)


def test_burstgpt_csv():
    text = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,ChatGPT,472,18,490,Conversation log\n45,GPT-4,1087,62,1149,API log\n"
    fmt, reqs = parse_trace(text)
    assert fmt == "burstgpt"
    assert [(r.arrival_s, r.input_tokens, r.output_tokens) for r in reqs] == [(0.0, 472, 18), (40.0, 1087, 62)]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "is empty"),
        ("a,b,c\n1,2,3\n", "unrecognised CSV header"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9,abc,3\n", "line 2"),
        ('{"timestamp": 1, "input_length": 3}\n', "lacks"),
        ('{"timestamp": 1, "input_length": 3, "output_length": 4}\nnot json\n', "line 2: not valid JSON"),
    ],
)
def test_bad_traces_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "trace.csv"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        profile_file(path)


def test_profile_command_json_and_errors(tmp_path, capsys):
    assert main(["profile", str(AZURE), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["requests"] == 8819 and out["workload"]["isl"] == 2048
    assert main(["profile", str(AZURE)]) == 0
    assert "--concurrency" in capsys.readouterr().out
    assert main(["profile", str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"autoquant: error: no such traffic file: {tmp_path / 'missing.csv'}"]
