"""Resumable checkpoints: the full training state at a step, each in a folder of its own under
``checkpoints/``, written atomically (a temporary folder renamed once complete), the last K kept.

What a checkpoint holds besides its ``state.json`` (weights, optimizer state with the schedule's
position, RNG state) is the backend's to write and read; the position in the data order is the
step itself, since every step consumes one batch of the seeded order.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

STATE_FILE = "state.json"
PREFIX = "step_"
TEMPORARY = ".partial-"

WriteState = Callable[[Path, int], None]
"""Writes the backend's state after a step (weights, optimizer, schedule, RNG) into an empty
folder."""


@dataclass(frozen=True)
class CheckpointPlan:
    """Where a run keeps its resumable checkpoints, how often it writes one and how many stay."""

    root: Path
    every: int | None
    """Steps between checkpoints; None: only when the run stops resumably (over budget)."""
    keep: int


def folder(root: Path, step: int) -> Path:
    return root / f"{PREFIX}{step:09d}"


def complete(root: Path) -> list[tuple[int, Path]]:
    """The complete checkpoints under ``root``, oldest first: a folder that has its
    ``state.json`` (written last, so an interrupted write is never mistaken for one)."""
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        number = path.name.removeprefix(PREFIX)
        # The step is read from the name: a folder being pruned meanwhile is simply not found.
        if path.name.startswith(PREFIX) and number.isdigit() and (path / STATE_FILE).is_file():
            found.append((int(number), path))
    return sorted(found)


def latest(root: Path) -> tuple[int, Path] | None:
    """The newest complete checkpoint under ``root``, if any."""
    found = complete(root)
    return found[-1] if found else None


def read_step(path: Path) -> int:
    """The step a checkpoint folder holds the state after."""
    return int(json.loads((path / STATE_FILE).read_text(encoding="utf-8"))["step"])


class Checkpointer:
    """A loop checkpoint hook: the state after ``step`` into ``checkpoints/step_<N>/``."""

    def __init__(self, plan: CheckpointPlan, write_state: WriteState) -> None:
        self.plan, self.write_state = plan, write_state

    def __call__(self, step: int) -> None:
        root, final = self.plan.root, folder(self.plan.root, step)
        if final.is_dir():
            return
        partial = root / f"{TEMPORARY}{final.name}"
        shutil.rmtree(partial, ignore_errors=True)  # left by a write that was killed
        partial.mkdir(parents=True)
        self.write_state(partial, step)
        state = {"step": step, "batches_consumed": step}
        with (partial / STATE_FILE).open("w", encoding="utf-8") as handle:
            json.dump(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, final)
        for _, old in complete(root)[: -self.plan.keep]:
            shutil.rmtree(old)
