"""Evaluation records: each scored item, accuracy and format compliance overall and per category."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.record.scoring import score
from harness.spec.data import EvalItem


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
