"""A milestone's training and evaluation as a plain script, no harness: benchmark (a)'s baseline.

Run: .venv/bin/python -m benchmarks.bare_smoke --milestone smoke
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import load_milestone
from harness.record.scoring import score
from harness.spec.data import load_evalset, load_traces
from harness.spec.milestones import Milestone
from harness.spec.prompting import format_completion, format_prompt
from trainers.backends import load_trainer
from trainers.protocol import Example, TrainRequest


def train_and_evaluate(milestone: Milestone, checkpoint_dir: Path) -> float:
    """Train as the train phase does, generate as the evaluate phase does; return the accuracy."""
    spec, training = milestone.spec, milestone.training
    traces = load_traces(milestone.dataset_path)
    examples = tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)
    request = TrainRequest(
        spec.model,
        training,
        examples,
        spec.run.max_steps,
        spec.run.epochs,
        spec.hardware.accelerator,
        checkpoint_dir,
    )
    trainer = load_trainer(spec.backend)
    result = trainer.train(request, lambda record: None)
    items = load_evalset(milestone.evalset_path)
    completions = trainer.generate(
        result.checkpoint_dir,
        [format_prompt(item.prompt) for item in items],
        max_new_tokens=training.eval.max_new_tokens,
        batch_size=training.eval.batch_size,
        device=result.device,
    )
    verdicts = [score(c, item.expected_answer) for c, item in zip(completions, items, strict=True)]
    return sum(v.correct for v in verdicts) / len(verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--milestone", default="smoke", help="The training milestone to run (default smoke)."
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        accuracy = train_and_evaluate(load_milestone(args.milestone), Path(folder))
    print(f"{args.milestone}: accuracy {accuracy:.2f}")


if __name__ == "__main__":
    main()
