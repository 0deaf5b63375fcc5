"""Model sources: ``random:<arch>`` (built from a config), ``hf:<id>``, ``local:<path>`` and
``kaggle:<folder or handle>``."""

from __future__ import annotations

import os
import tempfile
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


KINDS = ("random", "hf", "local", "kaggle")


@dataclass(frozen=True)
class ModelSource:
    """A parsed ``kind:location`` model source."""

    kind: str
    location: str

    @classmethod
    def parse(cls, source: str) -> ModelSource:
        kind, sep, location = source.partition(":")
        if not sep or kind not in KINDS or not location:
            raise ValueError(
                f"model source {source!r} is not random:<arch>, hf:<id>, local:<path> or "
                "kaggle:<folder or handle>"
            )
        if kind == "random" and location not in ARCHITECTURES:
            known = ", ".join(sorted(ARCHITECTURES))
            raise ValueError(f"unknown architecture {location!r} in {source!r}; known: {known}")
        return cls(kind, location)


HF_TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
# What a model folder needs: configs, weights and the tokenizer; not the other formats a hub
# repository may also hold (gguf, PyTorch pickles).
PRETRAINED_FILES = ("*.json", "*.safetensors", "tokenizer.model")


# A folder holding one of these is an orbax checkpoint (older orbax writes no
# _CHECKPOINT_METADATA); Kaggle's Flax variants put one beside tokenizer.model.
ORBAX_FILES = ("_CHECKPOINT_METADATA", "_METADATA", "checkpoint")
KAGGLE_HANDLE = "<owner>/<model>/<framework>/<variation>[/<version>]"
KAGGLE_CREDENTIALS = "KAGGLE_USERNAME and KAGGLE_KEY, or ~/.kaggle/kaggle.json"


def hf_token_set() -> bool:
    return any(os.environ.get(name) for name in HF_TOKEN_VARIABLES)


class CredentialMissing(FileNotFoundError):
    """A model that is not on this machine, and no credential to download it."""


def kaggle_can_download() -> bool:
    """Kaggle credentials are set, or this is a Kaggle notebook, where kagglehub attaches a model
    to the notebook without them."""
    from kagglehub.config import get_kaggle_credentials
    from kagglesdk.kaggle_env import is_in_kaggle_notebook

    return is_in_kaggle_notebook() or get_kaggle_credentials() is not None


def kaggle_folder(location: str, *, fetch: bool = True) -> Path:
    """The folder of a ``kaggle:`` source: a path as for ``local:``, else a Kaggle handle from
    kagglehub's cache (``KAGGLEHUB_CACHE``; a versioned handle resolves offline), downloaded (or,
    in a Kaggle notebook, attached) only where ``kaggle_can_download`` (and ``fetch``). Not
    there: ``FileNotFoundError``."""
    folder = Path(location)
    if folder.is_dir():
        return folder
    parts = location.split("/")
    if folder.is_absolute() or location.startswith(".") or len(parts) not in (4, 5):
        raise FileNotFoundError(
            f"kaggle:{location} is no model folder (from {Path.cwd()}) nor a Kaggle handle "
            f"{KAGGLE_HANDLE}"
        )
    from kagglehub import model_download
    from kagglehub.cache import Cache
    from kagglehub.config import get_cache_folder
    from kagglehub.handle import parse_model_handle

    try:
        handle = parse_model_handle(location)
    except ValueError as error:
        raise FileNotFoundError(
            f"kaggle:{location} is no Kaggle handle {KAGGLE_HANDLE}: {error}"
        ) from None
    # Finding an unversioned handle's latest version always asks Kaggle.
    if handle.is_versioned() and (cached := Cache().load_from_cache(handle)):
        return Path(cached)
    where = "names no version" if not handle.is_versioned() else "is not in the kagglehub cache"
    if not kaggle_can_download():
        raise CredentialMissing(
            f"kaggle:{location} {where} ({get_cache_folder()}) and no Kaggle credentials are set "
            f"({KAGGLE_CREDENTIALS}) to download it"
        )
    if not fetch:
        raise FileNotFoundError(f"kaggle:{location} {where} ({get_cache_folder()})")
    try:
        return Path(model_download(location))
    except OSError as error:  # requests' connection and HTTP errors are OSErrors
        raise FileNotFoundError(f"kaggle:{location} could not be downloaded: {error}") from None


def flax_checkpoint(folder: Path) -> Path | None:
    """The orbax checkpoint of a folder in Kaggle's Flax layout (no config.json, the checkpoint
    folder beside tokenizer.model), or None for any other folder."""
    if (folder / "config.json").is_file():
        return None
    found = sorted(
        path
        for path in folder.iterdir()
        if path.is_dir() and any((path / name).is_file() for name in ORBAX_FILES)
    )
    if len(found) > 1:
        names = ", ".join(path.name for path in found)
        raise ValueError(f"model folder {folder} holds several orbax checkpoints ({names})")
    return found[0] if found else None


def refuse_flax_on_torch(source: str, folder: Path) -> None:
    """Refuse Kaggle's Flax layout: the torch backend loads Hugging Face folders only."""
    if ModelSource.parse(source).kind == "kaggle" and flax_checkpoint(folder) is not None:
        raise ValueError(
            f"{source}: {folder} is Kaggle's Flax layout, which only the jax backend loads "
            "(the torch backend needs a Hugging Face folder, e.g. Kaggle's transformers variant)"
        )


def pretrained_folder(
    parsed: ModelSource, *, fetch: bool = True, hub_cache: Path | None = None
) -> Path:
    """The folder of a ``local:``, ``hf:`` or ``kaggle:`` source, the same on both backends:
    ``hf:`` from the local Hugging Face cache (or ``hub_cache``, never fetched into), fetched only
    when a token is set (and ``fetch``); ``kaggle:`` as ``kaggle_folder`` resolves it. Not there:
    ``FileNotFoundError``."""
    if parsed.kind == "kaggle":
        return kaggle_folder(parsed.location, fetch=fetch)
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
        cache_dir=hub_cache,
        local_files_only=hub_cache is not None or not (fetch and hf_token_set()),
    )
    return Path(fetched)


def build_model_and_tokenizer(
    source: str, seed: int, hub_cache: Path | None = None, load: dict[str, Any] | None = None
) -> tuple[Any, Any]:
    """Instantiate the model (random init seeded by ``seed``, or loaded from its folder) and its
    tokenizer; ``hub_cache`` as for ``pretrained_folder``. ``load``: more ``from_pretrained``
    arguments (QLoRA's quantization); a random model is then saved and loaded back with them."""
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
        model = AutoModelForCausalLM.from_config(config)
        if load:
            with tempfile.TemporaryDirectory(prefix="random-model-") as folder:
                model.save_pretrained(folder)
                model = AutoModelForCausalLM.from_pretrained(
                    folder, attn_implementation="sdpa", local_files_only=True, **load
                )
        return model, build_char_tokenizer()
    folder = pretrained_folder(parsed, hub_cache=hub_cache)
    refuse_flax_on_torch(source, folder)
    model = AutoModelForCausalLM.from_pretrained(
        folder, attn_implementation="sdpa", local_files_only=True, **(load or {})
    )
    tokenizer = load_tokenizer(folder)
    check_tokenizer(tokenizer, model.config.to_dict(), folder)
    return model, tokenizer
