"""Each failure becomes a documented outcome: stopped, recorded, never silently fixed or retried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from filelock import FileLock

if TYPE_CHECKING:
    from tests.conftest import MiniProject

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow

OOM_CONFTEST = '''
import pytest
import torch
import transformers


@pytest.fixture(autouse=True)
def cuda_oom_on_third_forward(monkeypatch):
    """Raise the error a CUDA OOM raises, from the model's forward, as the real one would."""
    original = transformers.GemmaForCausalLM.forward
    calls = []

    def forward(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(transformers.GemmaForCausalLM, "forward", forward)
'''


def analysis(mini: MiniProject, run_id: str) -> str:
    return (mini.bundle(run_id) / "failure_analysis.md").read_text()


def test_a_huge_learning_rate_stops_training_and_keeps_what_came_before(mini: MiniProject) -> None:
    mini.training("wild", lr=1.0e4)
    mini.milestone("mini-wild", training="wild", max_steps=40)
    result = mini.run("--milestone", "mini-wild")
    result.assert_outcomes(passed=5, failed=1, skipped=1)
    phases = mini.manifest("mini-wild_v1")["phases"]
    assert phases["train"]["cause"] in ("non-finite loss", "divergence")
    text = analysis(mini, "mini-wild_v1")
    assert "## train: failed" in text
    assert f"cause class: {phases['train']['cause']}" in text
    assert "last good state: step " in text
    metrics = json.loads((mini.bundle("mini-wild_v1") / "training_metrics.json").read_text())
    assert metrics["completed"] is False
    assert 0 < metrics["steps_completed"] < 40
    assert (mini.bundle("mini-wild_v1") / "checkpoint" / "model.safetensors").is_file()


def test_a_cuda_out_of_memory_is_classified_with_the_last_good_step(mini: MiniProject) -> None:
    (mini.path / "acceptance" / "conftest.py").write_text(OOM_CONFTEST)
    result = mini.run("--milestone", "mini")
    result.assert_outcomes(passed=5, failed=1, skipped=1)
    train = mini.manifest("mini_v1")["phases"]["train"]
    assert train["cause"] == "out of memory"
    assert train["reason"] == "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    text = analysis(mini, "mini_v1")
    assert "last good state: step 2, loss " in text
    assert "gpu_snapshot.txt" in text


def test_sigterm_records_the_phase_in_progress_as_interrupted(mini: MiniProject) -> None:
    process = mini.start_long_training()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == pytest.ExitCode.INTERRUPTED
    manifest = mini.manifest("mini-long_v1")
    assert manifest["session_finished"] is True
    assert manifest["phases"]["train"] == {
        **manifest["phases"]["train"],
        "status": "failed",
        "cause": "interrupted",
        "reason": "KeyboardInterrupt: SIGTERM received",
    }
    assert "## train: failed" in analysis(mini, "mini-long_v1")


def test_sigkill_leaves_a_readable_bundle_that_the_next_session_marks_interrupted(
    mini: MiniProject,
) -> None:
    process = mini.start_long_training()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    killed = mini.bundle("mini-long_v1")
    before = {p.name: p.read_bytes() for p in killed.iterdir() if p.is_file()}
    assert json.loads(before["run_manifest.json"])["phases"]["preflight"]["status"] == "passed"

    mini.run("--milestone", "mini-long", "-k", "preflight").assert_outcomes(passed=1, deselected=10)
    manifest = mini.manifest("mini-long_v1")
    assert manifest["interrupted"] is True and manifest["interrupted_noticed_by"] == "mini-long_v2"
    text = analysis(mini, "mini-long_v1")
    assert "cause class: interrupted" in text and "last good state: step " in text
    for name, content in before.items():
        if name == "mini-long_summary.md":  # added to, never rewritten
            assert (killed / name).read_bytes().startswith(content), f"{name} rewritten"
        elif name not in ("run_manifest.json", "failure_analysis.md"):
            assert (killed / name).read_bytes() == content, f"{name} changed"
    assert mini.manifest("mini-long_v2")["follows"] == "mini-long_v1"


def test_planted_secrets_never_reach_the_bundle_or_the_report(mini: MiniProject) -> None:
    secrets = {"HF_TOKEN": "hf_plantedTokenValue123", "KAGGLE_KEY": "kaggle-planted-key-456"}
    spec = mini.path / "configs" / "milestones" / "mini.yaml"
    spec.write_text(spec.read_text().replace("Exercise every phase", f"Leak {secrets['HF_TOKEN']} here"))
    (mini.path / "acceptance" / "conftest.py").write_text(
        "import os\n\n\ndef pytest_runtest_setup(item):\n"
        "    print('token is', os.environ['HF_TOKEN'], os.environ['KAGGLE_KEY'])\n"
    )
    mini.commit("a purpose that leaks a token, and a conftest that prints secrets")
    env = {**os.environ, **secrets}
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "acceptance", "--milestone", "mini", "-rA"],
        cwd=mini.path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert process.returncode == 0, process.stdout
    files = [p for p in mini.bundle("mini_v1").rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in files)
    for path in files:
        content = path.read_bytes()
        for value in secrets.values():
            assert value.encode() not in content, f"{value} leaked into {path.name}"
    assert "[REDACTED]" in (mini.bundle("mini_v1") / "mini_summary.md").read_text()


def test_a_second_session_of_the_same_milestone_is_refused(mini: MiniProject) -> None:
    (mini.path / "submission_runs").mkdir()
    with FileLock(mini.path / "submission_runs" / ".mini.lock"):
        result = mini.run_in_process("--milestone", "mini")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--milestone mini: another session is running this milestone*"])
    assert not mini.bundle("mini_v1").exists()
