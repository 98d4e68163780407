"""The load generator's HTTP edge: one streamed request timed chunk by chunk, and a load level run on asyncio.

aiohttp, as `vllm bench serve` uses: one event loop keeps thousands of streams open with exact timestamps,
where a thread per request would be timed by the scheduler. Closed loop: N workers, each sends its next
request when the last one ends. Open loop: each request is sent at its scheduled time, whatever is in flight
(bounded by `max_concurrency` when given), and how late it went is kept.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from autoquant.bench.records import Level, RequestResult, RequestSpec
from autoquant.servers import LLAMA_CPP_PYTHON, LLAMA_SERVER, Server

# Servers that honour `ignore_eos` (vLLM, SGLang, TensorRT-LLM's trtllm-serve sampling params; llama-server's
# own field of that name). llama-cpp-python has no such field: its outputs end where the model stops.
_IGNORE_EOS = ("vllm", "sglang", "trtllm", LLAMA_SERVER)


def payload(server: Server, endpoint: str, spec: RequestSpec, ignore_eos: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": server.model, "max_tokens": spec.osl, "stream": True, "temperature": 0.0,
                            "stream_options": {"include_usage": True}}
    if endpoint == "chat":
        text = spec.prompt if isinstance(spec.prompt, str) else ""
        body["messages"] = [{"role": "user", "content": text}]
    else:
        body["prompt"] = spec.prompt
    if ignore_eos and server.kind in _IGNORE_EOS:
        body["ignore_eos"] = True
    if server.kind == LLAMA_CPP_PYTHON:
        body.pop("stream_options")  # its request model has no such field (it reports no usage when streaming)
    return body


def _content(event: dict[str, Any], endpoint: str) -> str:
    choices = event.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return ""
    c = choices[0]
    if endpoint == "chat":
        delta = c.get("delta") or {}
        return (delta.get("content") or "") + (delta.get("reasoning_content") or "")
    return c.get("text") or ""


async def send(session, server: Server, endpoint: str, spec: RequestSpec, t0: float, ignore_eos: bool,
               timeout_s: float, texts: dict[int, str] | None = None) -> RequestResult:
    """Send one request and time it: TTFT at the first chunk with content, a gap per later content chunk.
    `texts`: where to keep each output's text, so tokens can be counted after the run when the server sends
    no usage (a tokenizer call inside the loop would skew the timing of the others)."""
    import aiohttp

    path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
    scheduled = spec.send_at
    start = time.perf_counter()
    lag = (start - t0 - scheduled) * 1000.0 if scheduled is not None else 0.0
    start_s = start - t0
    ttft = None
    last = start
    itl: list[float] = []
    text: list[str] = []
    usage: dict[str, Any] | None = None
    chunks = 0
    finish = ""

    def failed(kind: str, error: str) -> RequestResult:
        return RequestResult(spec.index, False, start_s, (time.perf_counter() - start) * 1000.0, ttft,
                             tuple(itl), error_kind=kind, error=error[:300], lag_ms=max(0.0, lag),
                             asked_tokens=spec.osl)

    try:
        async with session.post(f"{server.url}{path}", json=payload(server, endpoint, spec, ignore_eos),
                                headers=server.headers,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status != 200:
                body = (await resp.text())[:200]
                return failed("http", f"HTTP {resp.status}: {body}")
            done = False
            async for raw in resp.content:
                line = raw.strip()
                if not line or line.startswith(b":"):
                    continue
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    done = True
                    break
                try:
                    event = json.loads(data)
                except ValueError:
                    return failed("protocol", f"not JSON in the stream: {data[:80]!r}")
                if isinstance(event, dict) and event.get("error"):
                    return failed("http", f"error in the stream: {str(event['error'])[:200]}")
                if isinstance(event, dict) and event.get("usage"):
                    usage = event["usage"]
                choice = (event.get("choices") or [None])[0] if isinstance(event, dict) else None
                if isinstance(choice, dict) and choice.get("finish_reason"):
                    finish = str(choice["finish_reason"])
                piece = _content(event, endpoint) if isinstance(event, dict) else ""
                if piece:
                    now = time.perf_counter()
                    if ttft is None:
                        ttft = (now - start) * 1000.0
                    else:
                        itl.append((now - last) * 1000.0)
                    last = now
                    chunks += 1
                    text.append(piece)
            end = time.perf_counter()
    except asyncio.TimeoutError:
        return failed("timeout", f"no complete answer within {timeout_s:g} s")
    except aiohttp.ClientResponseError as exc:
        return failed("http", f"HTTP {exc.status}: {exc.message}")
    except (aiohttp.ClientConnectionError, ConnectionError, OSError) as exc:
        return failed("connection", f"{type(exc).__name__}: {exc}")
    except aiohttp.ClientPayloadError as exc:
        return failed("incomplete", f"the stream broke off: {exc}")
    if not done:
        return failed("incomplete", "the stream ended without [DONE]")
    if ttft is None:
        return failed("empty", "the server returned no content")
    if not finish:
        # llama-cpp-python ends a streamed answer this way when another request arrives (--interrupt_requests
        # true, its default): the answer is cut, not finished.
        return failed("incomplete", "the stream ended without a finish_reason: the server cut the answer short "
                      "(llama-cpp-python does this under load unless started with --interrupt_requests false)")
    out_tokens, source = chunks, "chunks"
    if usage and isinstance(usage.get("completion_tokens"), int):
        out_tokens, source = usage["completion_tokens"], "usage"
    elif texts is not None:
        texts[spec.index] = "".join(text)
    in_tokens = usage.get("prompt_tokens") if usage and isinstance(usage.get("prompt_tokens"), int) else spec.isl
    return RequestResult(spec.index, True, start_s, (end - start) * 1000.0, ttft, tuple(itl), in_tokens,
                         out_tokens, source, lag_ms=max(0.0, lag), asked_tokens=spec.osl,
                         finish_reason=finish)


async def run_level(server: Server, endpoint: str, level: Level, specs: Sequence[RequestSpec], *,
                    ignore_eos: bool, timeout_s: float, duration_s: float | None = None,
                    max_concurrency: int | None = None, texts: dict[int, str] | None = None,
                    on_done: Callable[[RequestResult], None] | None = None) -> tuple[list[RequestResult], float]:
    """Run `specs` at `level`; (results in the order they were sent, the level's wall time in s). Stops
    sending after `duration_s` (what is in flight finishes)."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    results: list[RequestResult] = []
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        t0 = time.perf_counter()

        def expired() -> bool:
            return duration_s is not None and time.perf_counter() - t0 >= duration_s

        async def one(spec: RequestSpec) -> None:
            r = await send(session, server, endpoint, spec, t0, ignore_eos, timeout_s, texts)
            results.append(r)
            if on_done:
                on_done(r)

        if level.mode == "concurrency":
            queue = list(specs)[::-1]

            async def worker() -> None:
                while queue and not expired():
                    await one(queue.pop())

            await asyncio.gather(*(worker() for _ in range(max(1, int(level.value)))))
        else:
            gate = asyncio.Semaphore(max_concurrency) if max_concurrency else None

            async def timed(spec: RequestSpec) -> None:
                delay = (spec.send_at or 0.0) - (time.perf_counter() - t0)
                if delay > 0:
                    await asyncio.sleep(delay)
                if expired():
                    return
                if gate is None:
                    await one(spec)
                else:
                    async with gate:
                        await one(spec)

            await asyncio.gather(*(timed(s) for s in specs))
        wall = time.perf_counter() - t0
    results.sort(key=lambda r: r.start_s)
    return results, wall
