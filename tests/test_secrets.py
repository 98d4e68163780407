"""autoquant.secrets: which values are secrets, and the one scrub that masks them wherever text is printed."""

from __future__ import annotations

import pytest

from autoquant.launchers.base import LaunchSpec
from autoquant.secrets import REDACTED, redact_tokens, redact_url, scrub, secret_values


@pytest.mark.parametrize("tokens,expected", [
    (["--api-key", "-abc"], ["-abc"]),  # a value may start with '-': it was printed unredacted
    (["--hf-token", "-xYz123", "--enforce-eager"], ["-xYz123"]),
    (["--api-key=-abc"], ["-abc"]),
    (["--api-key", "sk-1", "--hf_token=hf_2"], ["sk-1", "hf_2"]),
    (["--api-key", "--port", "8000"], []),  # a long flag after it: the secret flag was given no value
    (["--api-key", "--"], []),
    (["--api-key"], []),
    (["--api-key="], []),
    (["--port", "8000", "--max-num-batched-tokens", "4096"], []),
])
def test_a_secret_flags_value_is_the_next_token_unless_it_is_a_long_flag(tokens, expected):
    assert secret_values(tokens, environ={}) == expected


def test_secret_variables_and_their_autoquant_overlay_are_secrets():
    env = {"HF_TOKEN": "hf_a", "AUTOQUANT_API_KEY": "sk_b", "HF_HUB_DISABLE_TOKEN": "1", "PATH": "/bin"}
    # a name like HF_HUB_DISABLE_TOKEN (value 1) is not a secret: masking "1" would mangle every number
    assert secret_values([], env) == ["hf_a", "sk_b"]


def test_redacted_tokens_name_the_flag_and_hide_the_value():
    assert redact_tokens(["--api-key", "-abc", "--api-key=sk-1", "--port", "80"]) == \
        ["--api-key", REDACTED, f"--api-key={REDACTED}", "--port", "80"]


@pytest.mark.parametrize("url,shown", [
    ("https://user:TOKEN@host/v1", "https://user:***@host/v1"),
    ("https://TOKEN@host:8443/x", "https://***@host:8443/x"),
    ("http://h:8000/v1?token=abc&model=m", "http://h:8000/v1?token=***&model=m"),
    ("http://h/x?api_key=abc#frag", "http://h/x?api_key=***#frag"),
    ("http://h/x?max_tokens=16", "http://h/x?max_tokens=16"),
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
])
def test_credentials_in_a_url_are_masked(url, shown):
    assert redact_url(url) == shown


def test_scrub_masks_values_environment_and_urls_inside_text():
    text = "cannot reach https://u:pw@h:1/v1 (refused) with sk-flag and hf_env; user@example.org stays"
    assert scrub(text, ["sk-flag"], environ={"HF_TOKEN": "hf_env"}) == \
        "cannot reach https://u:***@h:1/v1 (refused) with *** and ***; user@example.org stays"


def test_a_secret_containing_another_is_masked_whole():
    assert scrub("key abcdef", ["abc", "abcdef"], environ={}) == "key ***"


def test_the_launch_spec_masks_url_credentials_in_engine_output():
    # the output pump prints every engine line through spec.redact
    spec = LaunchSpec(engine="vllm", argv=["vllm"], secrets=["sk-1"])
    assert spec.redact("GET https://bot:hf_x@hub.example/org/m sk-1\n") == "GET https://bot:***@hub.example/org/m ***\n"
