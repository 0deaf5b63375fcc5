"""``failure_analysis.md``: each phase that did not pass, its cause class, and where to look."""

from __future__ import annotations

from harness.record.failures import WHAT_TO_LOOK_AT
from harness.record.outcomes import Status
from harness.record.run import MilestoneRun
from harness.spec.phase_order import TRAIN


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
    if not run.record.steps:
        return "no optimizer step completed"
    last = run.record.steps[-1]
    return f"step {last.step}, loss {last.loss:.4f}, lr {last.lr:.2e} (training_log.txt)"
