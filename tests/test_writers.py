"""Tests for the rendered run manifest, summary and failure analysis of a smoke run."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.evidence import bundle
from harness.evidence.documents import write_documents
from harness.evidence.verify import placeholder_paths
from harness.record.failures import Cause
from harness.record.outcomes import PhaseOutcome, Status
from harness.record.run import MilestoneRun, RunOptions
from harness.spec.data import file_sha256
from harness.spec.milestones import Milestone
from harness.spec.phase_order import (
    BASE_EVAL_PHASES,
    EVALUATE,
    EVALUATE_BASE,
    EVIDENCE,
    GUARDRAILS_BEFORE,
    PREFLIGHT,
    SUMMARY,
    TRAIN,
)
from harness.spec.registry import MilestoneRegistry
from trainers.protocol import StepRecord

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "datasets" / "dev-reasoning-v2" / "traces.jsonl"
OOM_REASON = "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"


@pytest.fixture(scope="module")
def smoke() -> Milestone:
    return MilestoneRegistry(ROOT).load("smoke")


@pytest.fixture
def run(smoke: Milestone, tmp_path: Path) -> MilestoneRun:
    run_dir = bundle.allocate_run_dir(tmp_path / "submission_runs", "smoke")
    run = MilestoneRun(smoke, ROOT, run_dir, RunOptions(progress=lambda _: None))
    run.record.env.update({"commit": "0123abcd", "dirty": "false", "os": "Linux-test", "cpu": "x86_64"})
    return run


def _outcome(phase: str, status: Status, cause: Cause, reason: str) -> PhaseOutcome:
    return PhaseOutcome(phase, status, cause, reason, 1.5)


def _passed(phase: str) -> PhaseOutcome:
    return _outcome(phase, Status.PASSED, Cause.COMPLETED, "completed")


def _step(step: int, loss: float, lr: float) -> StepRecord:
    return StepRecord(
        step=step, loss=loss, lr=lr, grad_norm=1.5, samples=16, tokens=900, seconds=0.5
    )


def _record_failed_train(run: MilestoneRun) -> None:
    run.record.add_outcome(_passed(PREFLIGHT))
    run.record.add_outcome(_passed(GUARDRAILS_BEFORE))
    run.record.add_outcome(_passed(EVALUATE_BASE))  # the smoke spec scores the base model first
    run.record.steps += [_step(1, loss=3.2109, lr=1.5e-4), _step(2, loss=2.8765, lr=3.0e-4)]
    run.record.add_outcome(_outcome(TRAIN, Status.FAILED, Cause.OUT_OF_MEMORY, OOM_REASON))
    run.record.add_outcome(_outcome(EVALUATE, Status.SKIPPED, Cause.BLOCKED, f"train failed: {OOM_REASON}"))


def test_manifest_has_real_values_only(run: MilestoneRun) -> None:
    _record_failed_train(run)
    write_documents(run)
    manifest = bundle.read_json(run.run_dir / bundle.RUN_MANIFEST)
    assert placeholder_paths(manifest) == []
    assert manifest["milestone"] == "smoke"
    assert manifest["run_id"] == "smoke_v1"
    assert manifest["commit"] == "0123abcd"
    assert manifest["dirty"] is False
    assert manifest["steps_completed"] == 2
    assert manifest["verdict"] == "train failed"
    assert manifest["dataset"] == {
        "path": "datasets/dev-reasoning-v2/traces.jsonl",
        "resolved_path": str(TRACES),
        "as_written": "dev-reasoning-v2",
        "sha256": file_sha256(TRACES),
        "records": 550,
    }
    assert manifest["evalset"]["records"] == 100
    assert set(manifest["phases"]) == set(BASE_EVAL_PHASES)
    assert manifest["phases"][TRAIN]["cause"] == "out of memory"
    assert manifest["phases"][SUMMARY]["status"] == "not run"


def test_manifest_before_preflight_says_what_was_not_recorded(
    smoke: Milestone, tmp_path: Path
) -> None:
    run_dir = bundle.allocate_run_dir(tmp_path, "smoke")
    run = MilestoneRun(smoke, ROOT, run_dir, RunOptions(progress=lambda _: None))
    write_documents(run)
    manifest = bundle.read_json(run.run_dir / bundle.RUN_MANIFEST)
    assert placeholder_paths(manifest) == []
    assert manifest["commit"].startswith("not recorded")
    assert manifest["steps_completed"] == 0


def test_summary_has_closing_statement_and_a_row_per_phase(
    run: MilestoneRun, smoke: Milestone
) -> None:
    _record_failed_train(run)
    write_documents(run)
    text = (run.run_dir / "smoke_summary.md").read_text(encoding="utf-8")
    assert smoke.spec.closing_statement in text
    assert "Verdict: **train failed**" in text
    for phase in smoke.spec.phases:
        assert sum(line.startswith(f"| {phase} | ") for line in text.splitlines()) == 1
    assert f"| {TRAIN} | failed | out of memory | {OOM_REASON} |" in text
    assert f"| {SUMMARY} | not run |" in text
    assert "step 1 -> 2.8765 at step 2 (stopped early)" in text


def test_failure_analysis_names_phase_cause_reason_and_last_good_step(run: MilestoneRun) -> None:
    _record_failed_train(run)
    write_documents(run)
    text = (run.run_dir / bundle.FAILURE_ANALYSIS).read_text(encoding="utf-8")
    assert "## train: failed" in text
    assert "- cause class: out of memory" in text
    assert f"- reason: {OOM_REASON}" in text
    assert "- last good state: step 2, loss 2.8765" in text
    assert "## evaluate: skipped" in text
    assert "## preflight" not in text


def test_failure_analysis_when_train_failed_before_any_step(run: MilestoneRun) -> None:
    run.record.add_outcome(_passed(PREFLIGHT))
    run.record.add_outcome(_passed(GUARDRAILS_BEFORE))
    run.record.add_outcome(_outcome(TRAIN, Status.FAILED, Cause.ERROR, "ValueError: bad batch"))
    write_documents(run)
    text = (run.run_dir / bundle.FAILURE_ANALYSIS).read_text(encoding="utf-8")
    assert "- last good state: no optimizer step completed" in text


def test_failure_analysis_is_removed_once_every_phase_passed(run: MilestoneRun) -> None:
    _record_failed_train(run)
    write_documents(run)
    assert (run.run_dir / bundle.FAILURE_ANALYSIS).is_file()
    for phase in run.phases:
        run.record.add_outcome(_passed(phase))
    write_documents(run)
    assert not (run.run_dir / bundle.FAILURE_ANALYSIS).exists()
    manifest = bundle.read_json(run.run_dir / bundle.RUN_MANIFEST)
    assert manifest["verdict"] == "passed"
    summary = (run.run_dir / "smoke_summary.md").read_text(encoding="utf-8")
    assert "Verdict: **passed**" in summary
    assert bundle.FAILURE_ANALYSIS not in summary


def test_documents_are_written_only_into_the_run_folder(run: MilestoneRun) -> None:
    _record_failed_train(run)
    run.record.add_outcome(_passed(EVIDENCE))
    write_documents(run)
    assert sorted(p.name for p in run.run_dir.iterdir()) == sorted(
        [bundle.RUN_MANIFEST, bundle.FAILURE_ANALYSIS, "smoke_summary.md"]
    )
    assert [p.name for p in run.run_dir.parent.iterdir()] == ["smoke_v1"]
