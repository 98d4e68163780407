#!/bin/sh
# Plan for a GPU machine from anywhere: save its probe there once, then plan with the saved record on a
# laptop or in CI (no GPU, no driver, offline: the bundled model catalog and checkpoint registry answer).
set -eu

# 1) On the GPU machine: its GPUs, interconnect, CPU, RAM and container limits as a node record (JSON).
autoquant probe --save node.json

# 2) Anywhere: the plan for that machine, as if autoquant ran there.
autoquant plan meta-llama/Llama-3.1-70B-Instruct --hardware node.json --concurrency 16

# Without a GPU machine at hand, plan with the record in this folder: what step 1 writes on a node with
# two A100 80GB PCIe cards (no NVLink bridge, one per socket) and two Xeon 8480+ sockets:
#   autoquant plan meta-llama/Llama-3.1-70B-Instruct --hardware examples/node-2xA100.json --concurrency 16
# The same record serves `autoquant estimate`, `explain` and `serve --dry-run` (--hardware node.json).
