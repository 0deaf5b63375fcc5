"""The run's documents: manifest, failure analysis and summary, re-rendered from what was recorded."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.evidence import bundle
from harness.evidence.baseline import deltas
from harness.evidence.measurements import measure
from harness.evidence.writers import cell
from harness.record.failures import WHAT_TO_LOOK_AT
from harness.record.outcomes import Status, first_line
from harness.spec.data import TRACES_FILE, DataError, count_records, file_sha256, input_place
from harness.spec.milestones import FreezeMilestone
from harness.spec.phase_order import TRAIN

if TYPE_CHECKING:
    from harness.record.run import MilestoneRun

NOT_RECORDED = "not recorded: pre-flight did not run"
DETECTED_KEYS = ("os", "cpu", "cpu_count", "ram", "torch.version.cuda", "devices")


def data_facts(root: Path, path: Path, as_written: str, *, records: bool = True) -> dict[str, Any]:
    """Where an input was read, its sha256 and (for JSON Lines, validated in pre-flight) its record
    count; a file that cannot be read any more is recorded so, for the evidence phase to report."""
    facts: dict[str, Any] = input_place(root, path, as_written)
    try:
        facts["sha256"] = file_sha256(path)
        if records:
            facts["records"] = count_records(path)
    except (OSError, DataError) as error:
        facts["unreadable"] = first_line(str(error))
    return facts


def common_manifest(run: MilestoneRun) -> dict[str, Any]:
    """What every kind of run records: identity, commit, machine, times, outcomes."""
    spec = run.milestone.spec
    return {
        "kind": spec.kind,
        "rehearsal": run.milestone.rehearsal,
        "milestone": spec.id,
        "title": spec.title,
        "run_id": run.run_id,
        "commit": run.env.get("commit", NOT_RECORDED),
        "dirty": run.env["dirty"] == "true" if "dirty" in run.env else NOT_RECORDED,
        "hardware_detected": {key: run.env.get(key, NOT_RECORDED) for key in DETECTED_KEYS},
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


def freeze_manifest(run: MilestoneRun) -> dict[str, Any]:
    """``run_manifest.json`` of a freeze run: the source, the files, the frozen ZIP."""
    from harness.phases.lock import (
        frozen_zip,  # lock imports run, which documents must not need at import
    )

    spec = run.milestone.spec
    manifest = common_manifest(run) | {
        "source": spec.source,
        "files": list(spec.files) + list(spec.extra_files),
        "size_budget_mb": spec.size_budget_mb,
    }
    frozen = frozen_zip(run, spec.id)
    if frozen.is_file():
        manifest["frozen_zip"] = {
            "path": str(frozen.relative_to(run.root)),
            "sha256": file_sha256(frozen),
            "size": frozen.stat().st_size,
        }
    return manifest


def model_lineage_facts(run: MilestoneRun) -> dict[str, Any]:
    """The model's lineage as pre-flight found it, with the trained model's parameter count."""
    lineage = dict(run.model_lineage or {"source": run.milestone.spec.model, "folder": NOT_RECORDED})
    if run.train_result:
        lineage["trained_parameters"] = run.train_result.model_parameters
    return lineage


def run_manifest(run: MilestoneRun) -> dict[str, Any]:
    """``run_manifest.json``: what ran, from which commit, on what, with which inputs and outcomes."""
    if isinstance(run.milestone, FreezeMilestone):
        return freeze_manifest(run)
    milestone, spec = run.milestone, run.milestone.spec
    training = data_facts(run.root, milestone.training_path, spec.training_config, records=False)
    manifest = common_manifest(run) | {
        "backend": spec.backend,
        "hardware_required": spec.hardware.model_dump(),
        "model": spec.model,
        "model_lineage": model_lineage_facts(run),
        "training_config": {"file": training.pop("path"), **training},
        "batch_size": milestone.training.batch_size,
        "max_seq_len": milestone.training.max_seq_len,
        "precision": milestone.training.precision,
        "seed": milestone.training.seed,
        "run_shape": spec.run.model_dump(exclude_none=True),
        "steps_completed": len(run.steps),
        "dataset": data_facts(run.root, milestone.dataset_path / TRACES_FILE, spec.dataset),
        "evalset": data_facts(run.root, milestone.evalset_path, spec.evalset),
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
            rows.append(f"| {phase} | {j.metric} | {cell(j.comparison)} | {measured} | {threshold} | {verdict} |")
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
    return [
        f"Model `{spec.model}` with the {spec.backend} backend, training config "
        f"`{spec.training_config}` (batch {training.batch_size}, sequence length "
        f"{training.max_seq_len}, {training.precision}), {run_length} on "
        f"`{spec.dataset}`, evaluated on `{spec.evalset}`."
    ]


def _hardware(run: MilestoneRun) -> list[str]:
    env, spec = run.env, run.milestone.spec
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
    lines += criteria_table(run) if any(run.judgements.values()) else ["No criterion was judged in this run."]
    if run.baseline:
        lines += ["", f"## Compared with baseline `{run.baseline.run_id}`", "",
                  "| metric | this run | baseline | delta |", "| --- | ---: | ---: | ---: |"]
        lines += [f"| {name} | {v:.4g} | {b:.4g} | {d:+.4g} |" for name, v, b, d in baseline_rows(run)]
    return lines


def summary(run: MilestoneRun) -> str:
    """``<id>_summary.md``: what was attempted, on what hardware, what happened, and the closing statement."""
    spec, env = run.milestone.spec, run.env
    lines = [
        f"# {spec.id}: {spec.title}",
        "",
        f"Run `{run.run_id}` from commit `{env.get('commit', 'not recorded')}` "
        f"(dirty: {env.get('dirty', 'not recorded')}), started {run.started_at}, "
        f"{'finished' if run.finished_at else 'last updated'} {run.finished_at or run.updated_at}.",
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


def write_documents(run: MilestoneRun) -> None:
    """Re-render the manifest, failure analysis and summary from what the run has recorded."""
    bundle.write_json(run.run_dir / bundle.RUN_MANIFEST, run_manifest(run))
    if any(not o.ok for o in run.all_outcomes()):
        bundle.write_text(run.run_dir / bundle.FAILURE_ANALYSIS, failure_analysis(run))
    else:
        (run.run_dir / bundle.FAILURE_ANALYSIS).unlink(missing_ok=True)
    bundle.write_text(run.run_dir / bundle.summary_name(run.milestone.id), summary(run))
