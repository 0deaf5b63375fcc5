"""A character-level tokenizer built locally (no hub access), as a regular fast tokenizer."""

from __future__ import annotations

from typing import Any

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>")
CHARACTERS = ("\n", *(chr(code) for code in range(32, 127)))


def build_char_tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` over printable ASCII and newline, saved with every
    checkpoint."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *CHARACTERS))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # Oniguruma (?m) lets "." match a newline too, so every character is its own token.
    core.pre_tokenizer = pre_tokenizers.Split(Regex("(?m)."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
    )
