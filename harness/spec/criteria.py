"""Acceptance criteria: the metric registry, comparison parsing, and per-phase judgements."""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from harness.spec.phase_order import EVALUATE, EVALUATE_BASE, PREFLIGHT, TRAIN


class CriterionError(ValueError):
    """A malformed criterion; its message is one line."""


@dataclass(frozen=True)
class Metric:
    """A metric a criterion may name, and the phase that produces it."""

    name: str
    phase: str
    description: str
    hardware_bound: bool = False


def _registry(*metrics: Metric) -> Mapping[str, Metric]:
    return MappingProxyType({metric.name: metric for metric in metrics})


def _comparison_metrics(against: str, what: str) -> tuple[Metric, ...]:
    """The paired comparison of this run's evaluation with ``what``'s, on the same items."""
    return (
        Metric(
            f"compare.{against}.accuracy_delta",
            EVALUATE,
            f"eval.accuracy minus the accuracy of {what} on the same items.",
        ),
        Metric(
            f"compare.{against}.p_value",
            EVALUATE,
            f"Exact McNemar p-value of the accuracy difference with {what}.",
        ),
        Metric(
            f"compare.{against}.wrong_to_right",
            EVALUATE,
            f"Eval items {what} got wrong and this run got right.",
        ),
        Metric(
            f"compare.{against}.right_to_wrong",
            EVALUATE,
            f"Eval items {what} got right and this run got wrong.",
        ),
    )


METRICS: Mapping[str, Metric] = _registry(
    Metric(
        "preflight.dataset_records",
        PREFLIGHT,
        "Number of training records in the dataset after preflight validation.",
    ),
    Metric(
        "preflight.evalset_records",
        PREFLIGHT,
        "Number of evaluation items in the evalset after preflight validation.",
    ),
    Metric(
        "preflight.contaminated_items",
        PREFLIGHT,
        "Number of eval items whose prompt is in the training data (exact, normalised or a "
        "shared 13-gram).",
    ),
    Metric("train.first_loss", TRAIN, "Training loss logged at the first optimizer step."),
    Metric("train.final_loss", TRAIN, "Training loss logged at the last optimizer step."),
    Metric("train.min_loss", TRAIN, "Lowest training loss logged at any step."),
    Metric("train.loss_ratio", TRAIN, "Final training loss divided by the first training loss."),
    Metric(
        "train.nonfinite_steps", TRAIN, "Number of steps whose logged loss was NaN or infinite."
    ),
    Metric("train.steps_completed", TRAIN, "Number of optimizer steps the training run completed."),
    Metric("train.runtime_s", TRAIN, "Wall-clock seconds the training run took."),
    Metric(
        "perf.tokens_per_s",
        TRAIN,
        "Training tokens processed per wall-clock second over the training run.",
        hardware_bound=True,
    ),
    Metric(
        "perf.samples_per_s",
        TRAIN,
        "Training examples processed per wall-clock second over the training run.",
        hardware_bound=True,
    ),
    Metric("eval.accuracy", EVALUATE, "Fraction of evaluation items answered correctly."),
    Metric(
        "eval.format_compliance",
        EVALUATE,
        "Fraction of evaluation completions whose answer follows the required format.",
    ),
    Metric("eval.count", EVALUATE, "Number of evaluation items scored."),
    Metric("eval.accuracy_low", EVALUATE, "Lower end of the 95% Wilson interval on eval.accuracy."),
    Metric("eval.accuracy_high", EVALUATE, "Upper end of the 95% Wilson interval on eval.accuracy."),
    Metric(
        "eval.format_compliance_low",
        EVALUATE,
        "Lower end of the 95% Wilson interval on eval.format_compliance.",
    ),
    Metric(
        "eval.format_compliance_high",
        EVALUATE,
        "Upper end of the 95% Wilson interval on eval.format_compliance.",
    ),
    Metric("base.accuracy", EVALUATE_BASE, "Accuracy of the untuned model (evaluate-base)."),
    Metric("base.accuracy_low", EVALUATE_BASE, "Lower end of the 95% interval on base.accuracy."),
    Metric("base.accuracy_high", EVALUATE_BASE, "Upper end of the 95% interval on base.accuracy."),
    Metric(
        "base.format_compliance",
        EVALUATE_BASE,
        "Answer-format compliance of the untuned model (evaluate-base).",
    ),
    *_comparison_metrics("base", "the untuned model"),
    *_comparison_metrics("baseline", "the baseline run"),
)

_OPERATORS: Mapping[str, Callable[[float, float], bool]] = MappingProxyType(
    {
        "<": operator.lt,
        "<=": operator.le,
        "==": operator.eq,
        "!=": operator.ne,
        ">=": operator.ge,
        ">": operator.gt,
    }
)

# nan and inf are left out of the grammar on purpose: no criterion can sensibly name them.
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_PATTERN = re.compile(
    rf"\s*(?P<op><=|>=|==|!=|<|>)\s*"
    rf"(?:(?P<constant>[+-]?{_NUMBER})"
    rf"|baseline(?:\s*(?P<sign>[+-])\s*(?P<offset>{_NUMBER}))?)\s*"
)
_EXPECTED = "expected '<op> <number>' or '<op> baseline [+|- <number>]'"


