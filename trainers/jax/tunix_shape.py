"""What every Tunix Gemma config takes from a transformers config dict: its shape, and the check
that a value is one Tunix computes."""

from __future__ import annotations

from typing import Any

# Tunix config field -> the transformers config key it is read from; the shape of a Tunix Gemma,
# which its weights show and a model card records.
HF_KEYS = {
    "num_layers": "num_hidden_layers",
    "num_embed": "vocab_size",
    "embed_dim": "hidden_size",
    "hidden_dim": "intermediate_size",
    "num_heads": "num_attention_heads",
    "head_dim": "head_dim",
    "num_kv_heads": "num_key_value_heads",
}
SHAPE_FIELDS = tuple(HF_KEYS)


def shape_of(hf: dict[str, Any]) -> dict[str, int]:
    """The Tunix shape fields of a transformers config dict."""
    return {field: hf[key] for field, key in HF_KEYS.items()}


def require(hf: dict[str, Any], key: str, wanted: Any, where: str, model: str) -> None:
    """Refuse, in one line naming ``where`` and ``key``, a value ``model`` does not compute."""
    if hf.get(key) != wanted:
        raise ValueError(f"{where}: {key} is {hf.get(key)!r}; Tunix's {model} computes {wanted!r}")
