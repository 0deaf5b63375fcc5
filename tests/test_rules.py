"""The run's rules are enforced: no code change during a run, nothing written outside its folder."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import MiniProject

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

TOUCH_DURING_TRAINING = '''
from pathlib import Path


def pytest_runtest_call(item):
    if item.name.startswith("test_train"):
        root = Path(item.config.rootpath)
        with (root / "configs" / "training" / "mini.yaml").open("a") as handle:
            handle.write("# touched during the run\\n")
        (root / "stray.txt").write_text("written outside the run folder\\n")
'''


def test_a_file_touched_during_the_run_fails_the_guardrail(mini: MiniProject) -> None:
    (mini.path / "acceptance" / "conftest.py").write_text(TOUCH_DURING_TRAINING)
    mini.commit("a conftest that edits a training config during training")
    result = mini.run("--milestone", "mini", "-rf")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(["FAILED*test_guardrails_after[[]mini[]]*"])
    after = mini.manifest("mini_v1")["phases"]["guardrails-after"]
    assert after["cause"] == "acceptance check failed"
    assert "code changed: configs/training/mini.yaml" in after["reason"]
    assert "output outside the run folder added: stray.txt" in after["reason"]
    recorded = json.loads((mini.bundle("mini_v1") / "guardrails.json").read_text())
    assert recorded["before"]["problems"] == ["none"]
    assert "code changed: configs/training/mini.yaml" in recorded["after"]["problems"]


def test_a_dirty_tree_blocks_a_real_run_before_training(mini: MiniProject) -> None:
    spec = mini.path / "configs" / "milestones" / "mini.yaml"
    spec.write_text(spec.read_text() + "# an uncommitted edit\n")
    result = mini.run("--milestone", "mini", "-rs")
    result.assert_outcomes(passed=3, failed=1, skipped=3)
    result.stdout.fnmatch_lines(
        ["SKIPPED*: guardrails-before failed: a rule is broken before the run: "
         "uncommitted change at start: configs/milestones/mini.yaml*"]
    )
    assert not (mini.bundle("mini_v1") / "training_log.txt").exists()
    assert mini.manifest("mini_v1")["dirty"] is True


def test_a_run_that_keeps_the_rules_records_its_dependencies(mini: MiniProject) -> None:
    mini.run("--milestone", "mini").assert_outcomes(passed=7)
    recorded = json.loads((mini.bundle("mini_v1") / "guardrails.json").read_text())
    assert recorded["before"]["dependencies"]["pytest"] == pytest.__version__
    assert recorded["after"]["problems"] == ["none"]
    assert recorded["before"]["head"] == mini.git("rev-parse", "HEAD").strip()
