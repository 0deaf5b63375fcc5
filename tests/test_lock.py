"""Freezing and proving: a frozen ZIP locked by a snapshot that every later milestone checks."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT

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

    # A lock edited by hand no longer holds the frozen ZIP: one line names both, the diff is kept.
    lock_file = mini.path / "configs" / "frozen" / "mini-freeze.json"
    committed = lock_file.read_text()
    lock_file.write_text(committed.replace(first_sha, "0" * 64))
    edited = mini.run("--milestone", "mini-freeze")
    edited.assert_outcomes(passed=7, failed=1, deselected=3)
    mismatch = (
        "frozen mini-freeze: submission_runs/mini-freeze/submission.zip does not match its lock "
        "configs/frozen/mini-freeze.json"
    )
    edited.stdout.fnmatch_lines(
        [f"{mismatch} (traceback: submission_runs/mini-freeze_v3/tracebacks/lock.txt)"]
    )
    assert mini.manifest("mini-freeze_v3")["phases"]["lock"]["reason"] == mismatch
    diff = (mini.bundle("mini-freeze_v3") / "tracebacks" / "lock.txt").read_text().splitlines()
    pytest.LineMatcher(diff).fnmatch_lines(
        ['*"submission.zip": {*', f'*-*"sha256": "{"0" * 64}"*', f'*+*"sha256": "{first_sha}"*']
    )
    lock_file.write_text(committed)

    changed = bytearray(first_bytes)
    changed[len(changed) // 2] ^= 0xFF
    (mini.path / "submission_runs" / "mini-freeze" / "submission.zip").write_bytes(bytes(changed))
    lock = mini.run("--milestone", "mini-freeze")
    lock.assert_outcomes(passed=5, failed=2, skipped=1, deselected=3)
    phases = mini.manifest("mini-freeze_v4")["phases"]
    assert "differs from the frozen submission_runs/mini-freeze/" in phases["build"]["reason"]
    assert phases["validate"]["status"] == "failed" and phases["lock"]["status"] == "skipped"
    guarded = mini.run("--milestone", "mini")
    guarded.assert_outcomes(passed=3, failed=1, skipped=3)
    before = mini.manifest("mini_v3")["phases"]["guardrails-before"]
    assert before["status"] == "failed"
    assert "submission_runs/mini-freeze/submission.zip" in before["reason"]


def test_a_freeze_leaves_the_locks_of_other_milestones_alone(mini: MiniProject) -> None:
    mini.run("--milestone", "mini").assert_outcomes(passed=7)
    (mini.path / "configs" / "milestones" / "mini-freeze.yaml").write_text(FREEZE)
    other = mini.path / "configs" / "frozen" / "m42.json"
    other.parent.mkdir(parents=True)
    shutil.copy(ROOT / "configs" / "frozen" / "m42.json", other)
    mini.commit("a freeze milestone, and the lock of a milestone this project does not have")
    # No path: syrupy then judges every snapshot it discovers, and --snapshot-update deletes
    # those it finds unused.
    command = [sys.executable, "-m", "pytest", "--milestone", "mini-freeze", "--snapshot-update"]
    done = subprocess.run(command, cwd=mini.path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (mini.path / "configs" / "frozen" / "mini-freeze.json").is_file()
    assert other.read_bytes() == (ROOT / "configs" / "frozen" / "m42.json").read_bytes()
    assert "unused" not in done.stdout


def test_snapshot_updates_are_refused_for_training_milestones_and_under_xdist(mini: MiniProject) -> None:
    result = mini.run_in_process("--milestone", "mini", "--snapshot-update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--snapshot-update: only a freeze milestone may rewrite a lock, and mini is not one*"])
    (mini.path / "configs" / "milestones" / "mini-freeze.yaml").write_text(FREEZE)
    result = mini.run_in_process("--milestone", "mini-freeze", "--snapshot-update", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--snapshot-update: refused under xdist (-n)*"])
