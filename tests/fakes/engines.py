"""FAKE engines and port squatters for the supervisor's fault tests, run as a script:

    python tests/fakes/engines.py MODE [engine argv...]

The engine argv is whatever a launcher would pass (`serve MODEL --port P --served-model-name NAME` for vLLM,
`-m llama_cpp.server --model_alias NAME --port P` for llama-cpp-python); only --port and the served name are
read. Each process writes its pid to $FAKE_PIDS (one per line) when set, so a test can check that it is gone
and kill what is left. Modes:
  squat                answer 200 on every path ({"data": [{"id": "someone-else"}]}) until killed: another server
  serve                /health 200, /v1/models lists the served name; exit 0 on SIGTERM/SIGINT
  ignore-term          like serve, but SIGTERM and SIGINT are ignored, also by a child in its process group
  ignore-term-unready  ignore SIGTERM/SIGINT, never listen (a load that hangs)
  foreign              answer 200 on every path with another model list for $FAKE_SECONDS (1.5), then exit 1
  killed-after-ready   serve; print some lines (one with $FAKE_SECRET), then SIGKILL itself once probed ready
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time


def _arg(argv: list[str], *names: str, default: str | None = None) -> str | None:
    for name in names:
        if name in argv:
            return argv[argv.index(name) + 1]
    return default


def _note_pid() -> None:
    path = os.environ.get("FAKE_PIDS")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{os.getpid()}\n")


def _server(port: int, models: list[str], on_ready: threading.Event | None = None,
            every_path: bool = False) -> http.server.ThreadingHTTPServer:
    body_models = json.dumps({"object": "list", "data": [{"id": m, "object": "model"} for m in models]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server spelling
            if self.path == "/v1/models" or every_path:
                body = body_models
            elif self.path == "/health":
                body = b'{"status":"ok"}'
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            if on_ready is not None:
                on_ready.set()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    mode, argv = sys.argv[1], sys.argv[2:]
    _note_pid()
    port = int(_arg(argv, "--port", default="8000"))
    name = _arg(argv, "--served-model-name", "--model_alias", default="fake-model")
    if mode in ("ignore-term", "ignore-term-unready"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # a worker in the engine's process group that ignores SIGTERM too (vLLM's workers share the group)
        code = ("import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "signal.signal(signal.SIGINT, signal.SIG_IGN); "
                f"open({os.environ.get('FAKE_PIDS', os.devnull)!r}, 'a').write(f'{{os.getpid()}}\\n'); time.sleep(120)")
        subprocess.Popen([sys.executable, "-c", code])
        if mode == "ignore-term":
            _server(port, [name])
        print("fake engine: loading, SIGTERM ignored", flush=True)
        time.sleep(120)
        sys.exit(0)
    if mode == "squat":
        _server(port, ["someone-else"], every_path=True)
        print(f"squatting on {port}", flush=True)
        time.sleep(600)
        return
    if mode == "foreign":
        _server(port, ["someone-else"], every_path=True)
        print("fake engine: answering as another server", flush=True)
        time.sleep(float(os.environ.get("FAKE_SECONDS", "1.5")))
        print("fake engine: giving up", flush=True)
        sys.exit(1)
    probed = threading.Event()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    _server(port, [name], on_ready=probed)
    print(f"fake engine serving {name} on {port}", flush=True)
    if mode == "killed-after-ready":
        for i in range(15):
            print(f"fake engine line {i}", flush=True)
        print(f"fake engine: token {os.environ.get('FAKE_SECRET', '')}", flush=True)
        probed.wait(30)
        time.sleep(1.5)  # let the supervisor finish its probe and see it ready first (a loaded CI machine is slow)
        os.kill(os.getpid(), signal.SIGKILL)
    stop.wait(120)
    sys.exit(0)


if __name__ == "__main__":
    main()
