"""Evaluation records: each scored item, and accuracy and format compliance with their 95%
intervals, overall, per category and per value of the evalset's own keys that the spec names."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    extra: Mapping[str, Any] = field(default_factory=dict)
    """The item's own keys beyond the ones the harness reads (``section``, ``difficulty``)."""


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
    breakdown: Mapping[str, Mapping[str, CategoryScore]] = field(default_factory=dict)
    """Per key the spec's ``evaluation.breakdown`` names: the scores per value of that key."""

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
    items: Sequence[EvalItem],
    completions: Sequence[str],
    runtime_s: float,
    breakdown_keys: Sequence[str] = (),
) -> EvalResult:
    """Score each completion against its item; per-category figures included, and the breakdown
    by each of ``breakdown_keys``."""
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
                extra=item.extra,
            )
        )
    by_category: dict[str, list[Prediction]] = defaultdict(list)
    for prediction in predictions:
        by_category[prediction.category].append(prediction)
    per_category = {
        name: CategoryScore.of(group) for name, group in sorted(by_category.items())
    }
    return EvalResult(
        tuple(predictions), per_category, runtime_s, breakdown(predictions, breakdown_keys)
    )


def breakdown(
    predictions: Sequence[Prediction], keys: Sequence[str]
) -> dict[str, dict[str, CategoryScore]]:
    """Per key, the scores of the predictions grouped by their item's value of it (a string as
    written, a number or boolean as JSON writes it), values sorted; pre-flight has checked that
    every item holds every key with such a value."""
    found: dict[str, dict[str, CategoryScore]] = {}
    for key in keys:
        groups: dict[str, list[Prediction]] = defaultdict(list)
        for prediction in predictions:
            value = prediction.extra[key]
            groups[value if isinstance(value, str) else json.dumps(value)].append(prediction)
        found[key] = {value: CategoryScore.of(group) for value, group in sorted(groups.items())}
    return found
