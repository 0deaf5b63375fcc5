"""Guardrails for a milestone run: fingerprints of code, dependencies, CI and outputs to compare."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

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
GIT_TIMEOUT_S = 60
CHUNK_BYTES = 1024 * 1024
LOCK_LINE = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*(?P<version>[^\s;=#]+)")
METADATA_HEADER = re.compile(r"^(Name|Version):[ \t]*(\S+)", re.MULTILINE)
DIR = "dir"
DELETED = "deleted"


class GuardrailError(Exception):
    """A guardrail could not be checked; its message is one line."""


@dataclass(frozen=True)
class Fingerprint:
    """What a guardrail saw at one moment: a name -> digest/value mapping, JSON-serialisable."""

    entries: dict[str, str]

    def to_json(self) -> dict[str, str]:
        """A sorted copy of the entries, ready for ``json.dump``."""
        return dict(sorted(self.entries.items()))

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Fingerprint:
        """Rebuild a fingerprint saved with ``to_json``."""
        if not isinstance(data, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in data.items()
        ):
            raise GuardrailError("a fingerprint must be a JSON object of strings to strings")
        return cls(dict(data))

    def diff(self, later: Fingerprint) -> list[str]:
        """One sorted line per name that changed, was added or was removed by ``later``."""
        before, after = self.entries, later.entries
        lines = [f"added: {name}" for name in after.keys() - before.keys()]
        lines += [f"removed: {name}" for name in before.keys() - after.keys()]
        lines += [
            f"changed: {name}"
            for name in before.keys() & after.keys()
            if before[name] != after[name]
        ]
        return sorted(lines)


def code_fingerprint(root: Path) -> Fingerprint:
    """HEAD plus the working-tree digest of every tracked file; missing files are left out."""
    _require_top_level(root)
    entries = {"HEAD": _git(root, "rev-parse", "--verify", "HEAD").stdout.strip()}
    for name in _split_z(_git(root, "ls-files", "-z").stdout):
        digest = _digest(root / name)
        if digest is not None:
            entries[name] = digest
    return Fingerprint(entries)


def tree_is_clean(root: Path) -> list[str]:
    """Sorted tracked paths that differ from HEAD (staged or not); [] when the tree is clean."""
    _require_top_level(root)
    output = _git(root, "status", "--porcelain", "-z", "--untracked-files=no").stdout
    return sorted(set(_status_paths(output)))


def dependency_fingerprint() -> Fingerprint:
    """Every installed distribution, normalised name -> version."""
    entries: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name, version = _name_and_version(dist)
        # The first distribution found for a name is the one imports resolve to.
        if name and _normalise(name) not in entries:
            entries[_normalise(name)] = version
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


def read_lock(path: Path) -> Fingerprint:
    """Parse a pip-freeze style lock file (``name==version`` lines) into a fingerprint."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GuardrailError(f"{path}: cannot read lock file: {_one_line(str(exc))}") from exc
    entries: dict[str, str] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#") or line.startswith("-e "):
            continue
        match = LOCK_LINE.fullmatch(line)
        if match is None:  # its content is not quoted: a file that is no lock may hold anything
            raise GuardrailError(f"{path}:{number}: not a dependency lock ('name==version' lines)")
        name = _normalise(match["name"])
        if name in entries:
            raise GuardrailError(f"{path}:{number}: {name} is pinned more than once")
        entries[name] = match["version"]
    return Fingerprint(entries)


def lock_problem(root: Path, name: str | None) -> str | None:
    """Why the dependency lock ``name`` (absolute, or relative to ``root``) is unusable, or None."""
    if name is None:
        return None
    try:
        read_lock(root / name)
    except GuardrailError as error:
        return str(error)
    return None


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
    _require_top_level(root)
    # "matching" reports an ignored folder as one entry; the default mode with
    # --untracked-files=all lists every file inside it (all of .venv). The
    # excluding pathspecs keep git from walking the skipped folders at all.
    excluded = [f":(exclude,glob)**/{name}/**" for name in ignore]
    output = _git(
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
    for path in _status_paths(output):
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


def _require_top_level(root: Path) -> None:
    """Fail unless ``root`` is the top level of a git work tree, since paths are keyed from it."""
    done = _git(root, "rev-parse", "--show-toplevel", check=False)
    if done.returncode != 0:
        raise GuardrailError(f"{root}: not a git repository: {_one_line(done.stderr)}")
    top = done.stdout.strip()
    if Path(top).resolve() != root.resolve():
        raise GuardrailError(f"{root}: not the top level of its git repository ({top})")


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one git command in ``root``; a failure becomes a one-line GuardrailError."""
    command = ["git", "-c", "core.quotepath=off", "--no-optional-locks", *args]
    try:
        done = subprocess.run(
            command,
            cwd=root,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            check=False,
            timeout=GIT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise GuardrailError(f"{root}: git {args[0]} timed out after {GIT_TIMEOUT_S} s") from exc
    except OSError as exc:
        raise GuardrailError(f"{root}: cannot run git: {_one_line(str(exc))}") from exc
    if check and done.returncode != 0:
        reason = _one_line(done.stderr) or f"exit status {done.returncode}"
        raise GuardrailError(f"{root}: git {args[0]} failed: {reason}")
    return done


def _status_paths(output: str) -> Iterator[str]:
    """Each path named in ``git status --porcelain -z`` output."""
    fields = iter(_split_z(output))
    for field in fields:
        yield field[3:]
        # A rename or copy carries its source path as the next field.
        if field[0] in "RC":
            yield next(fields)


def _split_z(output: str) -> list[str]:
    return [field for field in output.split("\0") if field]


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
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise GuardrailError(f"{path}: cannot read: {_one_line(str(exc))}") from exc
    return digest.hexdigest()


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _one_line(text: str) -> str:
    return " ".join(text.split())
