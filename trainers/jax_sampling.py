"""Greedy generation for the jax backend: Tunix's sampler with its KV cache, batch by batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunix.generate.sampler import CacheConfig, Sampler
from tunix.models.gemma.model import Gemma

from trainers.encoding import encode_prompt


class PromptTokenizer:
    """The shared prompt encoding, and decoding without special tokens, for Tunix's sampler."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        # The sampler prepends <bos> and folds a doubled one: its ids are exactly encode_prompt's.
        return encode_prompt(self.tokenizer, text)

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def bos_id(self) -> int:
        return int(self.tokenizer.bos_token_id)

    def eos_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)


def greedy_completions(
    model: Gemma,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
) -> list[str]:
    """Greedy completions of ``prompts`` up to ``<eos>``, in left-padded batches of one shape."""
    adapter = PromptTokenizer(tokenizer)
    prompt_len = max(len(adapter.encode(prompt)) for prompt in prompts)
    width = min(batch_size, len(prompts))
    config = model.config
    cache = CacheConfig(
        cache_size=prompt_len + max_new_tokens,
        num_layers=config.num_layers,
        num_kv_heads=config.num_kv_heads,
        head_dim=config.head_dim,
    )
    sampler = Sampler(model, adapter, cache)
    completions: list[str] = []
    for start in range(0, len(prompts), width):
        chunk = list(prompts[start : start + width])
        # A short last batch is filled up with its last prompt, so the sampler compiles once.
        filled = chunk + [chunk[-1]] * (width - len(chunk))
        output = sampler(filled, max_generation_steps=max_new_tokens, max_prompt_length=prompt_len)
        completions.extend(output.text[: len(chunk)])
    return completions
