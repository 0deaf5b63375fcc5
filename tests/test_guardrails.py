"""Tests for the run guardrails: code, dependency, CI and output fingerprints on a real repo."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
from pathlib import Path

import pytest

from harness.probes import fingerprints as guardrails
from harness.probes.git import GitError, dirty_paths
from harness.record.fingerprints import Fingerprint
from harness.spec.dependency_lock import LockFileError, read_lock


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=60)


def _commit(root: Path, message: str) -> None:
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed repository with code, a CI script and a .gitignore, isolated from user config."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "repo"
    (root / "harness").mkdir(parents=True)
    (root / ".ci").mkdir()
    (root / "harness" / "x.py").write_text("X = 1\n")
    (root / "harness" / "with space.py").write_text("Y = 2\n")
    (root / ".ci" / "run").write_text("#!/bin/sh\npytest\n")
    (root / ".gitignore").write_text("out/\n__pycache__/\n")
    _git(root, "init", "-q")
    _git(root, "config", "user.name", "Guardrail Test")
    _git(root, "config", "user.email", "guardrail@example.invalid")
    _git(root, "config", "commit.gpgsign", "false")
    _commit(root, "initial")
    return root


# --- Fingerprint ------------------------------------------------------------------------------


def test_diff_reports_added_removed_changed_sorted() -> None:
    before = Fingerprint({"a": "1", "b": "2", "c": "3"})
    after = Fingerprint({"a": "1", "b": "9", "d": "4"})
    assert before.diff(after) == ["added: d", "changed: b", "removed: c"]
    assert before.diff(before) == []


def test_to_json_is_sorted_and_serialisable() -> None:
    original = Fingerprint({"b": "2", "a": "1"})
    assert json.loads(json.dumps(original.to_json())) == {"a": "1", "b": "2"}
    assert list(original.to_json()) == ["a", "b"]


# --- code -------------------------------------------------------------------------------------


def test_code_fingerprint_is_stable(repo: Path) -> None:
    first = guardrails.code_fingerprint(repo)
    assert first.diff(guardrails.code_fingerprint(repo)) == []
    assert {"HEAD", "harness/x.py", "harness/with space.py", ".ci/run", ".gitignore"} <= set(
        first.entries
    )


def test_editing_a_tracked_file_shows_changed(repo: Path) -> None:
    before = guardrails.code_fingerprint(repo)
    (repo / "harness" / "with space.py").write_text("Y = 3\n")
    assert before.diff(guardrails.code_fingerprint(repo)) == ["changed: harness/with space.py"]


def test_new_commit_changes_head(repo: Path) -> None:
    before = guardrails.code_fingerprint(repo)
    (repo / "harness" / "new.py").write_text("Z = 1\n")
    _commit(repo, "second")
    after = guardrails.code_fingerprint(repo)
    assert before.diff(after) == ["added: harness/new.py", "changed: HEAD"]


def test_deleting_a_tracked_file_shows_removed(repo: Path) -> None:
    before = guardrails.code_fingerprint(repo)
    (repo / "harness" / "x.py").unlink()
    assert before.diff(guardrails.code_fingerprint(repo)) == ["removed: harness/x.py"]


def test_not_a_git_repository_is_one_line(repo: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitError, match="not a git repository") as caught:
        guardrails.code_fingerprint(plain)
    message = str(caught.value)
    assert message.startswith(f"{plain}: ")
    assert "\n" not in message


def test_subfolder_of_a_repository_is_refused(repo: Path) -> None:
    with pytest.raises(GitError, match="not the top level"):
        guardrails.outputs_snapshot(repo / "harness")


# --- dirty_paths ------------------------------------------------------------------------------


def test_clean_tree_is_empty(repo: Path) -> None:
    assert dirty_paths(repo) == []


def test_dirty_tree_lists_modified_and_staged_paths(repo: Path) -> None:
    (repo / "harness" / "with space.py").write_text("Y = 3\n")
    (repo / "harness" / "x.py").write_text("X = 2\n")
    _git(repo, "add", "harness/x.py")
    assert dirty_paths(repo) == ["harness/with space.py", "harness/x.py"]


def test_untracked_files_do_not_make_the_tree_dirty(repo: Path) -> None:
    (repo / "stray.txt").write_text("hello\n")
    (repo / "out").mkdir()
    (repo / "out" / "ignored.txt").write_text("hello\n")
    assert dirty_paths(repo) == []


# --- dependencies -----------------------------------------------------------------------------


def test_dependency_fingerprint_has_pytest_version() -> None:
    assert guardrails.dependency_fingerprint().entries["pytest"] == importlib.metadata.version(
        "pytest"
    )


def test_read_lock_parses_pins_and_skips_the_rest(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("# frozen\n\nPyYAML==6.0.2\n-e /work/project\nzope.interface == 7.0\n")
    assert read_lock(lock) == {"pyyaml": "6.0.2", "zope-interface": "7.0"}


def test_malformed_lock_line_names_file_and_line(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("pytest==8.3.0\nnumpy>=2\n")
    with pytest.raises(LockFileError, match=r"requirements\.lock:2: ") as caught:
        read_lock(lock)
    assert str(lock) in str(caught.value)


def test_lock_against_installed_shows_changed_version(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("pytest==0.0.1\n")
    installed = guardrails.dependency_fingerprint()
    assert "changed: pytest" in Fingerprint(read_lock(lock)).diff(installed)


# --- CI ---------------------------------------------------------------------------------------


def test_ci_fingerprint_names_the_changed_file(repo: Path) -> None:
    before = guardrails.ci_fingerprint(repo)
    assert set(before.entries) == {".ci/run"}
    (repo / ".ci" / "run").write_text("#!/bin/sh\ntrue\n")
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    assert before.diff(guardrails.ci_fingerprint(repo)) == [
        "added: .github/workflows/ci.yml",
        "changed: .ci/run",
    ]


def test_ci_fingerprint_without_ci_folders_is_empty(tmp_path: Path) -> None:
    assert guardrails.ci_fingerprint(tmp_path).entries == {}


# --- outputs ----------------------------------------------------------------------------------


def test_outputs_snapshot_sees_ignored_and_untracked_files(repo: Path) -> None:
    before = guardrails.outputs_snapshot(repo)
    (repo / "out" / "run_v1").mkdir(parents=True)
    (repo / "out" / "run_v1" / "a.txt").write_text("evidence\n")
    (repo / "stray.txt").write_text("stray\n")
    changes = before.diff(guardrails.outputs_snapshot(repo))
    assert changes == ["added: out/run_v1/a.txt", "added: stray.txt"]
    assert guardrails.outside(changes, allowed=repo / "out" / "run_v1", root=repo) == [
        "added: stray.txt"
    ]


def test_outputs_snapshot_sees_a_new_file_inside_an_existing_ignored_folder(repo: Path) -> None:
    (repo / "out").mkdir()
    (repo / "out" / "old.txt").write_text("old\n")
    before = guardrails.outputs_snapshot(repo)
    (repo / "out" / "new.txt").write_text("new\n")
    assert before.diff(guardrails.outputs_snapshot(repo)) == ["added: out/new.txt"]


def test_outputs_snapshot_never_reports_caches(repo: Path) -> None:
    before = guardrails.outputs_snapshot(repo)
    for cache in (
        repo / "harness" / "__pycache__",
        repo / "out" / "__pycache__",
        repo / "fresh" / "__pycache__",
        repo / ".venv" / "lib",
    ):
        cache.mkdir(parents=True)
        (cache / "m.pyc").write_bytes(b"\0")
    after = guardrails.outputs_snapshot(repo)
    assert not any("__pycache__" in name or ".venv" in name for name in after.entries)
    assert before.diff(after) == []


def test_outputs_snapshot_records_an_empty_folder_inside_an_ignored_one(repo: Path) -> None:
    (repo / "out").mkdir()
    (repo / "out" / "keep.txt").write_text("keep\n")
    before = guardrails.outputs_snapshot(repo)
    (repo / "out" / "run_v2").mkdir()
    after = guardrails.outputs_snapshot(repo)
    assert before.diff(after) == ["added: out/run_v2"]
    assert after.entries["out/run_v2"] == "dir"


def test_outputs_snapshot_sees_modified_and_deleted_tracked_files(repo: Path) -> None:
    before = guardrails.outputs_snapshot(repo)
    (repo / "harness" / "x.py").write_text("X = 2\n")
    (repo / ".ci" / "run").unlink()
    after = guardrails.outputs_snapshot(repo)
    assert before.diff(after) == ["added: .ci/run", "added: harness/x.py"]
    assert after.entries[".ci/run"] == "deleted"
    changes = before.diff(after)
    assert guardrails.outside(changes, allowed=Path("out"), root=repo) == changes


def test_outside_refuses_a_folder_outside_root(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(guardrails.GuardrailError, match="not a folder under"):
        guardrails.outside(["added: x"], allowed=tmp_path / "elsewhere", root=repo)
