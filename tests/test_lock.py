"""Freezing and proving: a frozen ZIP locked by a snapshot that every later milestone checks."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import MiniProject

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

FREEZE = """\
id: mini-freeze
kind: freeze
title: Mini frozen submission
purpose: Freeze a mini run into a ZIP.
source: submission_runs/mini_v1
files: [checkpoint/model.safetensors, checkpoint/config.json, evaluation_results.json, mini_summary.md]
extra_files: [pytest.ini]
size_budget_mb: 5
guardrails: {clean_tree: false}  # so the edited frozen file reaches the lock, which must name it
closing_statement: The mini freeze is the authoritative mini submission.
"""


def frozen(mini: MiniProject) -> tuple[bytes, str]:
    data = (mini.path / "submission_runs" / "mini-freeze" / "submission.zip").read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def test_freeze_once_then_every_change_of_a_frozen_byte_is_caught(mini: MiniProject) -> None:
    mini.run("--milestone", "mini").assert_outcomes(passed=7)
    (mini.path / "configs" / "milestones" / "mini-freeze.yaml").write_text(FREEZE)
    mini.commit("a freeze milestone")
    mini.run("--milestone", "mini-freeze", "--snapshot-update").assert_outcomes(passed=8)
    assert (mini.path / "configs" / "frozen" / "mini-freeze.json").is_file()
    first_bytes, first_sha = frozen(mini)

    # A second freeze of the same inputs rebuilds a byte-identical ZIP and the lock holds.
    result = mini.run("--milestone", "mini-freeze")
    result.assert_outcomes(passed=8)
    rebuilt = mini.path / "submission_runs" / "mini-freeze_v2" / "submission.zip"
    assert hashlib.sha256(rebuilt.read_bytes()).hexdigest() == first_sha

    spec = mini.path / "configs" / "milestones" / "mini.yaml"
    spec.write_text(spec.read_text().replace("frozen: []", "frozen: [mini-freeze]"))
    mini.commit("mini declares the frozen submission")
    mini.run("--milestone", "mini").assert_outcomes(passed=7)

    changed = bytearray(first_bytes)
    changed[len(changed) // 2] ^= 0xFF
    (mini.path / "submission_runs" / "mini-freeze" / "submission.zip").write_bytes(bytes(changed))
    lock = mini.run("--milestone", "mini-freeze")
    lock.assert_outcomes(passed=5, failed=3, deselected=2)
    lock.stdout.fnmatch_lines(['*"submission.zip": {*', '*-*"sha256": "' + first_sha + '"*'])
    phases = mini.manifest("mini-freeze_v3")["phases"]
    assert "differs from the frozen submission_runs/mini-freeze/submission.zip" in phases["build"]["reason"]
    assert phases["validate"]["status"] == phases["lock"]["status"] == "failed"
    guarded = mini.run("--milestone", "mini")
    guarded.assert_outcomes(passed=3, failed=1, skipped=3)
    before = mini.manifest("mini_v3")["phases"]["guardrails-before"]
    assert before["status"] == "failed"
    assert "submission_runs/mini-freeze/submission.zip" in before["reason"]


def test_snapshot_updates_are_refused_for_training_milestones_and_under_xdist(mini: MiniProject) -> None:
    result = mini.run_in_process("--milestone", "mini", "--snapshot-update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--snapshot-update: only a freeze milestone may rewrite a lock, and mini is not one*"])
    (mini.path / "configs" / "milestones" / "mini-freeze.yaml").write_text(FREEZE)
    result = mini.run_in_process("--milestone", "mini-freeze", "--snapshot-update", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--snapshot-update: refused under xdist (-n)*"])
