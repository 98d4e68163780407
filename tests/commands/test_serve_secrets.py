"""`autoquant serve` never prints a secret: not in the dry run (text or --json), not in the supervisor's lines,
not in the engine output it copies, even when the secret starts with '-'."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from autoquant.cli import main
from autoquant.records import Candidate, Checkpoint, Memory, Plan, to_dict

# `--hf-token -xYz123` was printed as given: a value starting with '-' was not taken for the flag's value
SECRET_FLAGS = ["--hf-token", "-xYz123", "--my-secret-token", "-pw456", "--enforce-eager"]
SECRETS = ("-xYz123", "xYz123", "-pw456", "pw456")


def _vllm_plan(tmp_path: Path) -> str:
    c = Candidate(
        engine="vllm", method="bf16", tp=1, pp=1,
        memory=Memory(weights_gb=1.0, kv_cache_gb=1.0, overhead_gb=1.0, total_gb=3.0, fits=True),
        max_concurrency=8, concurrency=1, ttft_ms=1.0, tpot_ms=1.0, output_tokens_per_s=1.0,
        per_request_tokens_per_s=1.0, ppl_delta=0.0, cost_per_million_tokens=None, regime="bandwidth_bound",
        max_model_len=4096, max_num_seqs=8, gpu="H100-SXM", gpus=1,
        checkpoint=Checkpoint(repo="org/model", method="bf16", source="registry"),
    )
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(to_dict(Plan(model="org/model", hardware="t", chosen=c))))
    return str(path)


pytestmark = pytest.mark.usefixtures("no_autoquant_env")


@pytest.mark.parametrize("as_json", [False, True])
def test_a_secret_value_starting_with_a_dash_is_not_printed_by_a_dry_run(capsys, tmp_path, as_json):
    argv = ["serve", "--plan", _vllm_plan(tmp_path), "--dry-run", *(["--json"] if as_json else []), *SECRET_FLAGS]
    assert main(argv) == 0
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert "--hf-token" in printed and "--enforce-eager" in printed
    assert not [s for s in SECRETS if s in printed]


def test_supervised_engine_output_and_log_lines_are_masked(tmp_path):
    # the engine echoes its argv and a URL with credentials; autoquant copies its output to stderr
    fake = tmp_path / "fake-vllm"
    fake.write_text(f"#!{sys.executable}\nimport sys\nprint('argv:', *sys.argv[1:], flush=True)\n"
                    "print('fetching https://bot:urlpw123@hub.example/org/model', flush=True)\nsys.exit(1)\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOQUANT_")}
    env.update(AUTOQUANT_ENGINE_BIN_VLLM=str(fake), AUTOQUANT_CACHE_DIR=str(tmp_path / "cache"))
    argv = [sys.executable, "-m", "autoquant", "serve", "--plan", _vllm_plan(tmp_path), "--supervise",
            "--max-retries", "0", *SECRET_FLAGS]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    printed = proc.stdout + proc.stderr
    assert proc.returncode == 1 and "argv: serve" in printed and "https://bot:***@hub.example" in printed
    assert not [s for s in (*SECRETS, "urlpw123") if s in printed]
