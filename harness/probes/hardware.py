"""Hardware facts detected for real (torch.cuda, jax.devices, sys.platform) and checked."""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.spec.milestones import HardwareRequirement


@dataclass(frozen=True)
class Probe:
    """What was looked for and what was found."""

    looked_for: str
    found: str
    count: int


def probe_platform() -> str:
    """``linux``, ``windows`` or ``darwin``, from ``sys.platform``."""
    return {"win32": "windows", "cygwin": "windows"}.get(sys.platform, sys.platform)


def probe_cuda(backend: str) -> Probe:
    """Count CUDA devices the way the milestone's backend would see them."""
    if backend == "jax":
        return _probe_jax("gpu")
    if importlib.util.find_spec("torch") is None:
        return Probe("torch.cuda.device_count()", "torch is not installed", 0)
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        found = (
            f"no CUDA device (torch {torch.__version__}, torch.version.cuda={torch.version.cuda})"
        )
    else:
        names = sorted({torch.cuda.get_device_name(i) for i in range(count)})
        found = f"{count} x {', '.join(names)}"
    return Probe("torch.cuda.device_count()", found, count)


def _probe_jax(kind: str) -> Probe:
    looked_for = f"jax.devices({kind!r})"
    if importlib.util.find_spec("jax") is None:
        return Probe(looked_for, "jax is not installed", 0)
    import jax

    try:
        devices = jax.devices(kind)
    except RuntimeError:
        found = (
            f"no {kind} backend (jax {jax.__version__}, default backend {jax.default_backend()})"
        )
        return Probe(looked_for, found, 0)
    kinds = sorted({device.device_kind for device in devices})
    return Probe(looked_for, f"{len(devices)} x {', '.join(kinds)}", len(devices))


@dataclass(frozen=True)
class DeviceMemory:
    """The memory of the device a run trains on; of several devices, the one with least free."""

    device: str
    total: int
    """Bytes the device has."""
    available: int
    """Bytes free for the run now."""
    looked_with: str

    def describe(self) -> str:
        free, total = self.available / 2**30, self.total / 2**30
        return f"{self.device} has {free:.1f} GiB free of {total:.1f} GiB ({self.looked_with})"


def probe_memory(accelerator: str, devices: int, backend: str = "torch") -> DeviceMemory | None:
    """The memory of the first ``devices`` accelerators as the backend sees them (the one with
    least free), or of the RAM; None where unknown."""
    if accelerator == "cpu":
        return _probe_ram()
    if backend == "jax":
        return _probe_jax_memory(accelerator, devices)
    if accelerator != "cuda" or importlib.util.find_spec("torch") is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    found = []
    for index in range(min(devices, torch.cuda.device_count())):
        free, _ = torch.cuda.mem_get_info(index)
        total = torch.cuda.get_device_properties(index).total_memory
        name = f"cuda:{index} ({torch.cuda.get_device_name(index)})"
        found.append(DeviceMemory(name, total, free, "torch.cuda.mem_get_info"))
    return min(found, key=lambda memory: memory.available, default=None)


JAX_PLATFORMS = {"cuda": "gpu", "tpu": "tpu"}


def _probe_jax_memory(accelerator: str, devices: int) -> DeviceMemory | None:
    """HBM from ``jax.Device.memory_stats()`` (``bytes_limit`` less ``bytes_in_use``); None where
    the platform reports none."""
    if importlib.util.find_spec("jax") is None:
        return None
    import jax

    try:
        # This process's own devices: another host's answer no memory_stats() here.
        found = jax.local_devices(backend=JAX_PLATFORMS[accelerator])[:devices]
    except RuntimeError:
        return None
    memories = []
    for device in found:
        stats = device.memory_stats() or {}
        if "bytes_limit" not in stats:
            return None
        total = int(stats["bytes_limit"])
        name = f"{device.platform}:{device.id} ({device.device_kind})"
        free = total - int(stats.get("bytes_in_use", 0))
        memories.append(DeviceMemory(name, total, free, "jax.Device.memory_stats()"))
    return min(memories, key=lambda memory: memory.available, default=None)


def _probe_ram() -> DeviceMemory | None:
    """RAM: MemAvailable from /proc/meminfo on Linux; elsewhere only the total is known."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        return DeviceMemory("cpu RAM", total, total, "os.sysconf: the total, free RAM unknown")
    fields = dict(line.split(":", 1) for line in meminfo.read_text().splitlines() if ":" in line)
    available = int(fields["MemAvailable"].split()[0]) * 1024
    return DeviceMemory("cpu RAM", total, available, "MemAvailable in /proc/meminfo")


def probe_cpu() -> Probe:
    cores = os.cpu_count() or 1
    return Probe("os.cpu_count()", f"{cores} x {platform.processor() or platform.machine()}", cores)


# A known cause, kept as a documented outcome instead of a traceback: current JAX publishes no
# CUDA wheels for native Windows (jax[cuda12] stopped at 0.4.21; the CUDA plugin is Linux-only).
JAX_CUDA_ON_WINDOWS = (
    "JAX has no CUDA support on native Windows (no jax CUDA wheels or plugin for win32 since "
    "jax 0.4.21); run this milestone under WSL2 or on Linux"
)


def wrong_platform(requirement: HardwareRequirement, backend: str = "torch") -> str | None:
    """Why this platform cannot serve the requirement, else None."""
    here = probe_platform()
    if backend == "jax" and requirement.accelerator == "cuda" and here == "windows":
        return JAX_CUDA_ON_WINDOWS
    if requirement.platform in ("any", here):
        return None
    return f"needs platform {requirement.platform}; sys.platform says {sys.platform}"


def probe_devices(requirement: HardwareRequirement, backend: str) -> Probe:
    """The devices of the required kind as the milestone's backend sees them (for a TPU, jax's
    device kind: ``TPU v5 lite`` on a v5e, ``TPU v3`` on a v3)."""
    return {
        "cpu": probe_cpu,
        "cuda": lambda: probe_cuda(backend),
        "tpu": lambda: _probe_jax("tpu"),
    }[requirement.accelerator]()


def missing_devices(requirement: HardwareRequirement, backend: str) -> str | None:
    """Why the required devices are absent, naming what was looked for and found; else None."""
    probe = probe_devices(requirement, backend)
    if probe.count >= requirement.count:
        return None
    return (
        f"needs {requirement.label}: looked for {requirement.count} {requirement.accelerator} "
        f"device(s) with {probe.looked_for}, found {probe.found}"
    )
