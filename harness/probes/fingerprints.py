"""Fingerprints of code, dependencies, CI and outputs, for the run's rules to compare."""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Sequence
from pathlib import Path

from harness.hashing import file_sha256
from harness.probes.git import git, require_top_level, split_z, status_paths
from harness.record.fingerprints import Fingerprint
from harness.spec.dependency_lock import normalise
from harness.text import squeezed

KNOWN_CACHES = (
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    ".venv",
    ".git",
)
CI_PATHS = (".ci", ".github/workflows", ".gitlab-ci.yml")
METADATA_HEADER = re.compile(r"^(Name|Version):[ \t]*(\S+)", re.MULTILINE)
DIR = "dir"
DELETED = "deleted"


class GuardrailError(Exception):
    """A guardrail could not be checked; its message is one line."""


def code_fingerprint(root: Path) -> Fingerprint:
    """HEAD plus the working-tree digest of every tracked file; missing files are left out."""
    require_top_level(root)
    entries = {"HEAD": git(root, "rev-parse", "--verify", "HEAD").stdout.strip()}
    for name in split_z(git(root, "ls-files", "-z").stdout):
        digest = _digest(root / name)
        if digest is not None:
            entries[name] = digest
    return Fingerprint(entries)


def dependency_fingerprint() -> Fingerprint:
    """Every installed distribution, normalised name -> version."""
    entries: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name, version = _name_and_version(dist)
        # The first distribution found for a name is the one imports resolve to.
        if name and normalise(name) not in entries:
            entries[normalise(name)] = version
    return Fingerprint(entries)


def _name_and_version(dist: importlib.metadata.Distribution) -> tuple[str | None, str]:
    """A distribution's name and version from its metadata's headers: ``dist.metadata`` parses
    the whole file as an e-mail, long description included, which costs seconds over a
    few hundred packages."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    if text is None:
        return dist.metadata["Name"], dist.version
    headers = dict(METADATA_HEADER.findall(text.split("\n\n", 1)[0]))
    return headers.get("Name"), headers.get("Version", "")


def ci_fingerprint(root: Path) -> Fingerprint:
    """Digest of every file under ``.ci/``, ``.github/workflows/`` and ``.gitlab-ci.yml``."""
    entries: dict[str, str] = {}
    for relative in CI_PATHS:
        start = root / relative
        if start.is_dir() and not start.is_symlink():
            entries.update(_walk(start, root, ignore=()))
        elif os.path.lexists(start):
            entries[relative] = _digest(start) or DELETED
    return Fingerprint(entries)


def outputs_snapshot(root: Path, ignore: Sequence[str] = KNOWN_CACHES) -> Fingerprint:
    """Every untracked, ignored or modified path, by size and mtime, skipping paths through ``ignore``."""
    require_top_level(root)
    # "matching" reports an ignored folder as one entry; the default mode with
    # --untracked-files=all lists every file inside it (all of .venv). The
    # excluding pathspecs keep git from walking the skipped folders at all.
    excluded = [f":(exclude,glob)**/{name}/**" for name in ignore]
    output = git(
        root,
        "status",
        "--porcelain",
        "-z",
        "--ignored=matching",
        "--untracked-files=all",
        "--",
        ".",
        *excluded,
    ).stdout
    entries: dict[str, str] = {}
    for path in status_paths(output):
        relative = path.rstrip("/")
        if _skipped(relative, ignore):
            continue
        target = root / relative
        if not os.path.lexists(target):
            entries[relative] = DELETED
        elif target.is_dir() and not target.is_symlink():
            entries.update(_walk(target, root, ignore))
        else:
            entries[relative] = _signature(target) or DELETED
    return Fingerprint(entries)


def outside(changes: list[str], allowed: Path, root: Path) -> list[str]:
    """The diff lines whose path is not inside ``allowed`` (a folder under ``root``)."""
    base = root.resolve()
    folder = (allowed if allowed.is_absolute() else root / allowed).resolve()
    try:
        prefix = folder.relative_to(base).as_posix()
    except ValueError as exc:
        raise GuardrailError(f"{allowed}: not a folder under {root}") from exc
    return [line for line in changes if not _inside(line.partition(": ")[2], prefix)]


def _inside(path: str, prefix: str) -> bool:
    return prefix == "." or path == prefix or path.startswith(prefix + "/")


def _walk(folder: Path, root: Path, ignore: Sequence[str]) -> dict[str, str]:
    """Digest every file under ``folder``; an empty folder is recorded as ``dir``."""
    entries: dict[str, str] = {}
    for current, dirnames, filenames in os.walk(folder):
        here = Path(current)
        names = [name for name in dirnames + filenames if name not in ignore]
        if not (dirnames or filenames):
            entries[_key(here, root)] = DIR
        # os.walk does not enter symlinked folders, so those are digested as links.
        dirnames[:] = [
            name for name in dirnames if name not in ignore and not (here / name).is_symlink()
        ]
        entered = set(dirnames)
        for name in names:
            if name not in entered:
                entries[_key(here / name, root)] = _signature(here / name) or DELETED
    return entries


def _key(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _skipped(relative: str, ignore: Sequence[str]) -> bool:
    return any(part in ignore for part in relative.split("/"))


def _signature(path: Path) -> str | None:
    """Size and modification time of an output: earlier bundles hold multi-GB checkpoints,
    which a content hash would read in full at every check."""
    try:
        if path.is_symlink():
            return f"link:{os.readlink(path)}"
        if path.is_dir():
            return DIR
        info = path.stat()
    except FileNotFoundError:
        return None
    return f"{info.st_size}:{info.st_mtime_ns}"


def _digest(path: Path) -> str | None:
    """sha256 of a file, a link's target, ``dir`` for a folder, None if it is gone."""
    try:
        if path.is_symlink():
            return f"link:{os.readlink(path)}"
        if path.is_dir():
            return DIR
        return file_sha256(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise GuardrailError(f"{path}: cannot read: {squeezed(str(exc))}") from exc

