"""Run folders for a session: each milestone's lock, a fresh folder that never reuses an earlier
one, the earlier run it follows (marked interrupted when its session never finished), and no
symlink written through on the way."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from harness.evidence import bundle
from harness.evidence.interrupted import mark_interrupted
from harness.phases.rehearsal import REHEARSAL_SUFFIX
from harness.record.run import RunRecord
from harness.spec.milestones import FreezeMilestone, Milestone

# How long a session waits for its milestone's lock: another session may be probing it for an
# instant (probes.neighbours).
LOCK_WAIT_S = 1.0


def symlink_refusal(
    root: Path, runs_dir: str, runs_root: Path, series: Iterable[str]
) -> str | None:
    """Why a session must not start, in one line: a symlink it would write through. That is the
    runs folder (``runs_dir`` as the ini spells it) or a folder above it, a milestone's lock file,
    one of its run folders, or anything inside the unfinished run it would mark interrupted."""
    given, folder = root / runs_dir, root
    for part in given.relative_to(root).parts if given.is_relative_to(root) else ():
        folder = folder / part
        if folder.is_symlink():
            return f"runs_dir = {runs_dir}: {_linked(folder, root)}; make it a real folder"
    for name in series:
        if (found := _symlinked(runs_root, name)) is not None:
            return f"--milestone {name}: {_linked(found, root)}; replace the link by its target"
    return None


def _linked(path: Path, root: Path) -> str:
    shown = path.relative_to(root) if path.is_relative_to(root) else path
    return (
        f"{shown} is a symlink (to {os.readlink(path)}) and no session writes through one, "
        "so nothing was written"
    )


def _symlinked(runs_root: Path, series: str) -> Path | None:
    """A symlink a session of ``series`` would write through."""
    folders = bundle.run_dirs(runs_root, series)
    paths = [bundle.lock_path(runs_root, series), *folders]
    if folders and not folders[-1].is_symlink() and not bundle.session_finished(folders[-1]):
        for current, dirnames, filenames in os.walk(folders[-1]):  # never enters a linked folder
            paths += [Path(current, name) for name in dirnames + filenames]
    return next((path for path in paths if path.is_symlink()), None)


def series(milestone: Milestone | FreezeMilestone) -> str:
    """The name a milestone's run folders share: ``<id>`` or ``<id>-rehearsal``."""
    return milestone.id + (REHEARSAL_SUFFIX if milestone.rehearsal else "")


def hold_lock(runs_root: Path, name: str) -> FileLock:
    """Hold ``.<series>.lock`` for the session; the OS releases it if the process dies."""
    lock = FileLock(bundle.lock_path(runs_root, name))
    try:
        lock.acquire(timeout=LOCK_WAIT_S)  # another session may probe it for an instant
    except Timeout:
        raise pytest.UsageError(
            f"--milestone {name}: another session is running this milestone "
            f"(lock {lock.lock_file}); wait for it to finish"
        ) from None
    return lock


def allocate_run(runs_root: Path, name: str) -> tuple[Path, RunRecord]:
    """A fresh ``<series>_v<N>`` folder and the record of the run in it, which notes the run it
    follows; that one is marked interrupted if its session never finished."""
    earlier = bundle.run_dirs(runs_root, name)
    run_dir = bundle.allocate_run_dir(runs_root, name)
    record = RunRecord()
    if earlier:
        previous = earlier[-1]
        if not bundle.session_finished(previous):
            mark_interrupted(previous, run_dir.name, record.started_at)
        record.follows = previous.name
    return run_dir, record


def remove_unused(run_dir: Path) -> None:
    """Remove the folder of a run that ran nothing, holding at most the session's report."""
    if run_dir.is_dir() and {path.name for path in run_dir.iterdir()} <= {bundle.REPORT, "assets"}:
        shutil.rmtree(run_dir)
