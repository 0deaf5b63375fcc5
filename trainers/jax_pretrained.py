"""Hugging Face Gemma folders on the jax backend: Tunix config from config.json, checked weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import safetensors
from tunix.models import safetensors_loader
from tunix.models.gemma import model as gemma
from tunix.models.gemma import params_safetensors

CONFIG = "config.json"
MODEL_TYPES = ("gemma", "gemma2")
LAYER_TYPES = {
    "full_attention": gemma.AttentionType.GLOBAL,
    "sliding_attention": gemma.AttentionType.LOCAL_SLIDING,
}
# Values Tunix's Gemma hard-codes (its RMSNorm epsilon, RoPE base, tanh GELU, tied unembedding):
# a checkpoint that needs another would load and silently compute something else.
FIXED = {
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "attention_bias": False,
    "tie_word_embeddings": True,
}
ACTIVATION = "gelu_pytorch_tanh"
# The key of Tunix 0.1.7's safetensors map that sends Gemma 1's post_attention_layernorm, the
# norm before the feed-forward block, to post_attn_norm: a Gemma 1 has no such norm.
POST_ATTENTION_NORM = r"model\.layers\.([0-9]+)\.post_attention_layernorm\.weight"
GEMMA1_POST_ATTENTION_NORM = (r"layers.\1.pre_ffw_norm.scale", None)


def read_config(folder: Path) -> dict[str, Any]:
    """``folder``'s config.json with transformers' defaults for the keys it leaves out."""
    from transformers import AutoConfig

    path = folder / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"model folder {folder} has no {CONFIG}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON: {error}") from None
    model_type = raw.pop("model_type", None)
    if model_type not in MODEL_TYPES:
        raise ValueError(
            f"{path}: model_type {model_type!r}; the jax backend loads {', '.join(MODEL_TYPES)}"
        )
    config: dict[str, Any] = AutoConfig.for_model(model_type, **raw).to_dict()
    return config


def _require(hf: dict[str, Any], key: str, wanted: Any, where: str) -> None:
    if hf.get(key) != wanted:
        raise ValueError(f"{where}: {key} is {hf.get(key)!r}; Tunix's Gemma computes {wanted!r}")


def tunix_config(hf: dict[str, Any], where: str) -> gemma.ModelConfig:
    """The Tunix Gemma of a transformers config dict (``read_config``); ``where`` names its file."""
    for key, wanted in FIXED.items():
        _require(hf, key, wanted, where)
    # Gemma 1 configs keep a legacy hidden_act that hidden_activation overrides when set.
    activation = "hidden_activation" if hf.get("hidden_activation") else "hidden_act"
    _require(hf, activation, ACTIVATION, where)
    layers = hf["num_hidden_layers"]
    if hf["model_type"] == "gemma":
        variant: dict[str, Any] = {
            "final_logit_softcap": None,
            "use_post_attn_norm": False,
            "use_post_ffw_norm": False,
            "attention_types": (gemma.AttentionType.GLOBAL,) * layers,
        }
    else:
        # Tunix scales queries by head_dim ** -0.5, which is Gemma 2's scalar at 2B and 9B.
        _require(hf, "query_pre_attn_scalar", hf["head_dim"], where)
        unknown = sorted(set(hf["layer_types"]) - set(LAYER_TYPES))
        if unknown:
            raise ValueError(f"{where}: layer_types has {unknown[0]!r}, Tunix's Gemma has none")
        variant = {
            "final_logit_softcap": hf["final_logit_softcapping"],
            "attn_logits_soft_cap": hf["attn_logit_softcapping"],
            "sliding_window_size": hf["sliding_window"],
            "use_post_attn_norm": True,
            "use_post_ffw_norm": True,
            "attention_types": tuple(LAYER_TYPES[kind] for kind in hf["layer_types"]),
        }
    return gemma.ModelConfig(
        num_layers=layers,
        num_embed=hf["vocab_size"],
        embed_dim=hf["hidden_size"],
        hidden_dim=hf["intermediate_size"],
        num_heads=hf["num_attention_heads"],
        head_dim=hf["head_dim"],
        num_kv_heads=hf["num_key_value_heads"],
        **variant,
    )


def expected_shapes(config: gemma.ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a Hugging Face checkpoint of ``config`` holds, with its shape."""
    embed, ffw = config.embed_dim, config.hidden_dim
    queries, keys = config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim
    norms = ["input_layernorm", "post_attention_layernorm"]
    if config.use_post_ffw_norm:
        norms += ["pre_feedforward_layernorm", "post_feedforward_layernorm"]
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (config.num_embed, embed),
        "model.norm.weight": (embed,),
    }
    for layer in range(config.num_layers):
        prefix = f"model.layers.{layer}."
        shapes |= {
            f"{prefix}self_attn.q_proj.weight": (queries, embed),
            f"{prefix}self_attn.k_proj.weight": (keys, embed),
            f"{prefix}self_attn.v_proj.weight": (keys, embed),
            f"{prefix}self_attn.o_proj.weight": (embed, queries),
            f"{prefix}mlp.gate_proj.weight": (ffw, embed),
            f"{prefix}mlp.up_proj.weight": (ffw, embed),
            f"{prefix}mlp.down_proj.weight": (embed, ffw),
        }
        shapes |= {f"{prefix}{norm}.weight": (embed,) for norm in norms}
    return shapes


def check_weights(folder: Path, config: gemma.ModelConfig) -> None:
    """Refuse, in one line naming the file and tensor, weights that do not fit ``config``."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"model folder {folder} has no *.safetensors weights")
    expected = expected_shapes(config)
    seen: set[str] = set()
    for file in files:
        dtypes: set[str] = set()
        with safetensors.safe_open(str(file), framework="numpy") as weights:
            for name in weights.keys():  # noqa: SIM118 (a safetensors handle is no dict)
                tensor = weights.get_slice(name)
                dtypes.add(tensor.get_dtype())
                shape = tuple(tensor.get_shape())
                if name in expected and shape != expected[name]:
                    raise ValueError(
                        f"{file}: {name} has shape {shape}, {CONFIG} makes it {expected[name]}"
                    )
                seen.add(name)
        # Tunix's loader reads a whole file as the dtype of its first tensor.
        if len(dtypes) > 1:
            raise ValueError(f"{file} mixes dtypes {sorted(dtypes)}; the loader needs one per file")
    missing = [name for name in expected if name not in seen]
    if missing:
        raise ValueError(
            f"{folder}: no {missing[0]} in its *.safetensors files, which {CONFIG} needs "
            f"({len(missing)} tensors missing)"
        )


def key_mapping(config: gemma.ModelConfig) -> dict[str, Any]:
    """Tunix's safetensors key map, with Gemma 1's feed-forward norm sent where it belongs."""
    mapping: dict[str, Any] = params_safetensors._get_key_and_transform_mapping(config)
    if not config.use_post_attn_norm:
        mapping[POST_ATTENTION_NORM] = GEMMA1_POST_ATTENTION_NORM
    return mapping


def load_weights(folder: Path, config: gemma.ModelConfig, mesh: jax.sharding.Mesh) -> gemma.Gemma:
    """The Gemma of ``config`` with ``folder``'s weights in float32, each put on its shard of
    ``mesh`` by Tunix's loader."""
    check_weights(folder, config)
    model: gemma.Gemma = safetensors_loader.load_and_create_model(
        str(folder),
        gemma.Gemma,
        config,
        key_mapping,
        mesh=mesh,
        preprocess_fn=params_safetensors._make_preprocess_fn(config),
        dtype=jnp.float32,
        mode="optimized",
    )
    return model
