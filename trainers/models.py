"""Model sources: ``random:<arch>`` (built from a config), ``hf:<id>`` and ``local:<path>``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Architectures that can be built with random weights, offline. The real ones keep their
# published shapes so throughput and memory checks mean something without downloading weights.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "tiny-gemma": {
        "model_type": "gemma",
        "vocab_size": 128,
        "hidden_size": 128,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "max_position_embeddings": 512,
    },
    "gemma-2b": {
        "model_type": "gemma",
        "vocab_size": 256000,
        "hidden_size": 2048,
        "intermediate_size": 16384,
        "num_hidden_layers": 18,
        "num_attention_heads": 8,
        "num_key_value_heads": 1,
        "head_dim": 256,
        "max_position_embeddings": 8192,
    },
    "gemma-2-2b": {
        "model_type": "gemma2",
        "vocab_size": 256000,
        "hidden_size": 2304,
        "intermediate_size": 9216,
        "num_hidden_layers": 26,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "max_position_embeddings": 8192,
    },
    "gemma-3-1b": {
        "model_type": "gemma3_text",
        "vocab_size": 262144,
        "hidden_size": 1152,
        "intermediate_size": 6912,
        "num_hidden_layers": 26,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "head_dim": 256,
        "max_position_embeddings": 32768,
    },
}


@dataclass(frozen=True)
class ModelSource:
    """A parsed ``kind:location`` model source."""

    kind: str
    location: str

    @classmethod
    def parse(cls, source: str) -> ModelSource:
        kind, sep, location = source.partition(":")
        if not sep or kind not in ("random", "hf", "local") or not location:
            raise ValueError(f"model source {source!r} is not random:<arch>, hf:<id> or local:<path>")
        if kind == "random" and location not in ARCHITECTURES:
            known = ", ".join(sorted(ARCHITECTURES))
            raise ValueError(f"unknown architecture {location!r} in {source!r}; known: {known}")
        return cls(kind, location)


def build_model_and_tokenizer(source: str, seed: int) -> tuple[Any, Any]:
    """Instantiate the model (random init seeded by ``seed``) and its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from trainers.char_tokenizer import build_char_tokenizer

    parsed = ModelSource.parse(source)
    if parsed.kind == "random":
        params = dict(ARCHITECTURES[parsed.location])
        config = AutoConfig.for_model(params.pop("model_type"), **params)
        config._attn_implementation = "sdpa"
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config), build_char_tokenizer()
    if parsed.kind == "local" and not Path(parsed.location).is_dir():
        raise FileNotFoundError(f"model folder {parsed.location} does not exist (source {source!r})")
    # hf: sources load from the local Hugging Face cache; only with a token may they be fetched.
    options = {"local_files_only": parsed.kind == "local" or not os.environ.get("HF_TOKEN")}
    model = AutoModelForCausalLM.from_pretrained(parsed.location, attn_implementation="sdpa", **options)
    return model, AutoTokenizer.from_pretrained(parsed.location, **options)
