"""The submission ZIP: byte-identical from the same inputs, validated, and described by its lock
record; a freeze spec whose paths escape is refused, and an invalid ZIP never reaches the lock."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from harness.evidence.submission_zip import (
    ZIP_MANIFEST,
    ZipInput,
    build_zip,
    lock_record,
    validate_zip,
)
from harness.spec.milestones import FreezeMilestone
from harness.spec.phase_order import BUILD, GUARDRAILS_BEFORE, LOCK, NEEDS, VALIDATE
from harness.spec.registry import MilestoneRegistry
from harness.spec.yaml_files import SpecError

if TYPE_CHECKING:
    from tests.conftest import MiniProject

ROOT = Path(__file__).resolve().parent.parent
# Found, not imported: torch cannot be imported twice into one process, and pytester drops the
# modules a test imported. The mini runs train in their own processes.
NEEDS_TORCH = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")


@pytest.fixture
def inputs(tmp_path: Path) -> list[ZipInput]:
    (tmp_path / "in").mkdir()
    files = {"checkpoint/model.safetensors": b"\x00weights" * 100, "README.md": b"# read me\n", "b.json": b"{}"}
    made = []
    for name, data in files.items():
        path = tmp_path / "in" / name.replace("/", "_")
        path.write_bytes(data)
        made.append(ZipInput(name, path))
    return made


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project holding a copy of the shipped configs, m42 among them."""
    shutil.copytree(ROOT / "configs", tmp_path / "project" / "configs")
    return tmp_path / "project"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_same_inputs_give_a_byte_identical_zip(inputs: list[ZipInput], tmp_path: Path) -> None:
    first = build_zip(inputs, tmp_path / "one" / "submission.zip")
    second = build_zip(list(reversed(inputs)), tmp_path / "two" / "submission.zip")
    assert sha(first) == sha(second)


def test_entries_are_sorted_with_fixed_timestamps_and_a_manifest(inputs: list[ZipInput], tmp_path: Path) -> None:
    path = build_zip(inputs, tmp_path / "submission.zip")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert names == ["README.md", "b.json", "checkpoint/model.safetensors", ZIP_MANIFEST]
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        listed = json.loads(archive.read(ZIP_MANIFEST))["files"]
    assert [entry["path"] for entry in listed] == names[:-1]
    assert listed[0]["sha256"] == hashlib.sha256(b"# read me\n").hexdigest()
    assert validate_zip(path, size_budget_mb=1) == []


def test_lock_record_holds_digests_and_sizes_not_bytes(inputs: list[ZipInput], tmp_path: Path) -> None:
    path = build_zip(inputs, tmp_path / "submission.zip")
    record = lock_record(path)
    assert record["submission.zip"] == {"sha256": sha(path), "size": path.stat().st_size}
    assert record["entries"]["README.md"]["size"] == len(b"# read me\n")


def test_a_flipped_byte_is_named(inputs: list[ZipInput], tmp_path: Path) -> None:
    path = build_zip(inputs, tmp_path / "submission.zip")
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("README.md")
    data = bytearray(path.read_bytes())
    # The entry's data starts after its 30-byte local header, its name and its extra field.
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[offset + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = validate_zip(path, size_budget_mb=1)
    assert any("README.md" in problem for problem in problems), problems


def test_secrets_unsafe_paths_unlisted_files_and_size_are_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLE_KEY", "kaggle-secret-value")
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "key=kaggle-secret-value")
        archive.writestr("/etc/passwd", "x")
        archive.writestr("../escape.txt", "x")
        archive.writestr(ZIP_MANIFEST, json.dumps({"files": [{"path": "gone.bin", "size": 1, "sha256": "0" * 64}]}))
    problems = "\n".join(validate_zip(path, size_budget_mb=1e-6))
    assert "notes.txt: holds the value of a secret environment variable" in problems
    assert "/etc/passwd: absolute or escaping path" in problems
    assert "../escape.txt: absolute or escaping path" in problems
    assert "notes.txt: not listed in MANIFEST.json" in problems
    assert "gone.bin: listed in MANIFEST.json but missing" in problems
    assert "over the" in problems


def test_not_a_zip_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "submission.zip"
    path.write_bytes(b"not a zip")
    assert validate_zip(path, size_budget_mb=1) == ["submission.zip: not a ZIP archive (File is not a zip file)"]


FREEZE = """\
id: mini-freeze
kind: freeze
title: Mini frozen submission
purpose: Freeze a mini run into a ZIP.
source: submission_runs/mini_v1
files: [checkpoint/model.safetensors, evaluation_results.json, mini_summary.md]
extra_files: [pytest.ini]
size_budget_mb: 5
guardrails: {clean_tree: false}
closing_statement: The mini freeze is the authoritative mini submission.
"""


