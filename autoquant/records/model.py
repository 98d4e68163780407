"""The `ModelSpec` record: what a model is, enough to size and place it."""

from __future__ import annotations

from dataclasses import dataclass, field

MODEL_SCHEMA_VERSION = 1


@dataclass
class QuantSpec:
    """An existing quantization of a checkpoint, normalised across formats."""

    method: str  # autoquant method id when it maps to one (awq-int4, gptq-int4, fp8, int8-sq, nvfp4, gguf-q4_k_m...), else "other"
    quant_method: str  # as the checkpoint says: awq, gptq, compressed-tensors, fp8, modelopt, gguf, ...
    weight_bits: float
    weight_type: str = "int"  # "int" | "float"
    act_bits: int | None = None  # None: weight-only
    group_size: int | None = None  # -1: per channel
    symmetric: bool | None = None
    zero_point: bool | None = None
    act_order: bool | None = None
    dynamic_act: bool | None = None
    weight_block_size: list[int] | None = None
    weight_strategy: str | None = None  # compressed-tensors weights.strategy: tensor | channel | group | block | tensor_group
    kv_cache: str | None = None  # e.g. "fp8" when the checkpoint carries a KV-cache scheme
    ignore: list[str] = field(default_factory=list)
    format: str | None = None  # e.g. "gemm", "pack-quantized", "float-quantized", "Q4_K_M"
    producer: str | None = None  # modelopt, llm-compressor, autoawq, gptqmodel, llama.cpp ...
    container: str = "safetensors"  # "safetensors" | "gguf"


@dataclass
class ModelSpec:
    id: str
    source: str  # "local" | "cache" | "hub" | "gguf" | "catalog" | "config"
    architecture: str  # e.g. "LlamaForCausalLM"
    model_type: str  # e.g. "llama", "qwen2", "mixtral", "deepseek_v3", "gemma3_text"
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    total_params: int
    active_params: int
    embedding_params: int = 0  # input embedding table
    lm_head_params: int = 0  # 0 when tied to the embeddings
    tie_word_embeddings: bool = False
    max_context: int = 4096
    sliding_window: int | None = None
    sliding_window_layers: int = 0  # layers whose attention is capped at sliding_window
    native_dtype: str = "bfloat16"
    # MoE
    num_experts: int | None = None
    experts_per_token: int | None = None
    moe_intermediate_size: int | None = None
    num_shared_experts: int | None = None
    shared_expert_intermediate_size: int | None = None
    first_k_dense_layers: int = 0
    # MLA (DeepSeek-V2/V3)
    kv_lora_rank: int | None = None
    q_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    qk_nope_head_dim: int | None = None
    v_head_dim: int | None = None
    quantization: QuantSpec | None = None
    multimodal: bool = False
    published_params: int | None = None  # the publisher's stated total, where known
    params_source: str = "derived"  # "derived" (from the architecture) | "safetensors" | "gguf"
    checkpoint_bytes: int | None = None  # bytes of weights on disk, where known
    published_active_params: int | None = None  # the publisher's stated active count (MoE), where known
    vision_params: int = 0  # vision tower + projector of a multimodal model (included in total_params)
    mtp_params: int = 0  # DeepSeek multi-token-prediction layers: in the checkpoint, NOT in total_params
    schema_version: int = MODEL_SCHEMA_VERSION

    @property
    def is_moe(self) -> bool:
        return bool(self.num_experts)

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None
