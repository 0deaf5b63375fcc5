"""The lock phase: the frozen ZIP as it is on disk, against its committed lock record."""

from __future__ import annotations

from typing import Any

from harness.evidence.submission_zip import frozen_zip, lock_record
from harness.record.run import MilestoneRun
from harness.spec.milestones import LOCKS_DIR


def current_record(run: MilestoneRun, freeze_id: str) -> dict[str, Any]:
    """The lock record of the frozen ZIP as it is on disk now."""
    path = frozen_zip(run.run_dir.parent, freeze_id)
    assert path.is_file(), f"frozen {freeze_id}: {path.relative_to(run.root)} is missing"
    return lock_record(path)


def mismatch(run: MilestoneRun, freeze_id: str) -> str:
    """The one line for a frozen ZIP its lock does not hold; syrupy's diff follows it."""
    lock = (LOCKS_DIR / f"{freeze_id}.json").as_posix()
    if not (run.root / lock).is_file():
        return f"frozen {freeze_id}: no lock {lock}; freezing with --snapshot-update writes it"
    shown = frozen_zip(run.run_dir.parent, freeze_id).relative_to(run.root).as_posix()
    return f"frozen {freeze_id}: {shown} does not match its lock {lock}"
