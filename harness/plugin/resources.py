"""Resources while each phase runs: one sampler per run, started as a phase is set up and stopped
as its outcome is recorded (or as the session closes a phase cut short), wherever the phase runs
(an xdist worker, or this process). Each sample is a line of ``resources.jsonl`` as it is taken;
``resources.svg`` is redrawn as each phase starts and ends, and every ``REDRAW_EVERY`` samples."""

from __future__ import annotations

import pytest

from harness.evidence import bundle
from harness.evidence.timeline import resources_svg
from harness.probes.resources import ResourceSampler, device_probes
from harness.record.resources import ResourceSample
from harness.record.run import MilestoneRun
from harness.spec.milestones import Milestone

INTERVAL_INI = "resources_interval"
DEFAULT_INTERVAL_S = 2.0
# A killed session still leaves a timeline at most this many samples old.
REDRAW_EVERY = 15


def sampling_interval(config: pytest.Config) -> float:
    """Seconds between two samples, from the ini value; a usage error unless a positive number."""
    given = str(config.getini(INTERVAL_INI)).strip()
    try:
        seconds = float(given)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise pytest.UsageError(
            f"{INTERVAL_INI} = {given!r}: give the seconds between two samples, more than 0"
        )
    return seconds


class PhaseResources:
    """The samplers of a session's runs, one per run, started and stopped around its phases."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.samplers: dict[str, ResourceSampler] = {}

    def begin(self, run: MilestoneRun, phase: str) -> None:
        sampler = self.samplers.get(run.run_id)
        if sampler is None:
            milestone = run.milestone
            backend = milestone.spec.backend if isinstance(milestone, Milestone) else None
            probes = device_probes(backend)
            sampler = ResourceSampler(self.interval_s, lambda s: self._keep(run, s), probes)
            self.samplers[run.run_id] = sampler
            run.record.resources.interval_s = self.interval_s
        sampler.start(phase)
        run.record.resources.probes = sampler.states
        draw(run)

    def end(self, run: MilestoneRun) -> None:
        """Stop the run's sampler (its last sample taken) and redraw; nothing if none runs."""
        sampler = self.samplers.get(run.run_id)
        if sampler is None or not sampler.running:
            return
        sampler.stop()
        run.record.resources.probes = sampler.states
        draw(run)

    def close(self) -> None:
        """Stop every sampler and release what its probes hold (NVML)."""
        for sampler in self.samplers.values():
            sampler.close()

    def _keep(self, run: MilestoneRun, sample: ResourceSample) -> None:
        record = run.record.resources
        record.samples.append(sample)
        bundle.append_jsonl(run.run_dir / bundle.RESOURCES, sample.row())
        if len(record.samples) % REDRAW_EVERY == 0:
            draw(run)


def draw(run: MilestoneRun) -> None:
    """``resources.svg`` of the samples so far, with the memory guard's estimate."""
    svg = resources_svg(run.record.resources, run.record.memory_estimate)
    bundle.write_text(run.run_dir / bundle.RESOURCES_PLOT, svg)
