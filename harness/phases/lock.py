"""The lock on frozen artifacts: a committed syrupy snapshot of each frozen ZIP's sha256s, sizes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from syrupy.data import SnapshotCollections
from syrupy.extensions.json import JSONSnapshotExtension

from harness.evidence.submission_zip import SUBMISSION_ZIP, lock_record
from harness.record.run import MilestoneRun
from harness.spec.milestones import FreezeMilestone, Milestone

LOCKS_DIR = Path("configs/frozen")


class FrozenLock(JSONSnapshotExtension):
    """One JSON snapshot per freeze milestone, ``configs/frozen/<id>.json``, shared by every test
    that checks it: the freeze milestone writes it, every milestone that declares it reads it."""

    locks_dir = LOCKS_DIR
    in_scope: frozenset[str] = frozenset()

    def discover_snapshots(self, **kwargs: Any) -> SnapshotCollections:
        """Only the locks of the session's milestones: syrupy judges every snapshot it discovers,
        and a lock that no selected milestone declares is neither unused nor to be deleted."""
        kept = SnapshotCollections()
        for collection in super().discover_snapshots(**kwargs):
            if Path(collection.location).stem in self.in_scope:
                kept.add(collection)
        return kept

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        return str(cls.locks_dir)

    @classmethod
    def get_snapshot_name(cls, *, test_location: Any, index: Any = 0) -> str:
        return str(index)


def frozen_lock_extension(root: Path, in_scope: Iterable[str]) -> type[FrozenLock]:
    """The lock extension of the project at ``root``, wherever the phase tests were collected,
    that sees the locks ``in_scope`` only."""
    attributes = {"locks_dir": root / LOCKS_DIR, "in_scope": frozenset(in_scope)}
    return type("FrozenLock", (FrozenLock,), attributes)


def locks_in_scope(milestones: list[Milestone | FreezeMilestone]) -> set[str]:
    """The locks a session writes or checks: its freeze milestones' and those the others declare."""
    freezes = {m.id for m in milestones if m.spec.kind == "freeze"}
    return freezes | {freeze_id for m in milestones for freeze_id in m.spec.frozen}


def frozen_zip(run: MilestoneRun, freeze_id: str) -> Path:
    """Where freeze ``freeze_id`` keeps its ZIP: ``<runs_dir>/<id>/submission.zip``."""
    return run.run_dir.parent / freeze_id / SUBMISSION_ZIP


def current_record(run: MilestoneRun, freeze_id: str) -> dict[str, Any]:
    """The lock record of the frozen ZIP as it is on disk now."""
    path = frozen_zip(run, freeze_id)
    assert path.is_file(), f"frozen {freeze_id}: {path.relative_to(run.root)} is missing"
    return lock_record(path)


def mismatch(run: MilestoneRun, freeze_id: str) -> str:
    """The one line for a frozen ZIP its lock does not hold; syrupy's diff follows it."""
    lock = (LOCKS_DIR / f"{freeze_id}.json").as_posix()
    if not (run.root / lock).is_file():
        return f"frozen {freeze_id}: no lock {lock}; freezing with --snapshot-update writes it"
    shown = frozen_zip(run, freeze_id).relative_to(run.root).as_posix()
    return f"frozen {freeze_id}: {shown} does not match its lock {lock}"
