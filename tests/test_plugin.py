"""The plugin end to end on a mini project: phase order, outcome propagation, bundles, usage errors.

Runs that import torch go through ``runpytest_subprocess``: pytester's in-process runs drop the
modules a run imported, and torch cannot be imported twice into one process.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from xml.etree import ElementTree

import pytest

if TYPE_CHECKING:
    from tests.conftest import MiniProject

torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_a_milestone_runs_its_phases_in_order_and_leaves_a_complete_bundle(mini: MiniProject) -> None:
    result = mini.run("--milestone", "mini", "-v")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(
        [
            "*test_preflight[[]mini[]] PASSED*",
            "*test_train[[]mini[]] PASSED*",
            "*test_evaluate[[]mini[]] PASSED*",
            "*test_evidence[[]mini[]] PASSED*",
            "*test_summary[[]mini[]] PASSED*",
            "*mini_v1: passed -> submission_runs/mini_v1/*",
        ]
    )
    bundle = mini.path / "submission_runs" / "mini_v1"
    for name in (
        "env_snapshot.txt", "gpu_snapshot.txt", "training_log.txt", "training_metrics.json",
        "checkpoint/model.safetensors", "predictions.jsonl", "evaluation_results.json",
        "evaluation_summary.md", "run_manifest.json", "report.html", "mini_summary.md",
    ):
        assert (bundle / name).is_file(), name
    assert not (bundle / "failure_analysis.md").exists()
    data = mini.manifest("mini_v1")
    assert data["verdict"] == "passed" and data["complete"] is True
    assert data["steps_completed"] == 4
    metrics = json.loads((bundle / "training_metrics.json").read_text())
    assert [s["step"] for s in metrics["per_step"]] == [1, 2, 3, 4]
    results = json.loads((bundle / "evaluation_results.json").read_text())
    assert results["count"] == 5
    assert len((bundle / "predictions.jsonl").read_text().splitlines()) == 5

    mini.run("--milestone", "mini").assert_outcomes(passed=7)
    assert mini.manifest("mini_v2")["run_id"] == "mini_v2"
    assert mini.manifest("mini_v1")["finished_at"] == data["finished_at"]


# The session writes down, as it closes, which frameworks its own process imported.
FRAMEWORKS_CONFTEST = """\
import sys
from pathlib import Path


def pytest_sessionfinish(session):
    loaded = [name for name in ("torch", "jax") if name in sys.modules]
    (Path(__file__).parents[2] / "frameworks.txt").write_text(" ".join(loaded))
