"""A folder made read-only as Kaggle mounts /kaggle/input, and the state of a tree to prove that a
session left it untouched (root may write into a read-only folder: the state says what happened)."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WRITE = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def tree_state(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every entry below ``folder``: mode, modification time (ns) and sha256 of a file's bytes."""
    state = {}
    for path in [folder, *sorted(folder.rglob("*"))]:
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        state[str(path.relative_to(folder))] = (info.st_mode, info.st_mtime_ns, digest)
    return state


@contextmanager
def read_only(folder: Path) -> Iterator[dict[str, tuple[int, int, str]]]:
    """``folder`` and everything below it without write permission; yields its state as it was
    made read-only, and gives the permission back afterwards (for the temporary folder's
    cleanup)."""
    entries = [folder, *folder.rglob("*")]
    for path in reversed(entries):  # the files first: a folder loses its write bit last
        os.chmod(path, path.stat().st_mode & ~WRITE)
    try:
        yield tree_state(folder)
    finally:
        for path in entries:
            os.chmod(path, path.stat().st_mode | stat.S_IWUSR)
