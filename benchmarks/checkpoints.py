"""Benchmark (g): the step time of training with periodic resumable checkpoints over the step
time alone (<= 1.02), the same over a run without checkpoints, and their write throughput.

Run: .venv/bin/python -m benchmarks.checkpoints [--milestone smoke-jax] [--every 50]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import Check, Ratio, Target, load_milestone, parser, report
from harness.spec.data import load_traces
from harness.spec.milestones import Milestone
from harness.spec.prompting import format_completion, format_prompt
from trainers.checkpoints import CheckpointPlan, complete
from trainers.protocol import Example, StepRecord, Trainer, TrainRequest

TARGET = Target(1.02, at_most=True)


class Clock:
    """A step hook noting when each step's hooks run. The loop writes a step's checkpoint after
    the step and before its hooks, so the gap between two calls, less the later step's own
    seconds, is that step's checkpoint (and the hooks' few microseconds)."""

    def __init__(self) -> None:
        self.at: list[float] = []
        self.records: list[StepRecord] = []

    def __call__(self, record: StepRecord) -> None:
        self.at.append(time.perf_counter())
        self.records.append(record)

    def between(self, step: int) -> float:
        """Seconds from the end of ``step`` (2 or later) to its hooks: its checkpoint."""
        return self.at[step - 1] - self.at[step - 2] - self.records[step - 1].seconds

    @property
    def step_s(self) -> float:
        return sum(record.seconds for record in self.records)


def trainer_for(milestone: Milestone) -> Trainer:
    if milestone.spec.backend == "jax":
        from trainers.jax.trainer import JaxTrainer

        return JaxTrainer()
    from trainers.torch.trainer import TorchTrainer

    return TorchTrainer()


def request_for(milestone: Milestone, out: Path, steps: int, every: int | None) -> TrainRequest:
    traces = load_traces(milestone.dataset_path)
    examples = tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)
    plan = CheckpointPlan(out / "checkpoints", every, keep=2) if every else None
    return TrainRequest(
        milestone.spec.model, milestone.training, examples, steps, None, "cpu",
        out / "checkpoint", checkpoints=plan,
    )


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def measure(
    milestone: Milestone, steps: int, every: int, repeats: int
) -> tuple[list[Ratio], Check]:
    """A run with a checkpoint every ``every`` steps and one without, alternately: the first
    run's steps with their checkpoints over its steps alone (the target: the same run, so load
    on the machine cancels), both runs' training seconds, and the checkpoints' MB/s."""
    trainer = trainer_for(milestone)
    with_s: list[float] = []
    without_s: list[float] = []
    steps_and_writes: list[float] = []
    steps_alone: list[float] = []
    writes: list[float] = []
    size_mb = 0.0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            clock = Clock()
            result = trainer.train(request_for(milestone, Path(folder), steps, every), clock)
            with_s.append(result.runtime_s)
            these = [clock.between(step) for step in range(max(every, 2), steps + 1, every)]
            writes += these
            steps_and_writes.append(clock.step_s + sum(these))
            steps_alone.append(clock.step_s)
            size_mb = folder_mb(complete(Path(folder) / "checkpoints")[-1][1])
        with tempfile.TemporaryDirectory() as folder:
            bare = request_for(milestone, Path(folder), steps, None)
            without_s.append(trainer.train(bare, lambda _: None).runtime_s)
    ratios = [
        Ratio("step seconds, checkpoints in / out", steps_and_writes, steps_alone, TARGET),
        Ratio(f"train seconds, {steps} steps, two runs", with_s, without_s, None),
    ]
    write_s = statistics.median(writes)
    detail = (
        f"{len(writes)} writes of {size_mb:.1f} MB, median {write_s * 1000:.1f} ms each, "
        f"{size_mb / write_s:.0f} MB/s"
    )
    return ratios, Check("checkpoint writes", detail, True)


def main() -> int:
    args_parser = parser(__doc__.splitlines()[0], repeats=3)
    args_parser.add_argument(
        "--steps", type=int, default=None, help="Train this many steps (default the milestone's)."
    )
    args_parser.add_argument(
        "--every", type=int, default=50, help="Write a checkpoint every N steps (default 50)."
    )
    args = args_parser.parse_args()
    milestone = load_milestone(args.milestone)
    steps = args.steps or milestone.spec.run.max_steps or 300
    ratios, writes = measure(milestone, steps, args.every, args.repeats)
    title = (
        f"(g) checkpoints: {milestone.id} ({milestone.spec.backend}), a resumable checkpoint every "
        f"{args.every} steps against none, median of {args.repeats}"
    )
    return report(title, (f"every {args.every}", "none"), ratios, [writes])


if __name__ == "__main__":
    raise SystemExit(main())
