"""What each node of a server spanning nodes runs (launchers/multinode.py node_group), per engine backend, and
what `autoquant plan` prints of it: Llama 3.1 405B BF16 on 2 nodes of 8x H100 is TP=8 PP=2, the leader starts a
Ray head and runs vllm serve with the Ray executor, the worker joins the head. The engine's own line comes from
its launcher, so the flag rules stay there; vLLM's and SGLang's own parsers accept the lines where installed."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from autoquant.api import attach_commands
from autoquant.data import load
from autoquant.errors import RuleError, UsageError
from autoquant.launchers import multinode
from autoquant.launchers.base import ServeOptions
from autoquant.launchers.build import build
from autoquant.planner import plan
from autoquant.records import Workload, from_dict, to_dict

L405 = "meta-llama__Meta-Llama-3.1-405B"  # the Instruct model's shapes
ROOT = Path(__file__).parents[2]


def two_nodes(node, text="H100-SXM:8", n=2):
    out = node(text)
    out.nodes = n
    return out


@pytest.fixture(scope="module")
def planned(model, node):
    p = plan(model(L405), two_nodes(node), Workload(), engine="vllm", method="bf16")
    return attach_commands(p, "meta-llama/Llama-3.1-405B-Instruct", node=two_nodes(node))


def _flag(argv, name):
    return argv[argv.index(name) + 1]


def test_405b_bf16_on_two_h100_nodes_leader_and_worker_commands(planned):
    c = planned.chosen
    assert (c.tp, c.pp, c.nodes, c.replicas) == (8, 2, 2, 1)
    group = c.multi_node
    assert (group.backend, group.nodes) == ("ray", 2)
    head, serve = group.leader
    assert head[:3] == ["ray", "start", "--head"] and "--block" in head
    assert _flag(head, "--port") == "6379" and _flag(head, "--node-ip-address") == "$LEADER_IP"
    assert serve[:2] == ["vllm", "serve"] and serve == c.command  # `command` is the engine's own line
    assert (_flag(serve, "--tensor-parallel-size"), _flag(serve, "--pipeline-parallel-size")) == ("8", "2")
    assert _flag(serve, "--distributed-executor-backend") == "ray"
    (join,) = group.worker
    assert join[:2] == ["ray", "start"] and _flag(join, "--address") == "$LEADER_IP:6379" and "--block" in join
    assert _flag(join, "--node-ip-address") == "$NODE_IP"
    assert group.env == {"VLLM_HOST_IP": "$NODE_IP", "GLOO_SOCKET_IFNAME": "$IFNAME", "NCCL_SOCKET_IFNAME": "$IFNAME"}
    assert any("AUTOQUANT_ROLE=worker AUTOQUANT_LEADER=$LEADER_IP" in n for n in group.notes)


def test_the_group_survives_the_plan_file(planned):
    """serve --plan reads it back: the record round-trips."""
    from autoquant.records import Plan

    again = from_dict(Plan, json.loads(json.dumps(to_dict(planned))))
    assert again.chosen.multi_node == planned.chosen.multi_node


def test_one_node_plans_are_unchanged(model, node):
    p = attach_commands(plan(model("meta-llama__Llama-3.1-8B-Instruct"), node("H100-SXM:8"), Workload(),
                             engine="vllm", method="bf16"), "m", node=node("H100-SXM:8"))
    assert p.chosen.nodes == 1 and p.chosen.multi_node is None
    assert "--distributed-executor-backend" not in p.chosen.command


def test_replicas_are_one_ordinary_command_per_node(model, node):
    """70B BF16 fits one node: with two nodes and the throughput objective, two independent servers."""
    p = plan(model("meta-llama__Llama-3.1-70B-Instruct"), two_nodes(node), Workload(concurrency=64, objective="throughput"),
             engine="vllm", method="bf16")
    p = attach_commands(p, "m", node=two_nodes(node))
    c = p.chosen
    assert (c.nodes, c.replicas) == (1, 2)
    assert c.multi_node is None and "--distributed-executor-backend" not in c.command
    assert any(n.startswith("2 independent servers: run this on each of 2 nodes") for n in c.notes)


def test_the_plan_shows_leader_and_worker_lines(planned):
    from autoquant.commands.plan import render

    text = render(planned)
    assert "nodes       2 per server (vLLM on a Ray cluster)" in text
    leader = [line for line in text.splitlines() if line.startswith("leader")]
    worker = [line for line in text.splitlines() if line.startswith("worker")]
    assert leader[0].split(None, 1)[1].startswith("ray start --head --node-ip-address $LEADER_IP --port 6379")
    assert "--distributed-executor-backend ray" in leader[1]
    assert worker == ["worker      ray start --address $LEADER_IP:6379 --node-ip-address $NODE_IP "
                      "--disable-usage-stats --block"]
    assert not any(line.startswith("command ") for line in text.splitlines())


def test_shell_lines_leave_the_stand_ins_to_the_shell():
    assert multinode.shell_line(["ray", "--address", "$LEADER_IP:6379", "a b", "$HOME"], {"X": "$IFNAME"}) == \
        "X=$IFNAME ray --address $LEADER_IP:6379 'a b' '$HOME'"


# --- each backend --------------------------------------------------------------------------------------------
def _cand(candidate, engine, **kw):
    return replace(candidate(engine=engine, method="bf16", tp=8, pp=2, gpus=16, **kw), nodes=2)


def _vllm_options():
    return set(load("engine_options/vllm-0.33.0")["options"])


def _flags(argv):
    return {a.split("=", 1)[0] for a in argv if a.startswith("--")}


def test_the_vllm_command_has_only_vllm_flags(candidate):
    c = _cand(candidate, "vllm")
    launch = build(c, ServeOptions(), "org/m")
    group = multinode.node_group(c, launch)
    assert _flags(group.leader[1]) <= _vllm_options()


def test_a_users_executor_backend_wins_and_mp_ranks_the_nodes(candidate):
    from autoquant.launchers.flags import read_args

    c = _cand(candidate, "vllm")
    _pins, options = read_args(_classified(["--distributed-executor-backend", "mp"]))
    launch = build(c, options, "org/m")
    assert launch.argv.count("--distributed-executor-backend") == 1
    group = multinode.node_group(c, launch, options, leader_ip="10.0.0.3", rank=1)
    assert group.backend == "mp" and group.worker[0][-1] == "--headless"
    (leader,), (worker,) = group.leader, group.worker
    assert (_flag(leader, "--nnodes"), _flag(leader, "--node-rank"), _flag(leader, "--master-addr")) == \
        ("2", "0", "10.0.0.3")
    assert (_flag(worker, "--node-rank"), _flag(worker, "--master-addr")) == ("1", "10.0.0.3")
    assert _flags(leader) | _flags(worker) <= _vllm_options()


def _classified(tokens):
    from autoquant.launchers.flags import classify_tokens

    return classify_tokens(tokens)[0]


def test_a_one_node_executor_across_nodes_is_refused(candidate):
    from autoquant.launchers.flags import read_args

    _pins, options = read_args(_classified(["--distributed-executor-backend", "uni"]))
    with pytest.raises(UsageError, match="--distributed-executor-backend uni runs on one node; across nodes vLLM "
                                         "takes ray or mp"):
        multinode.backend_for("vllm", options)


def test_sglang_every_node_runs_launch_server_with_its_rank(candidate):
    c = _cand(candidate, "sglang")
    launch = build(c, ServeOptions(), "org/m")
    group = multinode.node_group(c, launch, leader_ip="10.0.0.3")
    assert group.backend == "sglang"
    (leader,), (worker,) = group.leader, group.worker
    assert leader[1:3] == ["-m", "sglang.launch_server"]
    assert (_flag(leader, "--tp-size"), _flag(leader, "--pp-size")) == ("8", "2")
    assert (_flag(leader, "--nnodes"), _flag(leader, "--node-rank"), _flag(leader, "--dist-init-addr")) == \
        ("2", "0", "10.0.0.3:20000")
    assert _flag(worker, "--node-rank") == "$NODE_RANK"
    assert set(group.env) == {"GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"}
    options = set(load("engine_options/sglang-0.5.23")["options"])
    assert _flags(leader) | _flags(worker) <= options
    ipv6 = multinode.node_group(c, launch, leader_ip="fd00::3", port=25000)
    assert _flag(ipv6.leader[0], "--dist-init-addr") == "[fd00::3]:25000"


def test_sglang_commands_parse_with_sglangs_parser(candidate):
    python = os.environ.get("AUTOQUANT_SGLANG_PYTHON")
    path = os.environ.get("AUTOQUANT_SGLANG_PATH")
    if not python:
        pytest.skip("SGLang's parser is not available: run scripts/sglang-env.sh and set "
                    "AUTOQUANT_SGLANG_PYTHON=.venv-vllm/bin/python AUTOQUANT_SGLANG_PATH=.sglang-parser")
    c = _cand(candidate, "sglang")
    group = multinode.node_group(c, build(c, ServeOptions(), "org/m"), leader_ip="10.0.0.3", rank=1)
    env = {**os.environ, **({"PYTHONPATH": str((ROOT / path).resolve())} if path else {})}
    out = subprocess.run([python, str(ROOT / "scripts" / "sglang_contract.py")],
                         input=json.dumps([group.leader[0][3:], group.worker[0][3:]]), capture_output=True,
                         text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout)["results"]
    assert [r["ok"] for r in results] == [True, True], results
    assert results[1]["args"]["node_rank"] == 1 and results[1]["args"]["nnodes"] == 2


def test_trtllm_is_one_srun_line_and_no_worker_command(candidate):
    c = _cand(candidate, "trtllm")
    launch = build(c, ServeOptions(), "org/m")
    group = multinode.node_group(c, launch)
    assert group.backend == "mpi" and group.worker == []
    (line,) = group.leader
    assert line[:6] == ["srun", "-N", "2", "--ntasks", "16", "--ntasks-per-node=8"]
    assert line[7:9] == ["trtllm-llmapi-launch", launch.argv[0]]
    assert any("autoquant serve does not start TensorRT-LLM node by node" in n for n in group.notes)


def test_llamacpp_does_not_span_nodes(candidate):
    with pytest.raises(RuleError, match="llama.cpp splits a model over the GPUs of one machine"):
        multinode.backend_for("llamacpp")


def test_flags_autoquant_sets_per_node_are_refused(candidate):
    from autoquant.launchers.flags import read_args

    _pins, options = read_args(_classified(["--distributed-executor-backend", "mp", "--node-rank", "1"]))
    c = _cand(candidate, "vllm")
    with pytest.raises(UsageError, match="--node-rank is set per node by autoquant"):
        multinode.node_group(c, build(c, options, "org/m"), options)


def test_vllm_parses_the_leaders_command(planned, vllm_parse, candidate):
    """vLLM 0.33's own parser accepts the Ray leader's vllm serve line and both mp lines."""
    from autoquant.launchers.flags import read_args

    serve = planned.chosen.multi_node.leader[1]
    c = _cand(candidate, "vllm")
    _pins, options = read_args(_classified(["--distributed-executor-backend", "mp"]))
    mp = multinode.node_group(c, build(c, options, "org/m"), options, leader_ip="10.0.0.3", rank=1)
    out = vllm_parse([serve, mp.leader[0], mp.worker[0]])
    results = out["results"] if isinstance(out, dict) else out
    assert all(r["ok"] for r in results), results
