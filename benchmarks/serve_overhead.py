"""What `autoquant serve` costs over starting the engine directly (demo model, llama.cpp on CPU).

    python benchmarks/serve_overhead.py [--reps 3] [--requests 20] [--out benchmarks/results/serve_overhead.md]

1. Time to ready: `autoquant serve` (exec mode, the default; and --supervise) versus the exact command it
   execs (taken from `autoquant serve --dry-run --json`), started directly. Ready = GET /v1/models answers
   200 (llama-cpp-python has no /health), polled every 20 ms on 127.0.0.1. Target: < 1 s more.
2. Request throughput through the autoquant-started server versus the direct one, same run, same bounded
   loop of chat completions (sequential: llama-cpp-python serves one request at a time). Target: >= 0.98.
Each rep starts the three servers in a rotating order, then measures them in alternating blocks of requests
while the other two are paused (SIGSTOP), so drift on a shared machine hits all three alike without the
idle servers competing for CPU; medians over reps are reported. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

PROMPT = [{"role": "user", "content": "Write one sentence about the sea."}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 180.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1) as r:
                if r.status == 200:
                    return time.perf_counter()
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    raise RuntimeError("not ready in time")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def one_request(port: int, max_tokens: int) -> tuple[float, int]:
    """(seconds, completion tokens) of one chat completion."""
    body = json.dumps({"messages": PROMPT, "max_tokens": max_tokens, "temperature": 0, "seed": 1}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"}, method="POST")
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        tokens = json.loads(r.read())["usage"]["completion_tokens"]
    return time.perf_counter() - t0, tokens


def launch_command(port: int, env: dict) -> tuple[list[str], dict]:
    out = subprocess.run([sys.executable, "-m", "autoquant", "serve", "--dry-run", "--json", "--host", "127.0.0.1",
                          "--port", str(port)], env=env, capture_output=True, text=True, check=True)
    launch = json.loads(out.stdout)["launch"]
    return launch["argv"], {k: v for k, v in launch["env"].items()}


KINDS = ("direct", "exec", "supervise")


def start(kind: str, env: dict) -> tuple[subprocess.Popen, int, float]:
    """Start one server; return (process, port, seconds to ready)."""
    port = free_port()
    if kind == "direct":
        argv, extra_env = launch_command(port, env)  # outside the timing: it is what autoquant would exec
        cmd, run_env = argv, {**env, **extra_env}
    else:
        cmd = [sys.executable, "-m", "autoquant", "serve", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--supervise"] if kind == "supervise" else []
        run_env = env
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port, wait_ready(port, proc) - t0


def engine_pids(proc: subprocess.Popen) -> list[int]:
    """The process tree serving requests (supervise: autoquant and the engine it started)."""
    import psutil

    parent = psutil.Process(proc.pid)
    return [proc.pid] + [c.pid for c in parent.children(recursive=True)]


_PIDS: dict[int, list[int]] = {}


def pause(proc: subprocess.Popen, on: bool) -> None:
    """SIGSTOP/SIGCONT the server's process tree (listed once, when it is first paused)."""
    pids = _PIDS.setdefault(proc.pid, engine_pids(proc))
    for pid in pids if on else reversed(pids):
        try:
            os.kill(pid, signal.SIGSTOP if on else signal.SIGCONT)
        except ProcessLookupError:
            pass


