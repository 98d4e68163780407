"""Calibration records on disk (autoquant/measurements.py): the user's cache plus a fleet directory."""

from __future__ import annotations

import json

from autoquant import measurements
from autoquant.planner import measured as m
from autoquant.records import CPUInfo, Node

NODE = Node(cpu=CPUInfo(model="Test CPU", physical_cores=2, logical_cores=2))
FP = m.fingerprint(NODE)


def _samples(n: int, start: int = 0, ratio: float = 0.8) -> list[m.Sample]:
    return [m.Sample("decode", 100 * ratio, 100, model="org/a", id=f"s{i}") for i in range(start, start + n)]


def test_samples_accumulate_and_apply_from_the_third(tmp_path):
    env = {"AUTOQUANT_CACHE_DIR": str(tmp_path)}
    measurements.save_samples(FP, "llamacpp", "gguf-q4_k_m", _samples(2), "test", env)
    assert measurements.measured_on(NODE, "org/a", env).speed_factor("llamacpp", "gguf-q4_k_m", "decode") == 1.0
    paths = measurements.save_samples(FP, "llamacpp", "gguf-q4_k_m", _samples(1, 2), "test", env)
    assert paths == [tmp_path / "calibration" / paths[0].name]
    data = json.loads(paths[0].read_text())
    assert data["schema"] == "autoquant.calibration" and data["schema_version"] == 1
    assert len(data["records"][0]["samples"]) == 3
    got = measurements.measured_on(NODE, "org/a", env)
    assert got.speed_factor("llamacpp", "gguf-q4_k_m", "decode") == 0.8


def test_a_fleet_directory_is_written_and_read_too(tmp_path):
    fleet = tmp_path / "fleet"
    writer = {"AUTOQUANT_CACHE_DIR": str(tmp_path / "a"), measurements.FLEET_ENV: str(fleet)}
    measurements.save_samples(FP, "llamacpp", "gguf-q4_k_m", _samples(3), "test", writer)
    assert len(list(fleet.glob("*.json"))) == 1
    twin = {"AUTOQUANT_CACHE_DIR": str(tmp_path / "b"), measurements.FLEET_ENV: str(fleet)}  # another node
    assert measurements.measured_on(NODE, "org/a", twin).speed_factor("llamacpp", "gguf-q4_k_m", "decode") == 0.8
    # the writer reads its cache and the fleet copy of the same samples: counted once
    assert measurements.measured_on(NODE, "org/a", writer).get("llamacpp", "gguf-q4_k_m", "decode").samples == 3


def test_corrupt_and_foreign_files_are_ignored_with_a_notice(tmp_path):
    env = {"AUTOQUANT_CACHE_DIR": str(tmp_path)}
    measurements.save_samples(FP, "llamacpp", "gguf-q4_k_m", _samples(3), "test", env)
    (tmp_path / "calibration" / "broken.json").write_text("{not json")
    (tmp_path / "calibration" / "foreign.json").write_text(json.dumps({"schema": "something-else"}))
    notes: list[str] = []
    got = measurements.measured_on(NODE, "org/a", env, notify=notes.append)
    assert got.speed_factor("llamacpp", "gguf-q4_k_m", "decode") == 0.8  # the good record still counts
    assert len(notes) == 2 and all(n.startswith("ignored calibration file") for n in notes)


def test_saving_over_a_corrupt_file_keeps_it_aside(tmp_path):
    env = {"AUTOQUANT_CACHE_DIR": str(tmp_path)}
    path = measurements.save_samples(FP, "llamacpp", "gguf-q4_k_m", _samples(1), "test", env)[0]
    path.write_text("garbage")
    measurements.save_samples(FP, "llamacpp", "gguf-q4_k_m", _samples(1, 5), "test", env)
    assert path.with_suffix(".json.bad").read_text() == "garbage"
    assert len(m.from_json(json.loads(path.read_text()))[0].samples) == 1


def test_digest_changes_when_a_record_does(tmp_path):
    env = {"AUTOQUANT_CACHE_DIR": str(tmp_path)}
    before = measurements.digest(env)
    measurements.save_samples(FP, "llamacpp", "gguf-q4_k_m", _samples(1), "test", env)
    assert measurements.digest(env) != before


def test_uncalibrated_ignores_the_records(tmp_path):
    env = {"AUTOQUANT_CACHE_DIR": str(tmp_path)}
    measurements.save_samples(FP, "llamacpp", "gguf-q4_k_m", _samples(3), "test", env)
    cal = measurements.node_calibration(NODE, "org/a", env=env)
    assert cal.measured.speed_factor("llamacpp", "gguf-q4_k_m", "decode") == 0.8
    cal = measurements.node_calibration(NODE, "org/a", env=env, use_measured=False)
    assert cal.measured.factors == {}


def test_full_disk_names_the_record_file_and_leaves_no_tmp(tmp_path, monkeypatch):
    import builtins
    import errno
    import io

    import pytest

    from autoquant.errors import describe

    real_open = io.open

    class FullDisk:  # opens (so the temporary file exists), then fails to write as a full disk does
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *_):
            self.fh.close()

        def write(self, _data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def fake_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        return FullDisk(fh) if "w" in mode and str(file).endswith(".tmp") else fh

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    env = {"AUTOQUANT_CACHE_DIR": str(tmp_path)}
    with pytest.raises(OSError) as info:
        measurements.save_samples(FP, "llamacpp", "gguf-q4_k_m", _samples(1), "test", env)
    directory = tmp_path / "calibration"
    name = measurements.hashlib.sha256(FP.encode()).hexdigest()[:16] + ".json"
    assert describe(info.value) == f"{directory / name}: No space left on device"
    assert list(directory.iterdir()) == []
