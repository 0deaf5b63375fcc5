"""The plugin in a user's own repository: its milestones, data and output folder, no phase module."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.evidence import bundle
from harness.evidence.verify import verify_bundle
from tests.conftest import ROOT, SPEC, TRAINING

pytestmark = pytest.mark.slow

PYPROJECT = """\
[project]
name = "my-finetune"
version = "0.0.1"

[tool.pytest.ini_options]
milestone_paths = ["milestones"]
runs_dir = "evidence"
"""


def git(project: Path, *args: str) -> None:
    identity = ["-c", "user.name=a user", "-c", "user.email=user@example.invalid"]
    subprocess.run(["git", *identity, *args], cwd=project, check=True, capture_output=True)


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    """A git repository with a milestone in milestones/, its training config beside it, data."""
    project = tmp_path / "my-finetune"
    (project / "milestones" / "training").mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    (project / "milestones" / "training" / "tiny.yaml").write_text(TRAINING.format(lr=3.0e-3))
    spec = SPEC.format(
        milestone_id="first-run",
        backend="torch",
        accelerator="cpu",
        model="random:tiny-gemma",
        training="training/tiny",
        max_steps=4,
    )
    (project / "milestones" / "first-run.yaml").write_text(spec.replace("dataset: mini", "dataset: notes"))
    traces = (ROOT / "datasets" / "dev-reasoning-v2" / "traces.jsonl").read_text().splitlines()
    (project / "datasets" / "notes").mkdir(parents=True)
    (project / "datasets" / "notes" / "traces.jsonl").write_text("\n".join(traces[:16]) + "\n")
    items = (ROOT / "evalsets" / "eval_v2.jsonl").read_text().splitlines()
    (project / "evalsets").mkdir()
    (project / "evalsets" / "mini.jsonl").write_text("\n".join(items[:5]) + "\n")
    (project / ".gitignore").write_text("evidence/\n.pytest_cache/\n")
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "my milestone")
    return project


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args], cwd=project, capture_output=True, text=True, timeout=600
    )


def test_a_milestone_defined_in_another_repository_runs_there(user_project: Path) -> None:
    done = pytest_in(user_project, "--milestone", "first-run", "--junitxml", "phases.xml")
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = user_project / "evidence" / "first-run_v1"
    assert verify_bundle(run_dir) == []
    manifest = json.loads((run_dir / bundle.RUN_MANIFEST).read_text())
    assert manifest["verdict"] == "passed"
    junit = (user_project / "phases.xml").read_text()
    assert 'name="test_train[first-run]"' in junit
    assert '<property name="run_dir" value="evidence/first-run_v1" />' in junit


def test_the_user_project_lists_and_plans_its_own_milestones(user_project: Path) -> None:
    listed = pytest_in(user_project, "--milestones")
    assert listed.returncode == 0, listed.stderr
    assert "first-run: Mini milestone" in listed.stdout
    planned = pytest_in(user_project, "--milestone", "first-run", "--collect-only", "-q")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "milestones/first-run.yaml::test_train[first-run]" in planned.stdout
    assert not (user_project / "evidence").exists()


def test_a_lock_no_milestone_declares_is_not_an_unused_snapshot(user_project: Path) -> None:
    shutil.copytree(ROOT / "configs", user_project / "configs")
    assert (user_project / "configs" / "frozen" / "m42.json").is_file()
    git(user_project, "add", "-A")
    git(user_project, "commit", "-q", "-m", "the configs of another project, its m42 lock included")
    done = pytest_in(user_project, "--milestone", "first-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "unused" not in done.stdout
    assert (user_project / "configs" / "frozen" / "m42.json").read_bytes() == (
        ROOT / "configs" / "frozen" / "m42.json"
    ).read_bytes()
