"""An outside predictor re-scores the best candidates it covers; the plan ranks on its figures and says whose
they are. The predictor here is a plain function (the interface); tests/predictors/ runs AIConfigurator."""

from __future__ import annotations

from autoquant.planner import estimate, plan
from autoquant.planner.predictor import Figures, PredictRequest
from autoquant.records import Workload

W = Workload(concurrency=16, isl=1024, osl=256, objective="throughput")


def _only(engine: str, tps: float, ttft_ms: float = 100.0):
    asked: list[PredictRequest] = []

    def predictor(req: PredictRequest) -> Figures | None:
        asked.append(req)
        if req.engine != engine:
            return None
        return Figures(ttft_ms=ttft_ms, tpot_ms=req.concurrency * 1000 / tps, output_tokens_per_s=tps,
                       memory_gb=None, source=f"test predictor ({engine})")
    return predictor, asked


def test_covered_candidates_are_ranked_on_the_predictors_figures(model, node):
    m, n = model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:1")
    own = plan(m, n, W, method="bf16")
    predictor, asked = _only("sglang", 1e6)  # says SGLang is far faster than anything else
    p = plan(m, n, W, method="bf16", predictor=predictor)
    assert own.chosen.engine != "sglang"
    assert p.chosen.engine == "sglang" and p.chosen.predictor == "test predictor (sglang)"
    assert p.chosen.output_tokens_per_s == 1e6
    assert any("autoquant's own model gave" in note for note in p.chosen.notes)
    assert {a.predictor for a in p.alternatives if a.engine != "sglang"} == {"autoquant"}
    assert 0 < len(asked) <= 8


def test_a_rescored_candidate_that_misses_the_slo_is_rejected(model, node):
    m, n = model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:1")
    predictor, _ = _only("vllm", 5000, ttft_ms=9000)
    p = plan(m, n, Workload(concurrency=16, isl=1024, osl=256, ttft_ms=1000), method="bf16", predictor=predictor)
    assert p.chosen.engine != "vllm"
    assert any(r.engine == "vllm" and "test predictor" in r.reason and "TTFT" in r.reason for r in p.rejected)


def test_replicas_ask_for_one_replica_and_add_their_output(model, node):
    m, n = model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:8")
    predictor, asked = _only("vllm", 1000)
    e = estimate(m, n, Workload(concurrency=64, isl=1024, osl=256), engine="vllm", method="bf16", tp=2, dp=4,
                 predictor=predictor)
    assert asked[-1].concurrency == 16 and asked[-1].tp == 2
    assert e.output_tokens_per_s == 4000 and e.predictor.startswith("test predictor")


def test_without_a_predictor_nothing_changes(model, node):
    m, n = model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:1")
    nothing = plan(m, n, W, method="bf16", predictor=lambda req: None)
    own = plan(m, n, W, method="bf16")
    assert (nothing.chosen.engine, nothing.chosen.tpot_ms) == (own.chosen.engine, own.chosen.tpot_ms)
    assert nothing.chosen.predictor == "autoquant"
