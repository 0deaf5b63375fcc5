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
            "format_ok": p.format_ok,
            "correct": p.correct,
        }
        | ({"extra": dict(p.extra)} if p.extra else {})
        for p in result.predictions
    ]


def score_table(by_value: Mapping[str, CategoryScore]) -> dict[str, dict[str, Any]]:
    """Count, accuracy and format compliance per value of one breakdown key."""
    return {
        name: {"count": c.count, "accuracy": c.accuracy, "format_compliance": c.format_compliance}
        for name, c in by_value.items()
    }


def evaluation_results(run: MilestoneRun) -> dict[str, Any]:
    """``evaluation_results.json``: accuracy overall and per category, format compliance, count;
    the breakdown by the evalset's own keys where the spec names some."""
    result = run.record.eval_result
    assert result is not None, "evaluation results are written once evaluation has scored"
    results = {
        "milestone": run.milestone.id,
        "run_id": run.run_id,
        "evalset": run.milestone.spec.evalset,
        "count": result.count,
        "accuracy": result.accuracy,
        "format_compliance": result.format_compliance,
        "per_category": {
            name: {"count": c.count, "accuracy": c.accuracy, "format_compliance": c.format_compliance}
            for name, c in result.per_category.items()
        },
        "runtime_s": result.runtime_s,
        "items_per_s": result.count / result.runtime_s if result.runtime_s else 0.0,
    }
    if result.breakdown:
        results["breakdown"] = {key: score_table(by) for key, by in result.breakdown.items()}
    return results


def evaluation_summary(run: MilestoneRun, result: EvalResult) -> str:
    """``evaluation_summary.md``: the scores for a reader, with the first predictions."""
    lines = [
        f"# Evaluation of {run.run_id} on {run.milestone.spec.evalset}",
        "",
        f"- items scored: {result.count}",
        f"- accuracy: {result.accuracy:.1%}",
        f"- answer-format compliance: {result.format_compliance:.1%}",
        f"- generation time: {result.runtime_s:.1f} s (greedy, batched, KV cache)",
        "",
        "| category | items | accuracy | format compliance |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {name} | {c.count} | {c.accuracy:.1%} | {c.format_compliance:.1%} |"
        for name, c in result.per_category.items()
    ]
    for key, by_value in result.breakdown.items():
        heading = f"| {cell(key)} | items | accuracy | format compliance |"
        lines += ["", f"## By {cell(key)}", "", heading]
        lines += ["| --- | ---: | ---: | ---: |"]
        lines += [
            f"| {cell(value)} | {c.count} | {c.accuracy:.1%} | {c.format_compliance:.1%} |"
            for value, c in by_value.items()
        ]
    lines += ["", "## First predictions", "", "| id | expected | answer | correct |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {p.id} | {p.expected} | {cell(p.answer or '(none)')} | {'yes' if p.correct else 'no'} |"
        for p in result.predictions[:10]
    ]
    return "\n".join(lines) + "\n"


def cell(text: str) -> str:
    """``text`` made safe for one markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
