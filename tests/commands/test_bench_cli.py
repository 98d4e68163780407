"""bench / calibrate / validate on bad input: one line, `autoquant: error: ...`, exit 2, before any load is sent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autoquant.cli import main

pytest.importorskip("aiohttp")


@pytest.mark.parametrize("argv, says", [
    (["bench", "http://127.0.0.1:9/v1", "--concurrency", "0"], "--concurrency"),
    (["bench", "http://127.0.0.1:9/v1", "--concurrency", "1", "--request-rate", "2"], "not both"),
    (["bench", "ftp://x", "--concurrency", "1"], "not a server URL"),
    (["bench", "http://127.0.0.1:9/v1"], "cannot reach"),
    (["bench", "http://127.0.0.1:9/v1", "--find-max", "--concurrency", "1,2", "--ttft-ms", "5"], "one --concurrency"),
    (["bench", "http://127.0.0.1:9/v1", "--range-ratio", "1.5"], "--range-ratio"),
    (["bench", "http://127.0.0.1:9/v1", "--calibrate"], "--calibrate needs"),
    (["bench", "http://127.0.0.1:9/v1", "--engine", "vllm"], "say what the server runs"),
    (["bench", "http://127.0.0.1:9/v1", "--traffic", "/no/such.csv"], "no such traffic file"),
    (["bench", "http://127.0.0.1:9/v1", "--plan", "/no/such.json"], "no such plan file"),
    (["calibrate", "http://127.0.0.1:9/v1"], "say what the server runs"),
    (["validate", "--reference", "http://127.0.0.1:9/v1", "--dataset", "x.txt"], "candidate"),
    (["validate", "--reference-gguf", "/no/a.gguf", "--candidate-gguf", "/no/b.gguf", "--dataset", "x"],
     "no such GGUF file"),
    (["validate", "--reference", "http://127.0.0.1:9", "--candidate", "http://127.0.0.1:9", "--dataset", "x",
      "--use-case", "poetry"], "--use-case"),
])
def test_bad_input_is_one_line_and_exit_2(argv, says, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("autoquant: error: ") and says in err[0], err


def test_slo_search_needs_an_slo(tmp_path, capsys, openai_fake):
    fake = openai_fake.FakeServer()
    try:
        assert main(["bench", fake.url, "--find-max", "--requests", "2", "--warmup", "0"]) == 2
        assert "needs an SLO" in capsys.readouterr().err
    finally:
        fake.close()


def test_malformed_dataset_lines_name_the_line(tmp_path):
    from autoquant.errors import InputError
    from autoquant.validate.dataset import load_text

    bad = tmp_path / "d.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": 1}\n')
    with pytest.raises(InputError, match="line 2"):
        load_text(str(bad))
    good = tmp_path / "g.jsonl"
    good.write_text(json.dumps({"text": "a"}) + "\n\n" + json.dumps({"text": "b"}) + "\n")
    assert load_text(str(good)) == "a\n\nb"


def test_bench_against_the_fake_server_reports_find_max(openai_fake):
    fake = openai_fake.FakeServer()
    try:
        r = subprocess.run([sys.executable, "-m", "autoquant", "bench", fake.url, "--concurrency", "1", "--find-max",
                            "--e2e-ms", "5000", "--requests", "4", "--warmup", "1", "--osl", "2", "--json"],
                           capture_output=True, text=True, timeout=120)
    finally:
        fake.close()
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    # the fake answers at once at any load: the search runs to its ceiling
    assert data["max_meeting_slo"]["value"] == 1024
    assert [lv["level"]["value"] for lv in data["levels"]][:3] == [1, 2, 4]
    assert data["server"]["engine"] == "vllm" and data["server"]["version"] == "0.0.fake"
