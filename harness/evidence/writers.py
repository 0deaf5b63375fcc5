"""Writers of the training and evaluation files: render collected data, compute nothing new."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainers.flops import PALM_FORMULA, mfu, peak_flops

if TYPE_CHECKING:
    from harness.phases.evaluate import EvalResult
    from harness.record.run import MilestoneRun
    from trainers.protocol import StepRecord, TrainRequest

# Leave the first steps out of throughput: they carry one-off allocation and warm-up costs.
THROUGHPUT_WARMUP_STEPS = 2


def _mean_rate(steps: list[StepRecord], attr: str) -> float:
    timed = steps[THROUGHPUT_WARMUP_STEPS:] or steps
    seconds = sum(s.seconds for s in timed)
    return sum(getattr(s, attr) for s in timed) / seconds if seconds else 0.0


def training_metrics(run: MilestoneRun, request: TrainRequest) -> dict[str, Any]:
    """``training_metrics.json``: per-step records and their summary, from the steps seen so far."""
    steps = run.steps
    result = run.train_result
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
                "tokens_per_s": s.tokens / s.seconds if s.seconds else 0.0,
            }
            for s in steps
        ],
    }
    if steps:
        metrics.update(
            first_loss=steps[0].loss,
            final_loss=steps[-1].loss,
            min_loss=min(s.loss for s in steps),
            samples_per_s=_mean_rate(steps, "samples"),
            tokens_per_s=_mean_rate(steps, "tokens"),
            runtime_s=result.runtime_s if result else sum(s.seconds for s in steps),
        )
    counted = [s for s in steps if s.positions]
    if counted:  # the share of computed token positions that were padding
        metrics["padding_fraction"] = 1 - sum(s.tokens for s in counted) / sum(
            s.positions or 0 for s in counted
        )
    if result:
        metrics["model_parameters"] = result.model_parameters
    if result and result.flops:
        basis = result.flops
        metrics["flops_basis"] = {
            "formula": PALM_FORMULA,
            "parameters": basis.parameters,
            "seq_len": basis.seq_len,
            "flops_per_token": basis.per_token,
            "device_name": basis.device_name,
            "devices": basis.devices,
        }
        peak = peak_flops(basis.device_name)
        if peak is None:  # evidence holds no nulls: the reason stands in for the number
            metrics["mfu_omitted"] = f"no dense bf16 peak is known for {basis.device_name!r}"
        else:
            metrics["flops_basis"]["peak_bf16_flops_per_device"] = peak
            per_device = metrics.get("tokens_per_s", 0.0) / basis.devices
            metrics["mfu"] = mfu(per_device, basis.per_token, basis.device_name)
    return metrics


def prediction_rows(result: EvalResult) -> list[dict[str, Any]]:
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
        for p in result.predictions
    ]


def evaluation_results(run: MilestoneRun, result: EvalResult) -> dict[str, Any]:
    """``evaluation_results.json``: accuracy overall and per category, format compliance, count."""
    return {
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


def evaluation_summary(run: MilestoneRun, result: EvalResult) -> str:
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
    lines += ["", "## First predictions", "", "| id | expected | answer | correct |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {p.id} | {p.expected} | {cell(p.answer or '(none)')} | {'yes' if p.correct else 'no'} |"
        for p in result.predictions[:10]
    ]
    return "\n".join(lines) + "\n"


def cell(text: str) -> str:
    """``text`` made safe for one markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
