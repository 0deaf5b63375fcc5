"""Gemma 3 text checkpoints (``model_type: gemma3_text``) as Tunix's Gemma3: its config from
transformers' config dict, refused where Tunix's Gemma3 would compute something else."""

from __future__ import annotations

import itertools
from typing import Any

import jax.numpy as jnp
from tunix.models.gemma3 import model as gemma3

from trainers.jax import tunix_shape

MODEL_TYPE = "gemma3_text"
# Values Tunix's Gemma3 hard-codes (its RMSNorm epsilon, tanh GELU, tied unembedding, causal
# attention without soft-capping or biases).
FIXED = {
    "rms_norm_eps": 1e-6,
    "hidden_activation": "gelu_pytorch_tanh",
    "attention_bias": False,
    "tie_word_embeddings": True,
    "attn_logit_softcapping": None,
    "final_logit_softcapping": None,
    "use_bidirectional_attention": False,
}
LAYER_NAMES = {
    gemma3.AttentionType.GLOBAL: "full_attention",
    gemma3.AttentionType.LOCAL_SLIDING: "sliding_attention",
}
# The one RoPE scaling Tunix's Gemma3 has: positions divided by a factor, on its global layers.
LINEAR_ROPE = "linear"


def attention_types(num_layers: int) -> tuple[gemma3.AttentionType, ...]:
    """The kind of each layer: Tunix's Gemma3 repeats its fixed pattern over the layers."""
    pattern = itertools.cycle(gemma3.GEMMA3_ATTENTION_PATTERN)
    return tuple(itertools.islice(pattern, num_layers))


def sliding_windows(config: gemma3.ModelConfig) -> list[int]:
    """The window of each sliding-window layer of ``config``'s Gemma3."""
    return [
        config.sliding_window_size
        for kind in attention_types(config.num_layers)
        if kind == gemma3.AttentionType.LOCAL_SLIDING
    ]


def _check_layer_types(hf: dict[str, Any], where: str) -> None:
    """Refuse ``layer_types`` that differ from the layer pattern Tunix's Gemma3 builds."""
    wanted = [LAYER_NAMES[kind] for kind in attention_types(hf["num_hidden_layers"])]
    given = list(hf["layer_types"])
    for layer, (got, want) in enumerate(itertools.zip_longest(given, wanted)):
        if got != want:
            raise ValueError(
                f"{where}: layer_types[{layer}] is {got!r}; Tunix's Gemma3 computes {want!r} "
                f"there (5 sliding layers, then 1 full, repeated)"
            )


def _global_scale_factor(hf: dict[str, Any], where: str) -> float:
    """The factor Tunix divides global layers' positions by, from ``rope_scaling``."""
    scaling = hf.get("rope_scaling")
    if scaling is None:
        return 1.0
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind != LINEAR_ROPE or set(scaling) - {"rope_type", "type", "factor"}:
        raise ValueError(
            f"{where}: rope_scaling is {scaling!r}; Tunix's Gemma3 computes only "
            f"{{'rope_type': 'linear', 'factor': ...}}"
        )
    return float(scaling["factor"])


def _query_scaling(hf: dict[str, Any], where: str) -> gemma3.QueryPreAttentionNormalisation:
    """Tunix's query scaling for ``query_pre_attn_scalar``: head_dim or embed / heads."""
    scalar = hf["query_pre_attn_scalar"]
    norms = gemma3.QueryPreAttentionNormalisation
    if scalar == hf["head_dim"]:
        return norms.BY_ONE_OVER_SQRT_HEAD_DIM
    if scalar == hf["hidden_size"] // hf["num_attention_heads"]:
        return norms.BY_ONE_OVER_SQRT_EMBED_DIM_DIV_NUM_HEADS
    raise ValueError(
        f"{where}: query_pre_attn_scalar is {scalar!r}; Tunix's Gemma3 computes head_dim "
        f"({hf['head_dim']}) or hidden_size / num_attention_heads"
    )


def tunix_config(hf: dict[str, Any], where: str) -> gemma3.ModelConfig:
    """The float32 Tunix Gemma3 of a transformers ``gemma3_text`` config dict; ``where`` names its
    file."""
    for key, wanted in FIXED.items():
        tunix_shape.require(hf, key, wanted, where, "Gemma3")
    _check_layer_types(hf, where)
    return gemma3.ModelConfig(
        **tunix_shape.shape_of(hf),
        sliding_window_size=hf["sliding_window"],
        local_base_frequency=hf["rope_local_base_freq"],
        global_base_frequency=hf["rope_theta"],
        global_scale_factor=_global_scale_factor(hf, where),
        query_pre_attn_norm=_query_scaling(hf, where),
        param_dtype=jnp.float32,
    )
