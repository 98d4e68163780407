"""A checkpoint whose config has its own MLP width (padded for Marlin) carries it in
Checkpoint.intermediate_size for the planner. Hub answers come from the fake client of conftest.py,
serving the fixture configs in tests/fixtures/hub/ (the outermost boundary)."""

from __future__ import annotations

from autoquant.checkpoints import resolve
from autoquant.planner import plan
from autoquant.records import Workload


def _by_repo(res, method):
    return {c.repo: c for c in res.candidates[method]}


def test_padded_72b_checkpoint_carries_its_own_intermediate_size(fake_hub, settings, spec_of):
    base = spec_of("Qwen__Qwen2.5-72B", "Qwen/Qwen2.5-72B-Instruct")
    assert base.intermediate_size == 29568
    res = resolve(base, ["gptq-int4"], client=fake_hub, settings=settings, engine="vllm", tp=4)
    found = _by_repo(res, "gptq-int4")
    padded = found["Qwen/Qwen2.5-72B-Instruct-GPTQ-Int4"]
    assert padded.verified and padded.intermediate_size == 29696
    # the same width as the base: nothing to carry
    assert found["testorg/Qwen2.5-72B-Instruct-GPTQ-Int4-unpadded"].intermediate_size is None


def test_planner_uses_the_resolved_checkpoints_shapes(fake_hub, settings, spec_of):
    from autoquant.catalog.gpus import synthetic_node

    base = spec_of("Qwen__Qwen2.5-72B", "Qwen/Qwen2.5-72B-Instruct")
    res = resolve(base, ["gptq-int4"], client=fake_hub, settings=settings, engine="vllm", tp=4)
    ck = res.chosen["gptq-int4"]
    assert ck.status == "verified" and ck.intermediate_size == 29696
    p = plan(base, synthetic_node("A100-80GB-SXM:4"), Workload(concurrency=8, max_ppl_delta=1.0), engine="vllm",
             method="gptq-int4", tp=4, checkpoints={"gptq-int4": ck})
    # the base's 29568 / 4 = 7392 fails Marlin's 128 rule; the checkpoint's own 29696 / 4 = 7424 passes
    assert p.chosen is not None, [r.reason for r in p.rejected]
    assert p.chosen.tp == 4 and p.chosen.checkpoint is ck
    assert any("29696" in n for n in p.chosen.notes)
