"""autoquant: pick the engine, quantization, kernel and parallelism for an LLM on this node, then launch it.

Importing this package must stay cheap: no engine, no torch, no NVML call.
"""

__version__ = "0.1.0"
