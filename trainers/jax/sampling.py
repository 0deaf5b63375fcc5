"""Greedy generation for the jax backend: Tunix's sampler with its KV cache, batch by batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunix.generate.sampler import CacheConfig, Sampler
from tunix.models.gemma.model import AttentionType

from trainers.encoding import encode_prompt
from trainers.jax import gemma3 as jax_gemma3
from trainers.jax import pretrained as jax_pretrained
from trainers.jax.pretrained import TunixConfig, TunixModel


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
    model: TunixModel,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
) -> list[str]:
    """Greedy completions of ``prompts`` up to ``<eos>``, in left-padded batches of one shape."""
    adapter = PromptTokenizer(tokenizer)
    lengths = [len(adapter.encode(prompt)) for prompt in prompts]
    config = model.config
    cache = CacheConfig(
        cache_size=max(lengths) + max_new_tokens,
        num_layers=config.num_layers,
        num_kv_heads=config.num_kv_heads,
        head_dim=config.head_dim,
    )
    sampler = Sampler(model, adapter, cache)
    completions: dict[int, str] = {}
    for group in prompt_groups(config, lengths, max_new_tokens):
        width = min(batch_size, len(group))
        prompt_len = max(lengths[i] for i in group)
        for start in range(0, len(group), width):
            chunk = group[start : start + width]
            # A short last batch is filled up with its last prompt, so the sampler compiles once.
            filled = [prompts[i] for i in chunk + [chunk[-1]] * (width - len(chunk))]
            output = sampler(
                filled, max_generation_steps=max_new_tokens, max_prompt_length=prompt_len
            )
            completions.update(zip(chunk, output.text, strict=False))
    return [completions[i] for i in range(len(prompts))]


def sliding_windows(config: TunixConfig) -> list[int]:
    """The window of each sliding-window layer of ``config``'s model."""
    if jax_pretrained.is_gemma3(config):
        return jax_gemma3.sliding_windows(config)
    return [
        config.sliding_window_size
        for kind in config.attention_types
        if kind == AttentionType.LOCAL_SLIDING
    ]


def prompt_groups(
    config: TunixConfig, lengths: Sequence[int], max_new_tokens: int
) -> list[list[int]]:
    """Indices of the prompts to batch together: all of them, or those of one length where padding
    would widen a sliding window.

    Tunix's sliding-window mask counts cache slots, not token positions, so in a left-padded row
    it reaches back further than the window by the padding, once a sequence outgrows the window.
    """
    windows = sliding_windows(config)
    if not windows or max(lengths) + max_new_tokens <= min(windows):
        return [list(range(len(lengths)))]
    by_length: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        by_length.setdefault(length, []).append(index)
    return list(by_length.values())
