"""A fake OpenAI-compatible streaming server (aiohttp.web in a thread): the outermost boundary, faked so the
load generator's timing and error handling can be checked to the millisecond. Behaviour per request comes from
the prompt: "delay=0.05 tokens=5", "status=500", "nodone", "nofinish", "hang", "usage"."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from aiohttp import web

BODIES = web.AppKey("bodies", list)
ARRIVALS = web.AppKey("arrivals", list)


def _opts(prompt: str) -> dict:
    out = {}
    for part in str(prompt).split():
        k, _, v = part.partition("=")
        out[k] = v or "1"
    return out


async def models(request):
    return web.json_response({"object": "list", "data": [{"id": "fake-model", "owned_by": "vllm",
                                                          "max_model_len": 4096}]})


async def version(request):
    return web.json_response({"version": "0.0.fake"})


async def completions(request):
    body = await request.json()
    app = request.app
    app[BODIES].append(body)
    o = _opts(body.get("prompt", ""))
    app[ARRIVALS].append(time.perf_counter())
    if "status" in o:
        return web.json_response({"error": "boom"}, status=int(o["status"]))
    if "hang" in o:
        await asyncio.sleep(30)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    n = int(o.get("tokens", body.get("max_tokens", 3)))
    delay = float(o.get("delay", 0.0))
    for i in range(n):
        await asyncio.sleep(delay)
        finish = "length" if i == n - 1 and "nofinish" not in o else None
        chunk = {"choices": [{"text": f" w{i}", "index": 0, "finish_reason": finish}]}
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
    if "usage" in o:
        usage = {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": n}}
        await resp.write(f"data: {json.dumps(usage)}\n\n".encode())
    if "nodone" not in o:
        await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


class FakeServer:
    def __init__(self) -> None:
        self.app = web.Application()
        self.app[BODIES] = []
        self.app[ARRIVALS] = []
        self.app.router.add_get("/v1/models", models)
        self.app.router.add_get("/version", version)
        self.app.router.add_post("/v1/completions", completions)
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.runner = web.AppRunner(self.app, shutdown_timeout=0.5)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def bodies(self) -> list:
        return self.app[BODIES]

    @property
    def arrivals(self) -> list:
        return self.app[ARRIVALS]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
