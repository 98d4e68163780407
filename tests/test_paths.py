"""autoquant.paths.write_atomic: the whole file or none, a failure that names the path and leaves no .tmp; and
the data package's marshal cache, which writes through it."""

from __future__ import annotations

import errno

import pytest

from autoquant import paths
from autoquant.errors import describe


def test_writes_the_whole_file(tmp_path):
    paths.write_atomic(tmp_path / "a.json", "{}")
    paths.write_atomic(tmp_path / "a.json", b"[]")
    assert (tmp_path / "a.json").read_text() == "[]" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_full_disk_names_the_path_and_leaves_no_tmp(tmp_path, full_disk):
    (tmp_path / "a.json").write_text("old")
    with pytest.raises(OSError) as info:
        paths.write_atomic(tmp_path / "a.json", "new")
    assert describe(info.value) == f"{tmp_path / 'a.json'}: No space left on device"
    assert info.value.errno == errno.ENOSPC
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"] and (tmp_path / "a.json").read_text() == "old"


def test_a_missing_folder_keeps_its_kind(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        paths.write_atomic(tmp_path / "no" / "a.json", "x")
    assert info.value.filename == str(tmp_path / "no" / "a.json")


def test_data_cache_on_a_full_disk_parses_and_leaves_no_tmp(tmp_path, monkeypatch, full_disk):
    from autoquant import data

    monkeypatch.setenv("AUTOQUANT_CACHE_DIR", str(tmp_path))
    assert data._cached_parse("probe-test", "a: 1\n") == {"a": 1}
    assert list((tmp_path / "data").iterdir()) == []
