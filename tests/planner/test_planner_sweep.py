"""Every catalog model on every catalog GPU: plan never crashes, never chooses an infeasible plan,
every rejection has a reason; estimate and explain run on a sample."""

from __future__ import annotations

import pytest

from autoquant.catalog.gpus import all_specs, synthetic_node
from autoquant.catalog.models import known_ids, spec_from_catalog
from autoquant.errors import AutoquantError
from autoquant.planner import estimate, plan
from autoquant.planner.explain import explain
from autoquant.records import Workload

MODELS = known_ids()
GPUS = [s for s in all_specs()]


def _node(spec, count=1):
    return synthetic_node(spec.key if spec.is_apple else f"{spec.key}:{count}")


@pytest.mark.parametrize("model_id", MODELS)
def test_plan_every_catalog_model_on_every_catalog_gpu(model_id):
    m = spec_from_catalog(model_id)
    for spec in GPUS:
        for w in (Workload(), Workload(concurrency=64, use_case="summarization", objective="throughput")):
            p = plan(m, _node(spec), w)
            assert all(r.reason and r.reason.strip() for r in p.rejected), (model_id, spec.key)
            if p.chosen is not None:
                c = p.chosen
                # SGLang's --mem-fraction-static covers weights + KV; its other overhead lies outside the fraction
                inside = c.memory.total_gb - (c.memory.overhead_gb if c.engine == "sglang" else 0.0)
                assert c.memory.fits and inside <= c.memory.capacity_gb + 1e-6 or c.engine == "llamacpp"
                if c.ppl_delta is None:  # unmeasured quality is kept only when the user set no floor
                    assert w.use_case is None and w.max_ppl_delta is None
                    assert any(n.startswith("quality not measured") for n in c.notes)
                else:
                    assert c.ppl_delta <= p.workload["quality_floor"]
                assert c.ttft_ms > 0 and c.tpot_ms > 0 and c.output_tokens_per_s > 0
                assert c.regime in ("bandwidth_bound", "transitional", "compute_bound")
            else:
                assert p.rejected


@pytest.mark.parametrize("gpu", ["H100-SXM:8", "A100-80GB-SXM:2", "L40S:4", "RTX4090:1", "B200:8", "M2-Max"])
def test_estimate_and_explain_sample(gpu):
    node = synthetic_node(gpu)
    for model_id in MODELS[::5]:
        m = spec_from_catalog(model_id)
        for engine, method in (("vllm", "bf16"), ("vllm", "awq-int4"), ("trtllm", "fp8"), ("llamacpp", "gguf-q4_k_m")):
            try:
                e = estimate(m, node, Workload(concurrency=4), engine=engine, method=method)
            except AutoquantError as exc:
                assert str(exc).strip()
                continue
            assert e.memory.total_gb > 0 and e.regime
        p, lines = explain(m, node, Workload(concurrency=16))
        assert lines and all(isinstance(x, str) and x for x in lines)
