"""Every git call the harness makes: one runner, the repository's top level, HEAD and the paths
that differ from it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.text import squeezed

GIT_TIMEOUT_S = 60


class GitError(Exception):
    """git could not answer, or ``root`` is not where a repository's paths are keyed from; one
    line."""


@dataclass(frozen=True)
class GitState:
    """The commit a run was made from and whether the tree had changes."""

    commit: str
    dirty: bool


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one git command in ``root``; a failure becomes a one-line GitError."""
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
        raise GitError(f"{root}: git {args[0]} timed out after {GIT_TIMEOUT_S} s") from exc
    except OSError as exc:
        raise GitError(f"{root}: cannot run git: {squeezed(str(exc))}") from exc
    if check and done.returncode != 0:
        reason = squeezed(done.stderr) or f"exit status {done.returncode}"
        raise GitError(f"{root}: git {args[0]} failed: {reason}")
    return done


def git_top(root: Path) -> Path:
    """The top level of the git repository holding ``root``; the rules need one."""
    done = git(root, "rev-parse", "--show-toplevel", check=False)
    if done.returncode != 0:
        raise GitError(f"{root}: not a git repository, so code changes cannot be ruled out")
    return Path(done.stdout.strip())


def require_top_level(root: Path) -> None:
    """Fail unless ``root`` is the top level of a git work tree, since paths are keyed from it."""
    done = git(root, "rev-parse", "--show-toplevel", check=False)
    if done.returncode != 0:
        raise GitError(f"{root}: not a git repository: {squeezed(done.stderr)}")
    top = done.stdout.strip()
    if Path(top).resolve() != root.resolve():
        raise GitError(f"{root}: not the top level of its git repository ({top})")


def dirty_paths(root: Path) -> list[str]:
    """Sorted tracked paths that differ from HEAD (staged or not); [] when the tree is clean."""
    require_top_level(root)
    output = git(root, "status", "--porcelain", "-z", "--untracked-files=no").stdout
    return sorted(set(status_paths(output)))


def git_state(root: Path) -> GitState:
    """HEAD and the dirty flag of the repository holding ``root``."""
    try:
        head = git(root, "rev-parse", "HEAD").stdout
        status = git(root, "status", "--porcelain", "--untracked-files=no").stdout
    except GitError:
        return GitState(commit=f"no git commit at {root}", dirty=True)
    return GitState(commit=head.strip(), dirty=bool(status.strip()))


def status_paths(output: str) -> Iterator[str]:
    """Each path named in ``git status --porcelain -z`` output."""
    fields = iter(split_z(output))
    for field in fields:
        yield field[3:]
        # A rename or copy carries its source path as the next field.
        if field[0] in "RC":
            yield next(fields)


def split_z(output: str) -> list[str]:
    return [field for field in output.split("\0") if field]

