"""The tokenizer of a Hugging Face model folder, checked against the model's config.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The ids a tokenizer and its model must agree on: config.json key, tokenizer attribute.
SPECIAL_IDS = (
    ("pad_token_id", "pad_token_id"),
    ("bos_token_id", "bos_token_id"),
    ("eos_token_id", "eos_token_id"),
)


def load_tokenizer(folder: Path) -> Any:
    """``tokenizer.json`` through AutoTokenizer, else a SentencePiece ``tokenizer.model`` converted
    by ``GemmaTokenizerFast``; never downloaded."""
    from transformers import AutoTokenizer, GemmaTokenizerFast

    if (folder / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if (folder / "tokenizer.model").is_file():
        return GemmaTokenizerFast(vocab_file=str(folder / "tokenizer.model"))
    raise FileNotFoundError(f"{folder} has neither tokenizer.json nor tokenizer.model")


def check_tokenizer(
    tokenizer: Any, config: dict[str, Any], folder: Path, config_from: str | None = None
) -> None:
    """Refuse, in one line, a tokenizer whose special ids or vocabulary the model does not share;
    ``config_from`` names where the config came from (default the folder's config.json)."""
    where = config_from or str(folder / "config.json")
    for key, attribute in SPECIAL_IDS:
        wanted = config.get(key)
        have = getattr(tokenizer, attribute)
        if have is None:
            raise ValueError(f"the tokenizer in {folder} has no {attribute.removesuffix('_id')}")
        # Gemma 3 lists several end-of-turn ids as eos; the tokenizer's must be one of them.
        allowed = wanted if isinstance(wanted, list) else [wanted]
        if wanted is not None and have not in allowed:
            raise ValueError(f"{where}: {key} is {wanted} but the tokenizer's is {have}")
    if len(tokenizer) > config["vocab_size"]:
        raise ValueError(
            f"{where}: vocab_size is {config['vocab_size']} but the tokenizer "
            f"has {len(tokenizer)} tokens"
        )
