"""Edges that start engines: one module per engine (vllm, trtllm, sglang, llamacpp, named by its spec in
autoquant/data/engines.yaml), build.py (dispatch and the checks every launcher runs first), process control,
container files.

Installed as `autoquant.launchers`.
"""
