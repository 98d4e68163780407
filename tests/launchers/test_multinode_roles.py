"""A node's role in a multi-node group, from its environment (launchers/multinode.py detect_role, locate): pure,
the environment and the network lookups are parameters. Every missing or contradictory value is one
UsageError line; serve turns it into `autoquant: error: ...`, exit 2, before planning."""

from __future__ import annotations

import pytest

from autoquant.errors import EngineError, UsageError
from autoquant.launchers.multinode import Role, check_plan, detect_role, locate, lws_peers, parse_address

LWS = {"LWS_LEADER_ADDRESS": "vllm-0.vllm.default", "LWS_GROUP_SIZE": "2", "LWS_WORKER_INDEX": "0"}


def test_no_group_variables_is_one_node():
    assert detect_role({}) is None
    assert detect_role({"AUTOQUANT_NODES": "2"}) is None  # serve's --nodes from the environment, no role
    assert detect_role({"LWS_GROUP_SIZE": " ", "AUTOQUANT_ROLE": ""}) is None  # empty = unset


def test_leaderworkerset_leader_and_worker():
    leader = detect_role(LWS)
    assert (leader.role, leader.nodes, leader.leader, leader.port, leader.rank) == ("leader", 2, "vllm-0.vllm.default",
                                                                                    None, 0)
    assert leader.is_leader and leader.peers == ("vllm-0-1.vllm.default",)
    worker = detect_role({**LWS, "LWS_WORKER_INDEX": "1"})
    assert (worker.role, worker.rank, worker.is_leader) == ("worker", 1, False)
    assert "LeaderWorkerSet" in worker.describe()


def test_lws_pod_names():
    assert lws_peers("srv-3.srv.ns", 3) == ("srv-3-1.srv.ns", "srv-3-2.srv.ns")
    assert lws_peers("srv-0", 2) == ("srv-0-1",)


def test_autoquant_role_variables():
    r = detect_role({"AUTOQUANT_ROLE": "Leader", "AUTOQUANT_NODES": "4"})
    assert (r.role, r.nodes, r.leader, r.rank) == ("leader", 4, None, 0)
    r = detect_role({"AUTOQUANT_ROLE": "worker", "AUTOQUANT_LEADER": "10.0.0.1:7000", "AUTOQUANT_NODES": "4",
                     "AUTOQUANT_NODE_RANK": "3"})
    assert (r.role, r.leader, r.port, r.rank, r.nodes) == ("worker", "10.0.0.1", 7000, 3, 4)
    r = detect_role({"AUTOQUANT_ROLE": "worker", "AUTOQUANT_LEADER": "head.example"})
    assert (r.nodes, r.rank) == (None, None)  # told by the plan; Ray needs no rank
    assert detect_role({**LWS, "AUTOQUANT_LEADER": "vllm-0.vllm.default:6400"}).port == 6400  # a port for LWS


@pytest.mark.parametrize("raw, expected", [
    ("host", ("host", None)), ("host:1", ("host", 1)), ("10.1.2.3:6379", ("10.1.2.3", 6379)),
    ("[fd00::1]:6379", ("fd00::1", 6379)), ("fd00::1", ("fd00::1", None)), ("[::1]", ("::1", None)),
])
def test_addresses(raw, expected):
    assert parse_address(raw, "X") == expected


