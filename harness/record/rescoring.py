"""Re-scoring without retraining: a predictions file, ours or a foreign model's, matched to an
evalset by id and scored by the shared scorer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.record.evaluation import EvalResult, score_items
from harness.spec.data import DataError, EvalItem, json_type, line_error, read_unique
from harness.text import printable

# Our own predictions.jsonl: the item's id and the model's whole completion.
ID_KEY, ANSWER_KEY = "id", "completion"


@dataclass(frozen=True)
class Answer:
    """One prediction read from a file: the item it answers and the model's text."""

    id: str
    text: str


@dataclass(frozen=True)
class Rescoring:
    """The matched predictions scored, and what did not match either way."""

    result: EvalResult
    unanswered: tuple[str, ...]
    """Evalset items with no prediction, in evalset order."""
    unknown: tuple[str, ...]
    """Prediction ids that name no evalset item, in file order."""


def lookup(data: Any, dotted: str) -> Any:
    """The value at ``dotted`` (``meta.eval_id``) inside nested JSON objects; KeyError if absent."""
    value = data
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise KeyError(dotted)
        value = value[key]
    return value


def _field(path: Path, line: int, row: object, dotted: str) -> str:
    """A prediction's id or answer as text: foreign files write numbers as JSON numbers."""
    if not isinstance(row, dict):
        raise line_error(path, line, f"expected a JSON object, got {json_type(row)}")
    try:
        value = lookup(row, dotted)
    except KeyError:
        raise line_error(path, line, f"no key '{dotted}'") from None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        got = json_type(value)
        raise line_error(path, line, f"key '{dotted}' must be a string or a number, got {got}")
    return str(value)


def read_answers(path: Path, id_key: str = ID_KEY, answer_key: str = ANSWER_KEY) -> list[Answer]:
    """Every prediction of a JSON Lines file; raises DataError naming the file, line and key."""

    def read(line: int, row: object) -> Answer:
        return Answer(_field(path, line, row, id_key), _field(path, line, row, answer_key))

    return read_unique(path, read)


def rescore(path: Path, answers: Sequence[Answer], items: Sequence[EvalItem]) -> Rescoring:
    """Score each answer against the evalset item with its id; DataError where none matches."""
    by_id = {answer.id: answer for answer in answers}
    matched = [item for item in items if item.id in by_id]
    known = {item.id for item in items}
    unknown = tuple(answer.id for answer in answers if answer.id not in known)
    if not matched:
        first = ", ".join(unknown[:3])
        raise DataError(printable(f"{path}: no prediction names an evalset item (ids: {first})"))
    result = score_items(matched, [by_id[item.id].text for item in matched], runtime_s=0.0)
    unanswered = tuple(item.id for item in items if item.id not in by_id)
    return Rescoring(result, unanswered, unknown)
