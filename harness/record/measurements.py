"""Registry metrics measured from a bundle's documents, the same way for this run (its documents
rendered in memory) and for a baseline (its documents read from disk)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What a paired comparison gives criteria, as ``compare.base.<key>`` and ``compare.baseline.<key>``.
COMPARISON_METRICS = ("accuracy_delta", "p_value", "wrong_to_right", "right_to_wrong")
# The training summary keys that criteria can name, by registry metric.
SUMMARY_METRICS = (
    ("runtime_s", "train.runtime_s"),
    ("tokens_per_s", "perf.tokens_per_s"),
    ("samples_per_s", "perf.samples_per_s"),
)


@dataclass(frozen=True)
class Baseline:
    """The run a new run is held against: its verified bundle, measured, and which eval items it
    answered correctly (for the paired comparison)."""

    path: Path
    run_id: str
    metrics: dict[str, float]
    correct: dict[str, bool] = field(default_factory=dict)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _losses(per_step: Any) -> list[Any]:
    """Each step's loss; a step that is not an object, or has no loss, has no finite one."""
    steps = per_step if isinstance(per_step, list) else []
    return [step.get("loss") if isinstance(step, dict) else None for step in steps]


def measure(
    manifest: dict[str, Any],
    training_metrics: dict[str, Any],
    evaluation_results: dict[str, Any],
    base_evaluation_results: dict[str, Any],
) -> dict[str, float]:
    """Every registry metric these documents hold: ``run_manifest.json``, ``training_metrics.json``,
    ``evaluation_results.json`` and ``base_evaluation_results.json`` as objects, each empty where
    the bundle has none (yet)."""
    found: dict[str, float] = {}
    for kind in ("dataset", "evalset"):
        data = manifest.get(kind)
        records = data.get("records") if isinstance(data, dict) else None
        if _finite(records):
            found[f"preflight.{kind}_records"] = float(records)
    contamination = manifest.get("contamination")
    flagged = contamination.get("items") if isinstance(contamination, dict) else None
    if _finite(flagged):
        found["preflight.contaminated_items"] = float(flagged)
    losses = _losses(training_metrics.get("per_step"))
    if losses:
        finite = [loss for loss in losses if _finite(loss)]
        found["train.nonfinite_steps"] = float(len(losses) - len(finite))
        found["train.steps_completed"] = float(len(losses))
        if finite:
            found["train.first_loss"] = finite[0]
            found["train.final_loss"] = finite[-1]
            found["train.min_loss"] = min(finite)
            if finite[0]:
                found["train.loss_ratio"] = finite[-1] / finite[0]
        for key, name in SUMMARY_METRICS:
            if _finite(training_metrics.get(key)):
                found[name] = float(training_metrics[key])
    found |= _scores("eval", evaluation_results)
    found |= _scores("base", base_evaluation_results)
    comparisons = manifest.get("comparisons")
    for against in ("base", "baseline"):
        compared = comparisons.get(against) if isinstance(comparisons, dict) else None
        for key in COMPARISON_METRICS:
            value = compared.get(key) if isinstance(compared, dict) else None
            if _finite(value):
                found[f"compare.{against}.{key}"] = float(value)
    return found


def _scores(prefix: str, results: dict[str, Any]) -> dict[str, float]:
    """Count, accuracy and format compliance of an evaluation, each rate with its interval."""
    found = {}
    for key in ("accuracy", "format_compliance", "count"):
        if _finite(results.get(key)):
            found[f"{prefix}.{key}"] = float(results[key])
    for key in ("accuracy", "format_compliance"):
        bounds = results.get(f"{key}_interval")
        for end in ("low", "high"):
            value = bounds.get(end) if isinstance(bounds, dict) else None
            if _finite(value):
                found[f"{prefix}.{key}_{end}"] = float(value)
    return found


def deltas(current: dict[str, float], baseline: Baseline) -> list[tuple[str, float, float, float]]:
    """(metric, value, baseline, value - baseline) for every metric both runs have."""
    shared = sorted(current.keys() & baseline.metrics.keys())
    before = baseline.metrics
    return [(name, current[name], before[name], current[name] - before[name]) for name in shared]
