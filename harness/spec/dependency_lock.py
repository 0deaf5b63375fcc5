"""A spec's dependency lock: a pip-freeze style file of ``name==version`` lines."""

from __future__ import annotations

import re
from pathlib import Path

LOCK_LINE = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*(?P<version>[^\s;=#]+)")


class LockFileError(ValueError):
    """A dependency lock that cannot be read or is no lock; one line naming the file and line."""


def normalise(name: str) -> str:
    """A distribution name as pip compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """The pins of a lock file: normalised name -> version."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        problem = " ".join(str(exc).split())
        raise LockFileError(f"{path}: cannot read lock file: {problem}") from exc
    pins: dict[str, str] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("-e "):
            continue
        match = LOCK_LINE.fullmatch(line)
        if match is None:  # its content is not quoted: a file that is no lock may hold anything
            raise LockFileError(f"{path}:{number}: not a dependency lock ('name==version' lines)")
        name = normalise(match["name"])
        if name in pins:
            raise LockFileError(f"{path}:{number}: {name} is pinned more than once")
        pins[name] = match["version"]
    return pins


def lock_problem(root: Path, name: str | None) -> str | None:
    """Why the dependency lock ``name`` (absolute, or relative to ``root``) is unusable, or None."""
    if name is None:
        return None
    try:
        read_lock(root / name)
    except LockFileError as error:
        return str(error)
    return None
