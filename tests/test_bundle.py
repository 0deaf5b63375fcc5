"""Tests for run-folder allocation and the atomic, redacting bundle writers."""

from __future__ import annotations

import json
import math
import stat
from pathlib import Path

import pytest

from harness.evidence import bundle


def _leftovers(folder: Path) -> list[str]:
    """Temporary files a write may have left next to its target."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


# --- allocate_run_dir ------------------------------------------------------------------------


def test_first_run_is_v1_then_v2(tmp_path: Path) -> None:
    runs = tmp_path / "submission_runs"
    first = bundle.allocate_run_dir(runs, "smoke")
    second = bundle.allocate_run_dir(runs, "smoke")
    assert first == runs / "smoke_v1"
    assert second == runs / "smoke_v2"
    assert first.is_dir()
    assert second.is_dir()


def test_never_reuses_a_number_below_the_maximum(tmp_path: Path) -> None:
    (tmp_path / "smoke_v3").mkdir()
    assert bundle.allocate_run_dir(tmp_path, "smoke") == tmp_path / "smoke_v4"
    assert not (tmp_path / "smoke_v1").exists()


def test_ignores_other_milestones_folders(tmp_path: Path) -> None:
    (tmp_path / "smoke-jax_v5").mkdir()
    (tmp_path / "m44_v7").mkdir()
    assert bundle.allocate_run_dir(tmp_path, "smoke") == tmp_path / "smoke_v1"
    assert bundle.allocate_run_dir(tmp_path, "smoke-jax") == tmp_path / "smoke-jax_v6"


def test_existing_empty_v1_is_not_reused(tmp_path: Path) -> None:
    (tmp_path / "smoke_v1").mkdir()
    assert bundle.allocate_run_dir(tmp_path, "smoke") == tmp_path / "smoke_v2"
    assert list((tmp_path / "smoke_v1").iterdir()) == []


def test_earlier_run_contents_are_untouched(tmp_path: Path) -> None:
    earlier = bundle.allocate_run_dir(tmp_path, "smoke")
    (earlier / "run_manifest.json").write_text("{}\n", encoding="utf-8")
    later = bundle.allocate_run_dir(tmp_path, "smoke")
    assert later != earlier
    assert (earlier / "run_manifest.json").read_text(encoding="utf-8") == "{}\n"
    assert list(later.iterdir()) == []


def test_creates_missing_runs_root(tmp_path: Path) -> None:
    runs = tmp_path / "a" / "b"
    assert bundle.allocate_run_dir(runs, "m44") == runs / "m44_v1"


# --- write_text / write_json / write_jsonl ---------------------------------------------------


def test_write_text_round_trips_and_is_world_readable(tmp_path: Path) -> None:
    path = bundle.write_text(tmp_path / "sub" / "notes.md", "line one\nline two ü\n")
    assert path == tmp_path / "sub" / "notes.md"
    assert path.read_text(encoding="utf-8") == "line one\nline two ü\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert _leftovers(path.parent) == []


def test_write_text_replaces_earlier_content(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    bundle.write_text(path, "old\n")
    bundle.write_text(path, "new\n")
    assert path.read_text(encoding="utf-8") == "new\n"
    assert _leftovers(tmp_path) == []


def test_write_json_round_trips(tmp_path: Path) -> None:
    data = {"b": [1, 2.5, None, True], "a": {"nested": "ü"}, "zero": 0}
    path = bundle.write_json(tmp_path / "run_manifest.json", data)
    assert bundle.read_json(path) == data
    assert json.loads(path.read_text(encoding="utf-8")) == data
    assert path.read_text(encoding="utf-8").endswith("\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(("bad", "spelled"), [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")])
def test_write_json_spells_non_finite_floats_as_strings(tmp_path: Path, bad: float, spelled: str) -> None:
    path = bundle.write_json(tmp_path / "training_metrics.json", {"per_step": [{"loss": bad}]})
    assert bundle.read_json(path) == {"per_step": [{"loss": spelled}]}


def test_write_json_refusing_a_value_keeps_the_earlier_file(tmp_path: Path) -> None:
    path = bundle.write_json(tmp_path / "training_metrics.json", {"final_loss": 1.25})
    before = path.read_text(encoding="utf-8")
    with pytest.raises(TypeError):
        bundle.write_json(path, {"final_loss": object()})
    assert path.read_text(encoding="utf-8") == before
    assert _leftovers(tmp_path) == []


def test_write_json_refusing_a_value_creates_no_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        bundle.write_json(tmp_path / "evaluation_results.json", {"accuracy": {1, 2}})
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = bundle.write_text(tmp_path / "notes.md", "kept\n")

    def fail(source: str, destination: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(bundle.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        bundle.write_text(path, "lost\n")
    assert path.read_text(encoding="utf-8") == "kept\n"
    assert _leftovers(tmp_path) == []


def test_write_jsonl_writes_one_object_per_line(tmp_path: Path) -> None:
    rows = [{"id": "e-1", "correct": True}, {"id": "e-2", "correct": False, "answer": "a\nb"}]
    path = bundle.write_jsonl(tmp_path / "predictions.jsonl", rows)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(rows)
    assert [json.loads(line) for line in lines] == rows
    assert _leftovers(tmp_path) == []


def test_write_jsonl_empty(tmp_path: Path) -> None:
    path = bundle.write_jsonl(tmp_path / "predictions.jsonl", [])
    assert path.read_text(encoding="utf-8") == ""


def test_summary_name() -> None:
    assert bundle.summary_name("m44") == "m44_summary.md"


@pytest.mark.parametrize("linked", ["file", "folder"])
def test_evidence_is_never_written_through_a_symlink(tmp_path: Path, linked: str) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run_dir = tmp_path / "smoke_v1"
    if linked == "folder":
        run_dir.symlink_to(elsewhere)
    else:
        run_dir.mkdir()
        (run_dir / "run_manifest.json").symlink_to(elsewhere / "run_manifest.json")
    with pytest.raises(OSError, match="refusing to write evidence through a symlink"):
        bundle.write_json(run_dir / "run_manifest.json", {"verdict": "passed"})
    assert list(elsewhere.iterdir()) == []