@pytest.mark.parametrize("env, words", [
    # LeaderWorkerSet: all three or none
    ({"LWS_GROUP_SIZE": "2", "LWS_WORKER_INDEX": "1"}, "LWS_LEADER_ADDRESS not set"),
    ({"LWS_LEADER_ADDRESS": "a", "LWS_WORKER_INDEX": "1"}, "LWS_GROUP_SIZE not set"),
    ({"LWS_LEADER_ADDRESS": "a"}, "LWS_GROUP_SIZE and LWS_WORKER_INDEX not set"),
    ({**LWS, "LWS_GROUP_SIZE": "two"}, "LWS_GROUP_SIZE='two' is not a whole number"),
    ({**LWS, "LWS_GROUP_SIZE": "0"}, "LWS_GROUP_SIZE=0 must be 1 or more"),
    ({**LWS, "LWS_GROUP_SIZE": "99999999"}, "more nodes than autoquant plans for"),
    ({**LWS, "LWS_WORKER_INDEX": "-1"}, "LWS_WORKER_INDEX=-1 must be 0 or more"),
    ({**LWS, "LWS_WORKER_INDEX": "2"}, "LWS_WORKER_INDEX=2 but LWS_GROUP_SIZE=2"),
    ({**LWS, "LWS_WORKER_INDEX": "1.5"}, "not a whole number"),
    ({**LWS, "AUTOQUANT_ROLE": "worker"}, "AUTOQUANT_ROLE=worker but LWS_WORKER_INDEX=0 makes this pod the leader"),
    ({**LWS, "AUTOQUANT_NODES": "3"}, "AUTOQUANT_NODES=3 disagrees with LWS_GROUP_SIZE=2"),
    ({**LWS, "AUTOQUANT_NODE_RANK": "1"}, "AUTOQUANT_NODE_RANK=1 disagrees with LWS_WORKER_INDEX=0"),
    ({**LWS, "AUTOQUANT_LEADER": "other"}, "AUTOQUANT_LEADER=other disagrees with LWS_LEADER_ADDRESS"),
    ({**LWS, "LWS_LEADER_ADDRESS": "a b"}, "is not HOST or HOST:PORT"),
    ({**LWS, "LWS_GROUP_SIZE": "1", "LWS_WORKER_INDEX": "0", "AUTOQUANT_ROLE": "worker"}, "makes this pod the leader"),
    # AUTOQUANT_ROLE and friends
    ({"AUTOQUANT_ROLE": "boss"}, "AUTOQUANT_ROLE='boss' is not a role: leader or worker"),
    ({"AUTOQUANT_ROLE": "worker"}, "AUTOQUANT_ROLE=worker needs the leader's address"),
    ({"AUTOQUANT_LEADER": "10.0.0.1"}, "AUTOQUANT_LEADER set but AUTOQUANT_ROLE is not"),
    ({"AUTOQUANT_NODE_RANK": "1"}, "AUTOQUANT_NODE_RANK set but AUTOQUANT_ROLE is not"),
    ({"AUTOQUANT_ROLE": "worker", "AUTOQUANT_LEADER": "h:0"}, "the port must be a number from 1 to 65535"),
    ({"AUTOQUANT_ROLE": "worker", "AUTOQUANT_LEADER": "h:x"}, "the port must be a number from 1 to 65535"),
    ({"AUTOQUANT_ROLE": "worker", "AUTOQUANT_LEADER": ":6379"}, "is not HOST or HOST:PORT"),
    ({"AUTOQUANT_ROLE": "leader", "AUTOQUANT_NODES": "lots"}, "AUTOQUANT_NODES='lots' is not a whole number"),
    ({"AUTOQUANT_ROLE": "leader", "AUTOQUANT_NODE_RANK": "2"}, "the leader is rank 0"),
    ({"AUTOQUANT_ROLE": "worker", "AUTOQUANT_LEADER": "h", "AUTOQUANT_NODE_RANK": "0"}, "rank 0 is the leader"),
    ({"AUTOQUANT_ROLE": "worker", "AUTOQUANT_LEADER": "h", "AUTOQUANT_NODES": "2", "AUTOQUANT_NODE_RANK": "2"},
     "AUTOQUANT_NODE_RANK=2 but AUTOQUANT_NODES=2"),
    ({"AUTOQUANT_ROLE": "worker", "AUTOQUANT_LEADER": "h", "AUTOQUANT_NODES": "1"}, "a group of one node has no "
                                                                                     "workers"),
])
def test_every_contradiction_is_one_line(env, words):
    with pytest.raises(UsageError) as err:
        detect_role(env)
    message = str(err.value)
    assert words in message
    assert "\n" not in message and len(message) < 400


def test_nodes_flag_must_agree_with_the_group():
    with pytest.raises(UsageError, match="--nodes 3 disagrees with LWS_GROUP_SIZE=2"):
        detect_role(LWS, nodes_flag=3)
    with pytest.raises(UsageError, match="--nodes 2 disagrees with AUTOQUANT_NODES=4"):
        detect_role({"AUTOQUANT_ROLE": "leader", "AUTOQUANT_NODES": "4"}, nodes_flag=2)
    assert detect_role(LWS, nodes_flag=2).nodes == 2


