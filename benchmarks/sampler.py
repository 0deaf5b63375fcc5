"""Benchmark (f): the resource sampler's cost, the smoke run's step time with it over without.

Both sides train the milestone's model on its data in this process, alternately: one with the
session's sampler running as it runs in the train phase (a thread writing ``resources.jsonl`` every
``--interval`` seconds and redrawing ``resources.svg``), one without. Each side's time is its mean
seconds per step after the warm-up steps (the mean: a sample slows the one step it falls in), in
wall time and in this process's CPU time, the sampler's thread included. The target is judged on
CPU time: the sampler's cost is CPU work in this process, and CPU time hardly moves with other
work on the machine, which stretches wall time from run to run (shown beside it, no target).

Run: .venv/bin/python -m benchmarks.sampler
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import ROOT, Ratio, Target, load_milestone, parser, report
from benchmarks.vs_hf_trainer import request_for
from harness.plugin.resources import DEFAULT_INTERVAL_S, PhaseResources
from harness.record.run import MilestoneRun
from harness.spec.milestones import Milestone
from harness.spec.phase_order import TRAIN
from trainers.backends import load_trainer
from trainers.protocol import StepRecord

TARGET = Target(1.02, at_most=True)
# Steps left out of each side's mean: the first compiles (jax) or warms the allocator (torch).
WARMUP_STEPS = 2


@dataclass(frozen=True)
class Side:
    """One training run: its mean wall and CPU seconds per step after the warm-up, and the
    samples taken."""

    step_s: float
    cpu_s: float
    samples: int


def train(milestone: Milestone, steps: int, folder: Path, interval_s: float | None) -> Side:
    """``steps`` steps of the milestone's training, with the session's sampler writing into
    ``folder`` every ``interval_s`` seconds while they run (None: no sampler)."""
    request = request_for(milestone, steps, folder / "checkpoint")
    seconds: list[float] = []
    cpu: list[float] = []  # this process's CPU time as each step ended

    def on_step(step: StepRecord) -> None:
        seconds.append(step.seconds)
        cpu.append(time.process_time())

    run = MilestoneRun(milestone, ROOT, folder)
    resources = PhaseResources(interval_s) if interval_s is not None else None
    if resources is not None:
        resources.begin(run, TRAIN)
    try:
        trainer = load_trainer(milestone.spec.backend)
        trainer.train(request, on_step)
    finally:
        if resources is not None:
            resources.end(run)
            resources.close()
    timed = len(seconds) - WARMUP_STEPS
    return Side(
        statistics.mean(seconds[WARMUP_STEPS:]),
        (cpu[-1] - cpu[WARMUP_STEPS - 1]) / timed,
        len(run.record.resources.samples),
    )


def measure(milestone: Milestone, steps: int, repeats: int, interval_s: float) -> list[Side]:
    """Alternately with and without the sampler, ``repeats`` times each: [with, without, ...]."""
    sides = []
    with tempfile.TemporaryDirectory(prefix="tunix-rt-sampler-") as scratch:
        for repeat in range(repeats):
            for sampled in (True, False):
                folder = Path(scratch) / f"{repeat}-{'with' if sampled else 'without'}"
                folder.mkdir()
                sides.append(train(milestone, steps, folder, interval_s if sampled else None))
    return sides


def sample_cost(milestone: Milestone, interval_s: float, count: int = 20) -> float:
    """Seconds one sample takes, taken and written as in a session (the mean of ``count``)."""
    with tempfile.TemporaryDirectory(prefix="tunix-rt-sample-") as scratch:
        run = MilestoneRun(milestone, ROOT, Path(scratch))
        resources = PhaseResources(interval_s)
        resources.begin(run, TRAIN)
        sampler = resources.samplers[run.run_id]
        started = time.perf_counter()
        for _ in range(count):
            sampler.sample()
        cost = (time.perf_counter() - started) / count
        resources.close()
    return cost


def main() -> int:
    args = parser(__doc__.splitlines()[0], repeats=3)
    args.add_argument("--steps", type=int, default=60, help="Training steps of each run (60).")
    args.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_S,
        help="Seconds between two samples, as the ini option resources_interval "
        f"({DEFAULT_INTERVAL_S:g}).",
    )
    options = args.parse_args()
    milestone = load_milestone(options.milestone)
    sides = measure(milestone, options.steps, options.repeats, options.interval)
    sampled, bare = sides[0::2], sides[1::2]
    ratios = [
        Ratio("CPU seconds per step", [s.cpu_s for s in sampled], [s.cpu_s for s in bare], TARGET),
        Ratio("seconds per step", [s.step_s for s in sampled], [s.step_s for s in bare], None),
    ]
    title = (
        f"(f) resource sampler: {milestone.id}'s training, {options.steps} steps, sampled every "
        f"{options.interval:g} s vs not sampled, median of {options.repeats}"
    )
    status = report(title, ("sampler on", "sampler off"), ratios)
    cost = sample_cost(milestone, options.interval)
    print(
        f"  samples per sampled run: {' '.join(str(s.samples) for s in sampled)}; one sample "
        f"takes {cost * 1000:.2f} ms, {cost / options.interval:.3%} of its interval"
    )
    return status


if __name__ == "__main__":
    raise SystemExit(main())
