"""The evaluation phase: greedy generation from the saved checkpoint, scored by the shared scorer."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.evidence import bundle
from harness.evidence.plots import category_accuracy_png
from harness.evidence.writers import evaluation_results, evaluation_summary, prediction_rows
from harness.record.run import MilestoneRun
from harness.record.scoring import score
from harness.spec.data import EvalItem, load_evalset
from harness.spec.prompting import format_prompt
from trainers.protocol import Trainer


@dataclass(frozen=True)
class Prediction:
    """One scored evaluation item."""

    id: str
    category: str
    prompt: str
    expected: str
    completion: str
    answer: str | None
    format_ok: bool
    correct: bool


@dataclass(frozen=True)
class CategoryScore:
    count: int
    accuracy: float
    format_compliance: float


@dataclass(frozen=True)
class EvalResult:
    """Accuracy overall and per category, and answer-format compliance."""

    predictions: tuple[Prediction, ...]
    per_category: dict[str, CategoryScore]
    runtime_s: float

    @property
    def count(self) -> int:
        return len(self.predictions)

    @property
    def accuracy(self) -> float:
        return _rate(p.correct for p in self.predictions)

    @property
    def format_compliance(self) -> float:
        return _rate(p.format_ok for p in self.predictions)


def _rate(flags: Iterable[bool]) -> float:
    values = list(flags)
    return sum(values) / len(values) if values else 0.0


def score_items(items: Sequence[EvalItem], completions: Sequence[str], runtime_s: float) -> EvalResult:
    """Score each completion against its item; per-category figures included."""
    if len(items) != len(completions):
        raise ValueError(f"{len(completions)} completions for {len(items)} items")
    predictions = []
    for item, completion in zip(items, completions, strict=True):
        verdict = score(completion, item.expected_answer)
        predictions.append(
            Prediction(
                id=item.id,
                category=item.category,
                prompt=item.prompt,
                expected=item.expected_answer,
                completion=completion,
                answer=verdict.answer,
                format_ok=verdict.format_ok,
                correct=verdict.correct,
            )
        )
    by_category: dict[str, list[Prediction]] = defaultdict(list)
    for prediction in predictions:
        by_category[prediction.category].append(prediction)
    per_category = {
        name: CategoryScore(
            count=len(group),
            accuracy=_rate(p.correct for p in group),
            format_compliance=_rate(p.format_ok for p in group),
        )
        for name, group in sorted(by_category.items())
    }
    return EvalResult(tuple(predictions), per_category, runtime_s)


def evaluate(run: MilestoneRun, trainer: Trainer) -> EvalResult:
    """Generate for every eval item from the run's checkpoint, score, and write the results."""
    assert run.train_result is not None, "evaluation needs the checkpoint of this run's training"
    milestone = run.milestone
    items = load_evalset(milestone.evalset_path)
    settings = milestone.training.eval
    run.progress(f"[{run.run_id}] evaluate: generating for {len(items)} items")
    started = time.perf_counter()
    completions = trainer.generate(
        run.train_result.checkpoint_dir,
        [format_prompt(item.prompt) for item in items],
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
        device=run.train_result.device,
    )
    result = score_items(items, completions, time.perf_counter() - started)
    run.eval_result = result
    bundle.write_jsonl(run.run_dir / bundle.PREDICTIONS, prediction_rows(result))
    bundle.write_json(run.run_dir / bundle.EVALUATION_RESULTS, evaluation_results(run, result))
    bundle.write_text(run.run_dir / bundle.EVALUATION_SUMMARY, evaluation_summary(run, result))
    bundle.write_bytes(
        run.run_dir / bundle.CATEGORY_ACCURACY, category_accuracy_png(result.per_category)
    )
    run.progress(
        f"[{run.run_id}] evaluate: accuracy {result.accuracy:.2f}, "
        f"format compliance {result.format_compliance:.2f} in {result.runtime_s:.1f}s"
    )
    return result
