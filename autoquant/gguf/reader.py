"""The one GGUF header reader: a GGUF file's metadata (and tensor infos), never its tensor data.

Pure parsing over a byte stream: `read_header(source)` takes a local path or any binary file object (a
Hub range-read file handed in by the Hub client, the first chunk of a split package) and returns the
header as plain values. Used by the model probe, checkpoint verification, the Hub client and the
llama.cpp launcher. Streaming, long arrays skipped unless asked for; tensor sizes come from the type
table in `autoquant.gguf.types`, so the `gguf` package (and numpy) is never imported.
"""

from __future__ import annotations

import functools
import io
import math
import os
import struct
import types
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from autoquant.gguf.types import ggml_type_size

GGUF_MAGIC = b"GGUF"

# GGUF "<arch>.<key>" -> config.json key (the keys `autoquant.modelspec` reads).
KEY_MAP = {
    "block_count": "num_hidden_layers",
    "embedding_length": "hidden_size",
    "feed_forward_length": "intermediate_size",
    "context_length": "max_position_embeddings",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.key_length": "head_dim",
    "attention.sliding_window": "sliding_window",
    "attention.kv_lora_rank": "kv_lora_rank",
    "attention.q_lora_rank": "q_lora_rank",
    "expert_count": "num_experts",
    "expert_used_count": "num_experts_per_tok",
    "expert_feed_forward_length": "moe_intermediate_size",
    "expert_shared_count": "n_shared_experts",
    "leading_dense_block_count": "first_k_dense_replace",
    "vocab_size": "vocab_size",
}


