"""The step loop both backends drive: a record per step; metrics, guard, checkpoints are hooks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Protocol

from trainers.guards import TrainingStopped
from trainers.protocol import StepHook, StepRecord

LossHook = Callable[[int, float], None]
"""Sees ``(step, loss)`` once the backend knows the loss; a ``TrainingStopped`` ends the run."""
SaveHook = Callable[[int], None]
"""Saves the checkpoint as the run ends; ``step`` is the last step run, or the one that stopped
the run (whether that step's update is in the weights is the backend's ``Step`` to say)."""


@dataclass(frozen=True)
class StepOutcome:
    """What a backend's step computed; the loop adds the step number and its duration."""

    loss: float
    lr: float
    grad_norm: float
    samples: int
    tokens: int
    positions: int | None = None


class Step(Protocol):
    """A backend's optimizer step on the rows ``indices`` of the batch order.

    It hands the loss to ``loss_known`` where its update allows: torch before the optimizer applies
    it, so a stop keeps the weights from before the step; jax after, so a stop keeps those after it.
    """

    def __call__(
        self, step: int, indices: Sequence[int], loss_known: Callable[[float], None]
    ) -> StepOutcome: ...


@dataclass(frozen=True)
class LoopResult:
    """Every step's record, and how long the steps took."""

    steps: tuple[StepRecord, ...]
    runtime_s: float
    """From before the first batch to after the last step's hooks; the final save is not in it."""


class TrainingLoop:
    """Runs ``total`` steps; hooks see each loss, each record, and the end of the run."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.step_hooks: list[tuple[StepHook, int]] = []
        self.loss_hooks: list[LossHook] = []
        self.save_hooks: list[SaveHook] = []
        self.checkpoint_hooks: list[tuple[SaveHook, int | None]] = []

    def add_hook(self, fn: StepHook, every: int = 1) -> None:
        """Call ``fn`` with the record of every ``every``-th step."""
        if every < 1:
            raise ValueError(f"a hook runs every 1 or more steps, not every {every}")
        self.step_hooks.append((fn, every))

    def add_loss_hook(self, fn: LossHook) -> None:
        """Call ``fn`` with each step's loss, where the backend's ``Step`` hands it over."""
        self.loss_hooks.append(fn)

    def add_save_hook(self, fn: SaveHook) -> None:
        """Call ``fn`` once as the run ends: after the last step, or when a step stops it."""
        self.save_hooks.append(fn)

    def add_checkpoint_hook(self, fn: SaveHook, every: int | None) -> None:
        """Call ``fn`` after every ``every``-th step (None: never on a schedule), before the step
        hooks see it, and after a step a step hook stopped the run at resumably."""
        if every is not None and every < 1:
            raise ValueError(f"a checkpoint is written every 1 or more steps, not every {every}")
        self.checkpoint_hooks.append((fn, every))

    def run(self, order: Iterable[Sequence[int]], step: Step, start: int = 0) -> LoopResult:
        """Run ``step`` on batches ``start + 1`` to ``total`` of ``order``: a resumed run skips the
        ``start`` batches its checkpoint's steps consumed, so the data order goes on unchanged."""
        records: list[StepRecord] = []
        started = time.perf_counter()
        for number, indices in enumerate(islice(order, start, self.total), start=start + 1):
            # A step's seconds cover building its batch through the optimizer's update.
            tick = time.perf_counter()
            try:
                done = step(number, indices, partial(self._loss_known, number))
            except TrainingStopped:
                self._save(number)
                raise
            record = StepRecord(
                step=number,
                loss=done.loss,
                lr=done.lr,
                grad_norm=done.grad_norm,
                samples=done.samples,
                tokens=done.tokens,
                seconds=time.perf_counter() - tick,
                positions=done.positions,
            )
            records.append(record)
            checkpointed = self._checkpoint(number, scheduled=True)
            try:
                for fn, every in self.step_hooks:
                    if number % every == 0:
                        fn(record)
            except TrainingStopped as stop:
                # The step's update is complete: a resumable stop keeps it in a checkpoint.
                if stop.resumable and not checkpointed:
                    self._checkpoint(number, scheduled=False)
                self._save(number)
                raise
        runtime = time.perf_counter() - started
        self._save(start + len(records))
        return LoopResult(tuple(records), runtime)

    def _checkpoint(self, step: int, scheduled: bool) -> bool:
        """Run the checkpoint hooks due at ``step`` (all of them unless ``scheduled``); whether
        any ran."""
        due = [
            fn for fn, every in self.checkpoint_hooks
            if not scheduled or (every is not None and step % every == 0)
        ]
        for fn in due:
            fn(step)
        return bool(due)

    def _loss_known(self, step: int, loss: float) -> None:
        for fn in self.loss_hooks:
            fn(step, loss)

    def _save(self, step: int) -> None:
        for fn in self.save_hooks:
            fn(step)