"""


@pytest.mark.slow
def test_a_torch_session_never_imports_jax(mini: MiniProject) -> None:
    pytest.importorskip("jax")
    (mini.path / "acceptance" / "conftest.py").write_text(FRAMEWORKS_CONFTEST)
    mini.commit("a conftest that lists the frameworks a session loaded")
    mini.run("--milestone", "mini").assert_outcomes(passed=7)
    assert (mini.pytester.path / "frameworks.txt").read_text() == "torch"


@pytest.mark.skipif("torch.cuda.is_available()", reason="this machine has CUDA")
@pytest.mark.slow
def test_absent_hardware_skips_the_run_with_a_documented_reason(mini: MiniProject) -> None:
    result = mini.run("--milestone", "mini-gpu", "-m", "cuda", "-rs", f"--junitxml={mini.path / 'junit.xml'}")
    result.assert_outcomes(passed=2, skipped=5)
    result.stdout.fnmatch_lines(
        [
            "*looked for 1 cuda device(s) with torch.cuda.device_count(), found*",
            "*preflight skipped: needs test hardware*",
            "*: guardrails-before skipped: preflight skipped: needs test hardware*",
        ]
    )
    bundle = mini.path / "submission_runs" / "mini-gpu_v1"
    analysis = (bundle / "failure_analysis.md").read_text()
    assert "cause class: missing hardware" in analysis
    summary = (bundle / "mini-gpu_summary.md").read_text()
    assert "The mini milestone proves nothing about quality." in summary
    assert "| preflight | skipped | missing hardware |" in summary
    cases = ElementTree.parse(mini.path / "junit.xml").getroot().iter("testcase")
    recorded = {case.get("name"): dict((p.get("name"), p.get("value")) for p in case.iter("property")) for case in cases}
    assert recorded["test_preflight[mini-gpu]"]["run_dir"] == "submission_runs/mini-gpu_v1"
    assert recorded["test_train[mini-gpu]"]["phase"] == "train"
    assert recorded["test_summary[mini-gpu]"]["milestone"] == "mini-gpu"


@pytest.mark.slow
def test_a_failed_phase_skips_its_dependents_but_evidence_and_summary_still_run(
    mini: MiniProject,
) -> None:
    result = mini.run("--milestone", "mini-broken", "-rs")
    result.assert_outcomes(passed=5, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*: train failed: OSError: *no file named*"])
    data = mini.manifest("mini-broken_v1")
    assert data["verdict"] == "train failed"
    assert data["phases"]["evaluate"]["status"] == "skipped"
    analysis = (mini.path / "submission_runs" / "mini-broken_v1" / "failure_analysis.md").read_text()
    assert "## train: failed" in analysis
    assert "last good state: no optimizer step completed" in analysis


@pytest.mark.slow
def test_stopping_early_still_documents_the_phases_that_did_not_run(mini: MiniProject) -> None:
    result = mini.run("--milestone", "mini-broken", "-x")
    result.assert_outcomes(passed=2, failed=1)
    data = mini.manifest("mini-broken_v1")
    assert data["complete"] is False
    assert data["phases"]["summary"]["status"] == "not run"
    assert (mini.path / "submission_runs" / "mini-broken_v1" / "mini-broken_summary.md").is_file()


def test_unknown_milestone_is_a_usage_error_listing_the_known_ones(mini: MiniProject) -> None:
    result = mini.run_in_process("--milestone", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown milestone 'nope' in *; known milestones: mini, mini-broken, mini-gpu*"])
    assert not (mini.path / "submission_runs").exists()


def test_a_bad_spec_is_a_usage_error_naming_file_and_key(mini: MiniProject) -> None:
    path = mini.path / "configs" / "milestones" / "mini.yaml"
    path.write_text(path.read_text().replace("hardware:", "hardwre:"))
    result = mini.run_in_process("--milestone", "mini")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*mini.yaml: *unknown key 'hardwre' (did you mean 'hardware'?)*"])


def test_without_a_milestone_the_phases_skip_and_say_why(mini: MiniProject) -> None:
    result = mini.run_in_process("-rs")
    result.assert_outcomes(skipped=11)  # every phase of every kind of milestone
    result.stdout.fnmatch_lines(["*no --milestone given; known milestones: mini, mini-broken, mini-gpu*"])
    assert not (mini.path / "submission_runs").exists()


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist"])
def test_collect_only_shows_the_plan_and_writes_nothing(mini: MiniProject, workers: list[str]) -> None:
    result = mini.run_in_process("--milestone", "mini-gpu", "--collect-only", "-q", *workers)
    result.stdout.fnmatch_lines(
        [
            "milestone mini-gpu: needs test hardware",
            "  preflight (always runs): would skip: needs test hardware: looked for 1 cuda device(s)*",
            "  train (after guardrails-before): would skip: preflight skipped",
            "  summary (always runs): would run",
            "*test_preflight[[]mini-gpu[]]*",
            "*test_summary[[]mini-gpu[]]*",
        ]
    )
    assert not (mini.path / "submission_runs").exists()


def test_milestones_lists_every_milestone_with_its_latest_outcome(mini: MiniProject) -> None:
    old = mini.path / "submission_runs" / "mini_v3"
    old.mkdir(parents=True)
    (old / "run_manifest.json").write_text('{"verdict": "train failed"}')
    result = mini.pytester.runpytest("--milestones", f"--rootdir={mini.path}", "-c", str(mini.path / "pytest.ini"))
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "mini: Mini milestone [[]torch, test hardware[]] -- latest: mini_v3: train failed",
            "mini-broken: Mini milestone [[]torch, test hardware[]] -- latest: no bundle yet",
            "mini-gpu: *",
        ]
    )


def test_an_output_folder_outside_the_project_is_a_usage_error(mini: MiniProject) -> None:
    (mini.path / "pytest.ini").write_text("[pytest]\nruns_dir = ../elsewhere\n")
    result = mini.run_in_process("--milestone", "mini")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*runs_dir = ../elsewhere: the folder must lie inside the project*"])
    assert not (mini.path.parent / "elsewhere").exists()


@pytest.mark.slow
def test_rehearse_runs_a_gpu_milestone_on_the_cpu_as_a_marked_rehearsal(mini: MiniProject) -> None:
    result = mini.run("--milestone", "mini-gpu", "--rehearse")
    result.assert_outcomes(passed=7)
    manifest = mini.manifest("mini-gpu-rehearsal_v1")
    assert manifest["rehearsal"] is True
    assert manifest["model"] == "random:tiny-gemma"
    assert manifest["hardware_required"]["accelerator"] == "cpu"
    assert {c["verdict"] for c in manifest["criteria"]} == {"not judged"}
    summary = (mini.bundle("mini-gpu-rehearsal_v1") / "mini-gpu_summary.md").read_text()
    assert "**Rehearsal**" in summary
    assert not (mini.path / "submission_runs" / "mini-gpu_v1").exists()
