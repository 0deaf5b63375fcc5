"""Writers of the training and evaluation files: they render the run's record and compute
nothing (the derived metrics come from ``harness.record.metrics``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.record.evaluation import CategoryScore, EvalResult
from harness.record.metrics import (
    THROUGHPUT_WARMUP_STEPS,
    mean_rate,
    padding_fraction,
    step_rate,
    utilisation,
)
from harness.record.run import MilestoneRun
from harness.record.statistics import INTERVAL_METHOD, Interval
from trainers.flops import PALM_FORMULA, FlopsBasis


def training_metrics(run: MilestoneRun) -> dict[str, Any]:
    """``training_metrics.json``: per-step records and their summary, from the steps seen so far."""
    record = run.record
    request, steps, result = record.training_request, record.steps, record.train_result
    assert request is not None, "training metrics are written once training has started"
    metrics: dict[str, Any] = {
        "milestone": run.milestone.id,
        "run_id": run.run_id,
        "backend": run.milestone.spec.backend,
        "device": result.device if result else request.device,
        "model": request.model_source,
        "steps_planned": request.total_steps(),
        "steps_completed": len(steps),
        "completed": result is not None,
        "tokens_counted": "non-padding tokens (prompt and completion)",
        "throughput_excludes_warmup_steps": THROUGHPUT_WARMUP_STEPS,
        "per_step": [
            {
                "step": s.step,
                "loss": s.loss,
                "lr": s.lr,
                "grad_norm": s.grad_norm,
                "samples": s.samples,
                "tokens": s.tokens,
                "seconds": s.seconds,
                "tokens_per_s": step_rate(s),
            }
            for s in steps
        ],
    }
    if steps:
        metrics.update(
            first_loss=steps[0].loss,
            final_loss=steps[-1].loss,
            min_loss=min(s.loss for s in steps),
            samples_per_s=mean_rate(steps, "samples"),
            tokens_per_s=mean_rate(steps, "tokens"),
            runtime_s=result.runtime_s if result else sum(s.seconds for s in steps),
        )
    padding = padding_fraction(steps)
    if padding is not None:
        metrics["padding_fraction"] = padding
    if result:
        metrics["model_parameters"] = result.model_parameters
    if result and result.flops:
        metrics.update(utilisation_facts(result.flops, mean_rate(steps, "tokens")))
    return metrics


def utilisation_facts(basis: FlopsBasis, tokens_per_s: float) -> dict[str, Any]:
    """The FLOPs basis, and MFU or why it is omitted: evidence holds no nulls, so the reason
    stands in for the number."""
    used = utilisation(basis, tokens_per_s)
    facts: dict[str, Any] = {
        "flops_basis": {
            "formula": PALM_FORMULA,
            "parameters": basis.parameters,
            "seq_len": basis.seq_len,
            "flops_per_token": basis.per_token,
            "device_name": basis.device_name,
            "devices": basis.devices,
        }
    }
    if used.omitted is not None:
        facts["mfu_omitted"] = used.omitted
    else:
        facts["flops_basis"]["peak_bf16_flops_per_device"] = used.peak_per_device
        facts["mfu"] = used.mfu
    return facts


def prediction_rows(result: EvalResult) -> list[dict[str, Any]]:
    """``predictions.jsonl``: one scored line per item; the item's own keys under ``extra``."""
    return [
        {
            "id": p.id,
            "category": p.category,
            "prompt": p.prompt,
            "expected": p.expected,
            "completion": p.completion,
            "answer": p.answer if p.answer is not None else "",
            "answer_from": p.answer_from,
            "format_ok": p.format_ok,
            "correct": p.correct,
        }
        | ({"extra": dict(p.extra)} if p.extra else {})
        for p in result.predictions
    ]


def interval(value: Interval) -> dict[str, float]:
    return {"low": value.low, "high": value.high}


def scores(scored: CategoryScore) -> dict[str, Any]:
    """Count, accuracy and format compliance, each rate with its 95% interval."""
    return {
        "count": scored.count,
        "accuracy": scored.accuracy,
        "accuracy_interval": interval(scored.accuracy_interval),
        "format_compliance": scored.format_compliance,
        "format_compliance_interval": interval(scored.format_interval),
    }


def scored(result: EvalResult) -> dict[str, Any]:
    """Accuracy and format compliance with their intervals, overall and per category; per value
    of each evalset key the spec's ``evaluation.breakdown`` names."""
    found = {
        **scores(result.overall),
        "interval_method": INTERVAL_METHOD,
        "per_category": {name: scores(c) for name, c in result.per_category.items()},
    }
    if result.breakdown:
        found["breakdown"] = {
            key: {value: scores(c) for value, c in by_value.items()}
            for key, by_value in result.breakdown.items()
        }
    return found


def evaluation_results(run: MilestoneRun, result: EvalResult) -> dict[str, Any]:
    """``evaluation_results.json`` (or the base model's): accuracy and format compliance with their
    intervals, overall and per category."""
    return {
        "milestone": run.milestone.id,
        "run_id": run.run_id,
        "evalset": run.milestone.spec.evalset,
        **scored(result),
        "runtime_s": result.runtime_s,
        "items_per_s": result.count / result.runtime_s if result.runtime_s else 0.0,
    }


def rate_with_interval(rate: float, bounds: Interval) -> str:
    """``12.0% [7.0%, 19.8%]``."""
    return f"{rate:.1%} [{bounds.low:.1%}, {bounds.high:.1%}]"


def evaluation_summary(run: MilestoneRun, result: EvalResult) -> str:
    """``evaluation_summary.md``: the scores for a reader, with the first predictions."""
    overall = result.overall
    lines = [
        f"# Evaluation of {run.run_id} on {run.milestone.spec.evalset}",
        "",
        f"- items scored: {result.count}",
        f"- accuracy: {rate_with_interval(overall.accuracy, overall.accuracy_interval)}",
        "- answer-format compliance: "
        f"{rate_with_interval(overall.format_compliance, overall.format_interval)}",
        f"- intervals: {INTERVAL_METHOD}",
        f"- generation time: {result.runtime_s:.1f} s (greedy, batched, KV cache)",
        "",
        *category_table(result.per_category),
    ]
    for key, by_value in result.breakdown.items():
        lines += ["", f"## By {cell(key)}", "", *category_table(by_value, heading=key)]
    lines += [
        "",
        "## First predictions",
        "",
        "| id | expected | answer | correct |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {p.id} | {p.expected} | {cell(p.answer or '(none)')} | {'yes' if p.correct else 'no'} |"
        for p in result.predictions[:10]
    ]
    return "\n".join(lines) + "\n"


def category_table(rows: Mapping[str, CategoryScore], heading: str = "category") -> list[str]:
    """A markdown table of items, accuracy and format compliance, with intervals, per row."""
    lines = [f"| {cell(heading)} | items | accuracy | format compliance |", "| --- | ---: | ---: | ---: |"]
    lines += [
        f"| {cell(name)} | {c.count} | {rate_with_interval(c.accuracy, c.accuracy_interval)} | "
        f"{rate_with_interval(c.format_compliance, c.format_interval)} |"
        for name, c in rows.items()
    ]
    return lines


def cell(text: str) -> str:
    """``text`` made safe for one markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
