"""Ollama Modelfiles: the syntax data (transcribed from Ollama's parser and API types) and the checker that reads
a Modelfile as Ollama's ParseFile and FormatParams do. Every Modelfile autoquant writes is checked with it
(tests/commands/test_ollama_cmd.py, tests/launchers/test_ollama_launcher.py); here it is shown to catch bad ones."""

from __future__ import annotations

import pytest

from autoquant import modelfile as mf


def test_the_syntax_data_names_its_ollama_release_and_a_source_for_every_part():
    data = mf.syntax()
    assert data["ollama"]["version"] == "0.32.15" and len(data["ollama"]["commit"]) == 40
    cited = " ".join(s["url"] for s in data["ollama"]["sources"])
    for part in ("docs/modelfile.mdx", "parser/parser.go", "api/types.go", "types/model/name.go"):
        assert f"v0.32.15/{part}" in cited
    assert all(s["url"].startswith("https://") for s in data["server"]["sources"])
    assert data["hub_reference_source"].startswith("https://huggingface.co/docs/hub/ollama")


def test_every_instruction_and_parameter_has_what_the_checker_needs():
    data = mf.syntax()
    assert {"FROM", "PARAMETER", "TEMPLATE", "SYSTEM", "ADAPTER", "LICENSE", "MESSAGE", "REQUIRES"} <= set(
        data["instructions"])
    assert all(isinstance(i["documented"], bool) for i in data["instructions"].values())
    assert {p["type"] for p in data["parameters"].values()} <= {"int", "float", "bool", "string"}
    # the ones autoquant writes, with the types api.Runner gives them
    for name in ("num_ctx", "num_thread", "num_gpu", "num_batch"):
        assert data["parameters"][name]["type"] == "int" and data["parameters"][name]["load"] is True
    assert not set(data["deprecated_parameters"]) & set(data["parameters"])


def test_a_good_modelfile_has_no_problems():
    text = ("# comment\nFROM /models/x.gguf\nPARAMETER num_ctx 4096\nparameter temperature 0.7\n"
            "PARAMETER stop <|eot_id|>\nPARAMETER stop \"<|end|>\"\nPARAMETER use_mmap false\n"
            'SYSTEM """You are\na "helpful" assistant."""\nMESSAGE user Is Toronto in Canada?\nREQUIRES 0.14.0\n')
    assert mf.check(text) == []
    commands, _ = mf.parse(text)
    assert [c.instruction for c in commands] == ["from", "parameter", "parameter", "parameter", "parameter",
                                                 "parameter", "system", "message", "requires"]
    assert commands[4].value == "<|end|>" and commands[6].line == 8
    assert commands[6].value == 'You are\na "helpful" assistant.' and commands[8].line == 11


@pytest.mark.parametrize(("text", "problem"), [
    ("FORM /x.gguf\n", "'FORM' is not an instruction"),
    ("FROM /x.gguf\nPARAMETER num_ctxx 4096\n", "unknown parameter 'num_ctxx'"),
    ("FROM /x.gguf\nPARAMETER num_ctx 4k\n", "parameter num_ctx '4k': not an integer"),
    ("FROM /x.gguf\nPARAMETER num_gpu 1.5\n", "parameter num_gpu '1.5': not an integer"),
    ("FROM /x.gguf\nPARAMETER temperature warm\n", "parameter temperature 'warm': not a number"),
    ("FROM /x.gguf\nPARAMETER use_mmap yes\n", "parameter use_mmap 'yes': not a boolean"),
    ("FROM /x.gguf\nPARAMETER mirostat 1\n", "parameter mirostat is deprecated"),
    ("PARAMETER num_ctx 4096\n", "no FROM line"),
    ("FROM /x.gguf\nMESSAGE robot hi\n", "MESSAGE role 'robot' is not one of system, user, assistant"),
    ('FROM /x.gguf\nTEMPLATE """{{ .Prompt }}\n', "a quote opened here is never closed"),
    ("FROM /x.gguf\nREQUIRES soon\n", "REQUIRES 'soon' is not a semantic version"),
    ("FROM /x.gguf\nPARAMETER num_ctx 1\nPARAMETER num_ctx 2\n", "parameter num_ctx given again (line 2)"),
    ("FROM\n", "'FROM' is not an instruction"),  # no value: Ollama's errInvalidCommand
    ("FROM /x.gguf\nSYSTEM bell\x07\n", "control characters"),
])
def test_the_checker_catches_what_ollama_would_refuse(text, problem):
    problems = mf.check(text)
    assert any(problem in p for p in problems), problems


def test_render_refuses_to_write_a_modelfile_ollama_would_refuse():
    with pytest.raises(mf.ModelfileError, match="unknown parameter 'gpu_layers'"):
        mf.render([mf.instruction("FROM", "/x.gguf"), mf.parameter("gpu_layers", 10)])
    with pytest.raises(mf.ModelfileError, match="not an integer"):
        mf.render([mf.instruction("FROM", "/x.gguf"), mf.parameter("num_ctx", "32k")])
    with pytest.raises(mf.ModelfileError, match="one line"):
        mf.render([mf.instruction("FROM", "/x\n.gguf")])


@pytest.mark.parametrize("value", ["plain", "two words", " leading blank", "line\nbreak", '"quoted"',
                                   'say "hi"\nthen stop', "{{ if .System }}{{ .System }}{{ end }}"])
def test_values_read_back_as_written(value):
    text = mf.render([mf.instruction("FROM", "/m/x y.gguf"), mf.parameter("stop", value),
                      mf.instruction("SYSTEM", value), mf.comment("a comment\nover two lines")])
    commands, problems = mf.parse(text)
    assert problems == []
    assert [c.value for c in commands] == ["/m/x y.gguf", value, value]


@pytest.mark.parametrize(("name", "ok"), [
    ("gemma-3-270m", True), ("google/gemma-3-270m", True), ("llama3.2:1b", True), ("Meta-Llama-3.1-8B", True),
    ("a b", False), ("-x", False), ("a/b/c", False), ("go.ogle/x", False), ("x:", False), ("x" * 81, False),
])
def test_ollama_model_names(name, ok):
    assert (mf.name_problem(name) is None) is ok


def test_a_name_is_made_from_a_model_id_or_a_file():
    assert mf.name_for("google/gemma-3-270m") == "gemma-3-270m"
    assert mf.name_for("/models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf") == "meta-llama-3.1-8b-instruct-q4_k_m"
    assert mf.name_for("/models/odd name!.gguf") == "odd-name"
    assert mf.name_problem(mf.name_for("/x/§§§.gguf")) is None
    assert mf.served_ids("gemma-3-270m") == ["gemma-3-270m", "gemma-3-270m:latest"]
    assert mf.served_ids("llama3.2:1b") == ["llama3.2:1b"]
