"""The resource sampler: a background thread that, while a phase runs, reads every few seconds the
memory and CPU of this process and its children (psutil), each CUDA GPU's memory, utilisation and
power (NVML, through nvidia-ml-py) and each jax device's ``memory_stats()``, and hands each
sample on. A probe that has nothing to give says why; none ever stops the phase."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import psutil

from harness.record.resources import CUDA, JAX, PROCESS, DeviceSample, ResourceSample

Sink = Callable[[ResourceSample], None]


class DeviceProbe(Protocol):
    """Reads some accelerators; ``state`` says what it samples, or why it has nothing."""

    name: str
    state: str

    def read(self) -> list[DeviceSample]: ...

    def close(self) -> None: ...


class ProcessProbe:
    """Resident memory and CPU of this process and of its children, which come and go."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.process.cpu_percent(None)  # the first call only starts psutil's clock
        self.children: dict[int, psutil.Process] = {}
        version = psutil.__version__
        self.state = f"sampled: RSS and CPU of this process and its children (psutil {version})"

    def read(self) -> tuple[int, int, int, float]:
        """(own RSS, children's RSS, number of children, CPU percent of one core, children's
        included)."""
        rss, cpu = self.process.memory_info().rss, self.process.cpu_percent(None)
        alive: dict[int, psutil.Process] = {}
        children_rss = 0
        for child in self.process.children(recursive=True):
            # The same Process object from one sample to the next: its CPU clock runs on.
            known = self.children.get(child.pid, child)
            try:
                with known.oneshot():
                    children_rss += known.memory_info().rss
                    cpu += known.cpu_percent(None)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            alive[child.pid] = known
        self.children = alive
        return rss, children_rss, len(alive), cpu


