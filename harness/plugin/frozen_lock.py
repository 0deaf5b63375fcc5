"""The lock on frozen artifacts as syrupy sees it: one committed JSON snapshot per freeze milestone
of its frozen ZIP's sha256s and sizes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from syrupy.data import SnapshotCollections
from syrupy.extensions.json import JSONSnapshotExtension

from harness.spec.milestones import LOCKS_DIR, FreezeMilestone, Milestone


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
