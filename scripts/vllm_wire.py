"""Runs in vLLM's virtual environment (tests/validate/test_vllm_wire_contract.py): checks request bodies with
vLLM's own request models and serializes a response with its own response models.

stdin: {"completions": [body, ...], "tokenize": [body, ...], "prompt_logprobs": [[null | {id: logprob}], ...]}
stdout: {"errors": [message or null per body], "response": <CompletionResponse JSON>}
"""

import json
import sys

from vllm.entrypoints.openai.completion.protocol import (
    CompletionRequest,
    CompletionResponse,
    CompletionResponseChoice,
)
from vllm.entrypoints.serve.engine.protocol import UsageInfo
from vllm.entrypoints.serve.tokenize.protocol import TokenizeCompletionRequest
from vllm.logprobs import Logprob


def check(model, body):
    try:
        req = model.model_validate(body)
        if model is CompletionRequest:
            req.to_sampling_params(max_tokens=body.get("max_tokens") or 16, default_sampling_params={})
        return None
    except Exception as exc:  # noqa: BLE001 - report, the test decides
        return f"{type(exc).__name__}: {exc}"[:500]


data = json.load(sys.stdin)
errors = [check(CompletionRequest, b) for b in data.get("completions", [])]
errors += [check(TokenizeCompletionRequest, b) for b in data.get("tokenize", [])]
rows = [None if row is None else {int(k): Logprob(logprob=v, rank=i + 1, decoded_token=f"t{k}")
                                  for i, (k, v) in enumerate(row.items())}
        for row in data.get("prompt_logprobs", [])]
resp = CompletionResponse(model="m", choices=[CompletionResponseChoice(index=0, text="x", prompt_logprobs=rows)],
                          usage=UsageInfo(prompt_tokens=len(rows), completion_tokens=1, total_tokens=len(rows) + 1))
print(json.dumps({"errors": errors, "response": json.loads(resp.model_dump_json())}))
