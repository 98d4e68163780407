#!/usr/bin/env bash
# Make .venv-vllm: vLLM in its own virtual environment, for the argument-parser contract test
# (tests/launchers/test_vllm_contract.py). vLLM pins its own torch, so it never shares the project's
# environment. Idempotent: an environment that already has the pinned version is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${AUTOQUANT_VLLM_VENV:-.venv-vllm}"
version="${AUTOQUANT_VLLM_VERSION:-0.33.0}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" - "$version" <<'PY' 2>/dev/null
import importlib.metadata, sys
sys.exit(importlib.metadata.version("vllm") != sys.argv[1])
PY
then
    echo "vllm-env: $venv already has vllm $version"
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "vllm==$version"
echo "vllm-env: installed vllm $version in $venv"
