"""Benchmark (f): training with periodic resumable checkpoints over training without (<= 1.02),
and the checkpoints' write throughput in MB/s.

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
    """A step hook noting when each step's hooks run: the gap between two calls, less the later
    step's own seconds, is what ran between the steps (a checkpoint, where one was written)."""

    def __init__(self) -> None:
        self.at: list[float] = []
        self.records: list[StepRecord] = []

    def __call__(self, record: StepRecord) -> None:
        self.at.append(time.perf_counter())
        self.records.append(record)

    def between(self, step: int) -> float:
        """Seconds spent after ``step`` besides the steps themselves (its checkpoint)."""
        index = step - 1
        return self.at[index + 1] - self.at[index] - self.records[index + 1].seconds


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
) -> tuple[Ratio, Check]:
    """Training seconds with and without a checkpoint every ``every`` steps, alternately; the
    write throughput of the checkpoints written."""
    trainer = trainer_for(milestone)
    with_s: list[float] = []
    without_s: list[float] = []
    writes: list[float] = []
    size_mb = 0.0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            clock = Clock()
            result = trainer.train(request_for(milestone, Path(folder), steps, every), clock)
            with_s.append(result.runtime_s)
            # The last step's checkpoint, if any, is written after its hooks: not timed here.
            writes += [clock.between(step) for step in range(every, steps, every)]
            kept = complete(Path(folder) / "checkpoints")
            size_mb = folder_mb(kept[-1][1])
        with tempfile.TemporaryDirectory() as folder:
            result = trainer.train(request_for(milestone, Path(folder), steps, None), lambda _: None)
            without_s.append(result.runtime_s)
    ratio = Ratio(f"train seconds, {steps} steps", with_s, without_s, TARGET)
    write_s = statistics.median(writes)
    share = sum(writes) / repeats / statistics.median(without_s)
    detail = (
        f"{len(writes)} writes of {size_mb:.1f} MB, median {write_s * 1000:.0f} ms each = "
        f"{size_mb / write_s:.0f} MB/s; {share:.2%} of the run's training time"
    )
    return ratio, Check("checkpoint writes", detail, True)


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
    ratio, writes = measure(milestone, steps, args.every, args.repeats)
    title = (
        f"(f) checkpoints: {milestone.id} ({milestone.spec.backend}), a resumable checkpoint every "
        f"{args.every} steps against none, median of {args.repeats}"
    )
    return report(title, (f"every {args.every}", "none"), [ratio], [writes])


if __name__ == "__main__":
    raise SystemExit(main())
