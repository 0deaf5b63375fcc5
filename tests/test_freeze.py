"""The submission ZIP: byte-identical from the same inputs, validated, and described by its lock record."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from harness.freeze import ZIP_MANIFEST, ZipInput, build_zip, lock_record, validate_zip


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
