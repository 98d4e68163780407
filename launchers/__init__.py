"""Edges that start engines: vLLM, TensorRT-LLM, llama.cpp; process control; container files.

Installed as `autoquant.launchers`.
"""