def one_rep(rep: int, env: dict, requests: int, max_tokens: int, block: int = 5) -> list[dict]:
    """Start the three servers one after another (rotating the order each rep). Then measure them in turns
    of `block` requests while the other two are stopped (SIGSTOP: llama.cpp's worker threads spin-wait after
    each batch, so an idle server that is merely running would steal a 2-core machine's CPU)."""
    order = KINDS[rep % 3:] + KINDS[:rep % 3]
    servers = {}
    try:
        for kind in order:
            servers[kind] = start(kind, env)
            for _ in range(2):  # warm-up
                one_request(servers[kind][1], max_tokens)
            pause(servers[kind][0], True)
        spent = {k: 0.0 for k in KINDS}
        toks = {k: 0 for k in KINDS}
        done = 0
        while done < requests:
            n = min(block, requests - done)
            for kind in order if (done // block) % 2 == 0 else order[::-1]:
                proc, port, _ = servers[kind]
                pause(proc, False)
                for _ in range(n):
                    dt, got = one_request(port, max_tokens)
                    spent[kind] += dt
                    toks[kind] += got
                pause(proc, True)
            done += n
    finally:
        for proc, _port, _ in servers.values():
            pause(proc, False)
        for proc, _port, _ in servers.values():
            stop(proc)
    return [{"kind": k, "ready_s": servers[k][2], "rps": requests / spent[k], "tps": toks[k] / spent[k],
             "exit": servers[k][0].returncode} for k in KINDS]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "serve_overhead.md"))
    a = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOQUANT_")}
    env["AUTOQUANT_CACHE_DIR"] = os.path.join(os.path.expanduser("~"), ".cache", "autoquant", "bench-decisions")
    subprocess.run([sys.executable, "-m", "autoquant", "serve", "--dry-run"], env=env, check=True,
                   capture_output=True)  # assembles the demo GGUF once, outside the timings
    runs = []
    for rep in range(a.reps):
        for r in one_rep(rep, env, a.requests, a.max_tokens):
            print(f"rep {rep} {r['kind']:9s} ready {r['ready_s']:.3f} s  {r['rps']:.2f} req/s  {r['tps']:.1f} tok/s  "
                  f"exit {r['exit']}", flush=True)
            runs.append(r)
    med = {k: {m: statistics.median(r[m] for r in runs if r["kind"] == k) for m in ("ready_s", "rps", "tps")}
           for k in ("direct", "exec", "supervise")}
    argv, _ = launch_command(8000, env)
    lines = [
        "# `autoquant serve` overhead (demo model, llama.cpp on CPU)",
        "",
        f"Produced by `python benchmarks/serve_overhead.py --reps {a.reps} --requests {a.requests} "
        f"--max-tokens {a.max_tokens}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Machine: {platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
        f"no GPU. Engine: llama-cpp-python server (`python -m llama_cpp.server`). Loopback only.",
        "",
        "Direct command (what `autoquant serve` execs, from `--dry-run --json`, port varied per run):",
        "",
        "```",
        " ".join(argv),
        "```",
        "",
        "| start | time to ready (median s) | overhead vs direct (s) | req/s (median) | tok/s (median) | "
        "throughput ratio vs direct |",
        "|---|---|---|---|---|---|",
    ]
    by_rep = {i: {r["kind"]: r for r in runs[3 * i:3 * i + 3]} for i in range(a.reps)}
    ratio = {k: statistics.median(by_rep[i][k]["rps"] / by_rep[i]["direct"]["rps"] for i in by_rep) for k in KINDS}
    extra = {k: statistics.median(by_rep[i][k]["ready_s"] - by_rep[i]["direct"]["ready_s"] for i in by_rep)
             for k in KINDS}
    for k in KINDS:
        m = med[k]
        lines.append(f"| {k} | {m['ready_s']:.3f} | {extra[k]:+.3f} | {m['rps']:.2f} | {m['tps']:.1f} | "
                     f"{ratio[k]:.3f} |")
    lines += ["", "Overhead and ratio are medians of the per-rep differences and ratios (each rep measures the "
              "three servers in the same minutes). Targets: overhead < 1 s; throughput ratio >= 0.98.",
              "Exit codes: the direct and exec'd engine (uvicorn) re-raise SIGTERM after a graceful shutdown "
              "(-15); supervise maps a stop on the signal it forwarded to 0.", "", "Every run:", "",
              "| rep | start | ready s | req/s | tok/s | req/s ratio vs direct (same rep) | exit code after SIGTERM |",
              "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(runs):
        d = by_rep[i // 3]["direct"]["rps"]
        lines.append(f"| {i // 3} | {r['kind']} | {r['ready_s']:.3f} | {r['rps']:.2f} | {r['tps']:.1f} | "
                     f"{r['rps'] / d:.3f} | {r['exit']} |")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"wrote {a.out}")
    ok = all(extra[k] < 1.0 and ratio[k] >= 0.98 for k in ("exec", "supervise"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
