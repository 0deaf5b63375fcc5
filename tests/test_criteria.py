"""Tests for acceptance criteria: parsing, the metric registry, and judgements."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.spec.criteria import (
    METRICS,
    Comparison,
    CriterionError,
    Judgement,
    Verdict,
    check_metric_name,
    judge,
    judge_phase,
    parse_comparison,
)
from harness.spec.phase_order import EVALUATE, EVALUATE_BASE, PREFLIGHT, TRAIN

ROOT = Path(__file__).resolve().parent.parent
OPS = ("<", "<=", "==", "!=", ">=", ">")
# Bounded so that baseline +/- constant stays finite and its repr stays evaluable.
FINITE = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False)
SPACES = st.sampled_from(["", " ", "  "])


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "op", "value", "relative", "canonical"),
    [
        ("<= 0.5", "<=", 0.5, False, "<= 0.5"),
        (">=0.9", ">=", 0.9, False, ">= 0.9"),
        ("== 0", "==", 0.0, False, "== 0"),
        ("> 1e-3", ">", 0.001, False, "> 0.001"),
        ("> -1", ">", -1.0, False, "> -1"),
        ("!= +2.5E2", "!=", 250.0, False, "!= 250"),
        ("< .5", "<", 0.5, False, "< 0.5"),
        (">= baseline", ">=", 0.0, True, ">= baseline"),
        (">= baseline - 0.02", ">=", -0.02, True, ">= baseline - 0.02"),
        ("< baseline + 5", "<", 5.0, True, "< baseline + 5"),
        ("  >=baseline-0.02  ", ">=", -0.02, True, ">= baseline - 0.02"),
    ],
)
def test_parse_concrete_forms(
    text: str, op: str, value: float, relative: bool, canonical: str
) -> None:
    comparison = parse_comparison(text)
    assert (comparison.op, comparison.value, comparison.relative_to_baseline) == (
        op,
        value,
        relative,
    )
    assert comparison.text == text.strip()
    assert str(comparison) == canonical


@pytest.mark.parametrize(
    "text",
    [
        "=> 1",
        "<= ",
        "baseline",
        ">= basline",
        "<= nan",
        "<= inf",
        "<= 1e999",
        "<= 1 2",
        ">= baseline * 2",
        ">= baseline - -1",
        "<= 1\n2",
        "",
    ],
)
def test_malformed_comparisons_raise_one_line_errors(text: str) -> None:
    with pytest.raises(CriterionError, match=r"^malformed comparison '") as caught:
        parse_comparison(text)
    message = str(caught.value)
    assert "\n" not in message
    assert message.endswith("expected '<op> <number>' or '<op> baseline [+|- <number>]'")


def test_malformed_message_quotes_the_text() -> None:
    with pytest.raises(CriterionError) as caught:
        parse_comparison(">= basline")
    assert str(caught.value).startswith("malformed comparison '>= basline': ")


def test_bare_yaml_number_is_malformed() -> None:
    with pytest.raises(CriterionError, match="malformed comparison '0'"):
        parse_comparison(0)  # type: ignore[arg-type]


def test_threshold_needs_baseline_for_relative_forms() -> None:
    assert parse_comparison("<= 3").threshold(None) == 3.0
    assert parse_comparison(">= baseline - 0.5").threshold(2.0) == 1.5
    with pytest.raises(CriterionError, match="needs a baseline"):
        parse_comparison(">= baseline").threshold(None)


def test_nan_measurement_never_holds() -> None:
    for op in OPS:
        assert not parse_comparison(f"{op} 1").holds(math.nan)


@st.composite
def comparison_texts(draw: st.DrawFn) -> tuple[str, str, float, str]:
    """(text, op, constant, form) where form is 'constant', 'baseline', '+' or '-'."""
    op = draw(st.sampled_from(OPS))
    before, after = draw(SPACES), draw(SPACES)
    form = draw(st.sampled_from(["constant", "baseline", "+", "-"]))
    if form == "constant":
        constant = draw(FINITE)
        return f"{op}{before}{constant!r}{after}", op, constant, form
    if form == "baseline":
        return f"{op}{before}baseline{after}", op, 0.0, form
    offset = draw(FINITE.map(abs))
    return f"{op}{before}baseline{after}{form}{before}{offset!r}", op, offset, form


def _expected_threshold(form: str, constant: float, baseline: float) -> float:
    if form == "constant":
        return constant
    if form == "baseline":
        return baseline
    return baseline + constant if form == "+" else baseline - constant


@given(comparison_texts())
def test_canonical_text_round_trips(case: tuple[str, str, float, str]) -> None:
    text, _, _, _ = case
    first = parse_comparison(text)
    again = parse_comparison(str(first))
    assert again == first
    assert str(again) == str(first)


@given(comparison_texts(), FINITE, FINITE)
def test_holds_matches_python_comparison(
    case: tuple[str, str, float, str], measured: float, baseline: float
) -> None:
    text, op, constant, form = case
    threshold = _expected_threshold(form, constant, baseline)
    comparison = parse_comparison(text)
    assert comparison.threshold(baseline) == threshold
    assert comparison.holds(measured, baseline) == eval(f"{measured!r} {op} {threshold!r}")


# --- metric names ----------------------------------------------------------------------------


def test_registry_holds_exactly_the_documented_metrics() -> None:
    assert set(METRICS) == {
        "train.first_loss",
        "train.final_loss",
        "train.min_loss",
        "train.loss_ratio",
        "train.nonfinite_steps",
        "train.steps_completed",
        "train.runtime_s",
        "perf.tokens_per_s",
        "perf.samples_per_s",
        "eval.accuracy",
        "eval.format_compliance",
        "eval.count",
        "eval.accuracy_low",
        "eval.accuracy_high",
        "eval.format_compliance_low",
        "eval.format_compliance_high",
        "preflight.dataset_records",
        "preflight.evalset_records",
        "preflight.contaminated_items",
        "base.accuracy",
        "base.accuracy_low",
        "base.accuracy_high",
        "base.format_compliance",
        *(
            f"compare.{against}.{key}"
            for against in ("base", "baseline")
            for key in ("accuracy_delta", "p_value", "wrong_to_right", "right_to_wrong")
        ),
    }
    assert all(name == metric.name for name, metric in METRICS.items())
    assert {name for name, metric in METRICS.items() if metric.hardware_bound} == {
        "perf.tokens_per_s",
        "perf.samples_per_s",
    }
    assert {metric.phase for metric in METRICS.values()} == {
        PREFLIGHT, TRAIN, EVALUATE, EVALUATE_BASE
    }


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        METRICS["eval.extra"] = METRICS["eval.count"]  # type: ignore[index]


def test_known_metric_name_passes() -> None:
    check_metric_name("eval.accuracy")


def test_unknown_metric_suggests_nearest() -> None:
    with pytest.raises(CriterionError) as caught:
        check_metric_name("eval.acuracy")
    assert str(caught.value) == "unknown metric 'eval.acuracy' (did you mean 'eval.accuracy'?)"


def test_unknown_metric_far_from_all_lists_known_ones() -> None:
    with pytest.raises(CriterionError) as caught:
        check_metric_name("zzz")
    message = str(caught.value)
    assert message.startswith("unknown metric 'zzz' (known metrics: ")
    assert all(name in message for name in METRICS)
    assert "\n" not in message


# --- judgements ------------------------------------------------------------------------------


def test_judge_pass() -> None:
    judgement = judge("eval.accuracy", parse_comparison(">= 0.9"), 0.95)
    assert judgement.verdict is Verdict.PASSED
    assert judgement.threshold == 0.9
    assert judgement.line() == "eval.accuracy = 0.95, meets >= 0.9"


def test_judge_fail_line() -> None:
    judgement = judge("eval.accuracy", parse_comparison(">= 0.3"), 0.12)
    assert judgement.verdict is Verdict.FAILED
    assert judgement.line() == "eval.accuracy = 0.12, needs >= 0.3"


def test_judge_line_rounds_to_four_significant_digits() -> None:
    judgement = judge("train.loss_ratio", parse_comparison("<= 0.5"), 0.123456)
    assert judgement.line() == "train.loss_ratio = 0.1235, meets <= 0.5"


def test_judge_baseline_form_shows_threshold() -> None:
    judgement = judge("eval.accuracy", parse_comparison(">= baseline - 0.02"), 0.6, baseline=0.7)
    assert judgement.verdict is Verdict.FAILED
    assert judgement.line() == "eval.accuracy = 0.6, needs >= baseline - 0.02 (threshold 0.68)"


def test_judge_missing_measurement_not_judged() -> None:
    judgement = judge("eval.accuracy", parse_comparison(">= 0.3"), None)
    assert judgement.verdict is Verdict.NOT_JUDGED
    assert judgement.line() == "eval.accuracy not judged: not measured in this run"


def test_judge_missing_baseline_not_judged() -> None:
    judgement = judge("eval.accuracy", parse_comparison(">= baseline"), 0.5)
    assert judgement.verdict is Verdict.NOT_JUDGED
    assert judgement.threshold is None
    assert judgement.reason == "no baseline value"


def test_judge_explicit_reason_wins() -> None:
    reason = "measured on cpu, spec hardware is cuda"
    comparison = parse_comparison(">= 900")
    judgement = judge("perf.tokens_per_s", comparison, 10.0, not_judged_reason=reason)
    assert judgement.verdict is Verdict.NOT_JUDGED
    assert judgement.line() == f"perf.tokens_per_s not judged: {reason}"


CRITERIA: dict[str, Comparison] = {
    "train.loss_ratio": parse_comparison("<= 0.5"),
    "train.nonfinite_steps": parse_comparison("== 0"),
    "perf.tokens_per_s": parse_comparison(">= 900"),
    "eval.accuracy": parse_comparison(">= baseline - 0.02"),
    "eval.format_compliance": parse_comparison(">= 0.9"),
}


def _verdicts(judgements: list[Judgement]) -> dict[str, Verdict]:
    return {j.metric: j.verdict for j in judgements}


def test_judge_phase_picks_only_its_phase_sorted() -> None:
    measured = {"train.loss_ratio": 0.4, "train.nonfinite_steps": 0.0, "perf.tokens_per_s": 1000.0}
    judgements = judge_phase(TRAIN, CRITERIA, measured)
    assert [j.metric for j in judgements] == [
        "perf.tokens_per_s",
        "train.loss_ratio",
        "train.nonfinite_steps",
    ]
    assert set(_verdicts(judgements).values()) == {Verdict.PASSED}
    assert judge_phase(PREFLIGHT, CRITERIA, measured) == []


def test_judge_phase_uses_baselines() -> None:
    measured = {"eval.accuracy": 0.5, "eval.format_compliance": 0.95}
    judgements = judge_phase(EVALUATE, CRITERIA, measured, baselines={"eval.accuracy": 0.6})
    assert _verdicts(judgements) == {
        "eval.accuracy": Verdict.FAILED,
        "eval.format_compliance": Verdict.PASSED,
    }
    no_baseline = _verdicts(judge_phase(EVALUATE, CRITERIA, measured))
    assert no_baseline["eval.accuracy"] is Verdict.NOT_JUDGED


def test_judge_phase_hardware_mismatch_skips_hardware_bound() -> None:
    note = "measured on cpu, spec hardware is cuda"
    measured = {"train.loss_ratio": 0.9, "train.nonfinite_steps": 0.0, "perf.tokens_per_s": 1.0}
    judgements = judge_phase(TRAIN, CRITERIA, measured, hardware_matches=False, hardware_note=note)
    assert _verdicts(judgements) == {
        "perf.tokens_per_s": Verdict.NOT_JUDGED,
        "train.loss_ratio": Verdict.FAILED,
        "train.nonfinite_steps": Verdict.PASSED,
    }
    assert judgements[0].reason == note


def test_judge_phase_missing_measurement_not_judged() -> None:
    judgements = judge_phase(TRAIN, CRITERIA, {"train.loss_ratio": 0.4})
    assert _verdicts(judgements)["train.nonfinite_steps"] is Verdict.NOT_JUDGED


def test_judge_phase_rejects_unknown_metric() -> None:
    with pytest.raises(CriterionError, match="did you mean 'eval.accuracy'"):
        judge_phase(EVALUATE, {"eval.acuracy": parse_comparison(">= 0.3")}, {})


# --- docs ------------------------------------------------------------------------------------


def test_every_metric_is_documented() -> None:
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in (ROOT / "docs" / "criteria.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("| `")
    }
    for name, metric in METRICS.items():
        assert name in rows, f"{name} missing from docs/criteria.md"
        assert f"| {metric.phase} " in rows[name]
        assert metric.description in rows[name]