def is_gguf(path: Path) -> bool:
    """Whether the file starts with the GGUF magic (False when it cannot be read)."""
    try:
        with Path(path).open("rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


# gguf.GGUFReader builds numpy views of every field and tensor (~10 s for a 262k-token vocabulary on a
# small CPU); this walks the same layout (gguf-py/gguf/gguf_reader.py: magic, version, tensor count,
# kv count, typed key/values, tensor infos) through a 1 MiB buffer and seeks over what is not asked for.


class GGUFError(ValueError):
    """Not a GGUF file, or a truncated / malformed header. The message is one line naming the file."""


@dataclass
class SkippedArray:
    """A long metadata array (e.g. 262k tokenizer strings) walked over but not decoded."""

    count: int


@dataclass
class GGUFHeader:
    version: int
    tensor_count: int
    meta: dict[str, Any]
    tensors: list[tuple[str, int, int]] = field(default_factory=list)  # (name, elements, bytes) when asked
    data_end: int | None = None  # where the last tensor's data ends (when tensors are read)
    problem: str = ""  # tensor infos unreadable or data cut (cached whole-file reads; metadata still valid)


# GGUF value types (gguf.GGUFValueType) -> the fixed-size ones' struct format.
_SCALARS = {k: struct.Struct(f) for k, f in
            {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
             12: "<d"}.items()}
_STRING, _ARRAY = 8, 9
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
SHORT_ARRAY = 4096  # per-layer arrays are decoded; longer ones (vocabularies) only when asked for by key
_CHUNK = 1 << 20  # read size; also the Hub range-read block size
_MAX_UNSIZED_READ = 1 << 30  # a stream of unknown size: longer strings/arrays mean a corrupt header


def read_header(
    source: str | Path | BinaryIO,
    *,
    keys: Collection[str] | None = None,
    arrays: Collection[str] = (),
    tensors: bool = False,
) -> GGUFHeader:
    """The metadata (and, with `tensors`, the tensor infos) of a GGUF file; tensor data is never read.

    `source` is a path or a binary file object (a Hub range-read file, the first chunk of a split).
    `keys`: keep only these keys, walk over the rest undecoded and stop once all are seen (unless
    `tensors`). Arrays longer than SHORT_ARRAY become `SkippedArray(count)` unless named in `arrays`.
    Raises GGUFError ("not a GGUF file", "truncated GGUF header", ...) and OSError.
    """
    if isinstance(source, (str, Path)):
        if not arrays:  # the common case: one walk per file and process (verification, probe, launcher)
            st = os.stat(source)
            full = _read_path(str(source), st.st_size, st.st_mtime_ns)
            if tensors and full.problem:
                raise GGUFError(full.problem)
            if keys is None and tensors:
                return full
            meta = full.meta if keys is None else {k: v for k, v in full.meta.items() if k in set(keys)}
            if not tensors:  # the same cached walk, tensor infos left out as asked
                return GGUFHeader(full.version, full.tensor_count, meta)
            return GGUFHeader(full.version, full.tensor_count, meta, full.tensors, full.data_end)
        with open(source, "rb") as fh:
            return _read(_Buffer(fh, str(source)), keys, arrays, tensors)
    return _read(_Buffer(source, str(getattr(source, "name", "<stream>"))), keys, arrays, tensors)


@functools.lru_cache(maxsize=16)
def _read_path(path: str, size: int, mtime_ns: int) -> GGUFHeader:
    """Whole-metadata and tensor-info read of a file, cached by (path, size, mtime): a GGUF on disk does not
    change under a process, and walking a 262k-token vocabulary costs ~0.2 s in Python. One entry answers both
    header-only and tensor readers; a file whose tensors are cut (the first chunk of a split package) keeps
    its header and records why in `problem`. Callers get a shared record: they must not mutate it."""
    with open(path, "rb") as fh:
        header = _read(_Buffer(fh, path), None, (), tensors=True, strict=False)
    header.meta = types.MappingProxyType(header.meta)  # shared across callers: mutation must fail loudly
    return header


def _read(buf: _Buffer, keys: Collection[str] | None, arrays: Collection[str], tensors: bool,
          strict: bool = True) -> GGUFHeader:
    if buf.fh.read(4) != GGUF_MAGIC:
        raise GGUFError(f"{buf.where} is not a GGUF file (no 'GGUF' magic at the start)")
    buf.base = 4
    (version,) = buf.unpack(_U32)
    if version not in (2, 3):
        raise GGUFError(f"{buf.where}: unsupported GGUF version {version} (need 2 or 3; big-endian files "
                        "are not supported)")
    (n_tensors,), (n_kv,) = buf.unpack(_U64), buf.unpack(_U64)
    wanted = set(keys) if keys is not None else None
    meta: dict[str, Any] = {}
    for _ in range(n_kv):
        key = buf.string()
        (vtype,) = buf.unpack(_U32)
        if wanted is None or key in wanted:
            meta[key] = buf.value(vtype, key in arrays)
        else:
            buf.skip_value(vtype)
        if wanted is not None and not tensors and wanted <= meta.keys():
            return GGUFHeader(version, n_tensors, meta)
    header = GGUFHeader(version, n_tensors, meta)
    if tensors:
        try:
            _read_tensor_infos(buf, header, n_tensors)
        except GGUFError as exc:
            if strict:
                raise
            header.problem = str(exc)  # metadata intact; tensor readers get this error
            return header
    buf.settle()
    return header


def _read_tensor_infos(buf: _Buffer, header: GGUFHeader, n_tensors: int) -> None:
    infos = []
    for _ in range(n_tensors):
        name = buf.string()
        (n_dims,) = buf.unpack(_U32)
        if n_dims > 8:
            raise GGUFError(f"{buf.where}: tensor {name} has {n_dims} dimensions (corrupt header)")
        dims = struct.unpack(f"<{n_dims}Q", buf.take(8 * n_dims))
        (ggml_type,), (offset,) = buf.unpack(_U32), buf.unpack(_U64)
        size = ggml_type_size(ggml_type)
        if size is None:
            raise GGUFError(f"{buf.where}: tensor {name} has unknown ggml type {ggml_type}")
        block, type_size = size
        elements = math.prod(dims)
        infos.append((name, elements, elements // block * type_size, offset))
    alignment = header.meta.get("general.alignment", 32)
    # gguf.cpp: a power of two (and not 0, which would divide by zero here)
    if isinstance(alignment, bool) or not isinstance(alignment, int) or alignment < 1 or alignment & (alignment - 1):
        raise GGUFError(f"{buf.where}: general.alignment {alignment!r} is not a power of two (corrupt header)")
    data_start = -(-buf.offset() // alignment) * alignment
    data_end = data_start + max((off + nbytes for _, _, nbytes, off in infos), default=0)
    if buf.size is not None and data_end > buf.size:
        raise GGUFError(f"{buf.where}: truncated GGUF file, tensor data ends at byte {data_end} but the file "
                        f"has {buf.size}")
    header.tensors = [(n, e, b) for n, e, b, _ in infos]
    header.data_end = data_end


class _Buffer:
    """Sequential reads from a file through a window of at least _CHUNK bytes; skips seek past it."""

    def __init__(self, fh: BinaryIO, where: str):
        self.fh, self.where = fh, where
        self.data, self.pos = b"", 0  # the window, and the read position in it (may run past its end)
        self.base = 0  # file offset of data[0]
        self.size = _stream_size(fh)

    def offset(self) -> int:
        return self.base + self.pos

    def truncated(self) -> GGUFError:
        return GGUFError(f"{self.where}: truncated GGUF header (the file ends inside it)")

    def settle(self) -> None:
        """Move the file past a skip that ran beyond the window."""
        gap = self.pos - len(self.data)
        if gap <= 0:
            return
        self.base += len(self.data)
        self.data, self.pos = b"", 0
        if self.size is not None and self.base + gap > self.size:
            raise self.truncated()
        try:
            self.fh.seek(gap, io.SEEK_CUR)
        except (AttributeError, OSError, io.UnsupportedOperation):  # not seekable: read and drop
            left = gap
            while left:
                got = len(self.fh.read(min(left, _CHUNK)))
                if not got:
                    raise self.truncated() from None
                left -= got
        self.base += gap

    def need(self, n: int) -> None:
        if self.pos + n <= len(self.data):
            return
        self.settle()
        if self.size is not None and self.offset() + n > self.size:
            raise self.truncated()
        if self.size is None and n > _MAX_UNSIZED_READ:
            raise GGUFError(f"{self.where}: implausible GGUF header field of {n} bytes (corrupt header)")
        rest = self.data[self.pos:]
        self.base += self.pos
        self.data, self.pos = rest + self.fh.read(max(n - len(rest), _CHUNK)), 0
        if len(self.data) < n:
            raise self.truncated()

    def take(self, n: int) -> bytes:
        self.need(n)
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def unpack(self, fmt: struct.Struct) -> tuple[Any, ...]:
        self.need(fmt.size)
        self.pos += fmt.size
        return fmt.unpack_from(self.data, self.pos - fmt.size)

    def string(self) -> str:
        (n,) = self.unpack(_U64)
        return self.take(n).decode("utf-8", errors="replace")

    def value(self, vtype: int, whole: bool = False, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])[0]
        if vtype == _STRING:
            return self.string()
        if vtype != _ARRAY:
            raise GGUFError(f"{self.where}: unknown GGUF value type {vtype} (corrupt header)")
        (item_type,), (count,) = self.unpack(_U32), self.unpack(_U64)
        self.check_depth(item_type, depth)
        if count > SHORT_ARRAY and not whole:
            self.skip_items(item_type, count, depth + 1)
            return SkippedArray(count)
        if item_type in _SCALARS:
            fmt = _SCALARS[item_type]
            return list(struct.unpack(f"<{count}{fmt.format[1:]}", self.take(fmt.size * count)))
        return [self.value(item_type, whole, depth + 1) for _ in range(count)]

    def check_depth(self, item_type: int, depth: int) -> None:
        """Arrays of arrays nested past limits.yaml gguf.max_array_depth are corrupt (gguf.cpp nests none), and
        would recurse until the stack ran out."""
        if item_type == _ARRAY:
            from autoquant.limits import setting

            limit = setting("gguf", "max_array_depth")
            if depth + 1 >= limit:
                raise GGUFError(f"{self.where}: GGUF arrays nested more than {limit} deep (corrupt header)")

    def skip_value(self, vtype: int, depth: int = 0) -> None:
        if vtype in _SCALARS:
            self.pos += _SCALARS[vtype].size
        elif vtype == _STRING:
            (n,) = self.unpack(_U64)
            self.pos += n
        elif vtype == _ARRAY:
            (item_type,), (count,) = self.unpack(_U32), self.unpack(_U64)
            self.check_depth(item_type, depth)
            self.skip_items(item_type, count, depth + 1)
        else:
            raise GGUFError(f"{self.where}: unknown GGUF value type {vtype} (corrupt header)")

    def skip_items(self, item_type: int, count: int, depth: int = 1) -> None:
        if item_type in _SCALARS:
            self.pos += _SCALARS[item_type].size * count
        elif item_type == _STRING:  # the hot loop: 262k vocabulary strings, lengths read, bytes jumped
            unpack, data, pos = _U64.unpack_from, self.data, self.pos
            for _ in range(count):
                if pos + 8 > len(data):
                    self.pos = pos
                    self.need(8)
                    data, pos = self.data, self.pos
                pos += 8 + unpack(data, pos)[0]
            self.pos = pos
        else:
            for _ in range(count):
                self.skip_value(item_type, depth)


def _stream_size(fh: BinaryIO) -> int | None:
    try:
        return os.fstat(fh.fileno()).st_size
    except (AttributeError, OSError, io.UnsupportedOperation):
        pass
    size = getattr(fh, "size", None)  # fsspec files (HfFileSystem) know theirs
    if isinstance(size, int):
        return size
    try:
        here = fh.tell()
        end = fh.seek(0, io.SEEK_END)
        fh.seek(here)
        return end
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
