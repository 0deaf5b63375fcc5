"""Token ids and loss masks shared by every backend: ``<bos> prompt completion <eos>``, loss on
the completion."""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator, Sequence
from typing import Any

from trainers.protocol import Example

IGNORE_INDEX = -100


def encode_example(tokenizer: Any, example: Example, max_len: int) -> tuple[list[int], list[int]]:
    """Token ids ``<bos> prompt completion <eos>`` and labels that mask everything but the
    completion."""
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


# Length grouping sorts windows of this many batches, so batches differ in length but stay shuffled.
LENGTH_GROUP_BATCHES = 8


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int
) -> Iterator[list[int]]:
    """Like ``batches``, but each batch holds rows of similar length, so little of it is padding.

    Every epoch's shuffled order is cut into windows of ``LENGTH_GROUP_BATCHES`` batches; each
    window is sorted longest first (an out-of-memory shows on its first batch) and cut into batches.
    An epoch has as many batches as with ``batches``.
    """
    shuffler = random.Random(seed)
    order = list(range(len(lengths)))
    window = batch_size * LENGTH_GROUP_BATCHES
    while True:
        shuffler.shuffle(order)
        for start in range(0, len(order), window):
            group = sorted(order[start : start + window], key=lambda i: -lengths[i])
            for first in range(0, len(group), batch_size):
                yield group[first : first + batch_size]


def pack(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Positions of ``lengths`` grouped into sequences of at most ``capacity`` tokens, least padded.

    A batch of sequences is padded to its longest, so this tries each number of sequences, fills
    them longest row first into the emptiest, and keeps the grouping with the fewest positions
    (sequences x longest); on a tie, the fewer sequences.
    """
    if not lengths:
        return []
    if max(lengths) > capacity:
        raise ValueError(f"a row of {max(lengths)} tokens does not fit a sequence of {capacity}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    best = [[i] for i in order]
    fewest = len(lengths) * max(lengths)
    count = -(-sum(lengths) // capacity)
    while count * max(lengths) < fewest:  # no grouping into more sequences can do better
        groups = _fill_emptiest(order, lengths, count)
        width = max(sum(lengths[i] for i in group) for group in groups)
        if width <= capacity and count * width < fewest:
            best, fewest = groups, count * width
        count += 1
    return best


def _fill_emptiest(order: Sequence[int], lengths: Sequence[int], count: int) -> list[list[int]]:
    groups: list[list[int]] = [[] for _ in range(count)]
    filled = [(0, group) for group in range(count)]
    for i in order:
        tokens, group = heapq.heappop(filled)
        groups[group].append(i)
        heapq.heappush(filled, (tokens + lengths[i], group))
    return groups
