"""--resume end to end on a mini project: a session killed mid-training, or stopped over its
wall-time budget, goes on in a new bundle from its last complete checkpoint; the stitched curve
is the uninterrupted one, the earlier bundle is untouched, and a run that differs is refused."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.evidence.earlier_run import EarlierRunError
from harness.evidence.resumable import check_resumable
from harness.evidence.verify import verify_bundle
from harness.phases.goldens import ATOL, RTOL, Golden, first_mismatch
from harness.record.resumption import RunInputs
from harness.spec.data import file_sha256, load_traces
from harness.spec.prompting import format_completion, format_prompt
from harness.spec.yaml_files import load_yaml_model
from trainers.checkpoints import complete
from trainers.config import TrainingConfig
from trainers.protocol import Example, StepRecord, Trainer, TrainRequest

if TYPE_CHECKING:
    from tests.conftest import MiniProject

torch = pytest.importorskip("torch")
# Imported with this module, before pytester snapshots sys.modules for a test: a backend first
# imported inside one is dropped after it, and safetensors cannot load twice into a process.
from trainers.torch.trainer import TorchTrainer  # noqa: E402

JaxTrainer = (
    importlib.import_module("trainers.jax.trainer").JaxTrainer
    if importlib.util.find_spec("tunix")
    else None
)

CHECKPOINTED = "checkpoint_every: 2\nkeep_checkpoints: 2\n"


def checkpointed_milestone(
    mini: MiniProject, milestone_id: str, steps: int, extra: str = "", backend: str = "torch"
) -> None:
    """A mini milestone whose training config writes a resumable checkpoint every 2 steps."""
    mini.training("resumable")
    config = mini.path / "configs" / "training" / "resumable.yaml"
    config.write_text(config.read_text() + CHECKPOINTED)
    mini.milestone(milestone_id, training="resumable", max_steps=steps, backend=backend)
    spec = mini.path / "configs" / "milestones" / f"{milestone_id}.yaml"
    spec.write_text(spec.read_text() + extra)
    mini.commit(f"milestone {milestone_id}")


def uninterrupted_losses(mini: MiniProject, steps: int, backend: str = "torch") -> list[float]:
    """The same training, never interrupted, in this process."""
    config_path = mini.path / "configs" / "training" / "resumable.yaml"
    config = load_yaml_model(config_path, TrainingConfig)
    traces = load_traces(mini.path / "datasets" / "mini")
    examples = tuple(Example(format_prompt(t.prompt), format_completion(t)) for t in traces)
    seen: list[StepRecord] = []
    out = mini.path.parent / "uninterrupted"
    request = TrainRequest("random:tiny-gemma", config, examples, steps, None, "cpu", out)
    trainer_for(backend).train(request, seen.append)
    return [record.loss for record in seen]


def trainer_for(backend: str) -> Trainer:
    if backend == "jax":
        assert JaxTrainer is not None
        return JaxTrainer()
    return TorchTrainer()


def losses(run_dir: Path) -> list[float]:
    metrics = json.loads((run_dir / "training_metrics.json").read_text())
    return [step["loss"] for step in metrics["per_step"]]


def assert_same_curve(got: list[float], want: list[float]) -> None:
    """Within the golden curves' tolerance, judged by the code that judges them."""
    golden = Golden("mini", "torch", "-", RTOL, ATOL, tuple(want))
    assert first_mismatch(golden, got) is None


