"""Resumable checkpoints without a framework: atomic folders, the last K kept, the loop's
checkpoint hooks on schedule and at a resumable stop, and a resumed loop's data order."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_training_loop import ScriptedStep, endless_batches
from trainers.checkpoints import STATE_FILE, Checkpointer, CheckpointPlan, complete, latest
from trainers.guards import OverBudget
from trainers.loop import TrainingLoop
from trainers.protocol import StepRecord


def write_marker(folder: Path, step: int) -> None:
    (folder / "weights.bin").write_bytes(step.to_bytes(4, "little"))


def test_checkpoints_are_whole_folders_and_only_the_newest_k_stay(tmp_path: Path) -> None:
    checkpointer = Checkpointer(CheckpointPlan(tmp_path, every=2, keep=2), write_marker)
    for step in (2, 4, 6):
        checkpointer(step)
    # A write killed halfway leaves a folder without its state file: never taken for a checkpoint.
    (tmp_path / "step_000000008").mkdir()
    (tmp_path / ".partial-step_000000010").mkdir()
    assert [step for step, _ in complete(tmp_path)] == [4, 6]
    found = latest(tmp_path)
    assert found is not None and found[0] == 6
    assert (found[1] / "weights.bin").read_bytes() == (6).to_bytes(4, "little")
    assert (found[1] / STATE_FILE).is_file()
    assert latest(tmp_path / "none") is None


def test_a_write_that_fails_leaves_no_complete_checkpoint(tmp_path: Path) -> None:
    def broken(folder: Path, step: int) -> None:
        (folder / "half").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        Checkpointer(CheckpointPlan(tmp_path, every=1, keep=1), broken)(3)
    assert complete(tmp_path) == []


def test_the_loop_checkpoints_on_schedule_before_step_hooks_and_at_an_over_budget_stop() -> None:
    events: list[str] = []
    loop = TrainingLoop(10)
    loop.add_checkpoint_hook(lambda step: events.append(f"checkpoint {step}"), every=2)
    loop.add_save_hook(lambda step: events.append(f"save {step}"))

    def hook(record: StepRecord) -> None:
        events.append(f"step {record.step}")
        if record.step == 5:
            raise OverBudget("over budget", record.step, record.loss)

    loop.add_hook(hook)
    with pytest.raises(OverBudget):
        loop.run(endless_batches(), ScriptedStep([1.0] * 10))
    assert events == [
        "step 1", "checkpoint 2", "step 2", "step 3", "checkpoint 4", "step 4", "step 5",
        "checkpoint 5", "save 5",
    ]


def test_a_resumed_loop_numbers_its_steps_on_and_skips_the_consumed_batches() -> None:
    seen: list[tuple[int, list[int]]] = []
    step = ScriptedStep([1.0] * 6)
    original = step.__call__

    def recording(number: int, indices: list[int], known: object) -> object:
        seen.append((number, list(indices)))
        return original(number, indices, known)  # type: ignore[arg-type]

    done = TrainingLoop(6).run(endless_batches(2), recording, start=4)  # type: ignore[arg-type]
    assert seen == [(5, [8, 9]), (6, [10, 11])]
    assert [record.step for record in done.steps] == [5, 6]
