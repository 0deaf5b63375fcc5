"""The phases of a freeze milestone. Freeze once: pytest acceptance --milestone m42 --snapshot-update."""

from __future__ import annotations

from typing import Any

import pytest

from harness.evidence import consolidate
from harness.lock import current_record
from harness.preflight import snapshot
from harness.run import MilestoneRun
from harness.run_rules import check_after, check_before
from harness.submission import build, validate
from harness.summary import finalize

pytestmark = pytest.mark.kind("freeze")


@pytest.mark.phase("preflight")
def test_preflight(milestone_run: MilestoneRun) -> None:
    snapshot(milestone_run)


@pytest.mark.phase("guardrails-before")
def test_guardrails_before(milestone_run: MilestoneRun) -> None:
    problems = check_before(milestone_run)
    assert not problems, "a rule is broken before the freeze: " + "; ".join(problems)


@pytest.mark.phase("build")
def test_build(milestone_run: MilestoneRun) -> None:
    milestone_run.progress(f"[{milestone_run.run_id}] build: {build(milestone_run)}")


@pytest.mark.phase("validate")
def test_validate(milestone_run: MilestoneRun) -> None:
    problems = validate(milestone_run)
    assert not problems, "the frozen submission is invalid: " + "; ".join(problems)


@pytest.mark.phase("lock")
def test_lock(milestone_run: MilestoneRun, frozen_lock: Any) -> None:
    assert current_record(milestone_run, milestone_run.milestone.id) == frozen_lock(name=milestone_run.milestone.id)


@pytest.mark.phase("guardrails-after")
def test_guardrails_after(milestone_run: MilestoneRun) -> None:
    problems = check_after(milestone_run)
    assert not problems, "a rule was broken during the freeze: " + "; ".join(problems)


@pytest.mark.phase("evidence")
def test_evidence(milestone_run: MilestoneRun) -> None:
    problems = consolidate(milestone_run)
    assert not problems, "evidence bundle incomplete: " + "; ".join(problems)


@pytest.mark.phase("summary")
def test_summary(milestone_run: MilestoneRun) -> None:
    text = finalize(milestone_run)
    assert milestone_run.milestone.spec.closing_statement in text
