"""Wait until a Ray cluster has N alive nodes and G GPUs, with Ray's own API (`ray.nodes()`,
`ray.cluster_resources()`), then exit: 0 when they joined, 3 when the time ran out.

launchers/multinode.py runs this file (`python -I ray_wait.py --address HOST:PORT --nodes N --gpus G
--timeout S`) with the Python of the `ray` that started the head, so the driver is the same Ray version as the
cluster (Ray refuses a driver of another version). It imports the standard library and ray only: that Python
need not have autoquant. Each change of the cluster's state is one JSON line on stdout:
{"nodes": [{"ip", "name", "gpus"}], "gpus": G, "ok": bool}; the last line is the final state.
"""

import argparse
import json
import os
import sys
import time

# Run as a file, Python puts this folder first on sys.path (before 3.11's PYTHONSAFEPATH): launchers/ holds
# modules (flags.py, build.py, ...) that must never shadow the ones Ray imports.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]


def state(ray) -> dict:
    alive = [n for n in ray.nodes() if n.get("Alive")]
    nodes = [{"ip": n.get("NodeManagerAddress", ""), "name": n.get("NodeName", ""),
              "gpus": float((n.get("Resources") or {}).get("GPU", 0))} for n in alive]
    nodes.sort(key=lambda n: (n["ip"], n["name"]))
    return {"nodes": nodes, "gpus": float(ray.cluster_resources().get("GPU", 0))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ray_wait")
    parser.add_argument("--address", required=True)
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--gpus", type=float, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--poll", type=float, default=1.0)
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    import ray

    # a driver only: it starts no Ray process; its own logs stay out of the user's terminal
    ray.init(address=args.address, logging_level="ERROR", log_to_driver=False)
    last = None
    try:
        while True:
            now = state(ray)
            ok = len(now["nodes"]) >= args.nodes and now["gpus"] >= args.gpus
            if now != last or ok:
                print(json.dumps({**now, "ok": ok}), flush=True)
                last = now
            if ok:
                return 0
            if time.monotonic() >= deadline:
                return 3
            time.sleep(min(args.poll, max(0.0, deadline - time.monotonic())))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
