"""Evaluation records: each scored item, accuracy and format compliance overall, per category and
per value of the evalset's own keys that the spec names."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    extra: Mapping[str, Any] = field(default_factory=dict)
    """The item's own keys beyond the ones the harness reads (``section``, ``difficulty``)."""


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
    breakdown: Mapping[str, Mapping[str, CategoryScore]] = field(default_factory=dict)
    """Per key the spec's ``evaluation.breakdown`` names: the scores per value of that key."""

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
                extra=item.extra,
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
        found[key] = {
            value: CategoryScore(
                count=len(group),
                accuracy=_rate(p.correct for p in group),
                format_compliance=_rate(p.format_ok for p in group),
            )
            for value, group in sorted(groups.items())
        }
    return found
