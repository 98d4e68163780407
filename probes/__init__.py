"""Edges that look at the world: hardware (NVML, psutil, cgroups), models (files, GGUF, Hub), traffic.

Installed as `autoquant.probes`.
"""
