"""Tests for the shared answer scorer."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.record.scoring import (
    Score,
    extract_answer,
    is_format_compliant,
    normalize_answer,
    score,
)
from harness.spec.data import load_traces
from harness.spec.prompting import format_completion, format_prompt

ROOT = Path(__file__).resolve().parent.parent
TAGS = ["<reasoning>", "</reasoning>", "<answer>", "</answer>"]
PIECES = [*TAGS, "<", ">", "/", "x", " ", "\n", "92", "%"]
TAG_SOUP = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
R = "<reasoning>r</reasoning>"


def test_prompt_format() -> None:
    assert format_prompt("What is 2 + 3?") == "Question: What is 2 + 3?\nAnswer: "


def test_completion_format() -> None:
    trace = load_traces(ROOT / "datasets" / "dev-reasoning-v2")[0]
    reasoning = "<reasoning>multiply first ; 2 * 9 = 18 ; 26 + 18 = 44</reasoning>"
    assert format_completion(trace) == reasoning + "<answer>44</answer>"


@pytest.mark.parametrize(
    ("completion", "expected", "result"),
    [
        ("<reasoning>2 + 3 = 5</reasoning><answer>5</answer>", "5", Score("5", True, True)),
        ("  <reasoning>r</reasoning>\n<answer> 5 </answer>\n", "5", Score(" 5 ", True, True)),
        (R + "<answer>6</answer>", "5", Score("6", True, False)),
        (R + "<answer>92.0</answer>", "92", Score("92.0", True, True)),
        (R + "<answer>1,200</answer>", "1200", Score("1,200", True, True)),
        (R + "<answer>Tenalp</answer>", "tenalp", Score("Tenalp", True, True)),
        (R + "<answer>25 %</answer>", "25%", Score("25 %", True, True)),
        (R + "<answer>25</answer>", "25%", Score("25", True, False)),
        ("5", "5", Score("5", False, True, "last number")),
        (R + "5", "5", Score("5", False, True, "last number")),
        ("<answer>5</answer>", "5", Score("5", False, True)),
        (R + "<answer>5", "5", Score("5", False, True, "last number")),
        (R + "<answer>5</answer> so 5", "5", Score("5", False, True)),
        (R + "<answer>5</answer><answer>6</answer>", "5", Score("5", False, True)),
        (R + "<answer>   </answer>", "5", Score("   ", False, False)),
        ("<reasoning>a<reasoning>b</reasoning><answer>5</answer>", "5", Score("5", False, True)),
        (
            "<reasoning>r<answer>5</answer></reasoning><answer>5</answer>",
            "5",
            Score("5", False, True),
        ),
        ("<answer>5</answer><reasoning>r</reasoning>", "5", Score("5", False, True)),
        (R + "x<answer>5</answer>", "5", Score("5", False, True)),
        ("</answer><answer>5<answer>6</answer>", "5", Score("5<answer>6", False, False)),
        ("", "5", Score(None, False, False, "none")),
        (R, "5", Score(None, False, False, "none")),
    ],
)
def test_score_cases(completion: str, expected: str, result: Score) -> None:
    assert score(completion, expected) == result


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("92.0", "92"),
        ("1,200", "1200"),
        ("-0", "0"),
        ("-0.00", "+0"),
        ("12.50", "12.5"),
        ("007", "7"),
        ("25%", "25 %"),
        ("25.0%", "25%"),
        ("  Hello   World ", "hello world"),
        ("12345678901234567890123456789012345", "12,345,678,901,234,567,890,123,456,789,012,345"),
    ],
)
def test_normalize_equal(left: str, right: str) -> None:
    assert normalize_answer(left) == normalize_answer(right)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("25%", "25"),
        ("-5", "5"),
        ("1,20", "120"),
        ("12345678901234567890123456789012345", "12345678901234567890123456789012346"),
    ],
)
def test_normalize_distinct(left: str, right: str) -> None:
    assert normalize_answer(left) != normalize_answer(right)


@pytest.mark.parametrize(
    ("completion", "compliant"),
    [
        ("<reasoning></reasoning> \n <answer>a</answer>", True),
        ("<reasoning>r</reasoning><answer>a</answer><eos>", False),
        ("<Reasoning>r</Reasoning><answer>a</answer>", False),
    ],
)
def test_format_compliance(completion: str, compliant: bool) -> None:
    assert is_format_compliant(completion) is compliant


@pytest.mark.parametrize(
    ("completion", "expected", "result"),
    [
        # Foreign models write free text: the answer is found without the tags.
        ("The answer is 42.", "42", Score("42", False, True, "marker")),
        ("Step 1: 6 * 7 = 42\nFinal answer: 42", "42", Score("42", False, True, "marker")),
        ("6 * 7 = 42\n#### 1,200", "1200", Score("1,200", False, True, "marker")),
        ("First 3, then 7, so 10", "10", Score("10", False, True, "last number")),
        ("The discount leaves 25 %", "25%", Score("25 %", False, True, "last number")),
        ("olleh", "olleh", Score("olleh", False, True, "whole text")),
        ("it is olleh", "olleh", Score("it is olleh", False, False, "whole text")),
        ("no answer here\nat all", "5", Score(None, False, False, "none")),
        # A tagged answer, even a wrong one, is the answer: free text does not override it.
        ("<answer>6</answer> the answer is 5", "5", Score("6", False, False, "tag")),
    ],
)
def test_free_text_answers(completion: str, expected: str, result: Score) -> None:
    assert score(completion, expected) == result


def test_extract_answer_takes_the_first_block() -> None:
    assert extract_answer("x<answer>a</answer><answer>b</answer>") == "a"
    assert extract_answer("no tags") is None


@settings(max_examples=500, deadline=None)
@given(completion=st.one_of(st.text(), TAG_SOUP), expected=st.one_of(st.text(), TAG_SOUP))
def test_score_is_total(completion: str, expected: str) -> None:
    result = score(completion, expected)
    assert isinstance(result.format_ok, bool) and isinstance(result.correct, bool)
    assert result.answer is None or isinstance(result.answer, str)
    assert isinstance(normalize_answer(completion), str)
    assert result.format_ok <= (result.answer is not None)


def test_every_committed_trace_scores_correct() -> None:
    for trace in load_traces(ROOT / "datasets" / "dev-reasoning-v2"):
        result = score(format_completion(trace), trace.final_answer)
        assert result.format_ok and result.correct, trace.prompt
        assert result.answer == trace.final_answer


@settings(max_examples=500, deadline=None)
@given(answer=st.text().filter(lambda text: bool(text.strip()) and "<" not in text))
def test_wellformed_answer_scores_correct(answer: str) -> None:
    result = score(f"<reasoning>x</reasoning><answer>{answer}</answer>", answer)
    assert result == Score(answer, True, True)
