"""The CPU measurement cache on a full disk: a note that names the file, and no .tmp file left behind."""

from __future__ import annotations

from autoquant.probes import cpu


def test_cache_written(tmp_path):
    assert cpu._write_cache(tmp_path / "cpu.json", {"a": 1}) == []
    assert [p.name for p in tmp_path.iterdir()] == ["cpu.json"]


def test_full_disk_is_a_note_naming_the_file_and_leaves_no_tmp(tmp_path, full_disk):
    path = tmp_path / "cpu.json"
    assert cpu._write_cache(path, {"a": 1}) == [f"could not cache CPU measurements in {path} (No space left on device)"]
    assert list(tmp_path.iterdir()) == []
