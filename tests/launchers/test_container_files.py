"""Container files cannot be built here (no Docker): check them by reading, against the code they drive."""

import re
from pathlib import Path

import pytest
import yaml

from autoquant.commands import serve

ROOT = Path(__file__).parents[2]
CONTAINERS = ROOT / "launchers" / "containers"
KNOWN_ENV = serve.env_variables() | {"AUTOQUANT_CACHE_DIR", "AUTOQUANT_RUN_DIR", "AUTOQUANT_LLAMACPP_FLAVOR"}


@pytest.mark.parametrize("name", ["Dockerfile.vllm", "Dockerfile.trtllm", "Dockerfile.llamacpp-cpu"])
def test_dockerfile_entrypoint_and_env(name):
    text = (CONTAINERS / name).read_text()
    assert 'ENTRYPOINT ["autoquant", "serve"]' in text and "CMD []" in text
    used = set(re.findall(r"AUTOQUANT_[A-Z_]+", text))
    assert used <= KNOWN_ENV, used - KNOWN_ENV


def test_examples_use_only_known_variables():
    for path in [ROOT / "examples" / "docker-run.sh", ROOT / "examples" / "kubernetes-deployment.yaml",
                 CONTAINERS / "README.md"]:
        used = set(re.findall(r"AUTOQUANT_[A-Z_]+", path.read_text()))
        assert used <= KNOWN_ENV, (path.name, used - KNOWN_ENV)


def test_kubernetes_env_parses_with_the_entrypoint_logic():
    docs = list(yaml.safe_load_all((ROOT / "examples" / "kubernetes-deployment.yaml").read_text()))
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    from autoquant.cli import build_parser

    ns, _ = build_parser("serve").parse_known_args(["serve"])
    args = serve.apply_env(ns, env)
    assert args.model == "meta-llama/Llama-3.1-70B-Instruct" and args.supervise is True
    assert args.ttft_ms == 1000.0 and args.max_retries == 2
    port = [a for a in serve.env_engine_args(env, set()) if a.name == "--port"]
    assert port and port[0].value == "8000"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