def test_lock_needs_validate() -> None:
    assert NEEDS[LOCK] == VALIDATE
    assert NEEDS[VALIDATE] == NEEDS[BUILD] == GUARDRAILS_BEFORE  # a skipped build still validates


@pytest.mark.slow
@NEEDS_TORCH
def test_a_freeze_that_fails_validation_or_build_leaves_the_frozen_zip_and_its_lock(
    mini: MiniProject,
) -> None:
    mini.run("--milestone", "mini").assert_outcomes(passed=7)
    spec = mini.path / "configs" / "milestones" / "mini-freeze.yaml"
    spec.write_text(FREEZE)
    mini.commit("a freeze milestone")
    mini.run("--milestone", "mini-freeze", "--snapshot-update").assert_outcomes(passed=8)
    lock = mini.path / "configs" / "frozen" / "mini-freeze.json"
    frozen = mini.path / "submission_runs" / "mini-freeze" / "submission.zip"
    locked, zipped = lock.read_bytes(), frozen.read_bytes()

    # New inputs (a changed repository file) but a ZIP over its budget: validate fails.
    (mini.path / "pytest.ini").write_text((mini.path / "pytest.ini").read_text() + "# changed\n")
    spec.write_text(FREEZE.replace("size_budget_mb: 5", "size_budget_mb: 0.001"))
    mini.run("--milestone", "mini-freeze", "--snapshot-update")
    phases = mini.manifest("mini-freeze_v2")["phases"]
    statuses = [phases[phase]["status"] for phase in ("build", "validate", "lock")]
    assert statuses == ["passed", "failed", "skipped"]
    assert "over the 0.001 MiB budget" in phases["validate"]["reason"]
    assert phases["lock"]["reason"].startswith("validate failed: ")
    assert (lock.read_bytes(), frozen.read_bytes()) == (locked, zipped)

    # A source bundle that no longer verifies: build fails, so there is nothing to validate or lock.
    spec.write_text(FREEZE)
    results = mini.bundle("mini_v1") / "evaluation_results.json"
    results.write_text(results.read_text() + " ")
    mini.run("--milestone", "mini-freeze", "--snapshot-update")
    phases = mini.manifest("mini-freeze_v3")["phases"]
    statuses = [phases[phase]["status"] for phase in ("build", "validate", "lock")]
    assert statuses == ["failed", "failed", "skipped"]
    assert "nothing to freeze" in phases["validate"]["reason"]
    assert (lock.read_bytes(), frozen.read_bytes()) == (locked, zipped)


# --- the freeze spec: its paths stay inside the project and the source bundle ------------------

ESCAPES = [
    ("files", ["../escape.txt"]),
    ("files", ["/etc/passwd"]),
    ("extra_files", ["../../outside.md"]),
    ("extra_files", ["/etc/hostname"]),
    ("source", "../elsewhere/smoke_v1"),
    ("source", "/tmp/smoke_v1"),
]


def m42_with(project: Path, **changes: object) -> Path:
    path = project / "configs" / "milestones" / "m42.yaml"
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) | changes
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def m42_error(project: Path) -> str:
    with pytest.raises(SpecError) as info:
        MilestoneRegistry(project).load("m42")
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(("key", "value"), ESCAPES, ids=lambda v: str(v))
def test_a_freeze_path_that_escapes_is_refused_at_load(
    project: Path, key: str, value: object
) -> None:
    path = m42_with(project, **{key: value})
    message = m42_error(project)
    assert message.startswith(f"{path}: key '{key}")
    assert "must be a relative path without '..'" in message


def test_a_freeze_path_through_a_symlink_is_refused_at_load(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "notes.md").write_text("outside\n", encoding="utf-8")
    (project / "notes.md").symlink_to(outside / "notes.md")
    m42_with(project, extra_files=["notes.md"])
    assert "key 'extra_files': 'notes.md' leads outside" in m42_error(project)
    m42_with(project, extra_files=[])
    source = project / "submission_runs" / "smoke_v1"
    source.parent.mkdir()
    source.symlink_to(outside, target_is_directory=True)
    assert "key 'source': 'submission_runs/smoke_v1' leads outside" in m42_error(project)
    source.unlink()
    source.mkdir()
    (source / "smoke_summary.md").symlink_to(outside / "notes.md")
    assert "key 'files': 'smoke_summary.md' leads outside" in m42_error(project)


def test_the_shipped_freeze_loads_in_a_copy(project: Path) -> None:
    assert isinstance(MilestoneRegistry(project).load("m42"), FreezeMilestone)
