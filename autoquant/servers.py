"""The HTTP edge shared by `bench` and `validate`: which OpenAI-compatible server answers at a URL, what it
says it is, and its tokenizer.

Plain urllib: these are a handful of small requests made before (or after) a run; bench's load itself goes
through aiohttp (autoquant.bench.client). What each engine answers (read from their sources):
- vLLM: /v1/models entries have owned_by "vllm" and max_model_len; GET /version -> {"version"};
  POST /tokenize {model, prompt, add_special_tokens} -> {tokens}; POST /detokenize {model, tokens} -> {prompt}.
- SGLang: owned_by "sglang"; GET /get_server_info -> {version, ...}; /tokenize and /detokenize like vLLM.
- llama.cpp's llama-server: owned_by "llamacpp"; GET /props -> {build_info, ...}; POST /tokenize {content}.
- llama-cpp-python: owned_by "me"; POST /extras/tokenize {input} -> {tokens} (BOS included),
  /extras/detokenize {tokens} -> {text}.
- TensorRT-LLM's trtllm-serve: owned_by "tensorrt_llm"; GET /version.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autoquant.errors import EngineError, InputError
from autoquant.secrets import redact_url  # the one masking of URL credentials; servers' messages use it

LLAMA_CPP_PYTHON = "llama-cpp-python"
VLLM = "vllm"
SGLANG = "sglang"
LLAMA_SERVER = "llama-server"
TRTLLM = "trtllm"
UNKNOWN = "openai-compatible"

_OWNERS = {"vllm": VLLM, "sglang": SGLANG, "llamacpp": LLAMA_SERVER, "tensorrt_llm": TRTLLM}


@dataclass(frozen=True)
class Server:
    url: str  # base URL, no trailing slash, no /v1
    kind: str
    model: str
    max_model_len: int | None = None
    version: str = ""
    timeout_s: float = 300.0
    headers: dict[str, str] = field(default_factory=dict, repr=False, compare=False)  # auth: never printed

    def identity(self) -> dict[str, Any]:
        """What the server said it is, for reports (no URL credentials, no headers)."""
        return {"url": redact_url(self.url), "engine": self.kind, "version": self.version or None,
                "model": self.model, "max_model_len": self.max_model_len}

    @property
    def has_tokenizer(self) -> bool:
        return self.kind in (VLLM, SGLANG, LLAMA_CPP_PYTHON, LLAMA_SERVER)


def base_url(url: str) -> str:
    """`url` without a trailing /v1 or slash; an error line for what is not an http(s) URL."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InputError(f"{redact_url(url)!r} is not a server URL: give one like http://127.0.0.1:8000/v1")
    url = url.strip().rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class HTTPStatusError(EngineError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def request_json(url: str, body: dict[str, Any] | None, timeout_s: float, what: str,
                 headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})},
                                 method="GET" if body is None else "POST")
    shown = redact_url(url)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise HTTPStatusError(exc.code, f"{what}: HTTP {exc.code} from {shown}: {detail}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EngineError(f"{what}: cannot reach {shown} ({reason}); is the server running and the URL right?") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise EngineError(f"{what}: {shown} did not answer JSON; is it an OpenAI-compatible server?") from None


def _exists(url: str, body: dict[str, Any], timeout_s: float, headers: dict[str, str]) -> bool:
    try:
        request_json(url, body, timeout_s, "probe", headers)
        return True
    except HTTPStatusError as exc:
        return exc.status not in (404, 405)
    except EngineError:
        return False


def _version(base: str, kind: str, timeout_s: float, headers: dict[str, str]) -> str:
    path = {VLLM: "/version", TRTLLM: "/version", SGLANG: "/get_server_info", LLAMA_SERVER: "/props"}.get(kind)
    if path is None:  # llama-cpp-python has no version endpoint
        return ""
    try:
        out = request_json(f"{base}{path}", None, timeout_s, "version", headers)
    except EngineError:
        return ""
    if not isinstance(out, dict):
        return ""
    return str(out.get("version") or out.get("build_info") or "")


def connect(url: str, timeout_s: float = 300.0, headers: dict[str, str] | None = None) -> Server:
    """Identify the server behind `url` from /v1/models (owned_by), the endpoints it has and its version."""
    base = base_url(url)
    headers = dict(headers or {})
    quick = min(timeout_s, 30.0)
    models = request_json(f"{base}/v1/models", None, quick, "listing models", headers)
    data = (models or {}).get("data") if isinstance(models, dict) else None
    if not data or not isinstance(data, list) or not isinstance(data[0], dict):
        raise EngineError(f"{redact_url(base)}/v1/models lists no model; is the server still loading?")
    first = data[0]
    owner = str(first.get("owned_by", "")).lower()
    kind = _OWNERS.get(owner)
    if kind is None:
        kind = LLAMA_CPP_PYTHON if _exists(f"{base}/extras/tokenize", {"input": "a"}, quick, headers) else UNKNOWN
    max_len = first.get("max_model_len")
    return Server(base, kind, str(first.get("id", "")), max_len if isinstance(max_len, int) else None,
                  _version(base, kind, quick, headers), timeout_s, headers)


def tokenize(server: Server, text: str, add_special: bool = True) -> list[int]:
    """Token ids of `text` as the server's tokenizer makes them (BOS included where the model adds one and
    `add_special`)."""
    if server.kind == LLAMA_CPP_PYTHON:
        out = request_json(f"{server.url}/extras/tokenize", {"input": text}, server.timeout_s, "tokenizing",
                           server.headers)
        ids = [int(t) for t in out["tokens"]]
        if not add_special and len(ids) > 1:
            # llama-cpp-python always adds BOS; ask for the tokens of "" to learn whether there is one.
            bos = request_json(f"{server.url}/extras/tokenize", {"input": ""}, server.timeout_s, "tokenizing",
                               server.headers)["tokens"]
            if bos and ids[: len(bos)] == [int(t) for t in bos]:
                ids = ids[len(bos):]
        return ids
    if server.kind == LLAMA_SERVER:
        out = request_json(f"{server.url}/tokenize", {"content": text, "add_special": add_special},
                           server.timeout_s, "tokenizing", server.headers)
        return [int(t) for t in out["tokens"]]
    if server.kind not in (VLLM, SGLANG):
        raise EngineError(f"{redact_url(server.url)} ({server.kind}) has no tokenizer endpoint")
    body: dict[str, Any] = {"prompt": text, "add_special_tokens": add_special}
    if server.kind == VLLM:
        body["model"] = server.model
    out = request_json(f"{server.url}/tokenize", body, server.timeout_s, "tokenizing", server.headers)
    return [int(t) for t in out["tokens"]]


def detokenize(server: Server, ids: Sequence[int]) -> str:
    if server.kind == LLAMA_CPP_PYTHON:
        out = request_json(f"{server.url}/extras/detokenize", {"tokens": list(ids)}, server.timeout_s,
                           "detokenizing", server.headers)
        return str(out["text"])
    if server.kind == LLAMA_SERVER:
        out = request_json(f"{server.url}/detokenize", {"tokens": list(ids)}, server.timeout_s, "detokenizing",
                           server.headers)
        return str(out.get("content", ""))
    body: dict[str, Any] = {"tokens": list(ids)}
    if server.kind == VLLM:
        body["model"] = server.model
    out = request_json(f"{server.url}/detokenize", body, server.timeout_s, "detokenizing", server.headers)
    return str(out.get("prompt", out.get("text", "")))
