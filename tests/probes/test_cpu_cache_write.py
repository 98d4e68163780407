"""The CPU measurement cache on a full disk: a note that names the file, and no .tmp file left behind."""

from __future__ import annotations

import builtins
import errno
import io

import pytest

from autoquant.probes import cpu

_open = io.open


class _FullDisk:
    def __init__(self, fh) -> None:
        self._fh = fh

    def __enter__(self):
        return self

    def __exit__(self, *_) -> None:
        self._fh.close()

    def write(self, _data) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")  # as a real write does: no filename


@pytest.fixture
def full_disk(monkeypatch):
    """Writing a .tmp file fails (open() and Path.write_* alike); every other file is untouched."""
    def fake_open(file, mode="r", *args, **kwargs):
        fh = _open(file, mode, *args, **kwargs)
        return _FullDisk(fh) if "w" in mode and str(file).endswith(".tmp") else fh

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)


def test_cache_written(tmp_path):
    assert cpu._write_cache(tmp_path / "cpu.json", {"a": 1}) == []
    assert [p.name for p in tmp_path.iterdir()] == ["cpu.json"]


def test_full_disk_is_a_note_naming_the_file_and_leaves_no_tmp(tmp_path, full_disk):
    path = tmp_path / "cpu.json"
    assert cpu._write_cache(path, {"a": 1}) == [f"could not cache CPU measurements in {path} (No space left on device)"]
    assert list(tmp_path.iterdir()) == []