def _format_number(value: float) -> str:
    """Shortest text that parses back to exactly ``value``; integers without a trailing '.0'."""
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True)
class Comparison:
    """A parsed criterion: an operator against a constant or against the baseline plus a constant.

    For baseline forms ``value`` is the signed offset, so the threshold is ``baseline + value``.
    """

    op: str
    value: float
    relative_to_baseline: bool
    text: str = field(compare=False)

    def threshold(self, baseline: float | None) -> float:
        """The number a measurement is compared against."""
        if not self.relative_to_baseline:
            return self.value
        if baseline is None:
            raise CriterionError(f"comparison '{self}' needs a baseline value")
        return baseline + self.value

    def holds(self, measured: float, baseline: float | None = None) -> bool:
        """Whether ``measured`` meets this comparison; a NaN measurement never does."""
        # Without this, '!=' would accept a NaN loss or accuracy as a pass.
        if math.isnan(measured):
            return False
        return _OPERATORS[self.op](measured, self.threshold(baseline))

    def __str__(self) -> str:
        if not self.relative_to_baseline:
            return f"{self.op} {_format_number(self.value)}"
        if self.value == 0:
            return f"{self.op} baseline"
        sign = "-" if self.value < 0 else "+"
        return f"{self.op} baseline {sign} {_format_number(abs(self.value))}"


def _malformed(text: object) -> CriterionError:
    # Collapsing whitespace keeps the message on one line even for multi-line YAML values.
    shown = " ".join(str(text).split())
    return CriterionError(f"malformed comparison '{shown}': {_EXPECTED}")


def _finite(number: str, text: str) -> float:
    value = float(number)
    if not math.isfinite(value):
        raise _malformed(text)
    return value


def parse_comparison(text: str) -> Comparison:
    """Parse '<op> <number>' or '<op> baseline [+|- <number>]'."""
    # YAML hands over bare numbers as int or float; they are malformed, not a TypeError.
    match = _PATTERN.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise _malformed(text)
    op, constant = match["op"], match["constant"]
    if constant is not None:
        return Comparison(op, _finite(constant, text), False, text.strip())
    offset = _finite(match["offset"], text) if match["offset"] is not None else 0.0
    value = -offset if match["sign"] == "-" else offset
    return Comparison(op, value, True, text.strip())


def check_metric_name(name: str) -> None:
    """Raise CriterionError for a name not in METRICS, suggesting the nearest one."""
    if name in METRICS:
        return
    close = difflib.get_close_matches(name, list(METRICS), n=1)
    if close:
        raise CriterionError(f"unknown metric '{name}' (did you mean '{close[0]}'?)")
    known = ", ".join(sorted(METRICS))
    raise CriterionError(f"unknown metric '{name}' (known metrics: {known})")


class Verdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_JUDGED = "not judged"


@dataclass(frozen=True)
class Judgement:
    """The verdict on one criterion; ``reason`` says why it was not judged, empty otherwise."""

    metric: str
    comparison: str
    measured: float | None
    threshold: float | None
    verdict: Verdict
    reason: str

    def line(self) -> str:
        """One line for logs and the summary."""
        if self.verdict is Verdict.NOT_JUDGED or self.measured is None:
            return f"{self.metric} not judged: {self.reason}"
        word = "meets" if self.verdict is Verdict.PASSED else "needs"
        requirement = self.comparison
        if "baseline" in self.comparison and self.threshold is not None:
            requirement += f" (threshold {self.threshold:.4g})"
        return f"{self.metric} = {self.measured:.4g}, {word} {requirement}"


def judge(
    name: str,
    comparison: Comparison,
    measured: float | None,
    *,
    baseline: float | None = None,
    not_judged_reason: str | None = None,
) -> Judgement:
    """Judge one measurement against one comparison."""
    needs_baseline = comparison.relative_to_baseline and baseline is None
    threshold = None if needs_baseline else comparison.threshold(baseline)

    def verdict(outcome: Verdict, reason: str = "") -> Judgement:
        return Judgement(name, str(comparison), measured, threshold, outcome, reason)

    if not_judged_reason is not None:
        return verdict(Verdict.NOT_JUDGED, not_judged_reason)
    if measured is None:
        return verdict(Verdict.NOT_JUDGED, "not measured in this run")
    if needs_baseline:
        return verdict(Verdict.NOT_JUDGED, "no baseline value")
    passed = comparison.holds(measured, baseline)
    return verdict(Verdict.PASSED if passed else Verdict.FAILED)


def judge_phase(
    phase: str,
    criteria: Mapping[str, Comparison],
    measured: Mapping[str, float],
    *,
    baselines: Mapping[str, float] | None = None,
    hardware_matches: bool = True,
    hardware_note: str = "",
) -> list[Judgement]:
    """Judge the criteria whose metric ``phase`` produces, sorted by metric name."""
    for name in criteria:
        check_metric_name(name)
    baselines = baselines or {}
    hardware_reason = hardware_note or "not measured on the spec's hardware"
    return [
        judge(
            name,
            criteria[name],
            measured.get(name),
            baseline=baselines.get(name),
            not_judged_reason=None
            if hardware_matches or not METRICS[name].hardware_bound
            else hardware_reason,
        )
        for name in sorted(n for n in criteria if METRICS[n].phase == phase)
    ]
