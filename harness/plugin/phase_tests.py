"""The phase tests of every milestone, in order; the plugin parametrizes them per milestone.

Each phase runs for the milestones whose kind has it: training milestones train and evaluate,
freeze milestones build, validate and lock; both document themselves the same way. A project
collects them from a test module (``from harness.plugin.phase_tests import *``), or the plugin
collects them from the milestone's spec file when ``--milestone`` is given without paths.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.evidence import bundle
from harness.phases.build import build
from harness.phases.evaluate import evaluate, evaluate_base
from harness.phases.evidence import consolidate
from harness.phases.guardrails import check_after, check_before
from harness.phases.judging import check_phase, hold_to_golden
from harness.phases.lock import current_record, mismatch
from harness.phases.preflight import preflight
from harness.phases.summary import finalize
from harness.phases.train import train
from harness.phases.validate import validate
from harness.record.run import MilestoneRun
from trainers.protocol import Trainer

__all__ = [
    "test_preflight",
    "test_guardrails_before",
    "test_evaluate_base",
    "test_train",
    "test_evaluate",
    "test_build",
    "test_validate",
    "test_lock",
    "test_guardrails_after",
    "test_evidence",
    "test_summary",
]


def assert_frozen_untouched(run: MilestoneRun, frozen_lock: Any) -> None:
    """Every frozen milestone the spec declares still matches its committed lock snapshot."""
    for freeze_id in run.milestone.spec.frozen:
        record = current_record(run, freeze_id)
        assert record == frozen_lock(name=freeze_id), mismatch(run, freeze_id)


@pytest.mark.phase("preflight")
def test_preflight(milestone_run: MilestoneRun) -> None:
    preflight(milestone_run)
    assert (milestone_run.run_dir / bundle.ENV_SNAPSHOT).is_file()
    check_phase(milestone_run, "preflight")


@pytest.mark.phase("guardrails-before")
def test_guardrails_before(milestone_run: MilestoneRun, frozen_lock: Any) -> None:
    problems = check_before(milestone_run)
    assert not problems, "a rule is broken before the run: " + "; ".join(problems)
    assert_frozen_untouched(milestone_run, frozen_lock)


@pytest.mark.phase("evaluate-base")
def test_evaluate_base(milestone_run: MilestoneRun, trainer: Trainer) -> None:
    evaluate_base(milestone_run, trainer)
    assert (milestone_run.run_dir / bundle.BASE_EVALUATION_RESULTS).is_file()
    check_phase(milestone_run, "evaluate-base")


@pytest.mark.phase("train")
def test_train(milestone_run: MilestoneRun, trainer: Trainer) -> None:
    result = train(milestone_run, trainer)
    assert (result.checkpoint_dir / "config.json").is_file()
    check_phase(milestone_run, "train", extra_failures=hold_to_golden(milestone_run))


@pytest.mark.phase("evaluate")
def test_evaluate(milestone_run: MilestoneRun, trainer: Trainer) -> None:
    evaluate(milestone_run, trainer)
    assert (milestone_run.run_dir / bundle.EVALUATION_RESULTS).is_file()
    check_phase(milestone_run, "evaluate")


@pytest.mark.phase("build")
def test_build(milestone_run: MilestoneRun) -> None:
    milestone_run.progress(f"build: {build(milestone_run)}")


@pytest.mark.phase("validate")
def test_validate(milestone_run: MilestoneRun) -> None:
    problems = validate(milestone_run)
    assert not problems, "the frozen submission is invalid: " + "; ".join(problems)


@pytest.mark.phase("lock")
def test_lock(milestone_run: MilestoneRun, frozen_lock: Any) -> None:
    freeze_id = milestone_run.milestone.id
    record = current_record(milestone_run, freeze_id)
    assert record == frozen_lock(name=freeze_id), mismatch(milestone_run, freeze_id)


@pytest.mark.phase("guardrails-after")
def test_guardrails_after(milestone_run: MilestoneRun, frozen_lock: Any) -> None:
    problems = check_after(milestone_run)
    assert not problems, "a rule was broken during the run: " + "; ".join(problems)
    assert_frozen_untouched(milestone_run, frozen_lock)


@pytest.mark.phase("evidence")
def test_evidence(milestone_run: MilestoneRun) -> None:
    problems = consolidate(milestone_run)
    assert not problems, "evidence bundle incomplete: " + "; ".join(problems)


@pytest.mark.phase("summary")
def test_summary(milestone_run: MilestoneRun) -> None:
    text = finalize(milestone_run)
    assert milestone_run.milestone.spec.closing_statement in text
    assert all(f"| {phase} |" in text for phase in milestone_run.phases)
