"""The model -> checkpoints -> planner -> command chain (autoquant.api), offline, across the catalog.

Issue contract: `plan` names a concrete checkpoint for every chosen candidate; a method with no
checkpoint is never chosen. The Hub is unreachable here: resolution runs offline (registry, cache,
packages), which is the behaviour under test.
"""

from __future__ import annotations

import pytest

from autoquant.api import attach_commands, plan_model
from autoquant.catalog.gpus import synthetic_node
from autoquant.catalog.models import known_ids, spec_from_catalog
from autoquant.checkpoints.verify import serves
from autoquant.records import Workload

NODES = ["H100-SXM:8", "A100-80GB-SXM:1", "RTX4090:1"]


@pytest.mark.parametrize("gpu", NODES)
def test_every_chosen_candidate_names_a_checkpoint_and_a_command(gpu):
    node = synthetic_node(gpu)
    chosen = 0
    for model_id in known_ids():
        plan = plan_model(spec_from_catalog(model_id), node, Workload(concurrency=8), offline=True)
        for cand in [c for c in [plan.chosen, *plan.alternatives] if c is not None]:
            ck = cand.checkpoint
            assert ck is not None, (model_id, gpu, cand.engine, cand.method)
            # an FP8 checkpoint serves fp8-weight-only too (FP8 Marlin below SM89): verify.serves says which
            assert ck.repo and (serves(cand.method, ck.method) or ck.runtime_quantization), (model_id, cand.method)
            assert ck.status != "unconfirmed", (model_id, ck.repo)  # pattern-only guesses are never used
        if plan.chosen is None:
            assert plan.rejected and all(r.reason for r in plan.rejected)
            continue
        chosen += 1
        plan = attach_commands(plan, model_id, node=node)
        c = plan.chosen
        assert c.command or any(n.startswith("command not built") for n in c.notes), (model_id, gpu)
        if c.command and c.engine != "llamacpp":
            assert c.checkpoint.repo in c.command  # the engine is pointed at the resolved checkpoint
    assert chosen > len(known_ids()) // 3  # most catalog models are servable on these machines


def test_no_checkpoint_rejection_says_how_to_make_one():
    node = synthetic_node("H100-SXM:1")
    plan = plan_model(spec_from_catalog("Qwen/Qwen3-8B"), node, Workload(), engine="vllm", method="awq-int4",
                      offline=True)
    if plan.chosen is None:  # no AWQ checkpoint of Qwen3-8B in the registry
        reasons = [r.reason for r in plan.rejected]
        assert any("AutoAWQ" in r or "llm-compressor" in r for r in reasons)
    else:
        assert plan.chosen.checkpoint is not None
