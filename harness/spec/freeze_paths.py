"""The paths a freeze spec names: ZIP entry names as written, and files that must stay inside the
project or the source bundle, symlinks followed."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath


def unsafe_name(name: str) -> bool:
    """Whether an archive name is absolute, climbs with ``..``, or holds a backslash or a colon."""
    pure = PurePosixPath(name)
    return pure.is_absolute() or ".." in pure.parts or "\\" in name or ":" in name


def escape_problem(
    root: Path, source: str, files: Iterable[str], extra: Iterable[str]
) -> str | None:
    """Where a freeze spec's paths, symlinks followed, lead out: the source and the extra files out
    of the project at ``root``, the files out of the source bundle; None when all stay inside."""
    if escaping(root, [source]):
        return f"key 'source': {source!r} leads outside the project (a symlink)"
    for key, base, names in (("files", root / source, files), ("extra_files", root, extra)):
        if outside := escaping(base, names):
            return f"key '{key}': {outside[0]!r} leads outside {base} (a symlink)"
    return None


def escaping(base: Path, names: Iterable[str]) -> list[str]:
    """The names whose path below ``base``, symlinks and ``..`` followed, leads outside it."""
    inside = base.resolve()
    found = []
    for name in names:
        try:
            if (inside / name).resolve().is_relative_to(inside):
                continue
        except (OSError, RuntimeError, ValueError):
            pass  # a symlink loop or a NUL byte: nothing shows that it stays inside
        found.append(name)
    return found