class NvmlProbe:
    """Every GPU NVML sees (those of ``CUDA_VISIBLE_DEVICES`` where it lists indices): memory
    used, utilisation and power. ``nvml`` is the ``pynvml`` module, or a stand-in."""

    name = CUDA

    def __init__(self, nvml: Any = None) -> None:
        self.nvml = nvml
        self.handles: list[tuple[str, Any]] = []
        self.started = False
        try:
            self.nvml = nvml or _import_pynvml()
            self.nvml.nvmlInit()
            self.started = True
            for index in _visible(range(self.nvml.nvmlDeviceGetCount())):
                handle = self.nvml.nvmlDeviceGetHandleByIndex(index)
                kind = _text(self.nvml.nvmlDeviceGetName(handle))
                self.handles.append((f"cuda:{index} ({kind})", handle))
        except Exception as error:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            step = "list the GPUs" if self.started else "start"
            self.state = f"not available: NVML could not {step} ({_why(error)})"
            self.close()
            return
        found = len(self.handles)
        self.state = (
            f"sampled: memory, utilisation and power of {found} GPU(s) (NVML)"
            if found
            else "not available: NVML sees no GPU"
        )

    def read(self) -> list[DeviceSample]:
        return [self._device(name, handle) for name, handle in self.handles]

    def _device(self, name: str, handle: Any) -> DeviceSample:
        nvml = self.nvml
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        utilization = _optional(lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
        power = _optional(lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0)  # mW
        return DeviceSample(name, int(memory.used), int(memory.total), None, utilization, power)

    def close(self) -> None:
        self.handles = []
        if self.started:
            self.started = False
            try:
                self.nvml.nvmlShutdown()
            except Exception:
                pass


class JaxProbe:
    """``memory_stats()`` of this process's jax devices in a run of the jax backend, once it has
    imported jax: the sampler never imports jax, and never reads it in a torch run, where asking
    for devices would start a jax backend (on a GPU, one that takes most of its memory)."""

    name = JAX

    def __init__(self, backend: str | None) -> None:
        self.enabled = backend == "jax"
        self.state = (
            "not available: jax was not imported by this run's backend yet"
            if self.enabled
            else f"not sampled: a {backend or 'freeze'} run does not use jax"
        )

    def read(self) -> list[DeviceSample]:
        jax = sys.modules.get("jax")
        if not self.enabled or jax is None or not hasattr(jax, "local_devices"):
            return []  # not this run's framework, not imported, or still being imported
        devices, found = jax.local_devices(), []
        for device in devices:
            stats = device.memory_stats() or {}
            if "bytes_in_use" not in stats:
                continue
            name = f"{device.platform}:{device.id} ({device.device_kind})"
            limit, peak = stats.get("bytes_limit"), stats.get("peak_bytes_in_use")
            found.append(DeviceSample(name, int(stats["bytes_in_use"]), _int(limit), _int(peak)))
        platforms = ", ".join(sorted({device.platform for device in devices}))
        self.state = (
            f"sampled: memory_stats() of {len(found)} jax device(s)"
            if found
            else f"not available: jax's {platforms} devices report no memory_stats()"
        )
        return found

    def close(self) -> None:
        pass


def device_probes(backend: str | None) -> list[DeviceProbe]:
    """The accelerator probes of a run of ``backend`` (None for a freeze, which trains nothing)."""
    return [NvmlProbe(), JaxProbe(backend)]


class ResourceSampler:
    """Samples every ``interval_s`` on a daemon thread between ``start`` and ``stop``, and once at
    each, handing each sample to ``sink``; one per run, started and stopped around every phase."""

    def __init__(self, interval_s: float, sink: Sink, devices: Sequence[DeviceProbe]) -> None:
        self.interval_s = interval_s
        self.sink = sink
        self.process = ProcessProbe()
        self.devices = list(devices)
        self.live = list(devices)
        """The probes still sampled: one that failed is dropped, its reason kept."""
        self.origin = time.monotonic()
        self.phase = ""
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def states(self) -> dict[str, str]:
        """What each probe samples, or why it has nothing to give."""
        return {PROCESS: self.process.state} | {probe.name: probe.state for probe in self.devices}

    @property
    def running(self) -> bool:
        return self.thread is not None

    def elapsed(self) -> float:
        return time.monotonic() - self.origin

    def start(self, phase: str) -> None:
        self.stop()
        self.phase = phase
        self.sample()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"resources {phase}", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop and join the thread, then take the phase's last sample; nothing if not running."""
        if self.thread is None:
            return
        self.stopping.set()
        self.thread.join()
        self.thread = None
        self.sample()

    def close(self) -> None:
        self.stop()
        for probe in self.devices:
            probe.close()

    def _run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        """Read every probe and hand the sample on; a probe that fails says why and is dropped."""
        rss, children_rss, children, cpu = self.process.read()
        devices: list[DeviceSample] = []
        for probe in list(self.live):
            try:
                devices += probe.read()
            except Exception as error:
                probe.state = f"not available: it failed while sampling ({_why(error)})"
                self.live.remove(probe)
        at = datetime.now(UTC).isoformat(timespec="milliseconds")
        sample = ResourceSample(
            at, self.elapsed(), self.phase, rss, children_rss, children, cpu, tuple(devices)
        )
        try:
            self.sink(sample)
        except OSError as error:  # the file could not be written: the phase goes on regardless
            self.process.state = f"not all written: {_why(error)} (during {self.phase})"


def _optional(read: Callable[[], float]) -> float | None:
    """A reading some GPUs do not support (NVMLError_NotSupported): None there."""
    try:
        return read()
    except Exception:
        return None


def _import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError:
        raise RuntimeError("nvidia-ml-py is not installed") from None
    return pynvml


def _visible(indices: range) -> list[int]:
    """The NVML indices ``CUDA_VISIBLE_DEVICES`` names, where it names indices; else all."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    parts = [part.strip() for part in listed.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        return list(indices)
    return [int(part) for part in parts if int(part) in indices]


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _why(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip().rstrip(":")


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None
