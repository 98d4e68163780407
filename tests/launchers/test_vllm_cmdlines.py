"""Contract: real `vllm serve` command lines (tests/fixtures/vllm_cmdlines.yaml, each from vLLM's docs or examples)
given to `autoquant serve` plan as drop-ins: a line with vLLM flags beyond the server ones (host, port, API key,
served name) yields a vLLM command that carries every one of the user's tokens verbatim and in order, and
vLLM 0.33's own parser accepts it (scripts/vllm_contract.py, as in test_vllm_contract.py).

Planning is offline (no Hub here): a model the offline catalog and registry do not know is planned through a
stand-in of the same family (STAND_INS); the command line under test is the flags, which are kept as given.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import yaml

from autoquant.cli import main
from autoquant.launchers.flags import SERVER_FLAGS, classify_tokens

LINES = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "vllm_cmdlines.yaml").read_text())
# not in the offline catalog or the checkpoint registry: same-family models it knows
STAND_INS = {
    "Qwen/Qwen2.5-VL-7B-Instruct": "Qwen/Qwen2.5-7B-Instruct",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": "Qwen/Qwen2.5-7B-Instruct",  # a Qwen2.5-7B architecture
    "NousResearch/Meta-Llama-3-8B-Instruct": "meta-llama/Meta-Llama-3-8B-Instruct",
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503": "mistralai/Mistral-7B-Instruct-v0.3",
}
# Known limits, asserted as one clear line: vLLM places DeepSeek-V3's experts over 8 data-parallel ranks
# (--data-parallel-size 8 --enable-expert-parallel); the planner does not model data parallelism yet.
REFUSED = {"ep-deepseek-v3": "does not fit"}


def _serve(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _user_tokens(line: dict) -> list[str]:
    return list(line["argv"][3:])


def _is_vllm_line(line: dict) -> bool:
    args, _ = classify_tokens(_user_tokens(line))
    return any(a.name not in SERVER_FLAGS for a in args)


def _verbatim(user: list[str], argv: list[str]) -> list[str]:
    """The user's flags, each with its values, found in `argv` in the same order (the api key travels as
    VLLM_API_KEY and is not on the command line)."""
    args, _ = classify_tokens(user)
    missing, pos = [], 0
    for arg in args:
        if arg.name == "--api-key":
            continue
        want = list(arg.tokens)
        for i in range(pos, len(argv) - len(want) + 1):
            if argv[i:i + len(want)] == want:
                pos = i + len(want)
                break
        else:
            missing.append(" ".join(want))
    return missing


@pytest.fixture(scope="module")
def launches(monkeypatch_module):
    monkeypatch_module.setenv("HF_HUB_OFFLINE", "1")
    out = {}
    for line in LINES:
        model = line["argv"][2]
        argv = ["serve", STAND_INS.get(model, model), *_user_tokens(line), "--gpu", line["gpu"], "--dry-run",
                "--json", "--no-cache"]
        out[line["id"]] = _serve(argv)
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_there_are_enough_real_command_lines():
    assert len(LINES) >= 30 and len({line["id"] for line in LINES}) == len(LINES)
    assert {f"five-{i}" for i in range(1, 6)} <= {line["id"] for line in LINES}


@pytest.mark.parametrize("line", LINES, ids=[line["id"] for line in LINES])
def test_line_plans_as_a_drop_in(line, launches):
    rc, out, err = launches[line["id"]]
    if line["id"] in REFUSED:
        assert rc == 2 and err.count("\n") == err.count("autoquant:") and REFUSED[line["id"]] in err
        return
    assert rc == 0, err.strip().splitlines()[-1:]
    launch = json.loads(out)["launch"]
    if _is_vllm_line(line):
        assert launch["engine"] == "vllm", launch["command"]
        assert _verbatim(_user_tokens(line), launch["argv"]) == []
    else:  # server flags only: the engine is autoquant's choice, the names and the port are carried
        args, _ = classify_tokens(_user_tokens(line))
        for arg in args:
            if arg.name in ("--port", "--served-model-name"):
                assert arg.values[0] in launch["argv"], (arg.given, launch["command"])


@pytest.mark.vllm
def test_every_vllm_command_parses_with_vllms_own_parser(launches, vllm_parse):
    argvs, ids = [], []
    for line in LINES:
        rc, out, _err = launches[line["id"]]
        if rc != 0:
            continue
        launch = json.loads(out)["launch"]
        if launch["engine"] == "vllm":
            argvs.append(launch["argv"])
            ids.append(line["id"])
    assert len(argvs) >= 30
    result = vllm_parse(argvs)
    bad = [(i, r["error"]) for i, r in zip(ids, result["results"], strict=True) if not r["ok"]]
    assert bad == []
