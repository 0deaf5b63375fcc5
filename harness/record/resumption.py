"""A run that goes on from an earlier, interrupted one: which bundle, from which checkpoint, and
the earlier steps its curve starts with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainers.protocol import StepRecord


@dataclass(frozen=True)
class Resumption:
    """The earlier bundle, the step its last complete checkpoint holds, and that bundle's steps up
    to it: the new run's curve is theirs followed by its own."""

    run_id: str
    path: Path
    step: int
    checkpoint: Path
    steps: tuple[StepRecord, ...]

    @property
    def line(self) -> str:
        """How the manifest's note and the summary say it."""
        return f"resumes {self.run_id} at step {self.step}"


@dataclass(frozen=True)
class RunInputs:
    """What must be the same for a run to go on from another: the commit, the training config's,
    dataset's and evalset's sha256, and every installed distribution's version."""

    commit: str
    training_config: str
    dataset: str
    evalset: str
    dependencies: dict[str, str]
