"""Token ids and loss masks shared by every backend: ``<bos> prompt completion <eos>``, loss on the completion."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from trainers.base import Example

IGNORE_INDEX = -100


def encode_example(tokenizer: Any, example: Example, max_len: int) -> tuple[list[int], list[int]]:
    """Token ids ``<bos> prompt completion <eos>`` and labels that mask everything but the completion."""
    prompt = [tokenizer.bos_token_id, *tokenizer.encode(example.prompt, add_special_tokens=False)]
    completion = [*tokenizer.encode(example.completion, add_special_tokens=False)]
    completion.append(tokenizer.eos_token_id)
    ids = (prompt + completion)[:max_len]
    labels = ([IGNORE_INDEX] * len(prompt) + completion)[:max_len]
    return ids, labels


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """The ids generation starts from: exactly the prompt part of ``encode_example``."""
    return [tokenizer.bos_token_id, *tokenizer.encode(prompt, add_special_tokens=False)]


def batches(n_rows: int, batch_size: int, seed: int) -> Iterator[list[int]]:
    """Row indices, batch by batch, reshuffled every epoch from a seeded ``random.Random``; endless.

    Plain Python so that every backend sees the same batches in the same order.
    """
    shuffler = random.Random(seed)
    order = list(range(n_rows))
    while True:
        shuffler.shuffle(order)
        for start in range(0, n_rows, batch_size):
            yield order[start : start + batch_size]
