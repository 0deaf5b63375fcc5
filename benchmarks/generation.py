"""Benchmark (c): evaluation's batched greedy generation against one prompt at a time, same outputs.

Run: .venv/bin/python -m benchmarks.generation
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import Check, Ratio, Target, load_milestone, parser, report
from harness.spec.data import load_evalset
from harness.spec.milestones import Milestone
from harness.spec.prompting import format_prompt
from trainers.models import build_model_and_tokenizer
from trainers.torch.trainer import TorchTrainer

TARGET = Target(5.0)


def save_random_checkpoint(milestone: Milestone, checkpoint_dir: Path) -> None:
    """The milestone's model at its seeded random init, saved as training saves a checkpoint."""
    model, tokenizer = build_model_and_tokenizer(milestone.spec.model, milestone.training.seed)
    model.save_pretrained(checkpoint_dir)
    tokenizer.save_pretrained(checkpoint_dir)


def timed_generate(
    checkpoint_dir: Path, prompts: Sequence[str], batch_size: int, max_new_tokens: int
) -> tuple[list[str], float]:
    """Completions and the seconds they took, checkpoint loading included (as in evaluation)."""
    started = time.perf_counter()
    outputs = TorchTrainer().generate(
        checkpoint_dir, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, device="cpu"
    )
    return outputs, time.perf_counter() - started


def measure(milestone: Milestone, items: int | None, repeats: int) -> tuple[Ratio, Check]:
    """Items/s at the evaluation batch size and at batch size 1, and whether the outputs agree."""
    prompts = [format_prompt(item.prompt) for item in load_evalset(milestone.evalset_path)][:items]
    settings = milestone.training.eval
    batched_s: list[float] = []
    single_s: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder)
        save_random_checkpoint(milestone, checkpoint)
        for _ in range(repeats):
            batched, seconds = timed_generate(
                checkpoint, prompts, settings.batch_size, settings.max_new_tokens
            )
            batched_s.append(seconds)
            single, seconds = timed_generate(checkpoint, prompts, 1, settings.max_new_tokens)
            single_s.append(seconds)
    differing = sum(a != b for a, b in zip(batched, single, strict=True))
    ratio = Ratio(
        "items/s",
        [len(prompts) / s for s in batched_s],
        [len(prompts) / s for s in single_s],
        TARGET,
    )
    same = Check(
        "greedy outputs", f"{len(prompts) - differing}/{len(prompts)} identical", differing == 0
    )
    return ratio, same


def main() -> int:
    args_parser = parser(__doc__.splitlines()[0], repeats=3)
    args_parser.add_argument(
        "--items", type=int, default=None, help="Use only the first N prompts (default all)."
    )
    args = args_parser.parse_args()
    milestone = load_milestone(args.milestone)
    ratio, same = measure(milestone, args.items, args.repeats)
    settings = milestone.training.eval
    title = (
        f"(c) generation: greedy, {settings.max_new_tokens} new tokens, KV cache on both sides, "
        f"{milestone.id} evalset and model (random init), median of {args.repeats}"
    )
    return report(title, (f"batch {settings.batch_size}", "batch 1"), [ratio], [same])


if __name__ == "__main__":
    raise SystemExit(main())
