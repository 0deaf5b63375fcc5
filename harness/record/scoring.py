"""The shared answer scorer: extraction, format compliance and normalised comparison.

A completion is format compliant when, after stripping surrounding whitespace,
it is exactly ``<reasoning>...</reasoning><answer>...</answer>`` (whitespace
allowed between the two blocks) with a non-blank answer, no further tags and
nothing after. Callers strip special tokens such as ``<eos>`` first.

Correctness is judged on the answer found in the completion, so a completion can
be correct without being format compliant; both are reported. The answer is the
first ``<answer>...</answer>`` block; where there is none (a foreign model's free
text, or a completion cut off before its closing tag), it is the text after the
last "answer is" / "answer:" / "####" marker, else its last number, else the
whole completion when it is one line without tags. Each prediction says which.

Answers are compared after normalisation: surrounding whitespace removed,
case folded, inner whitespace runs collapsed, and numbers rewritten in a
canonical form (``"1,200"`` == ``"1200"``, ``"92.0"`` == ``"92"``,
``"-0"`` == ``"0"``). A trailing ``%`` stays meaningful: ``"25%"`` equals
``"25 %"`` but not ``"25"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_OPEN, _CLOSE = "<answer>", "</answer>"
_TAG = re.compile(r"</?(?:reasoning|answer)>")
_LAYOUT = ("<reasoning>", "</reasoning>", _OPEN, _CLOSE)
# ASCII only: \d would otherwise accept digits of other scripts that the
# canonical form below does not handle.
_NUMBER = re.compile(
    r"(?P<sign>[+-]?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?", re.ASCII
)


_MARKER = re.compile(r"(?:answer\s*(?:is|:|=)|####)[ \t]*(?P<answer>[^\n]*)", re.IGNORECASE)
_ANY_NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\s*%?", re.ASCII)
TAGGED, MARKED, WHOLE_TEXT, LAST_NUMBER, NOT_FOUND = (
    "tag", "marker", "whole text", "last number", "none",
)


@dataclass(frozen=True)
class Score:
    """The verdict on one completion, and where its answer was found."""

    answer: str | None
    format_ok: bool
    correct: bool
    answer_from: str = TAGGED


def extract_answer(completion: str) -> str | None:
    """Text inside the first ``<answer>...</answer>``, else None."""
    start = completion.find(_OPEN)
    if start < 0:
        return None
    start += len(_OPEN)
    end = completion.find(_CLOSE, start)
    return None if end < 0 else completion[start:end]


def find_answer(completion: str) -> tuple[str | None, str]:
    """The completion's answer and where it was found (see the module docstring)."""
    tagged = extract_answer(completion)
    if tagged is not None:
        return tagged, TAGGED
    marked = [m.group("answer").strip().rstrip(".") for m in _MARKER.finditer(completion)]
    if marked and marked[-1]:
        return marked[-1], MARKED
    numbers = _ANY_NUMBER.findall(completion)
    if numbers:
        return numbers[-1].strip(), LAST_NUMBER
    text = completion.strip()
    if text and "\n" not in text and not _TAG.search(text):
        return text.rstrip("."), WHOLE_TEXT
    return None, NOT_FOUND


def is_format_compliant(completion: str) -> bool:
    """Whether the completion is exactly one reasoning block then one non-blank answer block."""
    text = completion.strip()
    tags = list(_TAG.finditer(text))
    if tuple(tag.group() for tag in tags) != _LAYOUT:
        return False
    open_reasoning, close_reasoning, open_answer, close_answer = tags
    return (
        open_reasoning.start() == 0
        and close_answer.end() == len(text)
        and not text[close_reasoning.end() : open_answer.start()].strip()
        and bool(text[open_answer.end() : close_answer.start()].strip())
    )


def normalize_answer(text: str) -> str:
    """Canonical form of an answer for comparison (see the module docstring)."""
    folded = " ".join(text.strip().casefold().split())
    if folded.endswith("%"):
        return _canonical_number(folded[:-1].rstrip()) + "%"
    return _canonical_number(folded)


def score(completion: str, expected: str) -> Score:
    """Score a completion against the expected answer."""
    answer, found = find_answer(completion)
    normalized = None if answer is None else normalize_answer(answer)
    correct = bool(normalized) and normalized == normalize_answer(expected)
    return Score(answer, is_format_compliant(completion), correct, found)


def _canonical_number(text: str) -> str:
    """Rewrite a plain decimal number canonically; other text is returned unchanged."""
    match = _NUMBER.fullmatch(text)
    if match is None:
        return text
    # Done on digit strings rather than floats or Decimal so that long
    # numbers compare exactly.
    whole = match.group("int").replace(",", "").lstrip("0") or "0"
    frac = (match.group("frac") or "").rstrip("0")
    number = f"{whole}.{frac}" if frac else whole
    negative = match.group("sign") == "-" and number != "0"
    return f"-{number}" if negative else number
