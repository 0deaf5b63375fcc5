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


HF_TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# What a model folder needs: configs, weights and the tokenizer; not the other formats a hub
# repository may also hold (gguf, PyTorch pickles).
PRETRAINED_FILES = ("*.json", "*.safetensors", "tokenizer.model")


def hf_token_set() -> bool:
    return any(os.environ.get(name) for name in HF_TOKEN_VARIABLES)


def pretrained_folder(parsed: ModelSource, *, fetch: bool = True) -> Path:
    """The Hugging Face layout folder of a ``local:`` or ``hf:`` source, the same on both
    backends: ``hf:`` from the local Hugging Face cache, fetched only when a token is set (and
    ``fetch``). Not there: ``FileNotFoundError``."""
    if parsed.kind == "local":
        folder = Path(parsed.location)
        if not folder.is_dir():
            raise FileNotFoundError(f"model folder {parsed.location} does not exist")
        return folder
    if parsed.kind != "hf":
        raise ValueError(f"{parsed.kind}:{parsed.location} has no pretrained folder")
    from huggingface_hub import snapshot_download

    fetched = snapshot_download(
        parsed.location,
        allow_patterns=list(PRETRAINED_FILES),
        local_files_only=not (fetch and hf_token_set()),
    )
    return Path(fetched)


def build_model_and_tokenizer(source: str, seed: int) -> tuple[Any, Any]:
    """Instantiate the model (random init seeded by ``seed``) and its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from trainers.char_tokenizer import build_char_tokenizer
    from trainers.pretrained_tokenizer import check_tokenizer, load_tokenizer

    parsed = ModelSource.parse(source)
    if parsed.kind == "random":
        params = dict(ARCHITECTURES[parsed.location])
        config = AutoConfig.for_model(params.pop("model_type"), **params)
        config._attn_implementation = "sdpa"
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config), build_char_tokenizer()
    folder = pretrained_folder(parsed)
    model = AutoModelForCausalLM.from_pretrained(
        folder, attn_implementation="sdpa", local_files_only=True
    )
    tokenizer = load_tokenizer(folder)
    check_tokenizer(tokenizer, model.config.to_dict(), folder)
    return model, tokenizer
