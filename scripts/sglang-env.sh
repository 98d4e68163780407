#!/usr/bin/env bash
# Make .sglang-parser: SGLang's server-args parser, for the argument-parser contract test
# (tests/launchers/test_sglang_contract.py, scripts/sglang_contract.py). SGLang pins its own torch, so it is
# never installed whole: sglang (plus ipython and traitlets, which its server_args imports reach) goes with
# --no-deps into a target folder that .venv-vllm's Python reads through PYTHONPATH, reusing vLLM's torch. Nothing
# in .venv-vllm's own site-packages changes. Idempotent: a folder that already has the pinned version is kept.
#
#   scripts/vllm-env.sh && scripts/sglang-env.sh
#   AUTOQUANT_SGLANG_PYTHON=.venv-vllm/bin/python AUTOQUANT_SGLANG_PATH=.sglang-parser \
#       .venv/bin/python -m pytest -m sglang tests/launchers/test_sglang_contract.py
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${AUTOQUANT_VLLM_VENV:-.venv-vllm}"
version="${AUTOQUANT_SGLANG_VERSION:-0.5.23}"
target="${AUTOQUANT_SGLANG_PATH:-.sglang-parser}"
python="$venv/bin/python"
if [ ! -x "$python" ]; then
    echo "sglang-env: $python not found: run scripts/vllm-env.sh first (SGLang's parser reuses vLLM's torch)" >&2
    exit 1
fi
have() {  # the version installed in $target (metadata only: nothing is imported)
    "$python" - "$target" <<'PY' 2>/dev/null
import importlib.metadata, sys
dists = {d.metadata["Name"].lower(): d.version for d in importlib.metadata.distributions(path=[sys.argv[1]])}
if "ipython" in dists and "traitlets" in dists and "sglang" in dists:
    print(dists["sglang"])
PY
}
if [ -d "$target" ] && [ "$(have)" = "$version" ]; then
    echo "sglang-env: $target already has sglang $version (for $python)"
    exit 0
fi
# into a fresh folder, swapped in only once complete: an interrupted install never looks installed
tmp="$target.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
start=$(date +%s)
"$python" -m pip install -q --no-deps --no-compile --target "$tmp" "sglang==$version" ipython traitlets
PYTHONPATH="$tmp" "$python" -c "import sglang.srt.server_args" >/dev/null 2>&1 || {
    echo "sglang-env: sglang $version installed, but sglang.srt.server_args does not import under $python" >&2
    PYTHONPATH="$tmp" "$python" -c "import sglang.srt.server_args" 2>&1 | tail -3 >&2
    exit 1
}
rm -rf "$target"
mv "$tmp" "$target"
echo "sglang-env: installed sglang $version (no deps) in $target for $python in $(( $(date +%s) - start ))s"
