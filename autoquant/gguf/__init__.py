"""GGUF, the pure part: the header reader (bytes -> metadata, tensor infos) and the type tables.

No Hub, no network, no `gguf` package: callers hand in a local path or a file object.
"""

from __future__ import annotations

from autoquant.gguf.reader import (
    GGUF_MAGIC,
    KEY_MAP,
    SHORT_ARRAY,
    GGUFError,
    GGUFHeader,
    SkippedArray,
    is_gguf,
    read_header,
)
from autoquant.gguf.types import GGML_TYPES, LLAMA_FILE_TYPES, file_type_name, ggml_type_size

__all__ = [
    "GGML_TYPES",
    "GGUF_MAGIC",
    "KEY_MAP",
    "LLAMA_FILE_TYPES",
    "SHORT_ARRAY",
    "GGUFError",
    "GGUFHeader",
    "SkippedArray",
    "file_type_name",
    "ggml_type_size",
    "is_gguf",
    "read_header",
]
