"""The HTTP edge of `validate`: prompt-token log-probabilities from each kind of server (which server it is and
its tokenizer: autoquant.servers).

Plain urllib, not aiohttp: validate sends a few long requests (one per window per server) and the servers
that return prompt log-probabilities mostly serialize them anyway, so an event loop buys nothing and
`serve --gate-on` needs no second HTTP stack.

Per engine (read from their sources; only llama-cpp-python is exercised live by the tests):
- llama-cpp-python: POST /extras/tokenize {input} -> {tokens} (BOS included), /extras/detokenize {tokens}
  -> {text}; /v1/completions takes a *string* prompt only (its pydantic type is str | list[str]), so a
  window is sent as its detokenized text and the round trip is checked on both servers' tokenizers.
  `echo: true, logprobs: K, max_tokens: 1` returns token_logprobs/top_logprobs for every prompt token (the
  first is null), top_logprobs keyed by token *string* with the actual token added; K is not capped, but
  the server sorts the whole vocabulary in Python for every prompt token (~0.25 s/token for a 262k vocab
  on 2 CPU cores). Needs the model loaded with logits_all (the server flag `--logits_all true`).
  max_tokens 0 means "unlimited" there, hence 1.
- vLLM: /v1/completions with a token-id prompt, `prompt_logprobs: K, max_tokens: 1` -> choices[0].prompt_logprobs,
  a list (first null) of {token_id: {logprob, rank, decoded_token}} including the actual token; K is capped by
  the server's --max-logprobs (default 20). POST /tokenize {prompt} -> {tokens, max_model_len}.
- SGLang: native POST /generate {input_ids, return_logprob, logprob_start_len: 0, top_logprobs_num: K}
  -> meta_info.input_token_logprobs [[logprob, id, text]...] and input_top_logprobs [[[logprob, id, text]...]].
- native llama-server (owned_by "llamacpp"): returns no prompt-token probabilities.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from autoquant.errors import EngineError
from autoquant.servers import (
    LLAMA_CPP_PYTHON,
    LLAMA_SERVER,
    VLLM,
    HTTPStatusError,
    Server,
    request_json,
    tokenize,
)
from autoquant.validate.scoring import Position


def _request(url, body, timeout_s, what, server: Server | None = None):
    return request_json(url, body, timeout_s, what, server.headers if server else None)


def prompt_logprobs(server: Server, ids: Sequence[int], top_k: int, text: str | None = None) -> list[Position | None]:
    """Per prompt token i (0-based over `ids`, which start with BOS): Position for token i, None where the
    server gives none (always the first). `text` is the prompt as text, used where a server takes only text."""
    if server.kind == LLAMA_SERVER:
        raise EngineError(no_prompt_logprobs_advice(server))
    if server.kind == LLAMA_CPP_PYTHON:
        return _llama_cpp_python(server, ids, top_k, text)
    if server.kind == VLLM:
        return _vllm(server, ids, top_k)
    return _sglang(server, ids, top_k)


def no_prompt_logprobs_advice(server: Server) -> str:
    if server.kind == LLAMA_SERVER:
        return (f"{server.url} is llama.cpp's llama-server, which returns no prompt-token probabilities: serve the "
                "GGUF with llama-cpp-python (python -m llama_cpp.server --logits_all true), pass --reference-gguf/"
                "--candidate-gguf, or use llama-perplexity --kl-divergence")
    if server.kind == LLAMA_CPP_PYTHON:
        return (f"{server.url} (llama-cpp-python) returns no prompt log-probabilities: restart it with "
                "--logits_all true")
    if server.kind == VLLM:
        return f"{server.url} (vLLM) returned no prompt_logprobs: restart it with --max-logprobs 20 (or more)"
    return f"{server.url} (SGLang) returned no input_token_logprobs for the prompt"


def _llama_cpp_python(server: Server, ids: Sequence[int], top_k: int, text: str | None) -> list[Position | None]:
    if text is None:
        raise ValueError("llama-cpp-python takes text prompts only")
    body = {"prompt": text, "max_tokens": 1, "echo": True, "logprobs": top_k, "temperature": 0.0}
    try:
        out = _request(f"{server.url}/v1/completions", body, server.timeout_s, "scoring", server)
    except HTTPStatusError as exc:
        if "logits_all" in str(exc):
            raise EngineError(no_prompt_logprobs_advice(server)) from None
        if "context window" in str(exc):
            raise EngineError(f"{server.url}: a {len(ids)}-token window exceeds the server's context (n_ctx): "
                              "lower --window or restart the server with a larger --n_ctx") from None
        raise
    lp = ((out.get("choices") or [{}])[0]).get("logprobs") or {}
    token_lps, tops = lp.get("token_logprobs"), lp.get("top_logprobs")
    if not token_lps or not tops:
        raise EngineError(no_prompt_logprobs_advice(server))
    # Entries cover the prompt after BOS, then the one generated token: entry j-1 is prompt token j.
    n = len(ids) - 1
    if len(token_lps) < n:
        raise EngineError(f"{server.url} returned {len(token_lps)} prompt log-probabilities for {n} tokens; "
                          "does the text contain a BOS token?")
    positions: list[Position | None] = [None]
    for j in range(n):
        actual, top = token_lps[j], tops[j]
        if actual is None or top is None:
            positions.append(None)
            continue
        # Keys are token strings: "" is what partial UTF-8 byte tokens decode to, so several tokens share it
        # and its value is not one token's: leave it out (into the tail bucket) so the KL stays a lower bound.
        positions.append(Position(float(actual), {k: float(v) for k, v in top.items() if k != ""}))
    return positions


def _vllm(server: Server, ids: Sequence[int], top_k: int) -> list[Position | None]:
    body = {"model": server.model, "prompt": list(ids), "max_tokens": 1, "temperature": 0.0,
            "prompt_logprobs": top_k}
    try:
        out = _request(f"{server.url}/v1/completions", body, server.timeout_s, "scoring", server)
    except HTTPStatusError as exc:
        if "logprobs" in str(exc).lower():
            raise EngineError(f"{server.url} (vLLM) refused prompt_logprobs={top_k}: restart it with "
                              f"--max-logprobs {top_k} or pass a smaller --top-k") from None
        raise
    rows = ((out.get("choices") or [{}])[0]).get("prompt_logprobs")
    if not rows:
        raise EngineError(no_prompt_logprobs_advice(server))
    positions: list[Position | None] = []
    for tok, row in zip(ids, rows, strict=False):
        if not row:
            positions.append(None)
            continue
        top: dict[Hashable, float] = {int(k): float(v["logprob"]) for k, v in row.items()}
        positions.append(Position(top[int(tok)], top))
    return positions


def _sglang(server: Server, ids: Sequence[int], top_k: int) -> list[Position | None]:
    body = {"input_ids": list(ids), "sampling_params": {"max_new_tokens": 1, "temperature": 0.0},
            "return_logprob": True, "logprob_start_len": 0, "top_logprobs_num": top_k}
    out = _request(f"{server.url}/generate", body, server.timeout_s, "scoring", server)
    meta = (out[0] if isinstance(out, list) else out).get("meta_info") or {}
    actual, tops = meta.get("input_token_logprobs"), meta.get("input_top_logprobs")
    if not actual or not tops:
        raise EngineError(no_prompt_logprobs_advice(server))
    positions: list[Position | None] = []
    for a, t in zip(actual, tops, strict=False):
        if a is None or a[0] is None or not t:
            positions.append(None)
            continue
        positions.append(Position(float(a[0]), {int(e[1]): float(e[0]) for e in t}))
    return positions


def probe_capability(server: Server, top_k: int) -> int:
    """Check the server returns prompt log-probabilities with `top_k` alternatives; the top-k it gives."""
    text = "The quick brown fox jumps over the lazy dog."
    ids = tokenize(server, text)
    positions = [p for p in prompt_logprobs(server, ids, top_k, text) if p is not None]
    if not positions:
        raise EngineError(no_prompt_logprobs_advice(server))
    # The actual token may be added on top of the k alternatives; what matters is at least k came back.
    given = min(len(p.top) for p in positions)
    if given < min(top_k, 2):
        hint = "--max-logprobs" if server.kind == VLLM else "its top-logprobs limit"
        raise EngineError(f"{server.url} returned {given} top log-probabilities per token, asked {top_k}: raise "
                          f"{hint} or pass --top-k {given}")
    return top_k
