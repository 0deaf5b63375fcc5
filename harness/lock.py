"""The lock on frozen artifacts: a committed syrupy snapshot of each frozen ZIP's sha256 and sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from syrupy.extensions.json import JSONSnapshotExtension

from harness.freeze import SUBMISSION_ZIP, lock_record
from harness.run import MilestoneRun

LOCKS_DIR = Path("configs/frozen")


class FrozenLock(JSONSnapshotExtension):
    """One JSON snapshot per freeze milestone, ``configs/frozen/<id>.json``, shared by every test
    that checks it: the freeze milestone writes it, every milestone that declares it reads it."""

    locks_dir = LOCKS_DIR

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        return str(cls.locks_dir)

    @classmethod
    def get_snapshot_name(cls, *, test_location: Any, index: Any = 0) -> str:
        return str(index)


def frozen_lock_extension(root: Path) -> type[FrozenLock]:
    """The lock extension of the project at ``root``, wherever the phase tests were collected."""
    return type("FrozenLock", (FrozenLock,), {"locks_dir": root / LOCKS_DIR})


def frozen_zip(run: MilestoneRun, freeze_id: str) -> Path:
    """Where the freeze milestone ``freeze_id`` keeps its ZIP: ``<runs_dir>/<id>/submission.zip``."""
    return run.run_dir.parent / freeze_id / SUBMISSION_ZIP


def current_record(run: MilestoneRun, freeze_id: str) -> dict[str, Any]:
    """The lock record of the frozen ZIP as it is on disk now."""
    path = frozen_zip(run, freeze_id)
    assert path.is_file(), f"frozen {freeze_id}: {path.relative_to(run.root)} is missing"
    return lock_record(path)