def digests(run_dir: Path) -> dict[str, str]:
    return {
        str(path.relative_to(run_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(run_dir.rglob("*"))
        if path.is_file()
    }


def kill_after_checkpoint(mini: MiniProject, milestone_id: str, step: int) -> None:
    """Run a session of ``milestone_id`` and SIGKILL it once a checkpoint of ``step`` or later
    is complete."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "acceptance", "--milestone", milestone_id],
        cwd=mini.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    root = mini.bundle(f"{milestone_id}_v1") / "checkpoints"
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if any(found >= step for found, _ in complete(root)):
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                return
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    pytest.fail(f"no checkpoint of step {step} or later before the session ended or timed out")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_killed_session_resumes_into_a_new_bundle_with_the_uninterrupted_curve(
    mini: MiniProject, backend: str
) -> None:
    if backend == "jax" and JaxTrainer is None:
        pytest.skip("the jax backend (tunix) is not installed")
    # 26 steps after the kill point: far more than the poll interval, so the kill always lands.
    checkpointed_milestone(mini, "mini-killed", steps=30, backend=backend)
    kill_after_checkpoint(mini, "mini-killed", step=4)
    earlier = mini.bundle("mini-killed_v1")
    before = digests(earlier)

    result = mini.run("--milestone", "mini-killed", "--resume", "submission_runs/mini-killed_v1")

    result.assert_outcomes(passed=7)
    marked = {"run_manifest.json", "failure_analysis.md", "mini-killed_summary.md", "SHA256SUMS"}
    after = digests(earlier)
    # The session that resumed it marked it interrupted, as any next session would; nothing else.
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    assert changed <= marked
    assert verify_bundle(earlier) == []
    kept = [step for step, _ in complete(earlier / "checkpoints")]
    assert 1 <= len(kept) <= 2 and kept == sorted(kept)
    resumes = mini.manifest("mini-killed_v2")["resumes"]
    assert resumes["run_id"] == "mini-killed_v1" and resumes["step"] in kept
    assert verify_bundle(mini.bundle("mini-killed_v2")) == []
    summary = (mini.bundle("mini-killed_v2") / "mini-killed_summary.md").read_text()
    assert f"resumes mini-killed_v1 at step {resumes['step']}" in summary
    # The whole curve, stitched: the earlier bundle's steps, then this one's.
    resumed = losses(mini.bundle("mini-killed_v2"))
    assert len(resumed) == 30
    assert resumed[: resumes["step"]] == losses(earlier)[: resumes["step"]]
    assert_same_curve(resumed, uninterrupted_losses(mini, 30, backend))


@pytest.mark.slow
def test_a_run_over_its_budget_stops_with_a_checkpoint_and_resumes_to_the_end(
    mini: MiniProject,
) -> None:
    # 0.02 minutes (1.2 s): pre-flight, the guardrails and building the model alone outlast it,
    # so the run stops as soon as its warm-up is over (after step 3); the resumed run's warm-up
    # (steps 4 and 5) and step 6 end the run before it can stop.
    checkpointed_milestone(mini, "mini-budget", steps=6, extra="budget: {wall_minutes: 0.02}\n")
    result = mini.run("--milestone", "mini-budget")
    result.stdout.fnmatch_lines(
        ["*train: over budget: the session would take * min, its budget is 0.02 min*"]
    )
    earlier = mini.bundle("mini-budget_v1")
    manifest = mini.manifest("mini-budget_v1")
    assert manifest["phases"]["train"]["cause"] == "over budget"
    assert manifest["steps_completed"] == 3
    assert manifest["budget"]["wall_minutes"] == 0.02
    assert manifest["budget"]["estimate_minutes"] > 0.02
    assert manifest["checkpoints"]["written_after_steps"] == [2, 3]
    assert "resumable, in `checkpoints/`, after steps 2, 3" in (earlier / "journal.md").read_text()
    assert "budget 0.02 min" in (earlier / "training_log.txt").read_text()
    assert verify_bundle(earlier) == []
    before = digests(earlier)

    resumed = mini.run("--milestone", "mini-budget", "--resume", "submission_runs/mini-budget_v1")

    resumed.assert_outcomes(passed=7)
    assert digests(earlier) == before  # untouched, to the byte
    assert mini.manifest("mini-budget_v2")["resumes"]["step"] == 3
    assert_same_curve(losses(mini.bundle("mini-budget_v2")), uninterrupted_losses(mini, 6))

    # What a resumed run must share with the earlier one, each difference named in one line.
    here = resumable_inputs(mini, "mini-budget")
    for changed, named in (
        ({"commit": "0" * 40}, "commit"),
        ({"dataset": "f" * 64}, "dataset sha256"),
        ({"dependencies": {**here.dependencies, "torch": "0.0.1"}}, "dependency torch"),
    ):
        with pytest.raises(EarlierRunError, match=named):
            check_resumable(earlier, "mini-budget", dataclasses.replace(here, **changed))
    # A run that completed is not resumed.
    with pytest.raises(EarlierRunError, match="train phase passed .completed.; only a run"):
        check_resumable(mini.bundle("mini-budget_v2"), "mini-budget", here)
    # Through the command line: a config changed since is refused before anything runs.
    config = mini.path / "configs" / "training" / "resumable.yaml"
    config.write_text(config.read_text().replace("log_every: 2", "log_every: 1"))
    refused = mini.run_in_process(
        "--milestone", "mini-budget", "--resume", "submission_runs/mini-budget_v1"
    )
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(
        ["*--resume: */mini-budget_v1: training_config sha256 * there, * here; a resumed run must*"]
    )
    assert not mini.bundle("mini-budget_v3").exists()


def resumable_inputs(mini: MiniProject, milestone_id: str) -> RunInputs:
    """This checkout's inputs, as the session reads them."""
    from harness.probes.fingerprints import dependency_fingerprint
    from harness.probes.git import git_state

    return RunInputs(
        commit=git_state(mini.path).commit,
        training_config=file_sha256(mini.path / "configs" / "training" / "resumable.yaml"),
        dataset=file_sha256(mini.path / "datasets" / "mini" / "traces.jsonl"),
        evalset=file_sha256(mini.path / "evalsets" / "mini.jsonl"),
        dependencies=dependency_fingerprint().entries,
    )
