"""Facts about this machine and checkout: commit, Python, OS, CPU, RAM, framework versions, and
the GPU as nvidia-smi sees it."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from harness.probes.git import git_state

FRAMEWORKS = (
    "torch", "transformers", "peft", "bitsandbytes",
    "jax", "jaxlib", "flax", "optax", "google-tunix", "pytest",
)  # fmt: skip


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


def machine_facts(root: Path) -> dict[str, str]:
    """Facts about this machine and checkout, as ordered key/value pairs (``env_snapshot.txt``)."""
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


def render_facts(facts: dict[str, str]) -> str:
    """One aligned ``key  value`` line per fact."""
    width = max(len(key) for key in facts)
    return "".join(f"{key:<{width}}  {value}\n" for key, value in facts.items())


def nvidia_smi_report() -> str:
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
