"""What is never printed, and the one function that masks it (design.md: secrets never appear in output).

A secret is a value of a secret-named environment variable or flag (HF_TOKEN, --api-key, --hf-token=...) or
the credentials in a URL (https://user:TOKEN@host, ?token=...). `scrub` masks all of them in any text;
LaunchSpec.redact, the error line of cli.main, JSON output and the servers' URLs all go through it.
Pure: the environment is read only from the mapping passed in (os.environ when none is).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["REDACTED", "SECRET_ENV", "SECRET_WORDS", "environment_secrets", "is_secret_name", "redact_tokens",
           "redact_url", "scrub", "secret_values"]

REDACTED = "***"

# Environment variables whose values are never printed; the AUTOQUANT_<NAME> overlay of each is one too.
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "VLLM_API_KEY", "LLAMA_API_KEY", "API_KEY", "OPENAI_API_KEY")
# A variable or flag whose name has one of these words (split at - and _) carries a secret: --hf-token,
# HF_TOKEN, --api-key, --ssl-keyfile-password; not --max-num-batched-tokens, --tokenizer or --ssl-keyfile.
SECRET_WORDS = frozenset({"token", "key", "apikey", "password", "passwd", "secret", "credentials"})

# A long option as written on a command line (--port, --enable-prefix-caching): after a secret flag, such a
# token is the next flag, anything else (-abc, -xYz123, a bare word) is the secret itself.
_LONG_FLAG = re.compile(r"--[A-Za-z][\w.-]*(=.*)?", re.DOTALL)
# scheme://[userinfo@]rest, up to whitespace or a quote; userinfo runs to the authority's last '@'.
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/?#'\"<>]*@)?(?P<rest>[^\s'\"<>]*)")
_QUERY_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&#;\s]+)=(?P<value>[^&#;\s]*)")


def is_secret_name(name: str) -> bool:
    """Whether a variable or flag name (HF_TOKEN, --api-key, --hf_token) names a secret."""
    words = set(re.split(r"[-_.]+", name.lower().strip("-")))
    return name in SECRET_ENV or bool(words & SECRET_WORDS)


def environment_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of the secret variables set in `environ` (os.environ when None)."""
    environ = os.environ if environ is None else environ
    names = [*SECRET_ENV, *(f"AUTOQUANT_{n}" for n in SECRET_ENV)]
    return [environ[k] for k in names if environ.get(k)]


def _secret_value_at(tokens: Sequence[str], i: int) -> tuple[int, str] | None:
    """(index, value) of the secret that tokens[i] carries, when it is a secret flag with a value."""
    name, eq, value = tokens[i].partition("=")
    if not (name.startswith("-") and is_secret_name(name)):
        return None
    if eq:
        return (i, value) if value else None
    if i + 1 < len(tokens) and tokens[i + 1] != "--" and not _LONG_FLAG.fullmatch(tokens[i + 1]):
        return i + 1, tokens[i + 1]
    return None


def secret_values(tokens: Sequence[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """Values never to print: the environment's secrets and the values of secret-named flags in `tokens`
    (`--api-key X`, `--api-key=X`, `--hf-token -abc`: a value may start with '-')."""
    found = environment_secrets(environ)
    for i in range(len(tokens)):
        hit = _secret_value_at(tokens, i)
        if hit and hit[1] not in found:
            found.append(hit[1])
    return found


def redact_tokens(tokens: Sequence[str]) -> list[str]:
    """`tokens` with the value of each secret flag replaced: ['--api-key', '***'], ['--api-key=***']."""
    out = list(tokens)
    for i in range(len(tokens)):
        hit = _secret_value_at(tokens, i)
        if hit is None:
            continue
        j, _ = hit
        out[j] = f"{tokens[j].partition('=')[0]}={REDACTED}" if j == i else REDACTED
    return out


def redact_url(url: str) -> str:
    """`url` with its credentials masked: user:***@host, ***@host for a bare token, ?token=*** ."""
    return _URL.sub(_redact_url_match, url)


def _redact_url_match(m: re.Match[str]) -> str:
    userinfo = m.group("userinfo")
    if userinfo:
        user, colon, _ = userinfo[:-1].partition(":")
        userinfo = f"{user}:{REDACTED}@" if colon else f"{REDACTED}@"
    rest = _QUERY_PARAM.sub(
        lambda q: f"{q['sep']}{q['name']}={REDACTED}" if is_secret_name(q["name"]) and q["value"] else q[0],
        m.group("rest"))
    return f"{m.group('scheme')}{userinfo or ''}{rest}"


def scrub(text: str, secrets: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> str:
    """`text` with every secret masked: the values in `secrets`, the environment's secret variables and
    credentials in URLs. Longest values first, so a secret that contains another is masked whole."""
    for secret in sorted({*secrets, *environment_secrets(environ)}, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return redact_url(text) if "://" in text else text
