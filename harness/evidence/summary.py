"""``<id>_summary.md``: what was attempted, on what hardware, what happened, and the closing
statement."""

from __future__ import annotations

from harness.evidence.comparison import comparison_lines, shown
from harness.evidence.manifest import baseline_rows, freeze_manifest
from harness.evidence.writers import cell
from harness.record.evaluation import EvalResult
from harness.record.run import MilestoneRun
from harness.spec.milestones import FreezeMilestone
from harness.spec.phase_order import EVALUATE_BASE


def criteria_rows(run: MilestoneRun) -> list[str]:
    """The criteria judged so far as markdown rows: metric, requirement, measured, verdict."""
    rows = ["| phase | metric | requirement | measured | threshold | verdict |", "| --- | --- | --- | ---: | ---: | --- |"]
    for phase, judgements in run.record.judgements.items():
        for j in judgements:
            measured = f"{j.measured:.4g}" if j.measured is not None else "-"
            threshold = f"{j.threshold:.4g}" if j.threshold is not None else "-"
            verdict = f"{j.verdict}: {j.reason}" if j.reason else str(j.verdict)
            rows.append(f"| {phase} | {j.metric} | {cell(j.comparison)} | {measured} | {threshold} | {verdict} |")
    return rows


def _attempted(run: MilestoneRun) -> list[str]:
    spec = run.milestone.spec
    if isinstance(run.milestone, FreezeMilestone):
        return [
            f"A deterministic submission ZIP from `{spec.source}`: {len(spec.files)} bundle file(s) and "
            f"{len(spec.extra_files)} repository file(s), within {spec.size_budget_mb:g} MiB, locked by "
            f"`configs/frozen/{spec.id}.json`."
        ]
    training = run.milestone.training
    run_length = f"{spec.run.max_steps} steps" if spec.run.max_steps else f"{spec.run.epochs} epoch(s)"
    earlier = run.options.reevaluates
    if earlier is not None:
        return [
            f"**Re-evaluation**: no training in this run. The checkpoint of `{earlier.name}` "
            f"(model `{spec.model}`, {spec.backend} backend) is evaluated anew on `{spec.evalset}`."
        ]
    attempted = [
        f"Model `{spec.model}` with the {spec.backend} backend, training config "
        f"`{spec.training_config}` (batch {training.batch_size}, sequence length "
        f"{training.max_seq_len}, {training.precision}), {run_length} on "
        f"`{spec.dataset}`, evaluated on `{spec.evalset}`."
    ]
    resumes = run.options.resumes
    if resumes is not None:
        attempted += ["", f"**Resumed**: this run {resumes.line}, from its checkpoint "
                      f"`{resumes.checkpoint.name}`; the curve and its judgements cover both runs."]
    if spec.budget is not None:
        estimate = run.record.budget_estimate_s
        shown_estimate = f"{estimate / 60:.2f} min" if estimate is not None else "not estimated"
        attempted += ["", f"**Budget**: {spec.budget.wall_minutes:g} min of wall time; the train "
                      f"phase's estimate of the session: {shown_estimate}."]
    return attempted


def _hardware(run: MilestoneRun) -> list[str]:
    env, spec = run.record.env, run.milestone.spec
    here = (
        f"- this machine: {env.get('os', 'not recorded')}, CPU {env.get('cpu', 'not recorded')} "
        f"x {env.get('cpu_count', '?')}, RAM {env.get('ram', 'not recorded')}, "
        f"CUDA (torch) {env.get('torch.version.cuda', 'not recorded')}"
    )
    if isinstance(run.milestone, FreezeMilestone):
        return ["- required: any machine (a freeze trains nothing)", here]
    required = spec.hardware
    return [
        f"- required: {required.label} ({required.count} x {required.accelerator}, platform {required.platform})",
        here,
        f"- devices found: {env.get('devices', 'not recorded')}",
    ]


def _results(run: MilestoneRun) -> list[str]:
    if isinstance(run.milestone, FreezeMilestone):
        frozen = freeze_manifest(run).get("frozen_zip")
        if frozen is None:
            return ["- frozen ZIP: not present"]
        return [f"- frozen ZIP: `{frozen['path']}`, {frozen['size']} bytes, sha256 `{frozen['sha256']}`"]
    lines = []
    if run.record.steps:
        first, last = run.record.steps[0], run.record.steps[-1]
        lines.append(
            f"- training: loss {first.loss:.4f} at step {first.step} -> {last.loss:.4f} at step "
            f"{last.step}" + (f" in {run.record.train_result.runtime_s:.1f} s" if run.record.train_result else " (stopped early)")
        )
    else:
        lines.append("- training: no step ran")
    lines.append(f"- evaluation: {_scores(run.record.eval_result)}")
    if EVALUATE_BASE in run.phases:
        lines.append(f"- the base model, before training: {_scores(run.record.base_eval_result)}")
    lines += comparison_lines(run)
    lines += ["", "## Acceptance criteria", ""]
    lines += criteria_rows(run) if any(run.record.judgements.values()) else ["No criterion was judged in this run."]
    if run.options.baseline:
        lines += ["", f"## Compared with baseline `{run.options.baseline.run_id}`", "",
                  "| metric | this run | baseline | delta |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {name} | {v:.4g} | {b:.4g} | {d:+.4g} |" for name, v, b, d in baseline_rows(run)]
    return lines


def _scores(result: EvalResult | None) -> str:
    """Items, accuracy and format compliance with their 95% intervals; or that it did not run."""
    if result is None:
        return "did not run"
    overall = result.overall
    return (
        f"{result.count} items, accuracy {shown(overall.accuracy, overall.accuracy_interval)}, "
        f"answer-format compliance {shown(overall.format_compliance, overall.format_interval)}"
    )


def summary(run: MilestoneRun) -> str:
    """``<id>_summary.md``: what was attempted, on what hardware, what happened, and the closing statement."""
    spec, env = run.milestone.spec, run.record.env
    lines = [
        f"# {spec.id}: {spec.title}",
        "",
        f"Run `{run.run_id}` from commit `{env.get('commit', 'not recorded')}` "
        f"(dirty: {env.get('dirty', 'not recorded')}), started {run.record.started_at}, "
        f"{'finished' if run.record.finished_at else 'last updated'} {run.record.finished_at or run.record.updated_at}.",
        "",
        "## What was attempted",
        "",
        *(["**Rehearsal**: this run replays the milestone on a CPU with a tiny model and few steps; "
           "it proves the phases and guardrails, not the real run.", ""] if run.milestone.rehearsal else []),
        spec.purpose,
        "",
        *_attempted(run),
        "",
        "## Hardware",
        "",
        *_hardware(run),
        "",
        "## What happened",
        "",
        f"Verdict: **{run.verdict}**.",
        "",
        "| phase | outcome | cause | reason | seconds |",
        "| --- | --- | --- | --- | ---: |",
    ]
    lines += [
        f"| {o.phase} | {o.status} | {o.cause} | {cell(o.reason)} | {o.duration_s:.1f} |"
        for o in run.all_outcomes()
    ]
    lines += ["", "## Results", "", *_results(run)]
    files = sorted(p.name for p in run.run_dir.iterdir() if not p.name.startswith("."))
    lines += ["", "## Files in this bundle", ""] + [f"- `{name}`" for name in files]
    lines += ["", "## Closing statement", "", f"> {spec.closing_statement}", ""]
    return "\n".join(lines)
