"""What ``python -m harness score`` prints and writes: a re-scored predictions file, its accuracy
and format compliance with their intervals, and what did not match the evalset."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.evidence.writers import category_table, scored
from harness.record.rescoring import Rescoring
from harness.record.statistics import INTERVAL_METHOD

# Enough ids to recognise a mismatch (an id key that points at the wrong field) at a glance.
FIRST_IDS = 5


@dataclass(frozen=True)
class Source:
    """Which files were read, and which keys named each prediction's id and answer."""

    predictions: Path
    evalset: Path
    id_key: str
    answer_key: str


def _unmatched(ids: tuple[str, ...]) -> dict[str, Any]:
    found: dict[str, Any] = {"count": len(ids)}
    if ids:
        found["first_ids"] = list(ids[:FIRST_IDS])
    return found


def _answers_found(rescored: Rescoring) -> dict[str, int]:
    """How many answers the scorer found in tags, after a marker, as a last number, ..."""
    return dict(Counter(p.answer_from for p in rescored.result.predictions).most_common())


def rescoring_document(rescored: Rescoring, source: Source) -> dict[str, Any]:
    """The JSON of ``score --out``: the files and keys read, the scores as
    ``evaluation_results.json`` holds them, where the answers were found, what did not match."""
    return {
        "predictions": str(source.predictions),
        "evalset": str(source.evalset),
        "id_key": source.id_key,
        "answer_key": source.answer_key,
        **scored(rescored.result),
        "answers_found": _answers_found(rescored),
        "evalset_items_without_prediction": _unmatched(rescored.unanswered),
        "predictions_without_evalset_item": _unmatched(rescored.unknown),
    }


def _count_line(what: str, ids: tuple[str, ...]) -> str:
    shown = f" (first: {', '.join(ids[:FIRST_IDS])})" if ids else ""
    return f"- {what}: {len(ids)}{shown}"


def rescoring_lines(rescored: Rescoring, source: Source) -> list[str]:
    """The table ``score`` prints: overall and per category, then what did not match."""
    result = rescored.result
    found = ", ".join(f"{where} {count}" for where, count in _answers_found(rescored).items())
    return [
        f"{source.predictions} scored against {source.evalset} "
        f"(id key '{source.id_key}', answer key '{source.answer_key}')",
        "",
        *category_table({"all": result.overall, **result.per_category}),
        "",
        f"- items scored: {result.count}, {result.overall.correct} correct, "
        f"{result.overall.format_ok} in the tagged format",
        f"- answers found: {found}",
        _count_line("evalset items with no prediction", rescored.unanswered),
        _count_line("predictions with no evalset item", rescored.unknown),
        f"- intervals: {INTERVAL_METHOD}",
    ]
