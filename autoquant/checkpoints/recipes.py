"""How to make a checkpoint that does not exist yet: the commands, per method (pure text)."""

from __future__ import annotations

BASE_METHODS = ("bf16", "fp16")


def short_name(repo: str) -> str:
    return repo.rstrip("/").rsplit("/", 1)[-1]


def _modelopt_qformat(method: str) -> str | None:
    from autoquant.facts import default_facts

    return (default_facts().methods.get(method) or {}).get("modelopt_qformat")


def how_to_make(method: str, model_id: str, producer: str | None = None) -> str:
    """The commands that produce a checkpoint for `method` (for the planner's rejection text). `producer`:
    the format the engine wants first (engines.yaml preferred_producers), e.g. modelopt for TensorRT-LLM."""
    name = short_name(model_id)
    qformat = _modelopt_qformat(method) if producer == "modelopt" else None
    if qformat:
        return (f"export one with ModelOpt (pip install nvidia-modelopt): examples/llm_ptq/scripts/"
                f"huggingface_example.sh --model {model_id} --quant {qformat} --export_fmt hf")
    if method in ("awq-int4",):
        return (f"quantize it with AutoAWQ (pip install autoawq): AutoAWQForCausalLM.from_pretrained('{model_id}')"
                f".quantize(tokenizer, quant_config={{'w_bit': 4, 'q_group_size': 128, 'zero_point': True, "
                f"'version': 'GEMM'}}) then save_quantized('{name}-AWQ'); or llm-compressor's AWQModifier")
    if method in ("gptq-int4", "gptq-int8"):
        bits = 8 if method.endswith("8") else 4
        return (f"quantize it with llm-compressor (pip install llmcompressor): oneshot(model='{model_id}', "
                f"recipe=GPTQModifier(targets='Linear', scheme='W{bits}A16', ignore=['lm_head']), "
                f"dataset='open_platypus', output_dir='{name}-W{bits}A16')")
    if method == "int8-sq":
        return (f"quantize it with llm-compressor: oneshot(model='{model_id}', recipe=[SmoothQuantModifier("
                f"smoothing_strength=0.8), GPTQModifier(targets='Linear', scheme='W8A8', ignore=['lm_head'])], "
                f"dataset='open_platypus', output_dir='{name}-W8A8')")
    if method in ("fp8", "fp8-weight-only"):
        return (f"quantize it with llm-compressor: oneshot(model='{model_id}', recipe=QuantizationModifier("
                f"targets='Linear', scheme='FP8_DYNAMIC', ignore=['lm_head']), output_dir='{name}-FP8-dynamic'); "
                f"for TensorRT-LLM use ModelOpt: examples/llm_ptq/scripts/huggingface_example.sh --model {model_id} "
                f"--quant fp8 --export_fmt hf; or on vLLM pass --allow-runtime-quantization (--quantization fp8)")
    if method == "nvfp4":
        return (f"quantize it with ModelOpt (pip install nvidia-modelopt): examples/llm_ptq/scripts/"
                f"huggingface_example.sh --model {model_id} --quant nvfp4 --export_fmt hf, or llm-compressor "
                f"scheme='NVFP4'")
    if method.startswith("gguf-"):
        gtype = method.removeprefix("gguf-").upper()
        return (f"convert and quantize it with llama.cpp: hf download {model_id} --local-dir {name}; "
                f"python convert_hf_to_gguf.py {name} --outtype f16 --outfile {name}-F16.gguf; "
                f"llama-quantize {name}-F16.gguf {name}-{gtype}.gguf {gtype}")
    if method in BASE_METHODS:
        return f"download the base weights: hf download {model_id}"
    return f"no recipe known for {method}"
