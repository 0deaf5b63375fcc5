"""Benchmark (b): our torch trainer against transformers.Trainer, same model, batches and steps.

Run: .venv/bin/python -m benchmarks.vs_hf_trainer
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import Check, Ratio, Target, load_milestone, parser, report
from benchmarks.trainer_pair import Run, train_ours, train_theirs
from harness.spec.data import load_traces
from harness.spec.milestones import Milestone
from harness.spec.prompting import format_completion, format_prompt
from trainers.protocol import Example, TrainRequest

TARGET = Target(1.0)
# Both sides run the same fp32 arithmetic in the same order, apart from how the mean loss is
# reduced (mean vs sum / label count): curves agree to float rounding, amplified over the steps.
LOSS_RTOL = 1e-4
WARMUP_STEPS = 1


def request_for(milestone: Milestone, steps: int, checkpoint_dir: Path) -> TrainRequest:
    """The milestone's model, training config and examples, trained on CPU for ``steps`` steps."""
    traces = load_traces(milestone.dataset_path)
    examples = tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)
    return TrainRequest(
        milestone.spec.model, milestone.training, examples, steps, None, "cpu", checkpoint_dir
    )


def loss_check(ours: Sequence[float], theirs: Sequence[float]) -> Check:
    """Per-step losses equal within ``LOSS_RTOL`` (relative); the largest gap is shown."""
    gaps = [abs(a - b) / abs(b) for a, b in zip(ours, theirs, strict=True)]
    if not any(gaps):
        return Check("loss curves", f"{len(gaps)} steps, bit-identical", True)
    worst = max(range(len(gaps)), key=gaps.__getitem__)
    detail = (
        f"{len(gaps)} steps, largest relative gap {gaps[worst]:.1e} at step {worst + 1} "
        f"({ours[worst]:.6f} vs {theirs[worst]:.6f}), tolerance {LOSS_RTOL:g}"
    )
    return Check("loss curves", detail, gaps[worst] <= LOSS_RTOL)


def measure(milestone: Milestone, steps: int, repeats: int) -> tuple[Ratio, list[Check]]:
    """Tokens/s of both trainers (median of ``repeats``, alternating) and whether they agree."""
    ours: list[Run] = []
    theirs: list[Run] = []
    with tempfile.TemporaryDirectory() as folder:
        request = request_for(milestone, steps, Path(folder) / "checkpoint")
        for _ in range(repeats):
            ours.append(train_ours(request))
            theirs.append(train_theirs(request, Path(folder) / "hf"))
    ratio = Ratio(
        "tokens/s",
        [run.tokens_per_s(WARMUP_STEPS) for run in ours],
        [run.tokens_per_s(WARMUP_STEPS) for run in theirs],
        TARGET,
    )
    same_batches = Check(
        "batches",
        "the same real tokens at every step",
        all(run.tokens == ours[0].tokens for run in theirs),
    )
    return ratio, [same_batches, loss_check(ours[0].losses, theirs[0].losses)]


def main() -> int:
    args_parser = parser(__doc__.splitlines()[0], repeats=3)
    args_parser.add_argument(
        "--steps", type=int, default=100, help="Optimizer steps per run (default 100)."
    )
    args = args_parser.parse_args()
    milestone = load_milestone(args.milestone)
    ratio, checks = measure(milestone, args.steps, args.repeats)
    title = (
        f"(b) training: {milestone.spec.model}, {milestone.training_path.name}, "
        f"{args.steps} steps on CPU, tokens/s after step {WARMUP_STEPS}, median of {args.repeats}"
    )
    return report(title, ("torch trainer", "transformers.Trainer"), [ratio], checks)


if __name__ == "__main__":
    raise SystemExit(main())
