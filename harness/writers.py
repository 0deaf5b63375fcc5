"""Writers: render collected run data into the bundle's JSON and markdown. They compute nothing new."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import bundle
from harness.data import TRACES_FILE, file_sha256
from harness.baseline import deltas
from harness.failures import WHAT_TO_LOOK_AT
from harness.measurements import measure
from harness.outcomes import Status
from harness.phases import TRAIN

if TYPE_CHECKING:
    from harness.evaluation import EvalResult
    from harness.run import MilestoneRun
    from trainers.base import StepRecord, TrainRequest

NOT_RECORDED = "not recorded: pre-flight did not run"
DETECTED_KEYS = ("os", "cpu", "cpu_count", "ram", "torch.version.cuda")

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
    if result:
        metrics["model_parameters"] = result.model_parameters
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
        f"| {p.id} | {p.expected} | {_cell(p.answer or '(none)')} | {'yes' if p.correct else 'no'} |"
        for p in result.predictions[:10]
    ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def data_facts(root: Path, path: Path) -> dict[str, Any]:
    """Path, sha256 and record count of a JSON Lines file (validated separately, in pre-flight)."""
    with path.open(encoding="utf-8") as handle:
        count = sum(1 for line in handle if line.strip())
    return {"path": str(path.relative_to(root)), "sha256": file_sha256(path), "records": count}


def run_manifest(run: MilestoneRun) -> dict[str, Any]:
    """``run_manifest.json``: what ran, from which commit, on what, with which inputs and outcomes."""
    milestone, spec = run.milestone, run.milestone.spec
    manifest: dict[str, Any] = {
        "milestone": spec.id,
        "title": spec.title,
        "run_id": run.run_id,
        "commit": run.env.get("commit", NOT_RECORDED),
        "dirty": run.env["dirty"] == "true" if "dirty" in run.env else NOT_RECORDED,
        "hardware_detected": {key: run.env.get(key, NOT_RECORDED) for key in DETECTED_KEYS},
        "backend": spec.backend,
        "hardware_required": spec.hardware.model_dump(),
        "model": spec.model,
        "training_config": {
            "file": str(milestone.training_path.relative_to(run.root)),
            "sha256": file_sha256(milestone.training_path),
        },
        "batch_size": milestone.training.batch_size,
        "max_seq_len": milestone.training.max_seq_len,
        "precision": milestone.training.precision,
        "seed": milestone.training.seed,
        "run_shape": spec.run.model_dump(exclude_none=True),
        "steps_completed": len(run.steps),
        "dataset": data_facts(run.root, milestone.dataset_path / TRACES_FILE),
        "evalset": data_facts(run.root, milestone.evalset_path),
        "started_at": run.started_at,
        "finished_at": run.finished_at or run.updated_at,
        "complete": run.finished_at is not None,
        "session_finished": run.session_finished,
        "follows": run.follows or "none: the first run of this milestone here",
        "verdict": run.verdict,
        "closing_statement": spec.closing_statement,
        "phases": {
            o.phase: {"status": str(o.status), "cause": str(o.cause), "reason": o.reason,
                      "duration_s": round(o.duration_s, 3)}
            for o in run.all_outcomes()
        },
    }
    if run.train_result:
        manifest["device"] = run.train_result.device
    if any(run.judgements.values()):
        manifest["criteria"] = [
            {
                "phase": phase,
                "metric": j.metric,
                "comparison": j.comparison,
                "measured": j.measured if j.measured is not None else "not measured",
                "threshold": j.threshold if j.threshold is not None else "no threshold",
                "verdict": str(j.verdict),
                "reason": j.reason or str(j.verdict),
            }
            for phase, judgements in run.judgements.items()
            for j in judgements
        ]
    if run.baseline:
        manifest["baseline"] = {
            "run_id": run.baseline.run_id,
            "path": str(run.baseline.path),
            "deltas": {name: {"value": v, "baseline": b, "delta": d} for name, v, b, d in baseline_rows(run)},
        }
    return manifest


def baseline_rows(run: MilestoneRun) -> list[tuple[str, float, float, float]]:
    return deltas(measure(run.run_dir), run.baseline) if run.baseline else []


def criteria_table(run: MilestoneRun) -> list[str]:
    """The criteria judged so far as markdown rows: metric, requirement, measured, verdict."""
    rows = ["| phase | metric | requirement | measured | threshold | verdict |", "| --- | --- | --- | ---: | ---: | --- |"]
    for phase, judgements in run.judgements.items():
        for j in judgements:
            measured = f"{j.measured:.4g}" if j.measured is not None else "-"
            threshold = f"{j.threshold:.4g}" if j.threshold is not None else "-"
            verdict = f"{j.verdict}: {j.reason}" if j.reason else str(j.verdict)
            rows.append(f"| {phase} | {j.metric} | {_cell(j.comparison)} | {measured} | {threshold} | {verdict} |")
    return rows


def failure_analysis(run: MilestoneRun) -> str:
    """``failure_analysis.md``: each phase that did not pass, its cause class, and where to look."""
    lines = [f"# Failure analysis: {run.run_id}", "", f"Verdict: {run.verdict}.", ""]
    for outcome in run.all_outcomes():
        if outcome.ok:
            continue
        lines += [
            f"## {outcome.phase}: {outcome.status}",
            "",
            f"- cause class: {outcome.cause}",
            f"- reason: {outcome.reason}",
        ]
        if outcome.phase == TRAIN and outcome.status is Status.FAILED:
            lines.append(f"- last good state: {_last_good_state(run)}")
        lines += [f"- what to look at: {WHAT_TO_LOOK_AT[outcome.cause]}", ""]
    return "\n".join(lines)


def _last_good_state(run: MilestoneRun) -> str:
    if not run.steps:
        return "no optimizer step completed"
    last = run.steps[-1]
    return f"step {last.step}, loss {last.loss:.4f}, lr {last.lr:.2e} (training_log.txt)"


def summary(run: MilestoneRun) -> str:
    """``<id>_summary.md``: what was attempted, on what hardware, what happened, and the closing statement."""
    milestone, spec = run.milestone, run.milestone.spec
    env = run.env
    run_length = (
        f"{spec.run.max_steps} steps" if spec.run.max_steps else f"{spec.run.epochs} epoch(s)"
    )
    lines = [
        f"# {spec.id}: {spec.title}",
        "",
        f"Run `{run.run_id}` from commit `{env.get('commit', 'not recorded')}` "
        f"(dirty: {env.get('dirty', 'not recorded')}), started {run.started_at}, "
        f"{'finished' if run.finished_at else 'last updated'} {run.finished_at or run.updated_at}.",
        "",
        "## What was attempted",
        "",
        spec.purpose,
        "",
        f"Model `{spec.model}` with the {spec.backend} backend, training config "
        f"`{spec.training_config}` (batch {milestone.training.batch_size}, sequence length "
        f"{milestone.training.max_seq_len}, {milestone.training.precision}), {run_length} on "
        f"`{spec.dataset}`, evaluated on `{spec.evalset}`.",
        "",
        "## Hardware",
        "",
        f"- required: {spec.hardware.label} ({spec.hardware.count} x {spec.hardware.accelerator}, "
        f"platform {spec.hardware.platform})",
        f"- this machine: {env.get('os', 'not recorded')}, CPU {env.get('cpu', 'not recorded')} "
        f"x {env.get('cpu_count', '?')}, RAM {env.get('ram', 'not recorded')}, "
        f"CUDA (torch) {env.get('torch.version.cuda', 'not recorded')}",
        "",
        "## What happened",
        "",
        f"Verdict: **{run.verdict}**.",
        "",
        "| phase | outcome | cause | reason | seconds |",
        "| --- | --- | --- | --- | ---: |",
    ]
    lines += [
        f"| {o.phase} | {o.status} | {o.cause} | {_cell(o.reason)} | {o.duration_s:.1f} |"
        for o in run.all_outcomes()
    ]
    lines += ["", "## Results", ""]
    if run.steps:
        first, last = run.steps[0], run.steps[-1]
        lines.append(
            f"- training: loss {first.loss:.4f} at step {first.step} -> {last.loss:.4f} at step "
            f"{last.step}" + (f" in {run.train_result.runtime_s:.1f} s" if run.train_result else " (stopped early)")
        )
    else:
        lines.append("- training: no step ran")
    if run.eval_result:
        result = run.eval_result
        lines.append(
            f"- evaluation: {result.count} items, accuracy {result.accuracy:.1%}, "
            f"answer-format compliance {result.format_compliance:.1%}"
        )
    else:
        lines.append("- evaluation: did not run")
    lines += ["", "## Acceptance criteria", ""]
    if any(run.judgements.values()):
        lines += criteria_table(run)
    else:
        lines.append("No criterion was judged in this run.")
    if run.baseline:
        lines += ["", f"## Compared with baseline `{run.baseline.run_id}`", "",
                  "| metric | this run | baseline | delta |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {name} | {v:.4g} | {b:.4g} | {d:+.4g} |" for name, v, b, d in baseline_rows(run)]
    files = sorted(p.name for p in run.run_dir.iterdir() if not p.name.startswith("."))
    lines += ["", "## Files in this bundle", ""] + [f"- `{name}`" for name in files]
    lines += ["", "## Closing statement", "", f"> {spec.closing_statement}", ""]
    return "\n".join(lines)


def write_documents(run: MilestoneRun) -> None:
    """Re-render the manifest, failure analysis and summary from what the run has recorded."""
    bundle.write_json(run.run_dir / bundle.RUN_MANIFEST, run_manifest(run))
    if any(not o.ok for o in run.all_outcomes()):
        bundle.write_text(run.run_dir / bundle.FAILURE_ANALYSIS, failure_analysis(run))
    else:
        (run.run_dir / bundle.FAILURE_ANALYSIS).unlink(missing_ok=True)
    bundle.write_text(run.run_dir / bundle.summary_name(run.milestone.id), summary(run))
