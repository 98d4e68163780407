"""Regenerate the tables in autoquant/gguf/types.py from the installed `gguf` package.

    python scripts/gguf_types.py        # rewrites GENERATED_FROM, GGML_TYPES and LLAMA_FILE_TYPES in place

tests/gguf/test_types.py says when this is needed (a gguf release added or changed a type).
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import gguf

TYPES = Path(__file__).resolve().parents[1] / "autoquant" / "gguf" / "types.py"


def render() -> dict[str, str]:
    ggml = "".join(f'    {int(t)}: ("{t.name}", {block}, {size}),\n'
                   for t, (block, size) in sorted(gguf.GGML_QUANT_SIZES.items(), key=lambda kv: int(kv[0])))
    files = "".join(f'    {int(m)}: "{m.name}",\n' for m in sorted(gguf.LlamaFileType, key=int))
    return {"GGML_TYPES": ggml, "LLAMA_FILE_TYPES": files}


def main() -> int:
    text = TYPES.read_text()
    text = re.sub(r'^GENERATED_FROM = ".*"$', f'GENERATED_FROM = "gguf {importlib.metadata.version("gguf")}"', text,
                  flags=re.M)
    for name, body in render().items():
        text = re.sub(rf"(^{name}: [^\n]*= {{\n)(.*?)(^}}$)", lambda m, b=body: m[1] + b + m[3], text,
                      flags=re.M | re.S)
    TYPES.write_text(text)
    print(f"wrote {TYPES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
