"""Version parsing and gates (metadata only: no engine import)."""

import sys

from autoquant.launchers import versions


def test_parse_and_compare():
    assert versions.parse_version("0.33.0") == (0, 33, 0)
    assert versions.parse_version("1.0.0rc4") == (1, 0, 0)
    assert versions.at_least("0.24.0", "0.24") and not versions.at_least("0.23.9", "0.24")
    assert versions.at_least(None, "0.24") is True and versions.at_least(None, "0.24", unknown=False) is False


def test_installed_version_reads_metadata_without_import():
    before = set(sys.modules)
    assert versions.engine_version("llamacpp")  # llama-cpp-python is installed in the test env
    assert versions.engine_version("trtllm") is None
    assert not {"llama_cpp", "vllm", "tensorrt_llm"} & (set(sys.modules) - before)


def test_gates():
    ok, reason = versions.check_vllm_gguf("0.23.1")
    assert ok
    from autoquant.engines.flags import honour
    from autoquant.facts import default_facts
    from autoquant.launchers.flags import classify_tokens

    served, _ = classify_tokens(["--served-model-name", "x"])
    trtllm = default_facts().engine("trtllm")
    assert honour(trtllm, served, "1.0.0")[0] is False
    assert honour(trtllm, served, "1.3.0")[0] is True
