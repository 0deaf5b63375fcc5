"""Tests for phase blocking, the run verdict, and how exceptions are classified and described."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.record.failures import Cause, PhaseBlocked, classify
from harness.record.outcomes import PhaseOutcome, Status, describe
from harness.record.run import MilestoneRun, RunOptions
from harness.spec.milestones import Milestone
from harness.spec.phase_order import (
    EVALUATE,
    EVIDENCE,
    GUARDRAILS_AFTER,
    GUARDRAILS_BEFORE,
    PHASES,
    PREFLIGHT,
    SUMMARY,
    TRAIN,
)
from harness.spec.registry import MilestoneRegistry

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smoke_milestone() -> Milestone:
    """The smoke milestone with the plain phase order (no evaluate-base)."""
    smoke = MilestoneRegistry(ROOT).load("smoke")
    assert isinstance(smoke, Milestone)
    spec = smoke.spec.model_copy(update={"evaluate_base": False})
    return dataclasses.replace(smoke, spec=spec)


@pytest.fixture
def run(smoke_milestone: Milestone, tmp_path: Path) -> MilestoneRun:
    return MilestoneRun(smoke_milestone, ROOT, tmp_path / "smoke_v1", RunOptions(progress=lambda _: None))


def _passed(phase: str) -> PhaseOutcome:
    return PhaseOutcome(phase, Status.PASSED, Cause.COMPLETED, "completed", 0.1)


def _skipped(phase: str, reason: str) -> PhaseOutcome:
    return PhaseOutcome(phase, Status.SKIPPED, Cause.MISSING_HARDWARE, reason, 0.0)


def _failed(phase: str, reason: str) -> PhaseOutcome:
    return PhaseOutcome(phase, Status.FAILED, Cause.CHECK_FAILED, reason, 1.0)


# --- blocker ---------------------------------------------------------------------------------


def test_preflight_is_never_blocked(run: MilestoneRun) -> None:
    assert run.blocker(PREFLIGHT) is None


def test_guardrails_blocked_when_preflight_skipped(run: MilestoneRun) -> None:
    run.record.add_outcome(_skipped(PREFLIGHT, "no CUDA device"))
    assert run.blocker(GUARDRAILS_BEFORE) == (Cause.BLOCKED, "preflight skipped: no CUDA device")


def test_guardrails_blocked_when_preflight_failed(run: MilestoneRun) -> None:
    run.record.add_outcome(_failed(PREFLIGHT, "dataset sha256 mismatch"))
    assert run.blocker(GUARDRAILS_BEFORE) == (Cause.BLOCKED, "preflight failed: dataset sha256 mismatch")


def test_train_blocked_when_guardrails_did_not_run(run: MilestoneRun) -> None:
    run.record.add_outcome(_passed(PREFLIGHT))
    assert run.blocker(TRAIN) == (Cause.BLOCKED, "guardrails-before did not run")


def test_train_blocked_by_a_broken_rule(run: MilestoneRun) -> None:
    run.record.add_outcome(_passed(PREFLIGHT))
    run.record.add_outcome(_failed(GUARDRAILS_BEFORE, "uncommitted change at start: harness/x.py"))
    assert run.blocker(TRAIN) == (
        Cause.BLOCKED,
        "guardrails-before failed: uncommitted change at start: harness/x.py",
    )


def test_train_runs_after_the_guardrails_passed(run: MilestoneRun) -> None:
    run.record.add_outcome(_passed(PREFLIGHT))
    run.record.add_outcome(_passed(GUARDRAILS_BEFORE))
    assert run.blocker(TRAIN) is None


def test_guardrails_after_need_the_start_fingerprints(run: MilestoneRun) -> None:
    run.record.add_outcome(_passed(PREFLIGHT))
    run.record.add_outcome(_skipped(GUARDRAILS_BEFORE, "preflight skipped: no TPU"))
    assert run.blocker(GUARDRAILS_AFTER) == (Cause.BLOCKED, "guardrails-before skipped: preflight skipped: no TPU")


def test_evaluate_blocked_by_train(run: MilestoneRun) -> None:
    run.record.add_outcome(_passed(PREFLIGHT))
    run.record.add_outcome(_failed(TRAIN, "loss did not fall"))
    assert run.blocker(EVALUATE) == (Cause.BLOCKED, "train failed: loss did not fall")
    run.record.add_outcome(_passed(TRAIN))
    assert run.blocker(EVALUATE) is None


@pytest.mark.parametrize("phase", [EVIDENCE, SUMMARY])
def test_evidence_and_summary_are_never_blocked(run: MilestoneRun, phase: str) -> None:
    assert run.blocker(phase) is None
    run.record.add_outcome(_failed(PREFLIGHT, "broken"))
    run.record.add_outcome(_skipped(TRAIN, "blocked"))
    run.record.add_outcome(_skipped(EVALUATE, "blocked"))
    assert run.blocker(phase) is None


# --- verdict ---------------------------------------------------------------------------------


def test_verdict_passed_only_when_every_phase_passed(run: MilestoneRun) -> None:
    for phase in PHASES[:-1]:
        run.record.add_outcome(_passed(phase))
    assert run.verdict == "summary not run"
    run.record.add_outcome(_passed(SUMMARY))
    assert run.verdict == "passed"


def test_verdict_of_a_run_that_did_nothing(run: MilestoneRun) -> None:
    assert run.verdict == "preflight not run"


def test_verdict_names_the_first_phase_that_did_not_pass(run: MilestoneRun) -> None:
    run.record.add_outcome(_passed(PREFLIGHT))
    run.record.add_outcome(_passed(GUARDRAILS_BEFORE))
    run.record.add_outcome(_failed(TRAIN, "out of memory"))
    run.record.add_outcome(_skipped(EVALUATE, "train failed: out of memory"))
    run.record.add_outcome(_passed(GUARDRAILS_AFTER))
    run.record.add_outcome(_passed(EVIDENCE))
    run.record.add_outcome(_passed(SUMMARY))
    assert run.verdict == "train failed"


def test_verdict_skipped_preflight(run: MilestoneRun) -> None:
    run.record.add_outcome(_skipped(PREFLIGHT, "needs a TPU"))
    for phase in PHASES[1:]:
        run.record.add_outcome(_passed(phase))
    assert run.verdict == "preflight skipped"


def test_outcome_of_an_unreached_phase_is_not_run(run: MilestoneRun) -> None:
    outcome = run.outcome_of(EVALUATE)
    assert outcome.status is Status.NOT_RUN
    assert not outcome.ok
    assert [o.phase for o in run.all_outcomes()] == list(PHASES)


# --- classify / describe ---------------------------------------------------------------------


class OutOfMemoryError(RuntimeError):
    """Named like ``torch.cuda.OutOfMemoryError``."""


def test_assertion_error_is_a_failed_check_with_its_message_only() -> None:
    error = AssertionError("accuracy 0.10 below 0.50")
    assert classify(error) is Cause.CHECK_FAILED
    assert describe(error) == "accuracy 0.10 below 0.50"


def test_bare_assertion_error_is_described_by_its_type() -> None:
    assert describe(AssertionError()) == "AssertionError"


def test_module_not_found_is_a_missing_dependency() -> None:
    error = ModuleNotFoundError("No module named 'jax'")
    assert classify(error) is Cause.MISSING_DEPENDENCY
    assert describe(error) == "ModuleNotFoundError: No module named 'jax'"


def test_out_of_memory_error_by_class_name() -> None:
    error = OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert classify(error) is Cause.OUT_OF_MEMORY
    assert describe(error) == "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"


def test_resource_exhausted_is_out_of_memory() -> None:
    error = RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8.0G")
    assert classify(error) is Cause.OUT_OF_MEMORY
    assert describe(error).startswith("RuntimeError: RESOURCE_EXHAUSTED")


def test_keyboard_interrupt_is_interrupted() -> None:
    error = KeyboardInterrupt()
    assert classify(error) is Cause.INTERRUPTED
    assert describe(error) == "KeyboardInterrupt"


def test_other_errors_are_errors() -> None:
    error = ValueError("bad value")
    assert classify(error) is Cause.ERROR
    assert describe(error) == "ValueError: bad value"


def test_multi_line_message_keeps_only_the_first_non_empty_line() -> None:
    error = RuntimeError("\n\n   first real line   \nsecond line\nthird line")
    assert describe(error) == "RuntimeError: first real line"
    assert describe(AssertionError("\nassert 1 == 2\n +  where 1 = f()")) == "assert 1 == 2"


def test_phase_blocked_keeps_its_cause_and_reason() -> None:
    error = PhaseBlocked(Cause.MISSING_HARDWARE, "needs one CUDA GPU")
    assert classify(error) is Cause.MISSING_HARDWARE
    assert describe(error) == "needs one CUDA GPU"
