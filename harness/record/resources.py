"""What the resource sampler measured while the phases ran (memory and CPU of the process and its
children, memory of each accelerator), which probes had nothing to give and why, and the memory
guard's estimate that the measured peak stands beside."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GIB = 2**30
PROCESS, CUDA, JAX = "process", "cuda", "jax"


def gib(value: int) -> float:
    return round(value / GIB, 3)


@dataclass(frozen=True)
class DeviceSample:
    """One accelerator at one instant: memory in use, and what its probe gives besides."""

    name: str
    """``cuda:0 (NVIDIA H100 80GB HBM3)``, ``tpu:3 (TPU v5 lite)``: the device and its kind."""
    used_bytes: int
    total_bytes: int | None = None
    peak_bytes: int | None = None
    """The allocator's own high-water mark (jax's ``peak_bytes_in_use``): catches what falls
    between two samples."""
    utilization_percent: float | None = None
    power_w: float | None = None

    def row(self) -> dict[str, Any]:
        found = {
            "name": self.name,
            "used_bytes": self.used_bytes,
            "total_bytes": self.total_bytes,
            "peak_bytes": self.peak_bytes,
            "utilization_percent": self.utilization_percent,
            "power_w": self.power_w,
        }
        return {key: value for key, value in found.items() if value is not None}

    @property
    def high_water(self) -> int:
        return max(self.used_bytes, self.peak_bytes or 0)


@dataclass(frozen=True)
class ResourceSample:
    """One line of ``resources.jsonl``."""

    at: str
    """UTC time of the sample."""
    elapsed_s: float
    """Seconds since the run's first sample: the timeline's axis."""
    phase: str
    rss_bytes: int
    """Resident memory of this process (the one running the phase)."""
    children_rss_bytes: int
    """Resident memory of its child processes together (DDP workers, torchrun)."""
    children: int
    cpu_percent: float
    """CPU time of the process and its children over the last interval, in percent of one core."""
    devices: tuple[DeviceSample, ...] = ()

    def row(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "elapsed_s": round(self.elapsed_s, 3),
            "phase": self.phase,
            "rss_bytes": self.rss_bytes,
            "children_rss_bytes": self.children_rss_bytes,
            "children": self.children,
            "cpu_percent": round(self.cpu_percent, 1),
            "devices": [device.row() for device in self.devices],
        }

    @property
    def total_rss_bytes(self) -> int:
        return self.rss_bytes + self.children_rss_bytes


@dataclass(frozen=True)
class PhaseSpan:
    """When a phase ran, on the timeline's axis."""

    phase: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Peak:
    """The largest value a series reached, and in which phase."""

    bytes: int
    phase: str
    source: str

    def facts(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes, "gib": gib(self.bytes), "phase": self.phase, "source": self.source
        }


@dataclass
class ResourceRecord:
    """Every sample of the run, the phases' spans, and each probe's state (what it samples, or
    why it is not available), as the sampler last found it."""

    interval_s: float = 0.0
    samples: list[ResourceSample] = field(default_factory=list)
    probes: dict[str, str] = field(default_factory=dict)

    @property
    def spans(self) -> list[PhaseSpan]:
        """Each phase from its first sample to its last: the sampler takes one as a phase starts
        and one as it ends."""
        spans: list[PhaseSpan] = []
        for sample in list(self.samples):  # a copy: the sampler's thread may be appending
            if spans and spans[-1].phase == sample.phase:
                spans[-1] = PhaseSpan(sample.phase, spans[-1].start_s, sample.elapsed_s)
            else:
                spans.append(PhaseSpan(sample.phase, sample.elapsed_s, sample.elapsed_s))
        return spans

    def peak_rss(self, with_children: bool = False) -> Peak | None:
        if not self.samples:
            return None
        value = (lambda s: s.total_rss_bytes) if with_children else (lambda s: s.rss_bytes)
        top = max(self.samples, key=value)
        what = "this process and its children" if with_children else "this process"
        return Peak(value(top), top.phase, f"resident memory of {what} (psutil)")

    def device_peaks(self) -> dict[str, Peak]:
        """The peak of each device that was sampled, by device name."""
        peaks: dict[str, Peak] = {}
        for sample in self.samples:
            for device in sample.devices:
                known = peaks.get(device.name)
                if known is None or device.high_water > known.bytes:
                    source = "peak_bytes_in_use" if device.peak_bytes is not None else "memory used"
                    peaks[device.name] = Peak(device.high_water, sample.phase, source)
        return peaks


@dataclass(frozen=True)
class EstimatedPeak:
    """The memory guard's estimate (pre-flight), for the manifest to show beside the peak."""

    total_bytes: int
    scope: str
    """What one estimate covers: one training process, or one device of the jax mesh."""
    parts: tuple[tuple[str, int], ...]
    compared_with: str
    """The free memory it was held against, or why it was not compared."""

    def facts(self) -> dict[str, Any]:
        return {
            "bytes": self.total_bytes,
            "gib": gib(self.total_bytes),
            "per": self.scope,
            "parts_gib": {name: gib(value) for name, value in self.parts},
            "compared_with": self.compared_with,
        }