def test_the_group_must_be_the_plans_size():
    leader = detect_role(LWS)
    check_plan(leader, 2)
    with pytest.raises(UsageError, match="the plan's server spans 4 nodes: make the group 4 nodes, or plan for 2"):
        check_plan(leader, 4)
    with pytest.raises(UsageError, match="runs on one node .3 independent one-node servers"):
        check_plan(leader, 1, replicas=3)
    check_plan(Role("leader", None, None, None, 0, "AUTOQUANT_ROLE=leader"), 2)  # the plan says it
    with pytest.raises(UsageError, match="the plan's server runs on one node: serve it from one-node groups .* "
                                         "spans 2 nodes .--pipeline-parallel-size 2."):
        check_plan(leader, 1)


# --- this node's address and interface ----------------------------------------------------------------------
IFACES = {"127.0.0.1": "lo", "10.0.0.4": "eth0", "10.0.0.5": "ib0"}


def test_a_leader_uses_its_own_address_and_says_what_it_set():
    place = locate(detect_role(LWS), {}, "ray", resolver=lambda h: ["10.0.0.4"], router=lambda d: None,
                   interfaces=lambda: IFACES)
    assert (place.leader_ip, place.node_ip, place.ifname) == ("10.0.0.4", "10.0.0.4", "eth0")
    assert place.env == {"VLLM_HOST_IP": "10.0.0.4", "GLOO_SOCKET_IFNAME": "eth0", "NCCL_SOCKET_IFNAME": "eth0"}
    assert place.notes == ["set VLLM_HOST_IP=10.0.0.4 GLOO_SOCKET_IFNAME=eth0 NCCL_SOCKET_IFNAME=eth0 (eth0 holds "
                           "10.0.0.4, its address)"]


def test_a_leader_whose_name_is_not_published_yet_takes_its_default_route():
    place = locate(detect_role(LWS), {}, "ray", resolver=lambda h: [], router=lambda d: "10.0.0.5",
                   interfaces=lambda: IFACES)
    assert (place.node_ip, place.ifname) == ("10.0.0.5", "ib0")


def test_a_leader_whose_name_is_another_machine_is_refused():
    with pytest.raises(UsageError, match="resolves to 10.9.9.9, not an address of this machine"):
        locate(detect_role(LWS), {}, "ray", resolver=lambda h: ["10.9.9.9"], router=lambda d: None,
               interfaces=lambda: IFACES)


def test_a_worker_takes_its_route_toward_the_leader_and_the_users_values_win():
    worker = detect_role({**LWS, "LWS_WORKER_INDEX": "1"})
    place = locate(worker, {"NCCL_SOCKET_IFNAME": "^lo,docker", "VLLM_HOST_IP": ""}, "ray",
                   resolver=lambda h: ["10.0.0.3"], router=lambda d: "10.0.0.4" if d == "10.0.0.3" else None,
                   interfaces=lambda: IFACES)
    assert (place.leader_ip, place.node_ip) == ("10.0.0.3", "10.0.0.4")
    assert place.env == {"VLLM_HOST_IP": "10.0.0.4", "GLOO_SOCKET_IFNAME": "eth0"}  # NCCL's is the user's
    assert "kept yours: NCCL_SOCKET_IFNAME=^lo,docker" in place.notes
    # the user's VLLM_HOST_IP is this node's address (Ray's --node-ip-address too)
    place = locate(worker, {"VLLM_HOST_IP": "10.0.0.5"}, "ray", resolver=lambda h: ["10.0.0.3"],
                   router=lambda d: "10.0.0.4", interfaces=lambda: IFACES)
    assert (place.node_ip, place.ifname, place.env) == ("10.0.0.5", "ib0", {"GLOO_SOCKET_IFNAME": "ib0",
                                                                            "NCCL_SOCKET_IFNAME": "ib0"})


def test_sglang_nodes_get_no_vllm_variable():
    place = locate(detect_role(LWS), {}, "sglang", resolver=lambda h: ["10.0.0.4"], router=lambda d: None,
                   interfaces=lambda: IFACES)
    assert set(place.env) == {"GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"}


