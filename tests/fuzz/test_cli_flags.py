"""Property-based fuzzing of the CLI's flag values: every numeric and named option of plan, serve (vLLM's
flags included) and profile, given anything a user might type. The contract (tests/fuzz/conftest.py
cli_contract): exit 0 with strict JSON, or exit 2 with one line; never a traceback, a hang or a NaN."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

FUZZ = settings.get_profile("fuzz")
TRACE = Path(__file__).parent.parent / "fixtures/traces/azure_llm_2023_code/AzureLLMInferenceTrace_code.csv"

NUMBERS = st.one_of(
    st.sampled_from(["0", "-1", "1", "8", "nan", "NaN", "inf", "-inf", "infk", "1e400", "1e-320", "0x10", "1_000",
                     "9" * 30, "9" * 5000, " 4 ", "", "--", "-", "4k", "4K", "1.5", "max", "MAX", "1,2"]),
    st.integers(-10, 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=10),
)
PLAN_FLAGS = st.sampled_from(["--isl", "--osl", "--concurrency", "--ttft-ms", "--tpot-ms", "--min-tps",
                              "--max-ppl-delta", "--gpu-hour-cost", "--cpu-bandwidth", "--nodes", "--tp", "--pp",
                              "--dp", "--max-model-len", "--inter-node-gbps", "--fabric"])
SERVE_FLAGS = st.sampled_from(["--max-model-len", "--tensor-parallel-size", "--pipeline-parallel-size",
                               "--max-num-seqs", "--port", "--gpu-memory-utilization", "--host", "--isl",
                               "--concurrency", "--ready-timeout", "--max-retries"])
GPUS = st.one_of(st.sampled_from(["L4", "H100-SXM:8", "cpu", "cpu:16", "cpu:EPYC-9654:2", "M2-Max", "a100-80gb:4",
                                  "H100:0", "H100:-1", "H100:99999", "H100:1e3", ":8", "cpu:", "cpu:-3",
                                  "'NVIDIA L40S:4'", "H100-SXM:8:2"]),
                 st.text(max_size=16))


@FUZZ
@given(st.lists(st.tuples(PLAN_FLAGS, NUMBERS), min_size=1, max_size=3))
def test_plan_flag_values_keep_the_contract(cli_contract, flags):
    argv = ["plan", "meta-llama/Llama-3.2-1B", "--gpu", "L4", "--json"]
    for flag, value in flags:
        argv += [f"{flag}={value}"]  # '=' so a value starting with '-' stays a value
    cli_contract(argv)


@FUZZ
@given(GPUS)
def test_gpu_flag_values_keep_the_contract(cli_contract, gpu):
    cli_contract(["plan", "meta-llama/Llama-3.2-1B", f"--gpu={gpu}", "--json"])


@FUZZ
@given(st.lists(st.tuples(SERVE_FLAGS, NUMBERS), min_size=1, max_size=2))
def test_serve_flag_values_keep_the_contract(cli_contract, flags):
    argv = ["serve", "meta-llama/Llama-3.2-1B", "--gpu", "L4", "--dry-run", "--json"]
    for flag, value in flags:
        argv += [f"{flag}={value}"]
    cli_contract(argv)


@FUZZ
@given(st.sampled_from(["--assumed-tpot-ms", "--assumed-ttft-ms"]), NUMBERS)
def test_profile_flag_values_keep_the_contract(cli_contract, flag, value):
    cli_contract(["profile", str(TRACE), f"{flag}={value}", "--json"])


@FUZZ
@given(st.text(min_size=1, max_size=40))
def test_model_names_keep_the_contract(cli_contract, model):
    code, output = cli_contract(["plan", model, "--gpu", "L4", "--json"])
    if code == 2:
        assert "\n" not in output
