"""Pieces of the report and the journal (plots, journal entries, report tables); live progress."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.evidence import bundle
from harness.evidence.journal import (
    PURPOSES,
    begin_phase,
    end_phase,
    listing,
    render,
    written_since,
)
from harness.evidence.plots import category_accuracy_png, loss_curve_png
from harness.plugin.report import gpu_line, predictions_table
from harness.plugin.session import MilestoneSession
from harness.record.evaluation import CategoryScore, Prediction
from harness.record.failures import Cause
from harness.record.outcomes import PhaseOutcome, Status
from harness.record.run import MilestoneRun, RunOptions
from harness.spec.milestones import Milestone
from harness.spec.phase_order import FREEZE_PHASES, PHASES, PREFLIGHT, TRAIN
from harness.spec.registry import MilestoneRegistry
from trainers.protocol import StepRecord

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _steps(losses: list[float]) -> list[StepRecord]:
    return [
        StepRecord(
            step=i, loss=loss, lr=1e-3 * i, grad_norm=1.0, samples=4, tokens=200, seconds=0.1
        )
        for i, loss in enumerate(losses, start=1)
    ]


@pytest.fixture(scope="module")
def smoke() -> Milestone:
    milestone = MilestoneRegistry(ROOT).load("smoke")
    assert isinstance(milestone, Milestone)
    return milestone


@pytest.fixture
def run(smoke: Milestone, tmp_path: Path) -> MilestoneRun:
    return MilestoneRun(smoke, ROOT, bundle.allocate_run_dir(tmp_path, "smoke"), RunOptions(progress=lambda _: None))


def test_the_loss_curve_is_a_png_even_with_non_finite_losses() -> None:
    png = loss_curve_png(_steps([4.0, 3.5, math.nan, math.inf, 3.0]))
    assert png.startswith(PNG_MAGIC) and len(png) > 1000


def test_the_category_chart_is_a_png() -> None:
    png = category_accuracy_png(
        {"percentages": CategoryScore(20, 5, 18), "edge cases": CategoryScore(5, 5, 5)}
    )
    assert png.startswith(PNG_MAGIC) and len(png) > 1000


def test_importing_the_harness_does_not_import_matplotlib() -> None:
    modules = (
        "harness.plugin.session, harness.phases.train, harness.phases.evaluate, harness.plugin.report, harness.evidence.journal"
    )
    code = f"import sys, {modules}\nassert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_every_phase_of_every_kind_has_a_purpose() -> None:
    assert set(PHASES) | set(FREEZE_PHASES) <= set(PURPOSES)


def test_written_files_are_the_new_and_the_changed_ones(tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("same")
    (tmp_path / "changed.txt").write_text("before")
    before = listing(tmp_path)
    (tmp_path / "changed.txt").write_text("after, longer")
    (tmp_path / "new.txt").write_text("new")
    (tmp_path / ".new.txt.tmp").write_text("a temp file")
    assert written_since(before, listing(tmp_path)) == ("changed.txt", "new.txt")


def test_each_phase_adds_an_entry_with_what_it_wrote(run: MilestoneRun) -> None:
    begin_phase(run, PREFLIGHT)
    bundle.write_text(run.run_dir / bundle.ENV_SNAPSHOT, "commit abc\n")
    end_phase(run, PhaseOutcome(PREFLIGHT, Status.PASSED, Cause.COMPLETED, "completed", 1.25))
    begin_phase(run, TRAIN)
    for name in ("config.json", "model.safetensors"):
        bundle.write_text(run.run_dir / bundle.CHECKPOINT_DIR / name, "{}")
    end_phase(
        run,
        PhaseOutcome(TRAIN, Status.FAILED, Cause.DIVERGENCE, "Divergence: loss 9.1 > 3 x 2.0", 4.0),
    )

    text = (run.run_dir / bundle.JOURNAL).read_text()
    assert text == render(run.run_id, run.record.journal)
    assert [line.split(" ", 2)[2] for line in text.splitlines() if line.startswith("## ")] == [
        "preflight: passed",
        "train: failed",
    ]
    preflight, train = text.split("\n## ")[1:]
    assert f"- purpose: {PURPOSES[PREFLIGHT]}" in preflight
    assert "- files written: `env_snapshot.txt`" in preflight
    assert "- checkpoint: none written in this phase" in preflight
    assert "- status: failed (divergence)" in train
    assert "- reason: Divergence: loss 9.1 > 3 x 2.0" in train
    assert "- files written: `checkpoint/` (2 files)" in train
    assert "- checkpoint: `checkpoint/`" in train


def test_predictions_are_escaped_in_the_report_table() -> None:
    prediction = Prediction(
        "e1", "edge cases", "Is 1 < 2?", "<yes>", "<answer>no</answer>", None, False, False
    )
    table = predictions_table((prediction,))
    assert "<td>Is 1 &lt; 2?</td><td>&lt;yes&gt;</td>" in table
    assert 'title="&lt;answer&gt;no&lt;/answer&gt;">(no answer)</td><td>no</td>' in table


def test_the_gpu_line_is_the_driver_line_of_nvidia_smi_else_the_first(tmp_path: Path) -> None:
    snapshot = tmp_path / bundle.GPU_SNAPSHOT
    snapshot.write_text(
        "Mon Nov 23 16:22:45 2026\n+------+\n"
        "| NVIDIA-SMI 550.54.15      Driver Version: 550.54.15      CUDA Version: 12.4     |\n"
    )
    assert gpu_line(snapshot) == "NVIDIA-SMI 550.54.15 Driver Version: 550.54.15 CUDA Version: 12.4"
    snapshot.write_text("nvidia-smi not found on PATH: no NVIDIA driver on this machine.\n")
    assert gpu_line(snapshot) == "nvidia-smi not found on PATH: no NVIDIA driver on this machine."
    assert gpu_line(tmp_path / "absent.txt").startswith("not recorded")


def test_progress_goes_to_stderr_where_there_is_no_terminal_reporter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    worker = SimpleNamespace(pluginmanager=SimpleNamespace(getplugin=lambda name: None))
    session = MilestoneSession(worker, [], tmp_path, tmp_path)  # type: ignore[arg-type]
    session.progress("[smoke_v1] train: step 10/100")
    assert capsys.readouterr().err == "[smoke_v1] train: step 10/100\n"
