"""A run whose session died: training metrics kept as it trained, the next session marks where it
stopped, and the marked bundle verifies as an interrupted run."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.evidence import bundle
from harness.evidence.documents import write_documents
from harness.evidence.interrupted import mark_interrupted
from harness.evidence.verify import CHECKSUMS, verify_bundle
from harness.phases.train import StepLogger, build_request
from harness.plugin.resources import PhaseResources
from harness.record.failures import Cause
from harness.record.outcomes import PhaseOutcome, Status
from harness.record.run import MilestoneRun, RunOptions
from harness.spec.milestones import Milestone
from harness.spec.phase_order import EVALUATE, GUARDRAILS_BEFORE, PREFLIGHT, TRAIN
from harness.spec.registry import MilestoneRegistry
from trainers.protocol import StepRecord

if TYPE_CHECKING:
    from tests.conftest import MiniProject

ROOT = Path(__file__).resolve().parent.parent
NOTICED_AT = "2026-01-02T03:04:05+00:00"


@pytest.fixture(scope="module")
def smoke() -> Milestone:
    """The smoke milestone with the plain phase order (no evaluate-base)."""
    smoke = MilestoneRegistry(ROOT).load("smoke")
    assert isinstance(smoke, Milestone)
    return dataclasses.replace(smoke, spec=smoke.spec.model_copy(update={"evaluate_base": False}))


@pytest.fixture
def run(smoke: Milestone, tmp_path: Path) -> MilestoneRun:
    """A smoke run as a session leaves it after pre-flight: snapshots, samples and documents."""
    run = MilestoneRun(smoke, ROOT, bundle.allocate_run_dir(tmp_path, "smoke"), RunOptions(progress=_quiet))
    resources = PhaseResources(60.0)
    resources.begin(run, PREFLIGHT)
    resources.close()
    bundle.write_text(run.run_dir / bundle.ENV_SNAPSHOT, "commit: not recorded\n")
    bundle.write_text(run.run_dir / bundle.GPU_SNAPSHOT, "no nvidia-smi: a CPU run\n")
    run.record.add_outcome(PhaseOutcome(PREFLIGHT, Status.PASSED, Cause.COMPLETED, "completed", 1.0))
    write_documents(run)
    return run


def _quiet(message: str) -> None:
    """Progress lines are for a terminal; these tests have none."""


def _train_until(run: MilestoneRun, steps: int, every: int) -> None:
    """Feed ``steps`` optimizer steps through the phase's step logger, as a backend does."""
    run.record.training_request = build_request(run)
    with (run.run_dir / bundle.TRAINING_LOG).open("a", encoding="utf-8") as log:
        logger = StepLogger(run, log, every)
        for step in range(1, steps + 1):
            logger(StepRecord(step, 5.0 - step / 10, 1.0e-3, 0.5, 8, 800, 0.25))


def _analysis(run_dir: Path) -> str:
    return (run_dir / bundle.FAILURE_ANALYSIS).read_text(encoding="utf-8")


def test_training_metrics_are_written_at_every_logged_step(run: MilestoneRun) -> None:
    _train_until(run, 21, every=10)
    metrics = bundle.read_json(run.run_dir / bundle.TRAINING_METRICS)
    assert metrics["completed"] is False
    assert metrics["steps_completed"] == 20
    assert [s["step"] for s in metrics["per_step"]] == list(range(1, 21))
    logged = (run.run_dir / bundle.TRAINING_LOG).read_text(encoding="utf-8").splitlines()
    assert [line.split("/")[0] for line in logged] == ["step 1", "step 10", "step 20"]


def test_a_run_killed_in_training_is_marked_at_its_last_logged_step(run: MilestoneRun) -> None:
    run.record.add_outcome(PhaseOutcome(GUARDRAILS_BEFORE, Status.PASSED, Cause.COMPLETED, "completed", 1.0))
    write_documents(run)
    _train_until(run, 21, every=10)  # then killed: no phase ended after guardrails-before

    mark_interrupted(run.run_dir, "smoke_v2", NOTICED_AT)

    manifest = bundle.read_json(run.run_dir / bundle.RUN_MANIFEST)
    train = manifest["phases"][TRAIN]
    assert (train["status"], train["cause"]) == ("failed", "interrupted")
    assert train["reason"].startswith("interrupted at step 20: the session that wrote this bundle")
    assert f"noticed by smoke_v2 at {NOTICED_AT}" in train["reason"]
    for phase in ("evaluate", "guardrails-after", "evidence", "summary"):
        assert manifest["phases"][phase]["status"] == "not run", phase
        assert manifest["phases"][phase]["cause"] == "interrupted", phase
        assert manifest["phases"][phase]["reason"] == "not reached: interrupted during train"
    assert manifest["phases"][PREFLIGHT]["status"] == "passed"
    assert manifest["steps_completed"] == 20
    assert manifest["interrupted_at"] == "interrupted at step 20"
    assert (manifest["verdict"], manifest["session_finished"]) == ("interrupted", False)
    text = _analysis(run.run_dir)
    assert "## train: failed" in text and "- reason: interrupted at step 20: " in text
    assert "- last good state: step 20, loss 3.0000, lr 1.00e-03 (training_metrics.json)" in text
    assert "not selected" not in text and "-k, -m, -x" not in text
    summary = (run.run_dir / bundle.summary_name(run.milestone.id)).read_text(encoding="utf-8")
    assert (
        "## Interrupted" in summary
        and "| train | failed | interrupted | interrupted at step 20" in summary
    )
    assert (run.run_dir / CHECKSUMS).is_file()
    assert verify_bundle(run.run_dir) == []