def test_an_address_no_interface_holds_is_said():
    place = locate(detect_role({**LWS, "LWS_WORKER_INDEX": "1"}), {}, "ray", resolver=lambda h: ["10.0.0.3"],
                   router=lambda d: "172.16.0.9", interfaces=lambda: IFACES)
    assert place.env == {"VLLM_HOST_IP": "172.16.0.9"}
    assert any("GLOO_SOCKET_IFNAME and NCCL_SOCKET_IFNAME not set: no interface" in n for n in place.notes)


def test_a_worker_retries_the_leaders_name_until_its_deadline():
    now = [0.0]
    asked = []

    def resolver(host):
        asked.append(now[0])
        return ["10.0.0.3"] if now[0] >= 4 else []

    def sleep(s):
        now[0] += s

    worker = detect_role({**LWS, "LWS_WORKER_INDEX": "1"})
    place = locate(worker, {}, "ray", wait_s=10, resolver=resolver, router=lambda d: "10.0.0.4",
                   interfaces=lambda: IFACES, sleep=sleep, clock=lambda: now[0])
    assert place.leader_ip == "10.0.0.3" and asked == [0.0, 2.0, 4.0]
    now[0] = 0.0
    with pytest.raises(EngineError, match=r"the leader vllm-0.vllm.default does not resolve to an address after "
                                          r"3 s \(--join-timeout\)"):
        locate(worker, {}, "ray", wait_s=3, resolver=lambda h: [], router=lambda d: None, interfaces=lambda: IFACES,
               sleep=sleep, clock=lambda: now[0])


# --- through `autoquant serve`: one line, exit 2, before anything is planned or started ----------------------
def _plan_file(tmp_path):
    import json

    from autoquant.records import Candidate, Checkpoint, Memory, Plan, to_dict

    chosen = Candidate(
        engine="vllm", method="bf16", tp=8, pp=2, nodes=2, gpus=16,
        memory=Memory(weights_gb=1.0, kv_cache_gb=1.0, overhead_gb=1.0, total_gb=3.0, fits=True),
        max_concurrency=8, concurrency=1, ttft_ms=10.0, tpot_ms=5.0, output_tokens_per_s=100.0,
        per_request_tokens_per_s=100.0, ppl_delta=0.0, cost_per_million_tokens=None, regime="bandwidth_bound",
        max_model_len=4096, max_num_seqs=8, checkpoint=Checkpoint(repo="org/model", method="bf16"))
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(to_dict(Plan(model="org/model", hardware="test", chosen=chosen))))
    return str(path)


