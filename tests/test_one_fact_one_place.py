"""Facts that used to be written in several places and disagreed now have one home each."""

from __future__ import annotations

import ast
from pathlib import Path

from autoquant.facts import default_facts
from autoquant.planner import plan
from autoquant.records import Workload

CORE = Path(__file__).parents[1] / "autoquant"
ENGINE_IDS = set(default_facts().engine_ids)


def test_no_literal_engine_comparison_in_the_core():
    """An engine's rules live in its spec: the planner, the rules and checkpoint resolution never test for an
    engine by name (the command layer may name the demo's engine)."""
    found = []
    for path in [*CORE.glob("planner/*.py"), *CORE.glob("engines/*.py"), *CORE.glob("checkpoints/*.py"),
                 *CORE.glob("facts/*.py"), CORE / "api.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    values = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                    for v in values:
                        if isinstance(v, ast.Constant) and v.value in ENGINE_IDS:
                            found.append(f"{path.relative_to(CORE)}:{node.lineno} {v.value!r}")
    assert found == []


def test_every_method_checkpoints_offer_is_one_the_planner_plans(node, model):
    """gptq-int8 was offered by checkpoint resolution but unknown to `plan`."""
    from autoquant.checkpoints.resolve import known_methods

    assert set(known_methods()) == set(default_facts().methods)
    m = model("meta-llama__Llama-3.1-8B-Instruct")
    p = plan(m, node("A100-80GB-SXM:1"), Workload(), engine="vllm", method="gptq-int8")
    assert p.chosen is not None and p.chosen.kernel == "marlin-int8" and p.chosen.ppl_delta is not None


def test_load_time_quantization_is_the_engine_specs():
    engines = default_facts().engines
    assert {e for e, s in engines.items() if s.quantizes_at_load("fp8")} == {"vllm", "sglang"}
    assert not any(s.quantizes_at_load("awq-int4") for s in engines.values())


def test_one_ready_timeout():
    from autoquant.launchers.process import READY_TIMEOUT_S, Supervisor

    assert Supervisor().ready_timeout == READY_TIMEOUT_S
    assert Supervisor(ready_timeout=5.0).ready_timeout == 5.0


def test_serve_options_do_not_shadow_vllm_flags():
    """serve's own options never take a vLLM flag's name (but --model, which vLLM moves to MODEL itself)."""
    import argparse

    from autoquant.commands import serve
    from autoquant.launchers.flags import vllm_options

    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    ours = {o for a in parser._actions for o in a.option_strings if o.startswith("--")} - {"--help", "--model"}
    assert {o for o in ours if vllm_options().lookup(o) is not None} == set()
