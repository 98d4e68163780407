"""Per-node decision cache: same inputs -> same key -> the saved plan comes back; any input change misses."""

from autoquant.launchers import cache
from autoquant.records import Plan, Workload, to_dict


def test_roundtrip_and_key_sensitivity(tmp_path, candidate):
    env = {"AUTOQUANT_CACHE_DIR": str(tmp_path)}
    fp = {"gpus": ["NVIDIA H100 80GB HBM3"] * 8, "cpu": "x", "ram": 1}
    w = to_dict(Workload())
    key = cache.decision_key("m", {"tp": 2}, w, fingerprint=fp)
    assert key == cache.decision_key("m", {"tp": 2}, w, fingerprint=fp)
    assert key != cache.decision_key("m", {"tp": 4}, w, fingerprint=fp)
    assert key != cache.decision_key("m", {"tp": 2}, w, fingerprint={**fp, "gpus": ["NVIDIA A100"]})
    assert key != cache.decision_key("m2", {"tp": 2}, w, fingerprint=fp)
    assert key != cache.decision_key("m", {"tp": 2}, to_dict(Workload(concurrency=64)), fingerprint=fp)
    assert cache.load_plan(key, env) is None
    plan = Plan(model="m", hardware="8x H100", chosen=candidate(tp=2), alternatives=[candidate(tp=4)])
    path = cache.save_plan(key, plan, env)
    assert path and path.startswith(str(tmp_path))
    back = cache.load_plan(key, env)
    assert back.chosen.tp == 2 and back.alternatives[0].tp == 4 and to_dict(back) == to_dict(plan)


def test_corrupt_entry_is_a_miss(tmp_path):
    (tmp_path / "k.json").write_text("{not json")
    assert cache.load_plan("k", {"AUTOQUANT_CACHE_DIR": str(tmp_path)}) is None


def test_fingerprint_is_cheap_and_stable():
    a, b = cache.hardware_fingerprint(), cache.hardware_fingerprint()
    assert a == b and "gpus" in a and a["cpus"]


def test_full_disk_is_a_miss_and_leaves_no_tmp(tmp_path, candidate, full_disk):
    # full_disk (tests/conftest.py): the temporary file opens, then its write fails as on a full disk
    plan = Plan(model="m", hardware="1x H100", chosen=candidate())
    assert cache.save_plan("k", plan, {"AUTOQUANT_CACHE_DIR": str(tmp_path)}) is None
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