def test_a_run_killed_after_training_names_the_phase_it_was_in(run: MilestoneRun) -> None:
    run.record.add_outcome(PhaseOutcome(GUARDRAILS_BEFORE, Status.PASSED, Cause.COMPLETED, "completed", 1.0))
    _train_until(run, 4, every=2)
    run.record.add_outcome(PhaseOutcome(TRAIN, Status.FAILED, Cause.CRITERIA_NOT_MET, "loss ratio 0.9", 1.0))
    write_documents(run)

    mark_interrupted(run.run_dir, "smoke_v2", NOTICED_AT)

    phases = bundle.read_json(run.run_dir / bundle.RUN_MANIFEST)["phases"]
    assert phases[TRAIN]["reason"] == "loss ratio 0.9"
    assert phases[EVALUATE]["reason"].startswith("interrupted during evaluate: ")
    text = _analysis(run.run_dir)
    assert "## train: failed" in text and "- reason: loss ratio 0.9" in text
    assert "## evaluate: failed" in text
    assert verify_bundle(run.run_dir) == []


def test_a_run_killed_before_its_first_phase_ended_is_marked_as_a_whole(tmp_path: Path) -> None:
    run_dir = bundle.allocate_run_dir(tmp_path, "smoke")
    bundle.write_text(run_dir / bundle.ENV_SNAPSHOT, "commit: not recorded\n")

    mark_interrupted(run_dir, "smoke_v2", NOTICED_AT)

    manifest = bundle.read_json(run_dir / bundle.RUN_MANIFEST)
    assert manifest["interrupted_at"] == "interrupted before its first phase ended"
    text = _analysis(run_dir)
    assert "## session: interrupted" in text
    assert "- reason: interrupted before its first phase ended: " in text
    assert "- last good state: no training_log.txt: training had not started" in text
    assert (run_dir / CHECKSUMS).is_file()


@pytest.mark.slow
def test_a_sigkilled_run_is_marked_at_its_step_and_verifies(mini: MiniProject) -> None:
    pytest.importorskip("torch")
    process = mini.start_long_training()
    killed = mini.bundle("mini-long_v1")
    metrics_path = killed / bundle.TRAINING_METRICS
    deadline = time.monotonic() + 120
    try:
        while not (
            metrics_path.is_file() and json.loads(metrics_path.read_text())["steps_completed"] >= 20
        ):
            assert time.monotonic() < deadline, "training did not reach step 20 in time"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    last = json.loads(metrics_path.read_text())["per_step"][-1]["step"]
    logged = [
        int(line.split()[1].split("/")[0])
        for line in (killed / bundle.TRAINING_LOG).read_text().splitlines()
        if line.startswith("step ")
    ]
    # The metrics are written before the log line: a kill between the two leaves the log one
    # logged step (log_every: 2) behind, never ahead.
    assert last - 2 <= logged[-1] <= last
    # The samples so far stay: written line by line, the last one taken while training ran.
    samples = (killed / bundle.RESOURCES).read_text().splitlines()
    assert json.loads(samples[-1])["phase"] == "train"

    mini.run("--milestone", "mini-long", "-k", "preflight").assert_outcomes(passed=1, deselected=10)

    manifest = mini.manifest("mini-long_v1")
    assert manifest["phases"]["train"]["status"] == "failed"
    assert manifest["phases"]["train"]["reason"].startswith(f"interrupted at step {last}: ")
    assert manifest["steps_completed"] == last
    assert f"- reason: interrupted at step {last}: " in _analysis(killed)
    verify = subprocess.run(
        [sys.executable, "-m", "harness", "verify", str(killed)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
