"""The pre-flight snapshot: commit, Python, OS, CPU, RAM, framework versions, and the GPU as seen by nvidia-smi."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FRAMEWORKS = ("torch", "transformers", "jax", "jaxlib", "flax", "optax", "google-tunix", "pytest")


@dataclass(frozen=True)
class GitState:
    """The commit a run was made from and whether the tree had changes."""

    commit: str
    dirty: bool


def git_state(root: Path) -> GitState:
    """HEAD and the dirty flag of the repository holding ``root``."""
    try:
        head = _run(["git", "rev-parse", "HEAD"], root)
        status = _run(["git", "status", "--porcelain", "--untracked-files=no"], root)
    except (OSError, subprocess.CalledProcessError):
        return GitState(commit=f"no git commit at {root}", dirty=True)
    return GitState(commit=head.strip(), dirty=bool(status.strip()))


def _run(command: list[str], cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True, timeout=60)
    return done.stdout


def installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def torch_cuda_version() -> str:
    """``torch.version.cuda`` without importing torch when it is absent."""
    if installed_version("torch") == "not installed":
        return "torch not installed"
    import torch

    return str(torch.version.cuda or "none (CPU build)")


def memory_total() -> str:
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return "unknown to os.sysconf on this platform"
    return f"{pages * page_size / 2**30:.1f} GiB"


def env_snapshot(root: Path) -> dict[str, str]:
    """Facts about this machine and checkout, as ordered key/value pairs."""
    git = git_state(root)
    facts = {
        "commit": git.commit,
        "dirty": str(git.dirty).lower(),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "os": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "ram": memory_total(),
        "torch.version.cuda": torch_cuda_version(),
    }
    facts.update({name: installed_version(name) for name in FRAMEWORKS})
    return facts


def render_env_snapshot(facts: dict[str, str]) -> str:
    width = max(len(key) for key in facts)
    return "".join(f"{key:<{width}}  {value}\n" for key, value in facts.items())


def gpu_snapshot() -> str:
    """``nvidia-smi`` output, or why there is none."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "nvidia-smi not found on PATH: no NVIDIA driver on this machine.\n"
    try:
        done = subprocess.run([smi], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nvidia-smi could not run: {exc}\n"
    if done.returncode != 0:
        return f"nvidia-smi exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout
