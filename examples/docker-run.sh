#!/bin/sh
# autoquant as a container ENTRYPOINT: the same image self-configures on whichever GPU node it lands on.
# Build first (from the repository root): docker build -f launchers/containers/Dockerfile.vllm -t autoquant-vllm .
set -eu

# 1) Configure by environment (what a scheduler or compose file sets); HF_TOKEN is passed, never printed.
docker run --rm --gpus all --ipc=host -p 8000:8000 \
  -e HF_TOKEN \
  -e AUTOQUANT_MODEL=meta-llama/Llama-3.1-70B-Instruct \
  -e AUTOQUANT_MAX_MODEL_LEN=8192 \
  -e AUTOQUANT_CONCURRENCY=32 -e AUTOQUANT_TTFT_MS=1000 -e AUTOQUANT_TPOT_MS=50 \
  -e AUTOQUANT_USE_CASE=chat \
  -e AUTOQUANT_EXTRA_ARGS="--enable-prefix-caching" \
  -e AUTOQUANT_SUPERVISE=1 \
  -v hf-cache:/root/.cache/huggingface \
  -v autoquant-cache:/root/.cache/autoquant \
  autoquant-vllm

# 2) Or exactly as you would call `vllm serve` (arguments go to `autoquant serve`):
#    docker run --rm --gpus all --ipc=host -p 8000:8000 -e HF_TOKEN autoquant-vllm \
#      meta-llama/Llama-3.1-70B-Instruct --port 8000 --max-model-len 8192

# 3) See the plan and the exact command without starting anything:
#    docker run --rm --gpus all autoquant-vllm meta-llama/Llama-3.1-70B-Instruct --dry-run

# 4) CPU only, no GPU, nothing to download: the demo model through llama.cpp.
#    docker build -f launchers/containers/Dockerfile.llamacpp-cpu -t autoquant-cpu .
#    docker run --rm -p 8000:8000 autoquant-cpu
#    curl -s localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \
#      -d '{"messages":[{"role":"user","content":"Hello"}],"max_tokens":16}'
