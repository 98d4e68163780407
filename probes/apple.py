"""Apple Silicon (macOS arm64): the chip and its unified memory, through `sysctl` and `ioreg` (argv, no shell)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from autoquant.records.node import AppleSilicon

Runner = Callable[[list[str]], "str | None"]


def probe_apple(
    run: Runner, find_spec: Callable[[str], Any] | None = None, chip: str | None = None
) -> tuple[AppleSilicon | None, list[str]]:
    """The chip ("Apple M2 Max"), unified memory bytes, GPU cores and catalog key; notes on gaps. `chip` is
    the brand string when the CPU probe already read it (sysctl is then not run again)."""
    notes: list[str] = []
    if chip is None:
        chip = (run(["sysctl", "-n", "machdep.cpu.brand_string"]) or "").strip()
    memsize = (run(["sysctl", "-n", "hw.memsize"]) or "").strip()
    if not chip:
        notes.append("sysctl machdep.cpu.brand_string unreadable: Apple chip unknown")
        chip = "Apple Silicon (unknown chip)"
    memory = int(memsize) if memsize.isdigit() else 0
    if not memory:
        notes.append("sysctl hw.memsize unreadable: unified memory unknown")
    apple = AppleSilicon(chip=chip, unified_memory_bytes=memory)
    # The GPU core count differs between bins of one chip; the AGX accelerator's registry entry has it.
    found = re.search(r'"gpu-core-count"\s*=\s*(\d+)', run(["ioreg", "-rc", "AGXAccelerator", "-d", "1"]) or "")
    if found:
        apple.gpu_cores = int(found.group(1))
    spec = find_spec(chip) if find_spec else None
    if spec is not None:
        apple.catalog_key = spec.key
    elif find_spec:
        notes.append(f"{chip!r} is not in the GPU catalog: no catalog figures (bandwidth) for it")
    return apple, notes
