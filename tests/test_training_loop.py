"""The step loop both backends drive, with a scripted step: its records, hooks, guard and saves."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from trainers.guards import Divergence, LossGuard, NonFiniteLoss, TrainingStopped
from trainers.loop import StepOutcome, TrainingLoop
from trainers.protocol import StepRecord

ROOT = Path(__file__).resolve().parents[1]


def endless_batches(batch_size: int = 4) -> Iterator[list[int]]:
    """Row indices batch by batch, endless like the backends' batch orders."""
    for start in itertools.count(0, batch_size):
        yield list(range(start, start + batch_size))


class ScriptedStep:
    """A backend step whose losses are given; like torch's, it updates only after the loss passed
    the hooks, so ``updated`` lists the steps whose update was applied."""

    def __init__(self, losses: Sequence[float], pause_s: float = 0.0) -> None:
        self.losses, self.pause_s = losses, pause_s
        self.updated: list[int] = []

    def __call__(
        self, step: int, indices: Sequence[int], loss_known: Callable[[float], None]
    ) -> StepOutcome:
        time.sleep(self.pause_s)
        loss = self.losses[step - 1]
        loss_known(loss)
        self.updated.append(step)
        return StepOutcome(
            loss=loss,
            lr=0.1 * step,
            grad_norm=1.0,
            samples=len(indices),
            tokens=10 * len(indices),
            positions=12 * len(indices),
        )


def guarded_loop(total: int, saves: list[int], seen: list[StepRecord]) -> TrainingLoop:
    """A loop wired as the backends wire theirs: the guard, the metrics hook, the save."""
    loop = TrainingLoop(total)
    loop.add_loss_hook(LossGuard(factor=3.0, patience=2).check)
    loop.add_hook(seen.append)
    loop.add_save_hook(saves.append)
    return loop


def test_the_loop_runs_total_steps_and_returns_the_records_its_hooks_saw() -> None:
    saves: list[int] = []
    seen: list[StepRecord] = []
    every_second: list[int] = []
    loop = guarded_loop(5, saves, seen)
    loop.add_hook(lambda record: every_second.append(record.step), every=2)
    order = endless_batches()
    done = loop.run(order, ScriptedStep([5.0, 4.0, 3.0, 2.0, 1.0, 0.5]))

    assert list(done.steps) == seen
    assert [r.step for r in seen] == [1, 2, 3, 4, 5]
    assert [r.loss for r in seen] == [5.0, 4.0, 3.0, 2.0, 1.0]
    assert [r.lr for r in seen] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert (seen[0].samples, seen[0].tokens, seen[0].positions) == (4, 40, 48)
    assert every_second == [2, 4]
    assert saves == [5]  # once, at the end
    assert next(order) == [20, 21, 22, 23]  # five batches taken, the sixth still there


def test_a_step_s_seconds_cover_its_work_and_the_runtime_covers_every_step() -> None:
    done = TrainingLoop(3).run(endless_batches(), ScriptedStep([1.0] * 3, pause_s=0.02))
    assert all(record.seconds >= 0.02 for record in done.steps)
    assert done.runtime_s >= sum(record.seconds for record in done.steps)


@pytest.mark.parametrize(
    ("losses", "stop", "at"),
    [
        ([4.0, 3.0, math.nan, 2.0], NonFiniteLoss, 3),
        ([4.0, 3.0, 10.0, 11.0, 2.0], Divergence, 4),
    ],
    ids=["non-finite", "divergence"],
)
def test_the_guard_stops_the_run_before_the_update_and_the_checkpoint_is_saved_there(
    losses: list[float], stop: type[TrainingStopped], at: int
) -> None:
    saves: list[int] = []
    seen: list[StepRecord] = []
    step = ScriptedStep(losses)
    with pytest.raises(stop) as stopped:
        guarded_loop(len(losses), saves, seen).run(endless_batches(), step)
    assert stopped.value.step == at
    assert saves == [at]  # once, at the stopping step, not again at the end
    assert step.updated == list(range(1, at))  # the stopping step's update never ran
    assert [r.step for r in seen] == list(range(1, at))


def test_an_error_that_is_not_a_stop_saves_no_checkpoint() -> None:
    saves: list[int] = []

    def out_of_memory(
        step: int, indices: Sequence[int], loss_known: Callable[[float], None]
    ) -> StepOutcome:
        raise MemoryError("out of memory")

    with pytest.raises(MemoryError):
        guarded_loop(3, saves, []).run(endless_batches(), out_of_memory)
    assert saves == []


def test_a_hook_cannot_run_less_than_every_step() -> None:
    with pytest.raises(ValueError, match="not every 0"):
        TrainingLoop(3).add_hook(lambda record: None, every=0)


def test_the_loop_imports_neither_torch_nor_jax() -> None:
    check = (
        "import sys, trainers.loop; "
        "print(sorted({'torch', 'jax'} & {name.split('.')[0] for name in sys.modules}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
