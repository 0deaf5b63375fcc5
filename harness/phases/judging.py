"""Each phase asserts the spec's criteria on the metrics it produced; train also holds to its golden."""

from __future__ import annotations

import dataclasses

from harness.evidence.measurements import measured
from harness.phases.goldens import golden_problem, write_golden
from harness.phases.rehearsal import NOT_JUDGED as REHEARSAL_NOT_JUDGED
from harness.record.failures import CriterionFailed
from harness.record.run import MilestoneRun
from harness.spec.criteria import Judgement, Verdict, judge_phase
from harness.spec.milestones import FreezeMilestone


def hardware_match(run: MilestoneRun) -> tuple[bool, str]:
    """Whether throughput measured here may be judged: only on the spec's own kind of device."""
    if isinstance(run.milestone, FreezeMilestone):
        return True, ""
    wanted = run.milestone.spec.hardware
    trained = run.record.train_result
    device = trained.device.split(":")[0] if trained else wanted.accelerator
    return device == wanted.accelerator, f"measured on {device}, the spec's hardware is {wanted.label}"


def check_phase(run: MilestoneRun, phase: str, extra_failures: list[str] | None = None) -> list[Judgement]:
    """Judge ``phase``'s criteria on what the run measured so far; fail the phase in one line if
    any is missed."""
    matches, note = hardware_match(run)
    judgements = judge_phase(
        phase,
        run.milestone.spec.criteria,
        measured(run),
        baselines=run.options.baseline.metrics if run.options.baseline else None,
        hardware_matches=matches,
        hardware_note=note,
    )
    if run.milestone.rehearsal:
        judgements = [dataclasses.replace(j, verdict=Verdict.NOT_JUDGED, reason=REHEARSAL_NOT_JUDGED) for j in judgements]
    run.record.judgements[phase] = judgements
    failures = [j.line() for j in judgements if j.verdict is Verdict.FAILED] + (extra_failures or [])
    if failures:
        raise CriterionFailed("; ".join(failures))
    return judgements


def hold_to_golden(run: MilestoneRun) -> list[str]:
    """Compare the run's losses with the committed golden, or record them with --update-goldens."""
    losses = [step.loss for step in run.record.steps]
    if run.milestone.rehearsal:
        return []  # a rehearsal trains a different model than the one the golden describes
    if run.options.update_goldens:
        path = write_golden(run.root, run.milestone, losses)
        run.progress(f"train: golden curve written to {path.relative_to(run.root)}")
        return []
    problem = golden_problem(run.root, run.milestone, losses)
    return [problem] if problem else []
