"""The torch backend's batches: each step's rows, split into micro-batches, padded or packed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from trainers.config import TrainingConfig
from trainers.encoding import IGNORE_INDEX, batches, length_grouped_batches, pack

Row = tuple[list[int], list[int]]


def collate(rows: Sequence[Row], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch to its longest row; padding is masked out of attention and loss."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (ids, lab) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(lab)] = torch.tensor(lab)
        attention[row, : len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention}


def collate_packed(rows: Sequence[Row], pad_id: int, capacity: int) -> dict[str, torch.Tensor]:
    """Rows concatenated into sequences of at most ``capacity`` tokens, each seeing only itself.

    ``position_ids`` restart at 0 for every row and no ``attention_mask`` is given: transformers
    then builds a block-diagonal causal mask from the restarts (its packed-sequence format).
    """
    groups = pack([len(ids) for ids, _ in rows], capacity)
    width = max(sum(len(rows[i][0]) for i in group) for group in groups)
    input_ids = torch.full((len(groups), width), pad_id, dtype=torch.long)
    labels = torch.full((len(groups), width), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros((len(groups), width), dtype=torch.long)
    for seq, group in enumerate(groups):
        at = 0
        for i in group:
            ids, lab = rows[i]
            input_ids[seq, at : at + len(ids)] = torch.tensor(ids)
            labels[seq, at : at + len(lab)] = torch.tensor(lab)
            labels[seq, at] = (
                IGNORE_INDEX  # a row's first token is never predicted, not even from the row before
            )
            positions[seq, at : at + len(ids)] = torch.arange(len(ids))
            at += len(ids)
        positions[seq, at:] = torch.arange(width - at)  # the padding tail is a block of its own
    return {"input_ids": input_ids, "labels": labels, "position_ids": positions}


def loss_tokens(labels: Sequence[int]) -> int:
    """How many of a row's labels the causal LM loss takes (shifted by one: never the first)."""
    return sum(label != IGNORE_INDEX for label in labels[1:])


@dataclass(frozen=True)
class Shard:
    """The rows of one forward pass, and what that pass computes."""

    indices: tuple[int, ...]
    tokens: int
    """Real (non-padding) tokens."""
    positions: int
    """Token positions the model computes, padding included."""
    loss_tokens: int


class BatchPlan:
    """Each step's rows, split into ``grad_accum_steps`` micro-batches on each of the processes.

    Every rank builds the same plan from the same rows and seed, so no rank waits for another to
    learn what the whole step holds (its token counts weight each micro-batch's loss).
    """

    def __init__(self, rows: Sequence[Row], config: TrainingConfig, pad_id: int) -> None:
        self.rows, self.config, self.pad_id = rows, config, pad_id
        self.lengths = [len(ids) for ids, _ in rows]
        self.loss_tokens = [loss_tokens(labels) for _, labels in rows]
        self.shards_per_step = config.grad_accum_steps * config.parallel.processes

    def steps(self) -> Iterator[list[int]]:
        """Row indices of every optimizer step; endless, reshuffled each epoch."""
        config = self.config
        if config.batching == "length_grouped":
            return length_grouped_batches(self.lengths, config.batch_size, config.seed)
        return batches(len(self.rows), config.batch_size, config.seed)

    def shards(self, indices: Sequence[int]) -> list[Shard]:
        """The step split into contiguous shards, rank by rank, ``grad_accum_steps`` per rank.

        Sizes differ by at most one row; a short last batch of an epoch may leave a shard empty.
        """
        size, extra = divmod(len(indices), self.shards_per_step)
        shards, start = [], 0
        for n in range(self.shards_per_step):
            end = start + size + (n < extra)
            shards.append(self._shard(tuple(indices[start:end])))
            start = end
        return shards

    def _shard(self, indices: tuple[int, ...]) -> Shard:
        lengths = [self.lengths[i] for i in indices]
        if not lengths:
            positions = 1  # a single padding token keeps every rank's passes in step
        elif self.config.batching == "packed":
            groups = pack(lengths, self.config.max_seq_len)
            positions = len(groups) * max(sum(lengths[i] for i in group) for group in groups)
        else:
            positions = len(lengths) * max(lengths)
        return Shard(indices, sum(lengths), positions, sum(self.loss_tokens[i] for i in indices))

    def tensors(self, shard: Shard) -> dict[str, torch.Tensor]:
        """The model inputs of ``shard``; an empty shard is one padding token, nothing to learn."""
        rows = [self.rows[i] for i in shard.indices] or [([self.pad_id], [IGNORE_INDEX])]
        if self.config.batching == "packed":
            return collate_packed(rows, self.pad_id, self.config.max_seq_len)
        return collate(rows, self.pad_id)
