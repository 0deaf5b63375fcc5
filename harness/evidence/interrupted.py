"""Marking a run whose session never finished: its manifest, failure analysis and summary say
where it stopped; every other file stays, and SHA256SUMS is written so the bundle verifies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.evidence import bundle
from harness.evidence.verify import write_checksums
from harness.evidence.writers import cell
from harness.record.failures import WHAT_TO_LOOK_AT, Cause
from harness.record.outcomes import Status
from harness.spec.phase_order import EVALUATE_BASE, TRAIN, phases_of


def last_log_line(run_dir: Path) -> str:
    try:
        lines = (run_dir / bundle.TRAINING_LOG).read_text(encoding="utf-8").splitlines()
    except OSError:
        return "no training_log.txt: training had not started"
    steps = [line for line in lines if line.startswith("step ")]
    return steps[-1] if steps else "no optimizer step was logged"


def mark_interrupted(run_dir: Path, noticed_by: str, noticed_at: str) -> None:
    """Record that ``run_dir``'s session never finished and where it stopped, in its manifest and
    failure analysis; every other file stays, and SHA256SUMS is written so the bundle verifies."""
    manifest = bundle.read_manifest(run_dir) or {"run_id": run_dir.name}
    steps = _logged_steps(run_dir)
    phases = _phases_in_order(manifest)
    ended = [i for i, (_, outcome) in enumerate(phases) if outcome.get("status") != Status.NOT_RUN]
    left = phases[ended[-1] + 1 :] if ended else phases
    where = _where(left[0][0] if left else None, bool(phases), steps)
    reason = (
        f"{where}: the session that wrote this bundle ended without finishing (killed?); "
        f"noticed by {noticed_by} at {noticed_at}"
    )
    for index, (_, outcome) in enumerate(left):
        # The phase in progress failed; the ones after it were never reached, not left out.
        outcome.update(
            status=str(Status.FAILED if index == 0 else Status.NOT_RUN),
            cause=str(Cause.INTERRUPTED),
            reason=reason if index == 0 else f"not reached: interrupted during {left[0][0]}",
        )
    if steps:
        manifest["steps_completed"] = steps[-1]["step"]
    manifest.update(
        session_finished=False,
        complete=False,
        interrupted=True,
        interrupted_at=where,
        verdict="interrupted",
        interrupted_noticed_by=noticed_by,
    )
    bundle.write_json(run_dir / bundle.RUN_MANIFEST, manifest)
    analysis = _failure_analysis(run_dir, phases, reason, steps)
    bundle.write_text(run_dir / bundle.FAILURE_ANALYSIS, analysis)
    summary = run_dir / bundle.summary_name(str(manifest.get("milestone")))
    if summary.is_file():  # its phase table was written before the kill: say what became of it
        text = summary.read_text(encoding="utf-8")
        bundle.write_text(summary, text + _interrupted_section(reason, phases))
    write_checksums(run_dir)


def _interrupted_section(reason: str, phases: list[tuple[str, dict[str, Any]]]) -> str:
    """The summary's closing section on a marked run: the phase outcomes as corrected."""
    lines = ["", "## Interrupted", "", f"Verdict: **interrupted**. {reason}.", "",
             "The outcomes as corrected by the session that noticed it:", "",
             "| phase | outcome | cause | reason |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {phase} | {outcome.get('status')} | {outcome.get('cause')} | "
        f"{cell(str(outcome.get('reason')))} |"
        for phase, outcome in phases
    ]
    return "\n".join(lines) + "\n"


def _phases_in_order(manifest: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The manifest's phase outcomes (its own dicts, to correct in place), in phase order."""
    phases = manifest.get("phases")
    if not isinstance(phases, dict):
        return []
    order = phases_of(str(manifest.get("kind")), evaluate_base=EVALUATE_BASE in phases)
    return [(phase, phases[phase]) for phase in order if isinstance(phases.get(phase), dict)]


def _logged_steps(run_dir: Path) -> list[dict[str, Any]]:
    """The per-step records of ``training_metrics.json``, rewritten at every logged step."""
    try:
        steps = bundle.read_json(run_dir / bundle.TRAINING_METRICS).get("per_step")
    except (OSError, json.JSONDecodeError, AttributeError):
        return []
    if not isinstance(steps, list):
        return []
    return [step for step in steps if isinstance(step, dict) and isinstance(step.get("step"), int)]


def _where(phase: str | None, any_phase: bool, steps: list[dict[str, Any]]) -> str:
    if phase == TRAIN:
        if steps:
            return f"interrupted at step {steps[-1]['step']}"
        return "interrupted during train, before its first step was logged"
    if phase is not None:
        return f"interrupted during {phase}"
    if any_phase:
        return "interrupted after its last phase, before the session closed"
    return "interrupted before its first phase ended"


def _failure_analysis(
    run_dir: Path,
    phases: list[tuple[str, dict[str, Any]]],
    reason: str,
    steps: list[dict[str, Any]],
) -> str:
    """``failure_analysis.md`` of a marked run, from its manifest's phases as corrected."""
    lines = [f"# Failure analysis: {run_dir.name}", "", "Verdict: interrupted.", ""]
    for phase, outcome in phases:
        if outcome.get("status") == Status.PASSED:
            continue
        cause = str(outcome.get("cause"))
        lines += [
            f"## {phase}: {outcome.get('status')}",
            "",
            f"- cause class: {cause}",
            f"- reason: {outcome.get('reason')}",
        ]
        if phase == TRAIN and outcome.get("status") == Status.FAILED:
            lines.append(f"- last good state: {_last_good_state(run_dir, steps)}")
        lines += [f"- what to look at: {WHAT_TO_LOOK_AT.get(cause, 'the reason above')}", ""]
    if not phases:  # killed before any phase ended: no manifest to correct
        lines += [
            f"## session: {Cause.INTERRUPTED}",
            "",
            f"- cause class: {Cause.INTERRUPTED}",
            f"- reason: {reason}",
            f"- last good state: {_last_good_state(run_dir, steps)}",
            f"- what to look at: {WHAT_TO_LOOK_AT[Cause.INTERRUPTED]}",
            "",
        ]
    return "\n".join(lines)


def _last_good_state(run_dir: Path, steps: list[dict[str, Any]]) -> str:
    if not steps:
        return last_log_line(run_dir)
    last = steps[-1]
    loss, lr = last.get("loss"), last.get("lr")
    loss_text = f"{loss:.4f}" if isinstance(loss, int | float) else str(loss)
    lr_text = f"{lr:.2e}" if isinstance(lr, int | float) else str(lr)
    return f"step {last.get('step')}, loss {loss_text}, lr {lr_text} ({bundle.TRAINING_METRICS})"
