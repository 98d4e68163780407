"""autoquant.output: autoquant's own lines (say), tables and JSON never print a secret or a forged line."""

from __future__ import annotations

import io
import json

from autoquant.output import key_values, print_json, say, table


def test_say_escapes_a_newline_in_user_text():
    stream = io.StringIO()
    say("note: cannot describe org/foo\nautoquant: error: forged (not found)", stream=stream)
    assert stream.getvalue() == "autoquant: note: cannot describe org/foo\\nautoquant: error: forged (not found)\n"


def test_say_masks_secrets_and_url_credentials(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_say_1")
    stream = io.StringIO()
    say("fetching https://bot:pw@hub/x with hf_say_1 and sk-2", secrets=["sk-2"], stream=stream)
    assert stream.getvalue() == "autoquant: fetching https://bot:***@hub/x with *** and ***\n"


def test_say_clips_long_input():
    stream = io.StringIO()
    say("x" * 100_000, stream=stream)
    assert len(stream.getvalue()) < 600


def test_a_newline_in_a_table_cell_does_not_start_a_row():
    # `autoquant checkpoints $'org/foo\nautoquant: error: fake'` printed the name over two rows
    out = table([["org/foo\nautoquant: error: forged", "bf16"]], headers=("repo", "method"))
    assert len(out.splitlines()) == 3 and "org/foo\\nautoquant" in out
    assert key_values([("model", "a\rb")]) == "model  a\\rb"


def test_json_output_masks_secrets_in_strings_only(monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", "8000")  # a secret that looks like a number must not mangle numbers
    stream = io.StringIO()
    print_json({"port": 8000, "command": ["vllm", "--api-key", "8000"], "url": "http://u:pw@h/v1"}, stream)
    assert json.loads(stream.getvalue()) == {"port": 8000, "command": ["vllm", "--api-key", "***"],
                                            "url": "http://u:***@h/v1"}
