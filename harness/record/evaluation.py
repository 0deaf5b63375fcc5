"""Evaluation records: each scored item, and accuracy and format compliance with their 95%
intervals, overall and per category."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harness.record.scoring import score
from harness.record.statistics import Interval, wilson
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
    answer_from: str = "tag"
    """Where the answer was found: ``tag``, ``marker``, ``last number``, ``whole text``, ``none``."""


@dataclass(frozen=True)
class CategoryScore:
    """How many items were scored, answered correctly and answered in the tagged format."""

    count: int
    correct: int
    format_ok: int

    @classmethod
    def of(cls, predictions: Iterable[Prediction]) -> CategoryScore:
        scored = list(predictions)
        return cls(len(scored), sum(p.correct for p in scored), sum(p.format_ok for p in scored))

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else 0.0

    @property
    def format_compliance(self) -> float:
        return self.format_ok / self.count if self.count else 0.0

    @property
    def accuracy_interval(self) -> Interval:
        return wilson(self.correct, self.count)

    @property
    def format_interval(self) -> Interval:
        return wilson(self.format_ok, self.count)


@dataclass(frozen=True)
class EvalResult:
    """Every scored item, with the scores overall and per category."""

    predictions: tuple[Prediction, ...]
    per_category: dict[str, CategoryScore]
    runtime_s: float

    @property
    def overall(self) -> CategoryScore:
        return CategoryScore.of(self.predictions)

    @property
    def count(self) -> int:
        return len(self.predictions)

    @property
    def accuracy(self) -> float:
        return self.overall.accuracy

    @property
    def format_compliance(self) -> float:
        return self.overall.format_compliance

    def correctness(self) -> dict[str, bool]:
        """Each item's id and whether it was answered correctly, for paired comparisons."""
        return {p.id: p.correct for p in self.predictions}


def score_items(
    items: Sequence[EvalItem], completions: Sequence[str], runtime_s: float
) -> EvalResult:
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
                answer_from=verdict.answer_from,
            )
        )
    by_category: dict[str, list[Prediction]] = defaultdict(list)
    for prediction in predictions:
        by_category[prediction.category].append(prediction)
    per_category = {
        name: CategoryScore.of(group) for name, group in sorted(by_category.items())
    }
    return EvalResult(tuple(predictions), per_category, runtime_s)
