"""Which llama-cpp-python launch serves the demo model best on this CPU, measured through the server.

    python benchmarks/cpu_launch_study.py [--rounds 3] [--requests 4] [--out benchmarks/results/cpu_launch_study.md]

Variants: autoquant's own launch (`autoquant serve --dry-run --json` gives the exact command) and that command
with one knob changed at a time, plus llama-cpp-python's own defaults (no flags but the model). Every variant
is started once; then, round after round, each is measured in turn by `autoquant.bench` (concurrency 1 and
2, 64-token prompts, 64 output tokens) while the others are paused with SIGSTOP, so drift on a shared machine
hits all alike and no idle server competes for the CPU. Medians over rounds are reported. Loopback only.
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
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server not ready")


def with_flag(argv: list[str], flag: str, value: str | None) -> list[str]:
    out = list(argv)
    if flag in out:
        i = out.index(flag)
        del out[i:i + 2]
    if value is not None:
        out += [flag, value]
    return out


def autoquant_command() -> list[str]:
    out = subprocess.run([sys.executable, "-m", "autoquant", "serve", "--dry-run", "--json"], capture_output=True,
                         text=True, check=True, env={**os.environ, "AUTOQUANT_PREDICTOR": "autoquant"})
    return json.loads(out.stdout)["launch"]["argv"]


def variants(base: list[str]) -> dict[str, list[str]]:
    model = base[base.index("--model") + 1]
    cores = os.cpu_count() or 1
    return {
        "autoquant": base,
        f"--n_threads {max(1, cores - 1)}": with_flag(base, "--n_threads", str(max(1, cores - 1))),
        "--flash_attn true": with_flag(base, "--flash_attn", "true"),
        "--n_ctx 2048": with_flag(base, "--n_ctx", "2048"),
        "llama-cpp-python defaults": [sys.executable, "-m", "llama_cpp.server", "--model", model],
    }


def measure(port: int, requests: int, seed: int) -> dict:
    from autoquant.bench import Level, Settings, bench

    s = Settings(url=f"http://127.0.0.1:{port}/v1", levels=(Level("concurrency", 1.0), Level("concurrency", 2.0)),
                 isl=64, osl=64, requests=requests, warmup=1, seed=seed)
    rep = bench(s)
    out = {}
    for lv in rep.levels:
        c = int(lv.level.value)
        out[c] = {"completed": lv.completed, "requests": lv.requests,
                  "tpot_p50": lv.tpot_ms.p50 if lv.tpot_ms else None,
                  "ttft_p50": lv.ttft_ms.p50 if lv.ttft_ms else None,
                  "out_tps": lv.output_throughput}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=4)
    ap.add_argument("--out", default="benchmarks/results/cpu_launch_study.md")
    a = ap.parse_args()
    servers = {}
    for name, argv in variants(autoquant_command()).items():
        port = free_port()
        argv = with_flag(with_flag(argv, "--port", str(port)), "--host", "127.0.0.1")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(port, proc)
        proc.send_signal(signal.SIGSTOP)
        servers[name] = (port, proc, argv)
    runs: dict[str, list[dict]] = {n: [] for n in servers}
    try:
        for r in range(a.rounds):
            order = list(servers)[r % len(servers):] + list(servers)[: r % len(servers)]
            for name in order:
                port, proc, _ = servers[name]
                proc.send_signal(signal.SIGCONT)
                time.sleep(0.5)
                runs[name].append(measure(port, a.requests, seed=r))
                proc.send_signal(signal.SIGSTOP)
                print(f"round {r + 1} {name}: {runs[name][-1]}", file=sys.stderr)
    finally:
        for _, proc, _ in servers.values():
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            proc.wait(30)

    def med(name: str, c: int, key: str):
        vals = [x[c][key] for x in runs[name] if x[c][key] is not None]
        return statistics.median(vals) if vals else None

    lines = [
        "# CPU launch study: the demo model through llama-cpp-python's server",
        "",
        f"`python benchmarks/cpu_launch_study.py --rounds {a.rounds} --requests {a.requests}` on {platform.node()} "
        f"({os.cpu_count()} CPUs), {time.strftime('%Y-%m-%d')}. Medians over rounds; 64-token prompts, 64 output "
        "tokens; a request that comes back cut short counts as failed.",
        "",
        "| launch | c=1 TPOT p50 ms | c=1 TTFT p50 ms | c=1 out tok/s | c=2 completed | c=2 TPOT p50 ms | c=2 out tok/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in servers:
        done = sum(x[2]["completed"] for x in runs[name])
        sent = sum(x[2]["requests"] for x in runs[name])

        def f(v):
            return "-" if v is None else f"{v:.1f}"
        lines.append(f"| {name} | {f(med(name, 1, 'tpot_p50'))} | {f(med(name, 1, 'ttft_p50'))} | "
                     f"{f(med(name, 1, 'out_tps'))} | {done}/{sent} | {f(med(name, 2, 'tpot_p50'))} | "
                     f"{f(med(name, 2, 'out_tps'))} |")
    lines += ["", "Commands:", ""] + [f"- {n}: `{' '.join(servers[n][2][1:])}`" for n in servers]
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
