#!/bin/sh
# A `vllm serve` command line run by autoquant: the same model and flags, with `autoquant` in front.
#
# The vLLM line (vLLM docs, features/tool_calling.md: Qwen models with the hermes tool parser; plus the
# context length, prefix caching and port a deployment sets):
#   vllm serve Qwen/Qwen2.5-7B-Instruct --enable-auto-tool-choice --tool-call-parser hermes --max-model-len 32768 --enable-prefix-caching --port 8000
#
# Any vLLM flag makes it a vLLM line: autoquant plans vLLM, picks the checkpoint, quantization, kernel and
# parallelism for this node, and passes every flag above to vLLM unchanged. Arguments to this script go to
# `autoquant serve`:
#   sh examples/vllm-drop-in.sh --dry-run              # the plan and the exact vllm command, nothing started
#   sh examples/vllm-drop-in.sh --dry-run --gpu L40S   # the same for a machine you are not on
#   sh examples/vllm-drop-in.sh --supervise            # serve; an OOM at startup retries the next plan
set -eu
exec autoquant serve Qwen/Qwen2.5-7B-Instruct --enable-auto-tool-choice --tool-call-parser hermes --max-model-len 32768 --enable-prefix-caching --port 8000 "$@"
