"""The parsed-data cache of autoquant.data.load: same values as parsing, new key on any change, never in the way."""

from __future__ import annotations

import marshal
from importlib import resources

import pytest

from autoquant import data

TEXT = "a: 1\nb: [x, {c: 2.5, d: null}]\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOQUANT_CACHE_DIR", str(tmp_path / "aq"))
    monkeypatch.delenv("AUTOQUANT_DATA_CACHE", raising=False)
    return tmp_path / "aq" / "data"


def test_second_load_reads_the_cache(cache, monkeypatch):
    first = data._cached_parse("thing", TEXT)
    assert first == {"a": 1, "b": ["x", {"c": 2.5, "d": None}]}
    assert [p.name for p in cache.iterdir()] == [data.cache_path("thing", TEXT).name]

    def no_parse(text):
        raise AssertionError("parsed again")

    monkeypatch.setattr(data, "_parse", no_parse)
    assert data._cached_parse("thing", TEXT) == first


def test_changed_text_gets_a_new_entry_and_drops_the_old(cache):
    data._cached_parse("thing", TEXT)
    data._cached_parse("thing-2", TEXT)  # a name that extends another one is a different file
    assert data._cached_parse("thing", TEXT + "e: 3\n")["e"] == 3
    names = sorted(p.name for p in cache.iterdir())
    assert names == sorted([data.cache_path("thing", TEXT + "e: 3\n").name, data.cache_path("thing-2", TEXT).name])


def test_corrupt_entry_is_parsed_and_rewritten(cache):
    path = data.cache_path("thing", TEXT)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\x00garbage")
    assert data._cached_parse("thing", TEXT)["a"] == 1
    assert marshal.loads(path.read_bytes())["a"] == 1


def test_unwritable_cache_still_loads(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("AUTOQUANT_CACHE_DIR", str(blocker))
    assert data._cached_parse("thing", TEXT)["a"] == 1


def test_switched_off(cache, monkeypatch):
    monkeypatch.setenv("AUTOQUANT_DATA_CACHE", "0")
    assert data.load.__wrapped__("pricing") == data._parse(
        resources.files("autoquant.data").joinpath("pricing.yaml").read_text(encoding="utf-8"))
    assert not cache.exists()


def test_every_shipped_file_survives_the_cache():
    folder = resources.files("autoquant.data")
    files = [f for f in folder.iterdir() if f.name.endswith(".yaml")]
    assert files
    for f in files:
        parsed = data._parse(f.read_text(encoding="utf-8"))
        assert marshal.loads(marshal.dumps(parsed)) == parsed, f.name
