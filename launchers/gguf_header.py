"""Read a few metadata keys from a GGUF file's header without loading tensors.

`gguf.GGUFReader` maps and indexes every tensor (seconds for a small model); a launcher needs two keys
(`general.architecture`, whether `tokenizer.chat_template` exists), so this walks the key/value section
only (GGUF v2/v3 layout: magic, version, tensor count, kv count, then typed key/value pairs).
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

# GGUF value types -> struct format (gguf/constants.py GGUFValueType)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class GGUFHeaderError(ValueError):
    pass


def read_metadata(path: str, wanted: set[str] | None = None) -> dict[str, Any]:
    """Scalar and string values of the header (arrays are skipped, their key maps to None).

    Stops early once every key in `wanted` has been seen."""
    out: dict[str, Any] = {}
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise GGUFHeaderError(f"{path} is not a GGUF file")
        (version,) = struct.unpack("<I", fh.read(4))
        if version < 2:
            raise GGUFHeaderError(f"{path}: GGUF version {version} is too old")
        _tensors, n_kv = struct.unpack("<QQ", fh.read(16))
        for _ in range(n_kv):
            key = _read_string(fh)
            (vtype,) = struct.unpack("<I", fh.read(4))
            if vtype == _ARRAY:
                _skip_array(fh)
                out[key] = None
            else:
                out[key] = _read_value(fh, vtype)
            if wanted and wanted <= out.keys():
                break
    return out


def _read_string(fh: BinaryIO) -> str:
    (n,) = struct.unpack("<Q", fh.read(8))
    return fh.read(n).decode("utf-8", errors="replace")


def _read_value(fh: BinaryIO, vtype: int) -> Any:
    if vtype == _STRING:
        return _read_string(fh)
    fmt = _SCALARS.get(vtype)
    if fmt is None:
        raise GGUFHeaderError(f"unknown GGUF value type {vtype}")
    size = struct.calcsize("<" + fmt)
    return struct.unpack("<" + fmt, fh.read(size))[0]


def _skip_array(fh: BinaryIO) -> None:
    (etype,) = struct.unpack("<I", fh.read(4))
    (n,) = struct.unpack("<Q", fh.read(8))
    if etype == _STRING:
        read, seek = fh.read, fh.seek
        for _ in range(n):
            (length,) = struct.unpack("<Q", read(8))
            seek(length, 1)
    elif etype == _ARRAY:
        for _ in range(n):
            _skip_array(fh)
    else:
        fmt = _SCALARS.get(etype)
        if fmt is None:
            raise GGUFHeaderError(f"unknown GGUF array element type {etype}")
        fh.seek(struct.calcsize("<" + fmt) * n, 1)
