"""Other milestones' sessions beside this one in the runs folder: which were live, and what they
may have written since (theirs, not this session's outputs)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from filelock import FileLock, Timeout

from harness.evidence.bundle import LOCK_SUFFIX, run_dirs, series_of, session_finished
from harness.record.fingerprints import Neighbour


def neighbours(runs_root: Path, own: Iterable[str]) -> dict[str, Neighbour]:
    """Every other series with a lock file in ``runs_root``; ``own`` are this session's series."""
    found = {}
    for series, lock in _locks(runs_root, own):
        folders = run_dirs(runs_root, series)
        finished = next((_number(f) for f in reversed(folders) if session_finished(f)), 0)
        found[series] = Neighbour(_held(lock), _newest(folders), finished + 1)
    return found


def written_by_others(
    runs_root: Path, start: dict[str, Neighbour], own: Iterable[str]
) -> list[Path]:
    """What other milestones' sessions may have written since ``start``: for each series whose
    lock was held then, or that opened a run folder since, its lock file and its run folders from
    the first one still open at the start. Every other series' folders stay this session's to
    keep clean."""
    paths = []
    for series, lock in _locks(runs_root, own):
        then = start.get(series, Neighbour(live=False, newest=0, open_from=1))
        folders = run_dirs(runs_root, series)
        if then.live or _newest(folders) > then.newest:
            paths += [lock, *(f for f in folders if _number(f) >= then.open_from)]
    return paths


def _locks(runs_root: Path, own: Iterable[str]) -> list[tuple[str, Path]]:
    skip = set(own)
    found = ((series_of(path), path) for path in sorted(runs_root.glob(f".*{LOCK_SUFFIX}")))
    return [(series, path) for series, path in found if series is not None and series not in skip]


def _held(lock: Path) -> bool:
    """Whether a session holds ``lock``: taking it for an instant tells. A session that starts
    in that instant waits for it (``LOCK_WAIT_S``) instead of being refused."""
    probe = FileLock(lock)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:
        return False  # unreadable: counted as not live, so that series' folders stay checked
    probe.release()
    return False


def _number(run_dir: Path) -> int:
    return int(run_dir.name.rpartition("_v")[2])


def _newest(folders: list[Path]) -> int:
    return _number(folders[-1]) if folders else 0