@pytest.fixture
def serve(monkeypatch, capsys, tmp_path):
    import os

    from autoquant.cli import main

    for k in list(os.environ):
        if k.startswith(("AUTOQUANT_", "LWS_")) or k in ("VLLM_HOST_IP", "GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("AUTOQUANT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AUTOQUANT_ENGINE_BIN_VLLM", "/nonexistent/vllm")

    def run(*argv, plan=None, **env):
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        code = main(["serve", "--plan", plan or _plan_file(tmp_path), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_serve_refuses_a_contradictory_group_in_one_line(serve):
    code, out, err = serve("--dry-run", LWS_LEADER_ADDRESS="localhost", LWS_GROUP_SIZE="2", LWS_WORKER_INDEX="2")
    assert code == 2 and out == ""
    assert err.splitlines() == ["autoquant: error: LWS_WORKER_INDEX=2 but LWS_GROUP_SIZE=2: a pod's index is 0 (the "
                                "leader) to 1"]


def test_serve_refuses_a_group_of_another_size_than_the_plans(serve):
    code, _out, err = serve("--dry-run", AUTOQUANT_ROLE="leader", AUTOQUANT_NODES="3")
    assert code == 2 and err.count("autoquant: error:") == 1
    assert "but the plan's server spans 2 nodes: make the group 2 nodes, or plan for 3 (--nodes 3)" in err


def test_serve_of_a_multi_node_plan_needs_a_role(serve):
    code, _out, err = serve()
    assert code == 2
    assert "this plan's server spans 2 nodes: run autoquant serve on each of them with its role" in err


def test_a_workers_dry_run_shows_its_own_command_with_its_address(serve):
    import json

    code, out, _err = serve("--dry-run", "--json", AUTOQUANT_ROLE="worker", AUTOQUANT_LEADER="127.0.0.1:7000",
                            AUTOQUANT_RAY_START_ARGS="--num-cpus 4")
    assert code == 0
    data = json.loads(out)
    (join,) = data["multi_node"]["worker"]
    assert join[1:] == ["start", "--address", "127.0.0.1:7000", "--node-ip-address", "127.0.0.1",
                        "--disable-usage-stats", "--block", "--num-cpus", "4"]
    assert data["multi_node"]["env"] == {"VLLM_HOST_IP": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo",
                                         "NCCL_SOCKET_IFNAME": "lo"}
    assert data["role"]["role"] == "worker" and data["plan"]["chosen"]["nodes"] == 2
    assert "--distributed-executor-backend" in data["launch"]["argv"]


def test_an_sglang_worker_needs_its_rank_and_gets_it_on_its_command(serve, tmp_path):
    import json
    from dataclasses import replace

    from autoquant.records import Plan, from_dict, to_dict

    plan = from_dict(Plan, json.loads(open(_plan_file(tmp_path)).read()))
    sglang = replace(plan, chosen=replace(plan.chosen, engine="sglang"))
    (tmp_path / "sglang.json").write_text(json.dumps(to_dict(sglang)))
    env = dict(AUTOQUANT_ROLE="worker", AUTOQUANT_LEADER="127.0.0.1", AUTOQUANT_ENGINE_BIN_SGLANG="/nonexistent/python")
    code, _out, err = serve("--dry-run", plan=str(tmp_path / "sglang.json"), **env)
    assert code == 2 and "a sglang group ranks its nodes: set AUTOQUANT_NODE_RANK (1 to 1) on each worker" in err
    code, out, _err = serve("--dry-run", "--json", plan=str(tmp_path / "sglang.json"), AUTOQUANT_NODE_RANK="1",
                            **env)
    assert code == 0
    (worker,) = json.loads(out)["multi_node"]["worker"]
    assert worker[-6:] == ["--nnodes", "2", "--dist-init-addr", "127.0.0.1:20000", "--node-rank", "1"]


def _program(path, text="#!/bin/sh\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_ray_comes_from_the_engines_own_environment(tmp_path):
    from autoquant.errors import EngineError
    from autoquant.launchers import multinode as mn

    bin_dir = tmp_path / "venv-vllm" / "bin"
    python = _program(bin_dir / "python")
    vllm = _program(bin_dir / "vllm", f"#!{python}\n")
    # vLLM in an environment of its own without ray: autoquant's ray would start nodes vLLM cannot use
    with pytest.raises(EngineError, match=r"environment of its own, which has no ray: pip install ray there"):
        mn.ray_binary(str(vllm), {"PATH": ""}, required=True)
    assert mn.ray_binary(str(vllm), {"PATH": ""}) != str(bin_dir / "ray")  # other backends: not needed
    ray = _program(bin_dir / "ray", f"#!{python}\n")
    assert mn.ray_binary(str(vllm), {"PATH": ""}, required=True) == str(ray)
    assert mn.ray_binary(str(vllm), {"PATH": "", "AUTOQUANT_RAY_BIN": "/opt/ray"}, required=True) == "/opt/ray"


def test_a_worker_of_unknown_size_is_refused_for_a_one_node_plan():
    # it would otherwise start a whole server of its own beside the leader's
    worker = detect_role({"AUTOQUANT_ROLE": "worker", "AUTOQUANT_LEADER": "10.0.0.4"})
    with pytest.raises(UsageError, match=r"the plan's server runs on one node.*plan for several nodes"):
        check_plan(worker, 1)
    check_plan(worker, 2)  # told by the plan


def test_a_role_without_the_groups_size_or_plan_is_one_line(serve, monkeypatch, capsys):
    from autoquant.cli import main

    monkeypatch.setenv("AUTOQUANT_ROLE", "leader")
    assert main(["serve", "meta-llama/Llama-3.1-405B-Instruct", "--gpu", "H100-SXM:8", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("autoquant: error:") == 1 and "group of unknown size: set AUTOQUANT_NODES" in err
