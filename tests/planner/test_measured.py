"""Measured calibration (planner/measured.py): factors from runs on this node, applied to the speed model."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoquant.catalog.gpus import synthetic_node
from autoquant.planner import estimate
from autoquant.planner import measured as m
from autoquant.planner.calibration import default_calibration
from autoquant.records import CPUInfo, Node, Workload

POLICY = m.Policy(min_samples=3, low=0.25, high=4.0)


def _decode(measured: float, predicted: float = 100.0, model: str = "org/a", i: int = 0) -> m.Sample:
    return m.Sample("decode", measured, predicted, model=model, id=f"{model}-{i}-{measured}")


def test_factor_is_the_median_ratio_once_there_are_enough_runs():
    two = [_decode(80, i=0), _decode(90, i=1)]
    f = m.factor(two, "decode", "org/a", POLICY)
    assert f is not None and not f.applied and f.value == 1.0 and f.samples == 2
    three = [*two, _decode(200, i=2)]  # one disturbed run does not move the median
    f = m.factor(three, "decode", "org/a", POLICY)
    assert f.applied and f.value == pytest.approx(0.9)
    assert "decode x0.90, calibrated from 3 runs on this node" in f.describe()


def test_leave_one_out_error_is_computed_from_the_others():
    # ratios 0.8, 0.9, 1.0: predicting 0.8 by median(0.9, 1.0) = 0.95 -> 18.75%; 0.9 by 0.9 -> 0; 1.0 by 0.85 -> 15%
    assert m.leave_one_out([0.8, 0.9, 1.0]) == pytest.approx(0.15)
    assert m.leave_one_out([0.9]) is None


def test_factor_is_bounded():
    runs = [_decode(1000, 100, i=i) for i in range(3)]  # 10x faster than predicted: something else is wrong
    f = m.factor(runs, "decode", "org/a", POLICY)
    assert f.value == 4.0 and f.raw == 10.0 and "bounded" in f.describe()


def test_the_models_own_runs_are_preferred_when_there_are_enough():
    other = [_decode(50, model="org/b", i=i) for i in range(3)]
    own = [_decode(90, model="org/a", i=i) for i in range(3)]
    assert m.factor(other + own, "decode", "org/a", POLICY).value == pytest.approx(0.9)
    pooled = m.factor(other + own[:1], "decode", "org/a", POLICY)  # one own run: every model's runs
    assert pooled.pooled and pooled.value == pytest.approx(0.5) and "several models" in pooled.describe()


def test_records_of_another_node_do_not_apply():
    rec = m.Record("cpu:Other CPU x2", "llamacpp", "gguf-q4_k_m", tuple(_decode(50, i=i) for i in range(3)))
    assert m.measured_for([rec], "cpu:This CPU x2", "org/a", POLICY).factors == {}
    got = m.measured_for([rec], "cpu:Other CPU x2", "org/a", POLICY)
    assert got.speed_factor("llamacpp", "gguf-q4_k_m", "decode") == pytest.approx(0.5)
    assert got.speed_factor("llamacpp", "gguf-q4_k_m", "prefill") == 1.0
    assert got.speed_factor("vllm", "fp8", "decode") == 1.0


def test_the_same_sample_in_two_directories_counts_once():
    samples = tuple(_decode(50, i=i) for i in range(2))
    rec = m.Record("fp", "llamacpp", "gguf-q4_k_m", samples)
    got = m.measured_for([rec, rec], "fp", "org/a", POLICY)
    assert got.get("llamacpp", "gguf-q4_k_m", "decode").samples == 2


def test_json_round_trip_and_foreign_files_are_refused():
    recs = m.add_samples([], "fp", "llamacpp", "gguf-q4_k_m", [_decode(80)], "a CPU")
    recs = m.add_samples(recs, "fp", "llamacpp", "gguf-q4_k_m", [_decode(85, i=1)])
    assert len(recs) == 1 and len(recs[0].samples) == 2
    assert m.from_json(m.to_json(recs)) == recs
    with pytest.raises(ValueError, match="not an autoquant calibration file"):
        m.from_json({"kernels": {}})
    with pytest.raises(ValueError, match="schema version 99"):
        m.from_json({**m.to_json(recs), "schema_version": 99})
    bad = m.to_json(recs)
    bad["records"][0]["samples"][0]["measured"] = -1
    with pytest.raises(ValueError, match="bad sample"):
        m.from_json(bad)


def test_fingerprint_names_gpus_or_the_cpu_and_its_threads():
    assert m.fingerprint(synthetic_node("H100-SXM:8")) == "gpu:H100-SXM x8"
    cpu_node = Node(cpu=CPUInfo(model="Intel(R) Xeon(R) Processor", physical_cores=2, logical_cores=2))
    assert m.fingerprint(cpu_node) == "cpu:Intel(R) Xeon(R) Processor x2"
    assert m.fingerprint(Node()) == ""  # nothing known: no record can apply


@given(st.lists(st.floats(0.3, 3.0), min_size=3, max_size=12))
def test_factor_lies_within_the_measured_ratios(ratios):
    runs = [_decode(100 * r, 100, i=i) for i, r in enumerate(ratios)]
    f = m.factor(runs, "decode", "org/a", POLICY)
    assert min(ratios) - 1e-9 <= f.value <= max(ratios) + 1e-9


def test_a_measured_factor_scales_the_estimate_and_says_so(model):
    spec = model("meta-llama__Llama-3.1-8B-Instruct")
    node = synthetic_node("H100-SXM")
    wl = Workload(concurrency=1, isl=512, osl=128)
    cal = default_calibration()
    base = estimate(spec, node, wl, engine="vllm", method="bf16", calibration=cal)
    runs = tuple(replace(_decode(50, 100, i=i), model=spec.id) for i in range(3))
    measured = m.measured_for([m.Record(m.fingerprint(node), "vllm", "bf16", runs)], m.fingerprint(node),
                              spec.id, POLICY)
    slow = estimate(spec, node, wl, engine="vllm", method="bf16", calibration=cal.with_measured(measured))
    assert slow.tpot_ms == pytest.approx(2 * base.tpot_ms, rel=1e-3)  # one user: decode steps alone
    assert slow.ttft_ms == pytest.approx(base.ttft_ms, rel=1e-3)  # no prefill runs measured
    assert any("decode x0.50, calibrated from 3 runs" in n for n in slow.notes)
    other = estimate(spec, node, wl, engine="vllm", method="fp8", calibration=cal.with_measured(measured))
    assert not any("calibrated" in n for n in other.notes)
